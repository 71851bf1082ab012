/**
 * Live interop of `protocol/wireguard` with Debian's wireguard-go, in two throwaway network
 * namespaces joined by a veth pair (198.18.77.0/24, no default routes):
 *
 * ```
 * ns A: deno tests/fixtures/wg_peer.ts       ns B: wireguard-go wgi<rand> (fd00:77::2/64)
 *       198.18.77.1:51001  ◄──── veth ────►        198.18.77.2:51002
 *       inner fd00:77::1 (no TUN)
 * ```
 *
 * Checks: our initiation → wireguard-go response → our ICMPv6 echo request answered; `ping -6`
 * from B answered by the fixture; after B forgets the peer, wireguard-go initiates and our
 * response works. Needs root, `ip`, `wg` and `wireguard-go`; otherwise the test is ignored.
 *
 * @module
 */
import { missingTools } from "./lab/netns.ts";
import { generatePrivateKey, publicKeyOf } from "../protocol/wireguard/mod.ts";
import {
  PINNED_INITIATION,
  PINNED_PRIVATE_A,
  PINNED_PRIVATE_B,
} from "../protocol/wireguard/_test_vectors.ts";

const PORT_A = 51001;
const PORT_B = 51002;
const ADDR_A = "198.18.77.1";
const ADDR_B = "198.18.77.2";
const CMD_TIMEOUT_MS = 15_000;

const missing = missingTools(["ip", "wg", "wireguard-go", "ping"]);
const canRun = Deno.build.os === "linux" && Deno.uid() === 0 && missing.length === 0;
if (!canRun) {
  console.warn(
    `wireguard interop test ignored: needs root on Linux with ip, wg, wireguard-go, ping` +
      (missing.length ? ` (missing: ${missing.join(", ")})` : ""),
  );
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<Run> {
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

async function must(cmd: string[]): Promise<string> {
  const r = await run(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

function fromHex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
}

/** Waits until some line of `l` satisfies `pred`; false after `timeoutMs`. */
async function waitLine(l: Lines, pred: (line: string) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (l.lines.some(pred)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return l.lines.some(pred);
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));

/** Line-oriented view of a child's stdout with bounded waits. */
class Lines {
  readonly lines: string[] = [];
  #waiters: (() => void)[] = [];
  readonly done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let buf = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        for (const w of this.#waiters.splice(0)) w();
      }
      for (const w of this.#waiters.splice(0)) w();
    })();
  }
  events(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
  }
  async waitFor(
    pred: (e: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (let round = 0; round < 10_000; round++) {
      const hit = this.events().find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
    throw new Error(`timeout waiting for ${what}; fixture said:\n${this.lines.join("\n")}`);
  }
}

Deno.test({
  name: "wireguard interop: meshub ↔ wireguard-go handshakes both ways and ICMPv6 echo",
  ignore: !canRun,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tag = hex(crypto.getRandomValues(new Uint8Array(2)));
    const nsA = `mhwg${tag}a`;
    const nsB = `mhwg${tag}b`;
    const ifB = `wgi${tag}`; // unique: wireguard-go's UAPI socket path is host-wide
    const tmp = await Deno.makeTempDir({ prefix: "mhwg" });
    let wgGo: Deno.ChildProcess | undefined;
    let fixture: Deno.ChildProcess | undefined;
    let fixtureLines: Lines | undefined;
    const nsCreated: string[] = [];
    const inB = (...cmd: string[]) => ["ip", "netns", "exec", nsB, ...cmd];

    const ourKey = generatePrivateKey();
    const ourPub = publicKeyOf(ourKey);
    const theirKey = generatePrivateKey();
    const theirPub = publicKeyOf(theirKey);
    const psk = crypto.getRandomValues(new Uint8Array(32));

    try {
      for (const ns of [nsA, nsB]) {
        await must(["ip", "netns", "add", ns]);
        nsCreated.push(ns);
        await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
      }
      await must([
        "ip",
        "-n",
        nsA,
        "link",
        "add",
        "veth0",
        "type",
        "veth",
        "peer",
        "name",
        "veth0",
        "netns",
        nsB,
      ]); // deno-fmt-ignore
      await must(["ip", "-n", nsA, "addr", "add", `${ADDR_A}/24`, "dev", "veth0"]);
      await must(["ip", "-n", nsB, "addr", "add", `${ADDR_B}/24`, "dev", "veth0"]);
      await must(["ip", "-n", nsA, "link", "set", "veth0", "up"]);
      await must(["ip", "-n", nsB, "link", "set", "veth0", "up"]);

      // wireguard-go in B, foreground (WG_PROCESS_FOREGROUND also silences the kmod banner).
      wgGo = new Deno.Command("ip", {
        args: ["netns", "exec", nsB, "wireguard-go", "-f", ifB],
        env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "verbose" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const wgLog = new Lines(wgGo.stdout);
      const wgErr = new Lines(wgGo.stderr);
      const sock = `/var/run/wireguard/${ifB}.sock`;
      for (let i = 0; i < 50; i++) {
        try {
          Deno.statSync(sock);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      Deno.statSync(sock); // throws with a clear path if wireguard-go never came up

      await Deno.writeTextFile(`${tmp}/b.key`, b64(theirKey));
      await Deno.writeTextFile(`${tmp}/psk`, b64(psk));
      const configurePeer = () =>
        must(inB(
          "wg",
          "set",
          ifB,
          "private-key",
          `${tmp}/b.key`,
          "listen-port",
          String(PORT_B),
          "peer",
          b64(ourPub),
          "preshared-key",
          `${tmp}/psk`,
          "allowed-ips",
          "fd00:77::1/128",
          "endpoint",
          `${ADDR_A}:${PORT_A}`,
        )); // deno-fmt-ignore
      await configurePeer();
      await must(["ip", "-n", nsB, "addr", "add", "fd00:77::2/64", "dev", ifB, "nodad"]);
      await must(["ip", "-n", nsB, "link", "set", ifB, "up"]);

      // Our fixture in A.
      fixture = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          nsA,
          Deno.execPath(),
          "run",
          "--unstable-net",
          "--allow-net",
          "--allow-read",
          "--allow-env",
          `--config=${new URL("../deno.json", import.meta.url).pathname}`,
          new URL("./fixtures/wg_peer.ts", import.meta.url).pathname,
          `listen=${ADDR_A}:${PORT_A}`,
          `peer=${ADDR_B}:${PORT_B}`,
          `key=${hex(ourKey)}`,
          `peer-key=${hex(theirPub)}`,
          `psk=${hex(psk)}`,
          "max-ms=60000",
        ], // deno-fmt-ignore
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const lines = fixtureLines = new Lines(fixture.stdout);

      // 1. We initiate; wireguard-go responds; our echo request is answered through the tunnel.
      await lines.waitFor((e) => e.event === "established", 15_000, "handshake with wireguard-go");
      const reply = await lines.waitFor((e) => e.event === "echo_reply", 10_000, "echo reply");
      if (reply.checksumOk !== true) throw new Error("echo reply checksum invalid");

      // 2. ping -6 from B: wireguard-go encrypts, the fixture answers each echo request.
      const ping1 = await run(inB("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:77::1"));
      if (ping1.code !== 0 || !/3 received/.test(ping1.stdout)) {
        throw new Error(
          `ping from wireguard-go side failed:\n${ping1.stdout}${ping1.stderr}\n${
            lines.lines.join("\n")
          }\n${wgLog.lines.concat(wgErr.lines).join("\n")}`,
        );
      }
      const answered = lines.events().filter((e) => e.event === "echo_request" && e.answered);
      if (answered.length < 3) throw new Error(`fixture answered ${answered.length} requests`);
      if (!answered.every((e) => e.checksumOk === true)) {
        throw new Error("kernel echo request checksum invalid after decryption");
      }

      // 3. wireguard-go initiates: make it forget the peer (and its sessions), then ping.
      await must(inB("wg", "set", ifB, "peer", b64(ourPub), "remove"));
      await configurePeer();
      const ping2 = await run(inB("ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", "fd00:77::1"));
      const responded = lines.events().filter((e) =>
        e.event === "handshake_response_sent" && e.authenticated === true
      );
      if (responded.length < 1) {
        throw new Error(
          `wireguard-go did not initiate a handshake we answered:\n${
            lines.lines.join("\n")
          }\nwireguard-go log:\n${wgLog.lines.concat(wgErr.lines).slice(-40).join("\n")}`,
        );
      }
      if (ping2.code !== 0 || !/[1-3] received/.test(ping2.stdout)) {
        throw new Error(`ping after wireguard-go-initiated handshake failed:\n${ping2.stdout}`);
      }
      const shown = await must(inB("wg", "show", ifB, "latest-handshakes"));
      if (!shown.includes(b64(ourPub))) throw new Error(`wg show lacks our peer: ${shown}`);

      // 4. The pinned known-answer initiation of protocol/wireguard/device_test.ts is accepted
      //    by wireguard-go when it holds the pinned responder key.
      await Deno.writeTextFile(`${tmp}/pinned_b.key`, b64(fromHex(PINNED_PRIVATE_B)));
      const pinnedPeer = b64(publicKeyOf(fromHex(PINNED_PRIVATE_A)));
      await must(inB(
        "wg",
        "set",
        ifB,
        "private-key",
        `${tmp}/pinned_b.key`,
        "peer",
        pinnedPeer,
        "allowed-ips",
        "fd00:77::9/128",
        "endpoint",
        `${ADDR_A}:${PORT_A}`,
      )); // deno-fmt-ignore
      const abbrev = `${pinnedPeer.slice(0, 4)}…${pinnedPeer.slice(39, 43)}`;
      const writer = fixture.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`send ${PINNED_INITIATION}\n`));
      writer.releaseLock();
      const pinnedOk = await waitLine(
        wgLog,
        (l) => l.includes(abbrev) && l.includes("Sending handshake response"),
        10_000,
      );
      if (!pinnedOk) {
        throw new Error(
          `wireguard-go did not answer the pinned initiation:\n${
            wgLog.lines.concat(wgErr.lines).slice(-20).join("\n")
          }`,
        );
      }

      console.log(
        `interop ok (pinned initiation answered by wireguard-go): we initiated + echo reply; ping B→A: ${
          ping1.stdout.match(/\d+ packets transmitted.*/)?.[0]
        }; wireguard-go initiated + ping: ${ping2.stdout.match(/\d+ packets transmitted.*/)?.[0]}`,
      );
    } finally {
      if (fixture) {
        try {
          await fixture.stdin.close(); // the fixture exits when stdin closes
        } catch { /* gone */ }
        const exited = await Promise.race([
          fixture.status.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
        ]);
        if (!exited) {
          try {
            fixture.kill("SIGKILL");
          } catch { /* gone */ }
          await fixture.status;
        }
        await fixtureLines?.done.catch(() => {});
      }
      if (wgGo) {
        try {
          wgGo.kill("SIGTERM");
        } catch { /* gone */ }
        const exited = await Promise.race([
          wgGo.status.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
        ]);
        if (!exited) {
          try {
            wgGo.kill("SIGKILL");
          } catch { /* gone */ }
          await wgGo.status;
        }
      }
      for (const ns of nsCreated) await run(["ip", "netns", "del", ns]);
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
