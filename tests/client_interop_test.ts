/**
 * Client-level interop: a real `meshub client` (TUN, static `[[peer]]`, no hub) and Debian's
 * wireguard-go configured by hand with wg(8) from the meshub node's public key and the network
 * PSK, in two lab namespaces joined by a veth pair (198.18.88.0/24, no default routes):
 *
 * ```
 * ns a: meshub client, TUN meshub0 fd00:88::1/64     ns b: wireguard-go wgi<rand> fd00:88::2/64
 *       198.18.88.1:51820   ◄────────── veth ──────────►    198.18.88.2:51821
 * ```
 *
 * Part 1 (meshub initiates at start-up): the edge comes up, `ping -6` works both ways, and
 * `wg show latest-handshakes` has a handshake with meshub's key.
 *
 * Part 2 (wireguard-go initiates): meshub restarts with the same key while wireguard-go does not
 * know it (peer removed, so meshub's own initiations are refused); then the peer is added back
 * and B pings first, so the handshake that carries the ping is wireguard-go's.
 *
 * Needs root, `ip`, `wg`, `wireguard-go` and `ping`; otherwise the test is ignored.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Lab, type LabProcess, missingTools } from "./lab/netns.ts";
import { meshubCommand, newPsk } from "./lab/meshub.ts";
import { decodeBase64Url, encodeBase64 } from "../util/base64.ts";

const ADDR_A = "198.18.88.1";
const ADDR_B = "198.18.88.2";
const PORT_A = 51820;
const PORT_B = 51821;
const VPN_A = "fd00:88::1";
const VPN_B = "fd00:88::2";
/** `deno run` of the CLI may compile on first use. */
const MESHUB_START_MS = 60_000;
const EDGE_UP_MS = 20_000;

const missing = missingTools(["ip", "wg", "wireguard-go", "ping"]);
const isRoot = Deno.build.os === "linux" && Deno.uid() === 0;
const canRun = isRoot && missing.length === 0;
if (!canRun) {
  console.warn(
    "client interop test ignored: needs root on Linux with ip, wg, wireguard-go, ping" +
      (isRoot ? "" : " (not root)") +
      (missing.length ? ` (missing: ${missing.join(", ")})` : ""),
  );
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** wireguard-go's log abbreviation of a peer key, e.g. `peer(AbCd…WxYz)`. */
function wgGoPeerTag(publicKey: string): string {
  return `peer(${publicKey.slice(0, 4)}…${publicKey.slice(39, 43)})`;
}

/** Output of a process as one string, for assertion messages. */
function dump(proc: LabProcess, n = 40): string {
  return `--- ${proc.label} ---\n${proc.tail(n)}`;
}

Deno.test({
  name: "client interop: meshub client ↔ wireguard-go (wg(8)-configured) handshake and ping",
  ignore: !canRun,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = new Lab();
    const dir = await Deno.makeTempDir({ prefix: "meshub-wgi-" });
    const ifB = `wgi${lab.prefix.slice(2)}`; // host-wide UAPI socket path: keep it unique
    let wgGo: LabProcess | undefined;
    let meshub: LabProcess | undefined;
    try {
      const nsA = await lab.namespace("a");
      const nsB = await lab.namespace("b");
      await lab.link(nsA, "veth0", `${ADDR_A}/24`, nsB, "veth0", `${ADDR_B}/24`);

      // --- keys -------------------------------------------------------------------------------
      const psk = newPsk(); // base64url, as `meshub genkey` prints it
      const pskBytes = decodeBase64Url(psk);
      assert.ok(pskBytes !== null && pskBytes.length === 32, "PSK decodes to 32 bytes");
      const pskFile = `${dir}/psk.b64`;
      await Deno.writeTextFile(pskFile, encodeBase64(pskBytes) + "\n", { mode: 0o600 });

      const wgKeyFile = `${dir}/wg.key`;
      const genkey = await lab.exec(nsB, ["wg", "genkey"], { check: true });
      await Deno.writeTextFile(wgKeyFile, genkey.stdout, { mode: 0o600 });
      const wgPub = (await lab.exec(nsB, ["sh", "-c", `wg pubkey < '${wgKeyFile}'`], {
        check: true,
      })).stdout.trim();
      assert.match(wgPub, /^[A-Za-z0-9+/]{43}=$/, "wg pubkey output");

      const cfg = `${dir}/a.toml`;
      await Deno.writeTextFile(
        cfg,
        [
          "[encryption]",
          `psk = "${psk}"`,
          "[hub]",
          "addresses = []",
          "[node]",
          `name = "a"`,
          `state_file = "${dir}/a.key"`,
          `port = ${PORT_A}`,
          "[tun]",
          `interface = "meshub0"`,
          `ipv6 = "${VPN_A}/64"`,
          "[[peer]]",
          `name = "wg"`,
          `public_key = "${wgPub}"`,
          `endpoint = "${ADDR_B}:${PORT_B}"`,
          `ipv6 = "${VPN_B}/128"`,
        ].join("\n") + "\n",
      );
      const pubOut = await lab.exec(nsA, meshubCommand("pubkey", cfg), {
        check: true,
        timeoutMs: MESHUB_START_MS,
      });
      const meshubPub = pubOut.stdout.trim().split("\n").at(-1)!.trim();
      assert.match(meshubPub, /^[A-Za-z0-9+/]{43}=$/, `meshub pubkey output: ${pubOut.stdout}`);

      // --- wireguard-go in B, configured by hand with wg(8) -------------------------------------
      wgGo = lab.spawn(nsB, ["wireguard-go", "-f", ifB], {
        env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "verbose" },
      });
      await wgGo.waitForLine(/UAPI listener started/, { timeoutMs: 10_000 });
      const wg = (...args: string[]) => lab.exec(nsB, ["wg", ...args], { check: true });
      await wg("set", ifB, "private-key", wgKeyFile, "listen-port", String(PORT_B));
      const addMeshubPeer = () =>
        wg(
          "set",
          ifB,
          "peer",
          meshubPub,
          "preshared-key",
          pskFile,
          "allowed-ips",
          `${VPN_A}/128`,
          "endpoint",
          `${ADDR_A}:${PORT_A}`,
        );
      await addMeshubPeer();
      await lab.exec(nsB, ["ip", "-6", "addr", "add", `${VPN_B}/64`, "dev", ifB, "nodad"], {
        check: true,
      });
      await lab.exec(nsB, ["ip", "link", "set", ifB, "up"], { check: true });

      // --- part 1: meshub client in A; it initiates to its static peer ------------------------
      const startMeshub = async (): Promise<LabProcess> => {
        const p = lab.spawn(nsA, meshubCommand("client", cfg, "-v"));
        await p.waitForLine(/node a: \S+, udp port (\d+)/, { timeoutMs: MESHUB_START_MS });
        return p;
      };
      meshub = await startMeshub();
      const edgeRe = new RegExp(`edge up: wg via ${escapeRe(`${ADDR_B}:${PORT_B}`)} `);
      await meshub.waitForLine(edgeRe, { timeoutMs: EDGE_UP_MS });

      const aToB = await lab.ping(nsA, VPN_B, { count: 3, timeoutS: 2, intervalS: 0.2 });
      assert.equal(aToB.received, 3, `ping A→B:\n${aToB.output}\n${dump(meshub)}\n${dump(wgGo)}`);
      const bToA = await lab.ping(nsB, VPN_A, { count: 3, timeoutS: 2, intervalS: 0.2 });
      assert.equal(bToA.received, 3, `ping B→A:\n${bToA.output}\n${dump(meshub)}\n${dump(wgGo)}`);
      // Bursts of equal-size packets: meshub's side merges them into GSO sends (and may get
      // GRO-coalesced replies); wireguard-go must see ordinary datagrams either way.
      const burst = await lab.exec(nsA, [
        "ping",
        "-6",
        "-n",
        "-q",
        "-c",
        "96",
        "-l",
        "32",
        "-s",
        "1300",
        "-i",
        "0.05",
        "-W",
        "2",
        VPN_B,
      ], { timeoutMs: 30_000 });
      assert.match(burst.stdout, / 96 received/, `burst A→B:\n${burst.stdout}${burst.stderr}`);

      const shown = (await wg("show", ifB, "latest-handshakes")).stdout;
      const hs = shown.split("\n").map((l) => l.trim().split(/\s+/))
        .find(([key]) => key === meshubPub);
      assert.ok(hs, `wg show latest-handshakes lacks meshub's key ${meshubPub}:\n${shown}`);
      const hsTime = Number(hs[1]);
      assert.ok(hsTime > 0, `no handshake with meshub in wg show:\n${shown}`);
      assert.ok(
        Math.abs(Date.now() / 1000 - hsTime) < 120,
        `handshake time ${hsTime} is not recent:\n${shown}`,
      );

      // --- part 2: wireguard-go initiates ------------------------------------------------------
      // Restart meshub (same state file, so same key) while wireguard-go does not know it:
      // meshub's start-up initiations are refused, and nothing stale is left in wireguard-go.
      const stopped = await meshub.stop();
      assert.equal(stopped.code, 0, `meshub exit after SIGTERM:\n${dump(meshub)}`);
      await wg("set", ifB, "peer", meshubPub, "remove");
      const wgMark = wgGo.lineCount;
      meshub = await startMeshub();
      await wgGo.waitForLine(
        new RegExp(`Received invalid initiation message from ${escapeRe(`${ADDR_A}:${PORT_A}`)}`),
        { since: wgMark, timeoutMs: 15_000 },
      );
      const readdMark = wgGo.lineCount;
      await addMeshubPeer();
      const bFirst = await lab.ping(nsB, VPN_A, { count: 3, timeoutS: 3, intervalS: 0.2 });
      assert.equal(
        bFirst.received,
        3,
        `ping B→A after restart (wireguard-go initiating):\n${bFirst.output}\n${dump(meshub)}\n${
          dump(wgGo)
        }`,
      );
      const tag = escapeRe(wgGoPeerTag(meshubPub));
      await wgGo.waitForLine(new RegExp(`${tag} - Sending handshake initiation`), {
        since: readdMark,
        timeoutMs: 1000,
      });
      await wgGo.waitForLine(new RegExp(`${tag} - Received handshake response`), {
        since: readdMark,
        timeoutMs: 1000,
      });
      await meshub.waitForLine(edgeRe, { timeoutMs: EDGE_UP_MS });
      const aAgain = await lab.ping(nsA, VPN_B, { count: 3, timeoutS: 2, intervalS: 0.2 });
      assert.equal(aAgain.received, 3, `ping A→B after restart:\n${aAgain.output}`);

      console.log(
        `client interop ok: A→B ${aToB.received}/3, B→A ${bToA.received}/3, ` +
          `handshake at ${hsTime}; after restart, wireguard-go-initiated B→A ${bFirst.received}/3`,
      );
    } finally {
      await meshub?.stop().catch(() => {});
      await wgGo?.stop().catch(() => {});
      await lab.close().catch((e) => console.error(e));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
