/**
 * What meeting without a hub costs, on the in-process fake network (tests/fake_net.ts; virtual
 * time, 10 ms one-way latency): for meshes of N members (half public, half behind two NATs),
 * the signalling datagrams while the hub sees everyone, then with the hub dead (a) a newcomer
 * behind its own NAT joining through one `[[bootstrap]]` member and (b) a NATed member restarting
 * from its peer cache: virtual time until every edge is up, PEERS/INTRO datagrams and bytes,
 * HELLOs.
 *
 * ```sh
 * deno run --allow-all bench/no_hub_cost.ts [N...]     # default 5 10 20 40
 * ```
 *
 * @module
 */
import { addCrowd, addMember, FakeHub, type FakeMember, FakeNet } from "../tests/fake_net.ts";
import { publicKeyOf } from "../protocol/wireguard/mod.ts";
import type { MeshTimers } from "../client/mesh.ts";

const TIMERS: MeshTimers = {
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};
const HUB = { hostname: "198.18.0.1", port: 3731 };

interface Counts {
  signal: number;
  signalBytes: number;
  hello: number;
}

function complete(all: FakeMember[]): boolean {
  return all.every((m) => {
    const s = m.mesh.status();
    return all.every((o) => o === m || s.members.some((x) => x.name === o.name && x.up));
  });
}

function build(n: number, seed: number) {
  const net = new FakeNet({ seed });
  const counts: Counts = { signal: 0, signalBytes: 0, hello: 0 };
  const send = net.send.bind(net);
  net.send = (socket, data, to) => {
    // No data flows: transport datagrams above keepalive size are PEERS/INTRO.
    if (data[0] === 4 && data.length > 32) {
      counts.signal++;
      counts.signalBytes += data.length;
    }
    if (data[0] === 0x18) counts.hello++;
    send(socket, data, to);
  };
  const psk = net.rng.bytes(32);
  const hub = new FakeHub(net, [HUB], { keepaliveMs: TIMERS.hubKeepaliveMs });
  const { members, keys } = addCrowd(net, n, { psk, hubs: [HUB], timers: TIMERS });
  if (!net.runUntil(() => complete(members), 120_000)) throw new Error("mesh did not form");
  return { net, counts, psk, hub, keys, members };
}

function reset(c: Counts): Counts {
  const before = { ...c };
  c.signal = c.signalBytes = c.hello = 0;
  return before;
}

const sizes = Deno.args.length > 0 ? Deno.args.map(Number) : [5, 10, 20, 40];
console.log("N   with hub  join: ms  PEERS/INTRO  bytes    HELLO  restart: ms  PEERS/INTRO  HELLO");
for (const n of sizes) {
  // (a) a newcomer through a bootstrap member.
  const a = build(n, n);
  const formation = reset(a.counts);
  a.hub.down();
  const t0 = a.net.nowMs;
  const newcomer = addMember(a.net, {
    name: "new",
    host: a.net.host("198.19.250.2", a.net.nat("198.18.250.1")),
    psk: a.psk,
    hubs: [HUB],
    timers: TIMERS,
    extra: {
      bootstrap: [{ endpoint: a.members[0]!.socket.endpoint, publicKey: publicKeyOf(a.keys[0]!) }],
    },
  });
  const joined = a.net.runUntil(() => complete([...a.members, newcomer]), 120_000);
  const joinMs = joined ? a.net.nowMs - t0 : NaN;
  const join = reset(a.counts);
  // (b) a NATed member restarting from its cache (new port: a new NAT mapping).
  const b = build(n, 1000 + n);
  b.hub.down();
  const old = b.members[1]!;
  const cache = old.mesh.peerCacheEntries();
  old.socket.close();
  old.socket.send = () => {};
  old.socket.receive = () => {};
  reset(b.counts);
  const t1 = b.net.nowMs;
  const again = addMember(b.net, {
    name: "m1",
    host: old.host,
    psk: b.psk,
    hubs: [HUB],
    timers: TIMERS,
    privateKey: b.keys[1]!,
    port: 40_000,
    extra: { peerCache: cache },
  });
  const all = [again, ...b.members.filter((m) => m !== old)];
  const back = b.net.runUntil(() => complete(all), 120_000);
  const restartMs = back ? b.net.nowMs - t1 : NaN;
  const restart = b.counts;
  console.log(
    [
      String(n).padEnd(3),
      String(formation.signal).padStart(8),
      String(joinMs).padStart(10),
      String(join.signal).padStart(12),
      String(join.signalBytes).padStart(8),
      String(join.hello).padStart(6),
      String(restartMs).padStart(12),
      String(restart.signal).padStart(12),
      String(restart.hello).padStart(6),
    ].join(" "),
  );
}
