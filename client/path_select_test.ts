import assert from "node:assert/strict";
import {
  ACTIVE_PROBE_MS,
  BACKUP_PROBE_MS,
  buildPathProbe,
  buildPathProbeReply,
  DEAD_AFTER_MS,
  GIVE_UP_AFTER,
  IDLE_PROBE_MS,
  MAX_PATHS,
  MIN_DWELL_MS,
  parsePathProbe,
  PathSet,
} from "./path_select.ts";
import { buildEchoRequest6, icmp6Checksum } from "./icmp.ts";

const V4 = { key: "v4", endpoint: { hostname: "198.18.0.12", port: 4000 } };
const V6 = { key: "v6", endpoint: { hostname: "fd00:0:6::12", port: 4000 } };
const LAN = { key: "lan", endpoint: { hostname: "198.19.2.10", port: 4000 } };

/** Runs `ms` of probing at 200 ms ticks; `answer(path)` returns the RTT or null (lost). */
function run(
  paths: PathSet,
  active: () => string,
  fromMs: number,
  ms: number,
  answer: (endpoint: string) => number | null,
): number {
  let now = fromMs;
  for (; now < fromMs + ms; now += 200) {
    for (const probe of paths.due(now, active())) {
      const rtt = answer(probe.endpoint.hostname);
      if (rtt !== null) paths.answered(probe.token, now + rtt);
    }
  }
  return now;
}

Deno.test("PathSet: probes the others; the active path only once there is an alternative", () => {
  const paths = new PathSet();
  paths.update([V4, V6]);
  const first = paths.due(0, "v4");
  assert.deepEqual(first.map((p) => p.endpoint.hostname), ["fd00:0:6::12"]);
  assert.deepEqual(paths.due(BACKUP_PROBE_MS - 1, "v4"), [], "paced");
  assert.deepEqual(paths.answered(12345, 5), null, "not ours");
  assert.equal(paths.answered(first[0]!.token, 3)?.key, "v6");
  assert.equal(paths.answered(first[0]!.token, 4), null, "each answer once");
  // Now v4 has company: both are probed, the active one more often.
  const next = paths.due(BACKUP_PROBE_MS, "v4").map((p) => p.endpoint.hostname).sort();
  assert.deepEqual(next, ["198.18.0.12", "fd00:0:6::12"]);
  assert.deepEqual(
    paths.due(BACKUP_PROBE_MS + ACTIVE_PROBE_MS, "v4").map((p) => p.endpoint.hostname),
    ["198.18.0.12"],
  );
});

Deno.test("PathSet: a candidate that never answers backs off", () => {
  const paths = new PathSet();
  paths.update([V4, LAN]);
  let sent = 0;
  const end = run(paths, () => "v4", 0, 60_000, (h) => {
    if (h === LAN.endpoint.hostname) sent++;
    return null;
  });
  // GIVE_UP_AFTER at the backup pace, then one every IDLE_PROBE_MS.
  const expected = GIVE_UP_AFTER +
    Math.floor((end - GIVE_UP_AFTER * BACKUP_PROBE_MS) / IDLE_PROBE_MS);
  assert.ok(Math.abs(sent - expected) <= 1, `${sent} vs ${expected}`);
  const lan = paths.snapshot(end, "v4", (e) => e.hostname, (e) => e.hostname)
    .find((p) => p.path === LAN.endpoint.hostname)!;
  assert.equal(lan.state, "untried");
  assert.equal(lan.answered, 0);
});

Deno.test("PathSet: moves off a lossy path to a clean one, with hysteresis", () => {
  const paths = new PathSet();
  paths.update([V6, V4]);
  let active = "v6";
  let n = 0;
  // Same RTT both ways; IPv6 loses every other probe.
  let now = run(paths, () => active, 0, 4_000, () => 1);
  assert.equal(paths.choose(active, now), null, "equal paths: stay");
  now = run(paths, () => active, now, 30_000, (h) => h.includes(":") && n++ % 2 === 0 ? null : 1);
  const to = paths.choose(active, now);
  assert.equal(to?.hostname, "198.18.0.12");
  active = "v4";
  assert.equal(paths.choose(active, now), null, "no flapping back");
  const snap = paths.snapshot(now, active, (e) => e.hostname, (e) => e.hostname);
  assert.ok(snap.find((p) => p.state === "active")!.lossPct < 5);
  assert.ok(snap.find((p) => p.endpoint.includes(":"))!.lossPct > 20);
});

Deno.test("PathSet: a clearly faster path wins only after MIN_DWELL_MS; small gains never", () => {
  const paths = new PathSet();
  paths.update([V4, V6]);
  // v6 1 ms faster than v4's 2 ms: under SWITCH_MIN_GAIN_MS, stay.
  let now = run(paths, () => "v4", 0, 20_000, (h) => h.includes(":") ? 1 : 2);
  assert.equal(paths.choose("v4", now), null);
  // v4 turns slow (40 ms): v6 wins.
  now = run(paths, () => "v4", now, 20_000, (h) => h.includes(":") ? 1 : 40);
  assert.equal(paths.choose("v4", now)?.hostname, "fd00:0:6::12");
  // And v6 turning slow right after does not switch back within the dwell time.
  const t = run(paths, () => "v6", now, 600, (h) => h.includes(":") ? 200 : 1);
  assert.ok(t - now < MIN_DWELL_MS);
  assert.equal(paths.choose("v6", t), null);
});

Deno.test("PathSet: a dead active path is left at once for a live one", () => {
  const paths = new PathSet();
  paths.update([V4, V6]);
  let now = run(paths, () => "v4", 0, 10_000, () => 1);
  paths.heardActive("v4", now);
  assert.equal(paths.choose("v4", now), null);
  // v4 goes dark: within DEAD_AFTER_MS plus one probe interval the choice is v6.
  const broke = now;
  let moved: number | null = null;
  for (; now < broke + 10_000 && moved === null; now += 200) {
    for (const p of paths.due(now, "v4")) {
      if (p.endpoint.hostname.includes(":")) paths.answered(p.token, now + 1);
    }
    if (paths.choose("v4", now)?.hostname === "fd00:0:6::12") moved = now;
  }
  assert.ok(moved !== null && moved - broke <= DEAD_AFTER_MS + 200, `${moved! - broke} ms`);
  assert.ok(moved - broke >= DEAD_AFTER_MS - 1_000, "not on the first lost probe");
  // Roaming: a packet from v6 (measured) while v4 is dead is followed; from a stranger too.
  const later = broke + DEAD_AFTER_MS + 200;
  assert.equal(paths.shouldFollow("v6", "v4", later), true);
  assert.equal(paths.shouldFollow("new", "v4", later), true);
});

Deno.test("PathSet: packets from a measured path do not move a live edge", () => {
  const paths = new PathSet();
  paths.update([V4, V6]);
  const now = run(paths, () => "v4", 0, 6_000, () => 1);
  paths.heardActive("v4", now);
  assert.equal(paths.shouldFollow("v6", "v4", now), false);
  assert.equal(paths.shouldFollow("elsewhere", "v4", now), true, "roaming to a new endpoint");
  assert.equal(paths.shouldFollow("v6", "v4", now + DEAD_AFTER_MS + 1), true, "v4 died");
});

Deno.test("PathSet: bounded to MAX_PATHS, measurements kept across updates", () => {
  const paths = new PathSet();
  const many = Array.from({ length: 10 }, (_, i) => ({
    key: `k${i}`,
    endpoint: { hostname: `198.18.0.${20 + i}`, port: 1 },
  }));
  paths.update(many);
  assert.equal(paths.size, MAX_PATHS);
  const probe = paths.due(0, "k0").find((p) => p.endpoint.hostname === "198.18.0.21")!;
  paths.answered(probe.token, 2);
  paths.update(many.slice(0, 3));
  assert.equal(paths.size, 3);
  const k1 = paths.snapshot(10, "k0", (e) => e.hostname, () => "")
    .find((p) => p.endpoint === "198.18.0.21")!;
  assert.equal(k1.answered, 1);
  assert.equal(k1.srttMs, 2);
});

Deno.test("path probe packets: build, parse, answer; ping probes and strangers are not ours", () => {
  const a = new Uint8Array(16).fill(0xaa);
  const b = new Uint8Array(16).fill(0xbb);
  const probe = buildPathProbe(a, b, 0xdeadbeef);
  assert.equal(icmp6Checksum(probe), (probe[42]! << 8) | probe[43]!);
  assert.deepEqual(parsePathProbe(probe, b), { kind: "request", token: 0xdeadbeef });
  assert.equal(parsePathProbe(probe, a), null, "not to us");
  const reply = buildPathProbeReply(probe);
  assert.deepEqual(parsePathProbe(reply, a), { kind: "reply", token: 0xdeadbeef });
  assert.deepEqual(reply.subarray(8, 24), b);
  const bad = probe.slice();
  bad[60] = bad[60]! ^ 1;
  assert.equal(parsePathProbe(bad, b), null, "bad checksum");
  assert.equal(parsePathProbe(buildEchoRequest6(a, b, 1, 1), b), null, "a meshub ping");
  assert.equal(parsePathProbe(probe.subarray(0, 60), b), null, "truncated");
});
