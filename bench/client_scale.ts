/**
 * Client scale benchmark: one real `meshub client` in a lab namespace with `peers` static
 * `[[peer]]` entries, each pointing at a simulated WireGuard peer (`wg_peers.ts`, one
 * `WgDevice` and one UDP socket per peer) in a second namespace across a veth pair
 * (198.18.95.1 ↔ 198.18.95.2). meshub initiates every handshake at start; once all edges are up
 * the client idles (persistent keepalives every 25 s) and its CPU over the idle window gives CPU
 * per idle peer per minute. RSS is read at the end.
 *
 * @module
 */
import type { Lab } from "../tests/lab/netns.ts";
import { meshubCommand, newPsk } from "../tests/lab/meshub.ts";
import { decodeBase64Url, encodeBase64 } from "../util/base64.ts";
import { cpuSeconds, pollUntil, rssBytes } from "./lib.ts";

/** What {@linkcode runClientScale} measured. */
export interface ClientScaleResult {
  peers: number;
  edgesUp: number;
  /** ms from starting the client until every edge was up. */
  allUpMs: number;
  /** Idle window length in seconds. */
  idleSeconds: number;
  rssBytes: number;
  rssPeakBytes: number;
  idleCpuSecondsPerMinute: number;
  idleCpuMsPerPeerPerMinute: number;
  /** The simulated peers' last counters. */
  generator?: Record<string, number>;
  error?: string;
}

const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const PEERS = new URL("./wg_peers.ts", import.meta.url).pathname;
const BASE_PORT = 40000;

/** Runs the client scale benchmark with `peers` simulated peers. */
export async function runClientScale(
  lab: Lab,
  peers: number,
  dir: string,
  o: { quick: boolean; say: (line: string) => void },
): Promise<ClientScaleResult> {
  const idleSeconds = o.quick ? 5 : 60;
  const res: ClientScaleResult = {
    peers,
    edgesUp: 0,
    allUpMs: NaN,
    idleSeconds,
    rssBytes: NaN,
    rssPeakBytes: NaN,
    idleCpuSecondsPerMinute: NaN,
    idleCpuMsPerPeerPerMinute: NaN,
  };
  try {
    await Deno.mkdir(dir, { recursive: true });
    o.say(`client scale: one client, ${peers} simulated static peers`);
    const cc = await lab.namespace("cc");
    const cg = await lab.namespace("cg");
    await lab.link(cc, "eth0", "198.18.95.1/24", cg, "eth0", "198.18.95.2/24");
    const psk = newPsk();
    const base = [
      "[encryption]",
      `psk = "${psk}"`,
      "[hub]",
      "addresses = []",
      "[node]",
      `name = "c"`,
      `state_file = "${dir}/c.key"`,
      "port = 51840",
      "[control]",
      `socket = "${dir}/c.sock"`,
      "[tun]",
      `interface = "meshub0"`,
      `ipv6 = "fd00:c5::ffff/64"`,
    ];
    const cfg = `${dir}/c.toml`;
    await Deno.writeTextFile(cfg, base.join("\n") + "\n");
    const pub = (await lab.exec(cc, meshubCommand("pubkey", cfg), {
      check: true,
      timeoutMs: 60_000,
    })).stdout.trim().split("\n").at(-1)!.trim();
    const gen = lab.spawn(cg, [
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-all",
      "--unstable-net",
      "--config",
      CONFIG,
      PEERS,
      JSON.stringify({
        host: "198.18.95.2",
        basePort: BASE_PORT,
        count: peers,
        peerKey: pub,
        psk: encodeBase64(decodeBase64Url(psk)!),
        maxMs: (idleSeconds + 180) * 1000,
      }),
    ]);
    const keys = JSON.parse(
      (await gen.waitForLine(/^KEYS /, { timeoutMs: 60_000 })).line.slice(5),
    ) as string[];
    const lines = [...base];
    keys.forEach((k, i) => {
      lines.push(
        "[[peer]]",
        `name = "s${i}"`,
        `public_key = "${k}"`,
        `endpoint = "198.18.95.2:${BASE_PORT + i}"`,
        `ipv6 = "fd00:c5::${(i + 1).toString(16)}/128"`,
      );
    });
    await Deno.writeTextFile(cfg, lines.join("\n") + "\n");
    const t0 = performance.now();
    const client = lab.spawn(cc, meshubCommand("client", cfg));
    await client.waitForLine(/node c: \S+, udp port \d+/, { timeoutMs: 60_000 });
    const countUp = () => client.lines.filter((l) => /edge up: s\d+ /.test(l.text)).length;
    await pollUntil(() => (countUp() >= peers ? true : undefined), 60_000 + peers * 100, 100);
    res.edgesUp = countUp();
    if (res.edgesUp >= peers) res.allUpMs = performance.now() - t0;
    o.say(`client scale: ${res.edgesUp}/${peers} edges up; idling ${idleSeconds} s`);
    const cpu0 = cpuSeconds(client.pid);
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const cpu = cpuSeconds(client.pid) - cpu0;
    const minutes = (performance.now() - w0) / 60_000;
    res.rssBytes = rssBytes(client.pid);
    res.rssPeakBytes = rssBytes(client.pid, "VmHWM");
    res.idleCpuSecondsPerMinute = cpu / minutes;
    res.idleCpuMsPerPeerPerMinute = (cpu * 1000) / minutes / peers;
    const stats = gen.lines.filter((l) => l.text.startsWith("STATS ")).at(-1);
    if (stats) res.generator = JSON.parse(stats.text.slice(6));
    await client.stop();
    await gen.stop();
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    o.say(`client scale failed: ${res.error.split("\n")[0]}`);
  }
  return res;
}
