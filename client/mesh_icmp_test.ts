/**
 * ICMP inside the VPN and the in-protocol probe, over the fake network (tests/fake_net.ts):
 * what the mesh writes back to the local TUN when it cannot deliver, and `sendProbe()`.
 */
import assert from "node:assert/strict";
import { addMember, FakeHub, type FakeMember, FakeNet } from "../tests/fake_net.ts";
import type { MeshOptions, MeshTimers } from "./mesh.ts";
import type { UdpEndpoint } from "./udp.ts";
import { ulaPrefix } from "../protocol/keys.ts";
import { icmp6Checksum } from "./icmp.ts";

const TIMERS: MeshTimers = {
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  keepaliveMs: 5_000,
  hubKeepaliveMs: 5_000,
};
const HUB: UdpEndpoint = { hostname: "198.18.0.1", port: 3731 };

interface World {
  net: FakeNet;
  a: FakeMember;
  b: FakeMember;
  c: FakeMember;
  prefix: Uint8Array;
}

function world(seed: number, extra: Partial<MeshOptions> = {}): World {
  const net = new FakeNet({ seed });
  const psk = net.rng.bytes(32);
  new FakeHub(net, [HUB], { keepaliveMs: 5_000 });
  const prefix = ulaPrefix(psk);
  const full = new Uint8Array(16);
  full.set(prefix.subarray(0, 6));
  const common = {
    psk,
    hubs: [HUB],
    timers: TIMERS,
    extra: { vpnPrefixes: [{ address: full, prefixLength: 48 }], ...extra },
  };
  const natA = net.nat("198.18.1.1");
  const a = addMember(net, { ...common, name: "a", host: net.host("198.19.1.2", natA) });
  const b = addMember(net, { ...common, name: "b", host: net.host("198.18.3.10") });
  const c = addMember(net, { ...common, name: "c", host: net.host("198.18.3.11") });
  const ok = net.runUntil(
    () => [a, b, c].every((m) => m.mesh.status().members.filter((x) => x.up).length === 2),
    30_000,
  );
  assert.ok(ok, "mesh did not form");
  return { net, a, b, c, prefix: full };
}

function udp6(src: Uint8Array, dst: Uint8Array, len = 100): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, len - 40);
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  return p;
}

function stateOf(m: FakeMember, name: string): string {
  return m.mesh.status().members.find((x) => x.name === name)?.state ?? "gone";
}

/** Answers every echo request that comes out of `m`'s TUN, as its kernel would. */
function answerPings(net: FakeNet, m: FakeMember): void {
  let seen = m.tun.written.length;
  net.every(1, () => {
    for (; seen < m.tun.written.length; seen++) {
      const p = m.tun.written[seen]!;
      if (p[0]! >> 4 !== 6 || p[6] !== 58 || p[40] !== 128) continue;
      const reply = p.slice();
      reply.set(p.subarray(24, 40), 8);
      reply.set(p.subarray(8, 24), 24);
      reply[40] = 129;
      new DataView(reply.buffer).setUint16(42, icmp6Checksum(reply));
      m.tun.inject(reply);
    }
  });
}

Deno.test("mesh: a packet to a member whose edge died gets ICMPv6 address unreachable at once", () => {
  const w = world(1);
  // c vanishes without a word (crash, cable): nothing from it any more.
  w.c.host.up = false;
  assert.ok(w.net.runUntil(() => stateOf(w.a, "c") === "stale", 30_000), "c never turned stale");
  assert.ok(
    w.net.runUntil(() => ["punching", "unreachable"].includes(stateOf(w.a, "c")), 60_000),
    `c never turned unreachable: ${stateOf(w.a, "c")}`,
  );
  const before = w.a.tun.written.length;
  const packet = udp6(w.a.address, w.c.address);
  w.a.tun.inject(packet);
  // Synchronously, without running the network.
  assert.equal(w.a.tun.written.length, before + 1, "no ICMP written");
  const icmp = w.a.tun.written.at(-1)!;
  assert.equal(icmp[6], 58);
  assert.equal(icmp[40], 1, "destination unreachable");
  assert.equal(icmp[41], 3, "address unreachable");
  assert.deepEqual(icmp.subarray(24, 40), w.a.address);
  assert.deepEqual(icmp.subarray(48), packet);
  const row = w.a.mesh.status().members.find((m) => m.name === "c")!;
  assert.equal(row.memberDrops.unreachable, 1);
  // The edge to b is unaffected, and b still gets a's packets.
  const toB = w.b.tun.written.length;
  w.a.tun.inject(udp6(w.a.address, w.b.address));
  assert.ok(w.net.runUntil(() => w.b.tun.written.length > toB, 1_000));
});

Deno.test("mesh: while the first handshake runs, packets wait instead of drawing ICMP", () => {
  const net = new FakeNet({ seed: 2 });
  const psk = net.rng.bytes(32);
  new FakeHub(net, [HUB], { keepaliveMs: 5_000 });
  const common = { psk, hubs: [HUB], timers: TIMERS };
  const a = addMember(net, { ...common, name: "a", host: net.host("198.18.3.1") });
  const b = addMember(net, { ...common, name: "b", host: net.host("198.18.3.2") });
  assert.ok(net.runUntil(() => a.mesh.status().members.length === 1, 10_000));
  if (stateOf(a, "b") === "connecting") {
    a.tun.inject(udp6(a.address, b.address));
    assert.equal(a.tun.written.length, 0, "ICMP while connecting");
  }
  assert.ok(net.runUntil(() => b.tun.written.length > 0 || stateOf(a, "b") === "up", 10_000));
});

Deno.test("mesh: no route inside the VPN prefix gets ICMPv6 no route; outside it, nothing", () => {
  const w = world(3);
  const inside = w.prefix.slice();
  inside[15] = 0x42;
  const before = w.a.tun.written.length;
  w.a.tun.inject(udp6(w.a.address, inside));
  assert.equal(w.a.tun.written.length, before + 1);
  assert.equal(w.a.tun.written.at(-1)![40], 1);
  assert.equal(w.a.tun.written.at(-1)![41], 0, "code 0: no route");
  const outside = new Uint8Array(16);
  outside[0] = 0xfd;
  outside[15] = 1;
  w.a.tun.inject(udp6(w.a.address, outside));
  assert.equal(w.a.tun.written.length, before + 1, "ICMP for an address outside the VPN");
  // Multicast never draws an error.
  const mcast = new Uint8Array(16);
  mcast[0] = 0xff;
  mcast[1] = 0x02;
  mcast[15] = 2;
  w.a.tun.inject(udp6(w.a.address, mcast));
  assert.equal(w.a.tun.written.length, before + 1);
});

Deno.test("mesh: ICMP errors are rate-limited to a burst of 10, then 10 a second", () => {
  const w = world(4);
  const inside = w.prefix.slice();
  inside[15] = 0x42;
  const before = w.a.tun.written.length;
  for (let i = 0; i < 100; i++) w.a.tun.inject(udp6(w.a.address, inside));
  assert.equal(w.a.tun.written.length - before, 10);
  w.net.runFor(1_000);
  for (let i = 0; i < 100; i++) w.a.tun.inject(udp6(w.a.address, inside));
  const n = w.a.tun.written.length - before;
  assert.ok(n >= 19 && n <= 21, `got ${n}`);
});

Deno.test("mesh: a packet larger than the tunnel MTU gets Packet Too Big with the MTU", () => {
  const w = world(5, { mtu: 1280 });
  const before = w.a.tun.written.length;
  w.a.tun.inject(udp6(w.a.address, w.b.address, 1400));
  const ptb = w.a.tun.written.at(-1)!;
  assert.equal(w.a.tun.written.length, before + 1);
  assert.equal(ptb[40], 2);
  assert.equal(new DataView(ptb.buffer).getUint32(44), 1280);
  assert.equal(w.a.mesh.status().drops["tun-too-big"], 1);
});

Deno.test("mesh: sendProbe() pings a member through its edge and reports RTT and path", () => {
  const w = world(6);
  answerPings(w.net, w.b);
  const events = w.a.events.length;
  const tunBefore = w.a.tun.written.length;
  const start = w.a.mesh.sendProbe("b");
  assert.ok(start.ok, JSON.stringify(start));
  assert.equal(start.state, "up");
  assert.ok(
    w.net.runUntil(() => w.a.events.slice(events).some((e) => e.kind === "pong"), 2_000),
    "no pong",
  );
  const pong = w.a.events.slice(events).find((e) => e.kind === "pong")!;
  assert.equal(pong.kind, "pong");
  if (pong.kind !== "pong") return;
  assert.equal(pong.name, "b");
  assert.equal(pong.seq, start.seq);
  assert.equal(pong.path, "public IPv4");
  // Fake latency is 10 ms each way.
  assert.ok(pong.rttMs >= 20 && pong.rttMs < 100, `rtt ${pong.rttMs}`);
  assert.equal(w.a.tun.written.length, tunBefore, "the echo reply reached the TUN");
  const row = w.a.mesh.status().members.find((m) => m.name === "b")!;
  assert.equal(row.rttMs, pong.rttMs);
  // By VPN address too, and a clear error for nobody.
  const byAddress = w.a.mesh.status().members.find((m) => m.name === "c")!.addresses[0]!;
  assert.ok(w.a.mesh.sendProbe(byAddress.split("/")[0]!).ok);
  const none = w.a.mesh.sendProbe("nobody");
  assert.deepEqual(none, { ok: false, error: 'no member "nobody"' });
});

Deno.test("mesh: status() tells what each candidate did, and a handshake RTT", () => {
  const w = world(7);
  const row = w.b.mesh.status().members.find((m) => m.name === "a")!;
  assert.equal(row.state, "up");
  const inUse = row.tried.filter((c) => c.result === "in use");
  assert.equal(inUse.length, 1, JSON.stringify(row.tried));
  assert.ok(inUse[0]!.received > 0);
  // a is behind a NAT: its LAN address was tried and never answered.
  const lan = row.tried.find((c) => c.source === "local")!;
  assert.equal(lan.result, "no answer");
  assert.ok(lan.sent > 0);
  // Someone initiated each edge; the initiator has a handshake RTT.
  const rtts = [w.a, w.b, w.c].flatMap((m) => m.mesh.status().members.map((x) => x.rttMs));
  assert.ok(rtts.some((r) => r !== null && r >= 20), JSON.stringify(rtts));
});
