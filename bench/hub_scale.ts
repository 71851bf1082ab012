/**
 * Hub scale benchmark: one real `meshub hub` on 127.0.0.1 inside a lab namespace, and the load
 * generator `hub_load.ts` (simulated members, one UDP socket each, real REGISTER messages with
 * sealed adverts) in the same namespace. Reports hub RSS, hub CPU per registration and per
 * keepalive, and the delay from a member joining until every other member of its network has
 * been told (MEMBER received by all). Both processes share the machine's cores.
 *
 * @module
 */
import type { Lab } from "../tests/lab/netns.ts";
import { startHub } from "../tests/lab/meshub.ts";

/** What {@linkcode runHubScale} measured (see `hub_load.ts`). */
export interface HubScaleResult {
  members: number;
  networks: number;
  joined: number;
  joinSeconds: number;
  memberMessagesDuringJoin?: number;
  cpuPerRegistrationUs: number;
  keepalives?: number;
  cpuPerKeepaliveUs: number;
  probes?: number;
  probeFailures?: number;
  toldMs: { p50: number; p99: number; max: number };
  hubRssAfterJoin?: number;
  hubRssBytes: number;
  hubRssPeakBytes?: number;
  error?: string;
}

const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const LOAD = new URL("./hub_load.ts", import.meta.url).pathname;

/** Runs the hub with `members` simulated members in up to 100 networks. */
export async function runHubScale(
  lab: Lab,
  members: number,
  o: { quick: boolean; say: (line: string) => void },
): Promise<HubScaleResult> {
  const networks = Math.max(1, Math.min(100, Math.floor(members / 10)));
  const empty: HubScaleResult = {
    members,
    networks,
    joined: 0,
    joinSeconds: NaN,
    cpuPerRegistrationUs: NaN,
    cpuPerKeepaliveUs: NaN,
    toldMs: { p50: NaN, p99: NaN, max: NaN },
    hubRssBytes: NaN,
  };
  try {
    o.say(`hub scale: ${members} members in ${networks} networks`);
    const ns = await lab.namespace("hs");
    // Keepalive 60 s: members expire after 3 minutes, longer than any phase here.
    const hub = await startHub(lab, ns, {
      addresses: ["127.0.0.1"],
      extraArgs: ["--keepalive", "60"],
    });
    const timeoutMs = o.quick ? 30_000 : 120_000;
    const gen = lab.spawn(ns, [
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-all",
      "--unstable-net",
      "--config",
      CONFIG,
      LOAD,
      JSON.stringify({
        hub: "127.0.0.1",
        port: 3731,
        hubPid: hub.pid,
        members,
        networks,
        probes: o.quick ? 5 : 50,
        timeoutMs,
      }),
    ]);
    const { line } = await gen.waitForLine(/^RESULT /, { timeoutMs: timeoutMs + 60_000 });
    for (const l of gen.lines) if (!l.text.startsWith("RESULT ")) o.say(`  hub load: ${l.text}`);
    const r = { ...empty, ...JSON.parse(line.slice(7)) } as HubScaleResult;
    for (const k of ["p50", "p99", "max"] as const) r.toldMs[k] ??= NaN;
    await gen.stop();
    await hub.stop();
    return r;
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    o.say(`hub scale ${members} failed: ${error.split("\n")[0]}`);
    return { ...empty, error };
  }
}
