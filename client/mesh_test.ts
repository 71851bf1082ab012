/**
 * The mesh over a fake network (tests/fake_net.ts): three members, two of them behind their own
 * NAT, one public, a hub around the real registry, fake TUN devices and a virtual clock. Every
 * test builds its own world from a seed, so runs are deterministic and take milliseconds of wall
 * time per virtual minute.
 */
import assert from "node:assert/strict";
import {
  addMember,
  FakeHub,
  type FakeMember,
  FakeNat,
  FakeNet,
  fmt,
  Rng,
} from "../tests/fake_net.ts";
import type { MeshTimers } from "./mesh.ts";
import type { UdpEndpoint } from "./udp.ts";
import { deriveNetworkKeys, nodeAddress, nodeIdFromKey, ulaPrefix } from "../protocol/keys.ts";
import { type Advert, sealAdvert } from "../protocol/advert.ts";
import { decodeHubMessage, encodeHubMessage } from "../protocol/hub_messages.ts";
import { publicKeyOf } from "../protocol/wireguard/mod.ts";

/** Short WireGuard timers so a few virtual minutes see several rekeys. */
const TIMERS: MeshTimers = {
  rekeyAfterMs: 30_000,
  rejectAfterMs: 45_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};
const HUB_KEEPALIVE_MS = 20_000;
const HUB: UdpEndpoint = { hostname: "198.18.0.1", port: 3731 };
/** A public host that records whatever reaches it: forged adverts point members here. */
const TRAP: UdpEndpoint = { hostname: "198.18.66.6", port: 666 };

interface World {
  net: FakeNet;
  hub: FakeHub;
  psk: Uint8Array;
  natA: FakeNat;
  natB: FakeNat;
  /** Behind natA. */
  a: FakeMember;
  /** Behind natB. */
  b: FakeMember;
  /** Public. */
  c: FakeMember;
  all: FakeMember[];
  /** Datagrams that reached {@linkcode TRAP}. */
  trapped: Uint8Array[];
}

/** Builds the topology and runs until every member has an edge to every other. */
function world(seed: number, timers: MeshTimers = TIMERS): World {
  const net = new FakeNet({ seed });
  const psk = net.rng.bytes(32);
  const hub = new FakeHub(net, [HUB], { keepaliveMs: HUB_KEEPALIVE_MS });
  const natA = net.nat("198.18.1.1");
  const natB = net.nat("198.18.2.1");
  const common = { psk, hubs: [HUB], timers };
  const a = addMember(net, { ...common, name: "a", host: net.host("198.19.1.2", natA) });
  const b = addMember(net, { ...common, name: "b", host: net.host("198.19.2.2", natB) });
  const c = addMember(net, { ...common, name: "c", host: net.host("198.18.3.10") });
  const trapped: Uint8Array[] = [];
  net.host(TRAP.hostname).bind(TRAP.port, (d) => trapped.push(d));
  const all = [a, b, c];
  assert.ok(net.runUntil(() => meshComplete(all), 30_000), "mesh did not form in 30 s");
  return { net, hub, psk, natA, natB, a, b, c, all, trapped };
}

function meshComplete(members: FakeMember[]): boolean {
  return members.every((m) => {
    const s = m.mesh.status();
    return s.members.length === members.length - 1 && s.members.every((x) => x.up);
  });
}

function memberStatus(of: FakeMember, name: string) {
  const s = of.mesh.status().members.find((m) => m.name === name);
  assert.ok(s, `${of.name} does not know ${name}`);
  return s;
}

/** The endpoint the rest of the internet sees for a member. */
function publicEndpoint(w: World, m: FakeMember): string {
  const nat = m === w.a ? w.natA : m === w.b ? w.natB : null;
  if (nat === null) return fmt(m.socket.endpoint);
  const ep = nat.publicEndpointOf(m.socket.endpoint);
  assert.ok(ep, `${m.name} has no NAT mapping`);
  return fmt(ep);
}

function nodeIdOf(psk: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return nodeIdFromKey(deriveNetworkKeys(psk).nodeIdKey, publicKey);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A valid IPv6 + ICMPv6 echo packet (type 128 request, 129 reply) with a correct checksum. */
function icmp6Echo(
  src: Uint8Array,
  dst: Uint8Array,
  type: 128 | 129,
  seq: number,
  payload: Uint8Array = new TextEncoder().encode("meshub fake net ping"),
): Uint8Array {
  const icmpLen = 8 + payload.length;
  const p = new Uint8Array(40 + icmpLen);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, icmpLen);
  p[6] = 58; // next header: ICMPv6
  p[7] = 64; // hop limit
  p.set(src, 8);
  p.set(dst, 24);
  p[40] = type;
  v.setUint16(44, 0x4d48); // identifier
  v.setUint16(46, seq);
  p.set(payload, 48);
  // Checksum over the pseudo-header (src, dst, length, next header) and the ICMPv6 message.
  let sum = 0;
  const add16 = (bytes: Uint8Array, at: number) => {
    sum += (bytes[at]! << 8) | (bytes[at + 1] ?? 0);
  };
  for (let i = 8; i < 40; i += 2) add16(p, i);
  sum += icmpLen + 58;
  for (let i = 40; i < p.length; i += 2) add16(p, i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(42, ~sum & 0xffff);
  return p;
}

/** Injects an echo request from `from` to `to` and returns it; does not run the network. */
function ping(from: FakeMember, to: FakeMember, seq: number): Uint8Array {
  const p = icmp6Echo(from.address, to.address, 128, seq);
  from.tun.inject(p);
  return p;
}

/** Sends one packet from `from` to `to` and runs the network until it comes out of `to`. */
function assertDelivers(w: World, from: FakeMember, to: FakeMember, seq: number): void {
  const before = to.tun.written.length;
  const p = ping(from, to, seq);
  const ok = w.net.runUntil(() => to.tun.written.length > before, 10_000);
  assert.ok(ok, `${from.name}→${to.name}: packet ${seq} did not arrive`);
  assert.deepEqual(to.tun.written.at(-1), p, `${from.name}→${to.name}: packet changed`);
}

function sampleAdvert(publicKey: Uint8Array, address: Uint8Array, name: string): Advert {
  return {
    timestampMs: Date.now(),
    publicKey,
    name,
    ipv6: { address, prefixLen: 128 },
    ipv4: null,
    udpPort: TRAP.port,
    localEndpoints: [],
  };
}

Deno.test("mesh: three members, two behind NATs, get direct edges at their public endpoints", () => {
  const w = world(1);
  for (const m of w.all) {
    const others = w.all.filter((o) => o !== m);
    const ups = m.events.filter((e) => e.kind === "edge-up");
    assert.deepEqual(ups.map((e) => e.name).sort(), others.map((o) => o.name).sort());
    for (const o of others) {
      const expected = publicEndpoint(w, o);
      const up = ups.find((e) => e.name === o.name);
      assert.equal(up?.endpoint, expected, `${m.name}→${o.name} edge-up endpoint`);
      const s = memberStatus(m, o.name);
      assert.equal(s.endpoint, expected, `${m.name}→${o.name} edge endpoint`);
      assert.ok(!s.endpoint!.startsWith(`${HUB.hostname}:`), "an edge through the hub");
      assert.equal(s.path, "public IPv4");
    }
    const reg = m.events.find((e) => e.kind === "hub-registered");
    assert.equal(reg?.kind === "hub-registered" && reg.observed, publicEndpoint(w, m));
  }
  assert.equal(w.hub.registry.memberCount, 3);
  // The NATs filter: a stranger cannot reach A through A's public endpoint.
  const drops = JSON.stringify(w.a.mesh.status().drops);
  const filtered = w.natA.filtered;
  const [aHost, aPort] = publicEndpoint(w, w.a).split(":");
  w.net.host("198.18.77.7").bind(1234, () => {}).send(new Uint8Array(12), {
    hostname: aHost!,
    port: Number(aPort),
  });
  w.net.runFor(100);
  assert.equal(w.natA.filtered, filtered + 1);
  assert.equal(JSON.stringify(w.a.mesh.status().drops), drops);
});

Deno.test("mesh: an IPv6 packet crosses from A's TUN to B's TUN byte-identical, and the reply comes back", () => {
  const w = world(2);
  const request = icmp6Echo(w.a.address, w.b.address, 128, 1);
  const bBefore = w.b.tun.written.length;
  w.a.tun.inject(request);
  w.net.runFor(1_000);
  assert.equal(w.b.tun.written.length, bBefore + 1);
  assert.deepEqual(w.b.tun.written.at(-1), request);

  const reply = icmp6Echo(w.b.address, w.a.address, 129, 1);
  const aBefore = w.a.tun.written.length;
  w.b.tun.inject(reply);
  w.net.runFor(1_000);
  assert.equal(w.a.tun.written.length, aBefore + 1);
  assert.deepEqual(w.a.tun.written.at(-1), reply);
  // Nothing strayed to C.
  assert.equal(w.c.tun.written.length, 0);
});

Deno.test("mesh: traffic outlives the hub for 10 minutes of rekeys; a restarted hub is whole within one keepalive", async (t) => {
  const w = world(3);
  const handshakes = () =>
    w.all.reduce((n, m) => n + m.mesh.status().members.reduce((k, x) => k + x.handshakes, 0), 0);
  const handshakesBefore = handshakes();

  await t.step("10 virtual minutes without the hub, a ping per pair every 5 s", () => {
    w.hub.down();
    const pairs: [FakeMember, FakeMember][] = [
      [w.a, w.b],
      [w.b, w.c],
      [w.c, w.a],
      [
        w.b,
        w.a,
      ],
      [w.c, w.b],
      [w.a, w.c],
    ];
    const expected = new Map<FakeMember, Uint8Array[]>(w.all.map((m) => [m, []]));
    const start = w.net.nowMs;
    for (let seq = 0; w.net.nowMs - start < 600_000; seq++) {
      for (const [from, to] of pairs) expected.get(to)!.push(ping(from, to, seq));
      w.net.runFor(5_000);
    }
    w.net.runFor(5_000);
    for (const m of w.all) {
      const want = expected.get(m)!;
      const got = m.tun.written.slice(-want.length);
      assert.equal(got.length, want.length);
      const missing = want.filter((p) => !got.some((g) => sameBytes(g, p))).length;
      assert.equal(missing, 0, `${m.name}: ${missing} of ${want.length} packets lost`);
    }
    // 600 s / 30 s rekey: many handshakes per edge, all done peer to peer.
    assert.ok(handshakes() - handshakesBefore >= 6 * 10, `only ${handshakes()} handshakes`);
    for (const m of w.all) {
      assert.deepEqual(m.events.filter((e) => e.kind === "edge-down"), [], `${m.name} edge-down`);
      assert.ok(m.events.some((e) => e.kind === "hub-lost"), `${m.name} never noticed`);
    }
    assert.ok(meshComplete(w.all));
  });

  await t.step("the hub comes back as a new process: all registered within one keepalive", () => {
    w.hub.restart();
    assert.equal(w.hub.registry.memberCount, 0);
    const ok = w.net.runUntil(() => w.hub.registry.memberCount === 3, HUB_KEEPALIVE_MS);
    assert.ok(ok, `only ${w.hub.registry.memberCount} members after ${HUB_KEEPALIVE_MS} ms`);
  });

  await t.step("a hub restarted while members think they are registered: same bound", () => {
    w.net.runFor(30_000);
    for (const m of w.all) assert.ok(m.mesh.status().hubs[0]!.registered);
    w.hub.restart();
    const ok = w.net.runUntil(() => w.hub.registry.memberCount === 3, HUB_KEEPALIVE_MS);
    assert.ok(ok, `only ${w.hub.registry.memberCount} members after ${HUB_KEEPALIVE_MS} ms`);
    assert.ok(meshComplete(w.all));
  });
});

Deno.test("mesh: a replayed old MEMBER does not roll a member back", () => {
  const w = world(4);
  const bId = nodeIdOf(w.psk, w.b.mesh.publicKey);
  const membersOfB: Uint8Array[] = [];
  w.net.tap = (d) => {
    if (d.to.hostname !== w.a.host.ip || d.data[0] !== 0x14) return;
    const msg = decodeHubMessage(d.data);
    if (msg.kind === "member" && sameBytes(msg.nodeId, bId)) membersOfB.push(d.data.slice());
  };
  // Wait for a full list (every third registration asks for one) that carries B's advert.
  assert.ok(w.net.runUntil(() => membersOfB.length > 0, 2 * HUB_KEEPALIVE_MS * 3));
  const old = membersOfB[0]!;

  // B gets a second interface: a new advert, pushed by the hub to A.
  w.b.localAddresses = [w.b.host.ip, "198.19.2.99"];
  const newCandidate = "198.19.2.99:51820 (local)";
  assert.ok(
    w.net.runUntil(() => memberStatus(w.a, "b").candidates.includes(newCandidate), 5_000),
    "A never learned B's new advert",
  );
  const replayedBefore = w.a.mesh.drops["advert-replayed"] ?? 0;
  w.a.mesh.handleDatagram(old, HUB);
  assert.equal(w.a.mesh.drops["advert-replayed"], replayedBefore + 1);
  assert.ok(memberStatus(w.a, "b").candidates.includes(newCandidate), "rolled back");
  w.net.runFor(5_000);
  assert.ok(memberStatus(w.a, "b").candidates.includes(newCandidate), "rolled back later");
  assert.ok(memberStatus(w.a, "b").up);
});

Deno.test("mesh: forged adverts are rejected and counted, no member added", () => {
  const w = world(5);
  const keys = deriveNetworkKeys(w.psk);
  const networkId = keys.networkId;
  const rng = new Rng(55);
  const member = (nodeId: Uint8Array, advert: Uint8Array) =>
    encodeHubMessage({ kind: "member", networkId, nodeId, endpoint: TRAP, advert });
  const eventsBefore = w.a.events.length;
  const failedBefore = w.a.mesh.drops["advert-authentication failed"] ?? 0;

  // 1. Random bytes as the advert.
  w.a.mesh.handleDatagram(member(rng.bytes(16), rng.bytes(120)), HUB);
  // 2. A well-formed advert sealed with another network's PSK (its node id and ours).
  const otherKeys = deriveNetworkKeys(rng.bytes(32));
  const mallory = publicKeyOf(rng.bytes(32));
  const malloryAddress = nodeAddress(ulaPrefix(w.psk), mallory);
  const sealedElsewhere = sealAdvert(
    otherKeys,
    networkId,
    sampleAdvert(mallory, malloryAddress, "mallory"),
  );
  w.a.mesh.handleDatagram(
    member(nodeIdFromKey(otherKeys.nodeIdKey, mallory), sealedElsewhere),
    HUB,
  );
  w.a.mesh.handleDatagram(member(nodeIdFromKey(keys.nodeIdKey, mallory), sealedElsewhere), HUB);
  // 3. B's real advert moved to another node id (C's, and a fresh one).
  const bAdvert = sealAdvert(keys, networkId, {
    ...sampleAdvert(w.b.mesh.publicKey, w.b.address, "b"),
    timestampMs: Date.now() + 60_000,
  });
  w.a.mesh.handleDatagram(member(nodeIdOf(w.psk, w.c.mesh.publicKey), bAdvert), HUB);
  w.a.mesh.handleDatagram(member(rng.bytes(16), bAdvert), HUB);
  // 4. The same from another network id.
  w.a.mesh.handleDatagram(
    encodeHubMessage({
      kind: "member",
      networkId: otherKeys.networkId,
      nodeId: nodeIdOf(w.psk, w.b.mesh.publicKey),
      endpoint: TRAP,
      advert: bAdvert,
    }),
    HUB,
  );

  assert.equal(w.a.mesh.drops["advert-authentication failed"], failedBefore + 5);
  assert.equal(w.a.mesh.drops["hub-wrong-network"], 1);
  assert.deepEqual(w.a.events.slice(eventsBefore), []);
  assert.deepEqual(w.a.mesh.status().members.map((m) => m.name).sort(), ["b", "c"]);
  assert.equal(memberStatus(w.a, "b").endpoint, publicEndpoint(w, w.b));
  w.net.runFor(5_000);
  assert.equal(w.trapped.length, 0, "A sent something to a forged endpoint");

  // Control: the same construction with the right keys and node id is accepted.
  const real = sealAdvert(keys, networkId, sampleAdvert(mallory, malloryAddress, "mallory"));
  w.a.mesh.handleDatagram(member(nodeIdFromKey(keys.nodeIdKey, mallory), real), HUB);
  assert.equal(w.a.mesh.status().members.length, 3);
  w.net.runFor(1_000);
  assert.ok(w.trapped.length > 0, "the control member was never punched");
});

Deno.test("mesh: roaming: after B's NAT reboots, C's edge follows B's next authenticated packet", () => {
  const w = world(6);
  const oldEndpoint = publicEndpoint(w, w.b);
  w.natB.reboot();
  const moved = () => w.c.events.find((e) => e.kind === "edge-moved" && e.name === "b");
  // B's persistent keepalive (25 s) is the next authenticated packet C sees.
  assert.ok(w.net.runUntil(() => moved() !== undefined, TIMERS.keepaliveMs + 1_000), "no move");
  const newEndpoint = publicEndpoint(w, w.b);
  assert.notEqual(newEndpoint, oldEndpoint);
  const e = moved();
  assert.equal(e?.kind === "edge-moved" && e.endpoint, newEndpoint);
  assert.equal(memberStatus(w.c, "b").endpoint, newEndpoint);
  assertDelivers(w, w.c, w.b, 1);
  assertDelivers(w, w.b, w.c, 2);
  assert.deepEqual(w.c.events.filter((e) => e.kind === "edge-down"), []);
});

Deno.test({
  name: "mesh: roaming: after B's NAT reboots, A (behind its own NAT) reaches B once the hub " +
    "tells it B's new endpoint",
  fn() {
    const w = world(11);
    w.natB.reboot();
    // B re-registers from its new port within one hub keepalive; the hub pushes it to A.
    w.net.runFor(HUB_KEEPALIVE_MS + 1_000);
    assert.equal(
      w.hub.registry.members(deriveNetworkKeys(w.psk).networkId)!.size,
      3,
      "B is not registered",
    );
    const before = w.b.tun.written.length;
    ping(w.a, w.b, 1);
    assert.ok(
      w.net.runUntil(() => w.b.tun.written.length > before, 5_000),
      "A→B still a black hole",
    );
    assert.equal(memberStatus(w.a, "b").endpoint, publicEndpoint(w, w.b));
    assert.deepEqual(w.a.events.filter((e) => e.kind === "edge-down"), []);
  },
});

Deno.test("mesh: a packet whose inner source is not the sender's own address is dropped", () => {
  const w = world(7);
  const before = w.a.tun.written.length;
  const rng = new Rng(77);
  // C (a real member) sends packets that claim to come from B, and from an address nobody has.
  const spoofed = [
    icmp6Echo(w.b.address, w.a.address, 128, 1),
    icmp6Echo(nodeAddress(ulaPrefix(w.psk), publicKeyOf(rng.bytes(32))), w.a.address, 128, 2),
    icmp6Echo(w.a.address, w.a.address, 128, 3),
  ];
  for (const p of spoofed) w.c.tun.inject(p);
  w.net.runFor(2_000);
  assert.equal(w.a.tun.written.length, before, "a spoofed packet reached A's TUN");
  assert.equal(w.a.mesh.drops["inner-source-not-allowed"], spoofed.length);
  // Control: C's own address passes on the same edge.
  assertDelivers(w, w.c, w.a, 4);
});

Deno.test("mesh: 20 000 random and mutated datagrams and random TUN packets throw nothing and leave the edges up", () => {
  const w = world(8);
  // A corpus of real traffic to mutate: hub messages, handshakes, transport.
  const corpus: { data: Uint8Array; from: UdpEndpoint }[] = [];
  w.net.tap = (d) => {
    if (corpus.length < 500) corpus.push({ data: d.data.slice(), from: d.from });
  };
  for (let i = 0; i < 5; i++) {
    ping(w.a, w.b, i);
    ping(w.b, w.c, i);
    w.net.runFor(TIMERS.rekeyAfterMs / 2);
  }
  w.net.tap = null;
  assert.ok(corpus.length > 50);

  const rng = new Rng(8080);
  const sources: UdpEndpoint[] = [
    HUB,
    {
      hostname: publicEndpoint(w, w.b).split(":")[0]!,
      port: Number(publicEndpoint(w, w.b).split(":")[1]),
    },
    w.c.socket.endpoint,
    { hostname: "::1", port: 1 },
  ];
  const randomSource = (): UdpEndpoint =>
    rng.next() < 0.5 ? rng.pick(sources) : {
      hostname: `198.18.${rng.int(256)}.${rng.int(256)}`,
      port: 1 + rng.int(65535),
    };
  const types = [1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0, 0xff];
  const datagram = (): Uint8Array => {
    const r = rng.next();
    if (r < 0.6) {
      const base = rng.pick(corpus).data.slice();
      const kind = rng.int(4);
      if (kind === 0 && base.length > 0) return base.subarray(0, rng.int(base.length));
      if (kind === 1) {
        const out = new Uint8Array(base.length + 1 + rng.int(64));
        out.set(base);
        out.set(rng.bytes(out.length - base.length), base.length);
        return out;
      }
      for (let i = 1 + rng.int(4); i > 0 && base.length > 0; i--) {
        base[rng.int(base.length)] ^= 1 + rng.int(255);
      }
      return base;
    }
    const lens = [0, 1, 3, 4, 12, 32, 36, 47, 52, 59, 64, 92, 148, 200, 1500];
    const out = rng.bytes(rng.next() < 0.5 ? rng.pick(lens) : rng.int(300));
    if (out.length > 0) out[0] = rng.pick(types);
    if (out.length > 3 && out[0]! < 5) out[1] = out[2] = out[3] = 0;
    if (out.length > 3 && out[0]! >= 0x11) [out[1], out[3]] = [1, 0];
    return out;
  };
  const tunPacket = (): Uint8Array => {
    const out = rng.bytes(rng.int(200));
    if (out.length >= 40 && rng.next() < 0.7) {
      out[0] = 0x60 | (out[0]! & 0x0f);
      out.set(rng.pick(w.all).address, 24);
      if (rng.next() < 0.5) {
        out[4] = 0;
        out[5] = out.length - 40;
      }
    }
    return out;
  };

  const edgesDownBefore = w.all.map((m) => m.events.filter((e) => e.kind === "edge-down").length);
  for (let i = 0; i < 20_000; i++) {
    w.a.mesh.handleDatagram(datagram(), randomSource());
    if (i % 10 === 0) w.a.tun.inject(tunPacket());
    if (i % 100 === 99) w.net.runFor(200);
  }
  w.net.runFor(60_000);
  assert.ok(meshComplete(w.all), "an edge is down after the fuzzing");
  w.all.forEach((m, i) =>
    assert.equal(m.events.filter((e) => e.kind === "edge-down").length, edgesDownBefore[i])
  );
  assertDelivers(w, w.a, w.b, 100);
  assertDelivers(w, w.b, w.a, 101);
  assertDelivers(w, w.a, w.c, 102);
  // B and C wrote only packets from A's real address (the fuzzed ones were dropped).
  for (const m of [w.b, w.c]) {
    for (const p of m.tun.written) {
      assert.ok(w.all.some((o) => o !== m && sameBytes(p.subarray(8, 24), o.address)));
    }
  }
});

Deno.test("mesh: a MEMBER about ourselves is ignored; hub messages from elsewhere are dropped", () => {
  const w = world(9);
  const keys = deriveNetworkKeys(w.psk);
  const aId = nodeIdOf(w.psk, w.a.mesh.publicKey);
  const aAdvert = sealAdvert(keys, keys.networkId, {
    ...sampleAdvert(w.a.mesh.publicKey, w.a.address, "a"),
    timestampMs: Date.now() + 60_000,
  });
  const eventsBefore = w.a.events.length;
  w.a.mesh.handleDatagram(
    encodeHubMessage({
      kind: "member",
      networkId: keys.networkId,
      nodeId: aId,
      endpoint: TRAP,
      advert: aAdvert,
    }),
    HUB,
  );
  assert.deepEqual(w.a.mesh.status().members.map((m) => m.name).sort(), ["b", "c"]);
  assert.deepEqual(w.a.events.slice(eventsBefore), []);

  // A valid MEMBER for a new node D, but from C's address instead of the hub's.
  const d = publicKeyOf(new Rng(99).bytes(32));
  const dMember = encodeHubMessage({
    kind: "member",
    networkId: keys.networkId,
    nodeId: nodeIdFromKey(keys.nodeIdKey, d),
    endpoint: TRAP,
    advert: sealAdvert(
      keys,
      keys.networkId,
      sampleAdvert(d, nodeAddress(keys.ulaPrefix, d), "d"),
    ),
  });
  w.a.mesh.handleDatagram(dMember, w.c.socket.endpoint);
  w.a.mesh.handleDatagram(dMember, { hostname: HUB.hostname, port: HUB.port + 1 });
  assert.equal(w.a.mesh.drops["hub-msg-not-from-hub"], 2);
  assert.equal(w.a.mesh.status().members.length, 2);
  w.net.runFor(3_000);
  assert.equal(w.trapped.length, 0, "A punched an endpoint it was never told about");

  // Control: from the hub, the same bytes add D.
  w.a.mesh.handleDatagram(dMember, HUB);
  assert.deepEqual(w.a.mesh.status().members.map((m) => m.name).sort(), ["b", "c", "d"]);
});

Deno.test("mesh: idle edges stay up for 10 minutes with the whitepaper's rekey timers", () => {
  const w = world(10, { ...TIMERS, rekeyAfterMs: 120_000, rejectAfterMs: 180_000 });
  w.net.runFor(600_000);
  for (const m of w.all) {
    assert.deepEqual(m.events.filter((e) => e.kind === "edge-down"), [], `${m.name} edge-down`);
  }
  assert.ok(meshComplete(w.all));
});

Deno.test({
  name: "mesh: a hub replaying a member's current advert with many endpoints cannot grow its " +
    "candidate list without bound",
  fn() {
    const w = world(12);
    const keys = deriveNetworkKeys(w.psk);
    const bId = nodeIdOf(w.psk, w.b.mesh.publicKey);
    let current: Uint8Array | null = null;
    w.net.tap = (d) => {
      const msg = d.data[0] === 0x14 && d.to.hostname === w.a.host.ip
        ? decodeHubMessage(d.data)
        : null;
      if (msg?.kind === "member" && sameBytes(msg.nodeId, bId)) current = msg.advert.slice();
    };
    assert.ok(w.net.runUntil(() => current !== null, 2 * HUB_KEEPALIVE_MS * 3));
    for (let i = 0; i < 1000; i++) {
      w.a.mesh.handleDatagram(
        encodeHubMessage({
          kind: "member",
          networkId: keys.networkId,
          nodeId: bId,
          endpoint: { hostname: `198.18.${100 + (i >> 8)}.${i & 0xff}`, port: 9 },
          advert: current!,
        }),
        HUB,
      );
    }
    const n = memberStatus(w.a, "b").candidates.length;
    assert.ok(n <= 16, `A keeps ${n} candidates for B`);
  },
});

/**
 * A and B (each behind a NAT) form their edge and register a while; then member C (public, or
 * behind its own NAT) joins and the hub's MEMBER message about the newcomer to `victim` is lost (the tap makes it
 * unreadable). Returns the world's parts and the virtual time C joined.
 */
function lostPush(seed: number, victim: "a" | "c", cBehindNat = false) {
  const net = new FakeNet({ seed });
  const psk = net.rng.bytes(32);
  new FakeHub(net, [HUB], { keepaliveMs: HUB_KEEPALIVE_MS });
  const common = { psk, hubs: [HUB], timers: TIMERS };
  const a = addMember(net, {
    ...common,
    name: "a",
    host: net.host("198.19.1.2", net.nat("198.18.1.1")),
  });
  const b = addMember(net, {
    ...common,
    name: "b",
    host: net.host("198.19.2.2", net.nat("198.18.2.1")),
  });
  assert.ok(net.runUntil(() => meshComplete([a, b]), 10_000));
  // Past A's first regular full list (its registration at 20 s): the next one is a minute later.
  net.runFor(25_000);
  // victim "a": A (NATed) misses C's arrival; victim "c": C misses A in its first full list.
  let lost = 0;
  const c = addMember(net, {
    ...common,
    name: "c",
    host: cBehindNat ? net.host("198.19.3.2", net.nat("198.18.3.1")) : net.host("198.18.3.10"),
  });
  const aId = nodeIdOf(psk, a.mesh.publicKey);
  const cId = nodeIdOf(psk, c.mesh.publicKey);
  net.tap = (d) => {
    if (lost > 0 || d.data[0] !== 0x14) return;
    const msg = decodeHubMessage(d.data);
    if (msg.kind !== "member") return;
    const hit = victim === "a"
      ? d.to.hostname === a.host.ip && sameBytes(msg.nodeId, cId)
      : d.to.hostname === c.host.ip && sameBytes(msg.nodeId, aId);
    if (hit) {
      d.data[0] = 0; // unreadable: dropped as an unknown type
      lost++;
    }
  };
  return { net, common, a, b, c, joinedMs: net.nowMs, lost: () => lost };
}

Deno.test("mesh: a lost MEMBER push is noticed from the hub's member count within one hub keepalive", () => {
  // A is behind a NAT: C's punches never reach it, only the hub can tell it about C. Before,
  // A learnt of C at its next regular full list (every third registration, up to a minute).
  const w = lostPush(21, "a");
  const ok = w.net.runUntil(() => meshComplete([w.a, w.b, w.c]), HUB_KEEPALIVE_MS + 5_000);
  assert.equal(w.lost(), 1, "the MEMBER push to A was not dropped");
  assert.ok(ok, `no full mesh ${w.net.nowMs - w.joinedMs} ms after C joined`);
});

Deno.test("mesh: a handshake from an unknown member makes us ask the hub for the full list", () => {
  // C (public) misses A in its first full list; A knows C and punches it. C answers nothing
  // (unknown key) but asks the hub again within seconds instead of at its next full list.
  const w = lostPush(22, "c");
  const ok = w.net.runUntil(() => meshComplete([w.a, w.b, w.c]), 8_000);
  assert.equal(w.lost(), 1, "the MEMBER about A to C was not dropped");
  assert.ok(ok, `no full mesh ${w.net.nowMs - w.joinedMs} ms after C joined`);
  assert.ok((w.c.mesh.status().drops["wg-unknown_peer"] ?? 0) > 0);
});

Deno.test("mesh: a quiet edge survives its first four probes being lost", () => {
  // Keepalive 5 s: a quiet edge is probed after 10 s of silence and declared down after 25 s.
  // Probes 5 s apart gave that window four probes at most (at 10, 15, 20 and 25 s); at 10% loss
  // each way 19% of probes fail, and live edges went down. Retried after three round trips (at
  // least 1 s), the window holds many more.
  const w = world(23, {
    ...TIMERS,
    rekeyAfterMs: 120_000,
    rejectAfterMs: 180_000,
    keepaliveMs: 5_000,
  });
  const bPublic = publicEndpoint(w, w.b);
  const c = fmt(w.c.socket.endpoint);
  let killed = 0;
  w.net.tap = (d) => {
    if (fmt(d.from) === bPublic && fmt(d.to) === c && d.data[0] === 4) {
      d.data[0] = 0; // C hears nothing from B but handshake responses: its edge to B is quiet
    } else if (fmt(d.from) === c && d.to.hostname === w.b.host.ip && d.data[0] === 1) {
      if (killed < 4) {
        d.data[0] = 0; // C's first four probes are lost
        killed++;
      }
    }
  };
  w.net.runFor(60_000);
  assert.equal(killed, 4);
  assert.deepEqual(w.c.events.filter((e) => e.kind === "edge-down"), []);
  assert.equal(memberStatus(w.c, "b").up, true);
});

Deno.test("mesh: a joiner behind a NAT that misses a member in its first list asks again", () => {
  // Nobody's punches reach C through its NAT: only the hub's count (3 members, C knows 1)
  // tells it, once the list it asked for has had time to arrive (5.5 s), not 20 s later.
  const w = lostPush(24, "c", true);
  const ok = w.net.runUntil(() => meshComplete([w.a, w.b, w.c]), 8_000);
  assert.equal(w.lost(), 1, "the MEMBER about A to C was not dropped");
  assert.ok(ok, `no full mesh ${w.net.nowMs - w.joinedMs} ms after C joined`);
});

Deno.test("mesh: a member that joins right after us does not hide one our first list lacked", () => {
  // C's first list lacks A; D joins 2 s later and the hub tells C at once. Counting D against
  // the hub's count from before D joined would make C think it knows everyone.
  const w = lostPush(25, "c", true);
  w.net.runFor(2_000);
  const d = addMember(w.net, { ...w.common, name: "d", host: w.net.host("198.18.4.10") });
  const all = [w.a, w.b, w.c, d];
  const ok = w.net.runUntil(() => meshComplete(all), 6_000);
  assert.equal(w.lost(), 1, "the MEMBER about A to C was not dropped");
  assert.ok(ok, `no full mesh ${w.net.nowMs - w.joinedMs} ms after C joined`);
});

Deno.test("mesh: with reserveSend/commitSend, TUN packets are sealed into the socket's room and arrive intact", () => {
  const net = new FakeNet({ seed: 31 });
  const psk = net.rng.bytes(32);
  new FakeHub(net, [HUB], { keepaliveMs: HUB_KEEPALIVE_MS });
  // A socket-owned buffer, reused for every datagram: the mesh must not keep it.
  const sockets: { send(d: Uint8Array, to: UdpEndpoint): void }[] = [];
  const committed = [0, 0];
  const zeroCopy = (i: number) => {
    const room = new Uint8Array(2048);
    return {
      reserveSend: (maxLen: number) => room.subarray(0, maxLen),
      commitSend: (len: number, to: UdpEndpoint) => {
        committed[i]!++;
        sockets[i]!.send(room.slice(0, len), to);
        room.fill(0xee);
      },
    };
  };
  const common = { psk, hubs: [HUB], timers: TIMERS };
  const a = addMember(net, {
    ...common,
    name: "a",
    host: net.host("198.18.3.20"),
    extra: zeroCopy(0),
  });
  const b = addMember(net, {
    ...common,
    name: "b",
    host: net.host("198.18.3.21"),
    extra: zeroCopy(1),
  });
  sockets.push(a.socket, b.socket);
  assert.ok(net.runUntil(() => meshComplete([a, b]), 30_000), "mesh did not form");
  const w = { net } as World;
  for (let seq = 1; seq <= 20; seq++) {
    assertDelivers(w, a, b, seq);
    assertDelivers(w, b, a, seq);
  }
  assert.ok(committed[0]! >= 20 && committed[1]! >= 20, `committed ${committed}`);
  // Padding: a 1-byte-longer packet still seals to a multiple of 16 plus overhead.
  const odd = icmp6Echo(a.address, b.address, 128, 99, new Uint8Array(37));
  const before = b.tun.written.length;
  a.tun.inject(odd);
  assert.ok(net.runUntil(() => b.tun.written.length > before, 10_000));
  assert.deepEqual(b.tun.written.at(-1), odd);
});

Deno.test("mesh: an idle edge needs no handshake: both ends send keepalives, probes need no answer", () => {
  const timers = { ...TIMERS, rekeyAfterMs: 120_000, rejectAfterMs: 180_000 };
  // Two public members (one candidate each: no path probes either way), and the NATed world
  // (LAN and public candidates: path probes, some to paths that never answer).
  const net = new FakeNet({ seed: 42 });
  const psk = net.rng.bytes(32);
  new FakeHub(net, [HUB], { keepaliveMs: HUB_KEEPALIVE_MS });
  const common = { psk, hubs: [HUB], timers };
  const p1 = addMember(net, { ...common, name: "p1", host: net.host("198.18.5.10") });
  const p2 = addMember(net, { ...common, name: "p2", host: net.host("198.18.5.11") });
  assert.ok(net.runUntil(() => meshComplete([p1, p2]), 30_000), "mesh did not form");
  // One packet one way puts the two ends' keepalive timers out of phase, as in real life.
  p1.tun.inject(icmp6Echo(p1.address, p2.address, 128, 1));
  const w = world(41, timers);
  for (const [n, members] of [[net, [p1, p2]], [w.net, w.all]] as const) {
    // Sessions outlive the idle period, so an initiation on the wire would come from a quiet-edge
    // probe (one-sided keepalives) or from an unanswered path probe counted as data.
    n.runFor(1_000);
    let initiations = 0;
    const keepalivesFrom = new Map<string, number>();
    n.tap = (d) => {
      if (d.data[0] === 1) initiations++;
      if (d.data[0] === 4 && d.data.length === 32) {
        keepalivesFrom.set(d.from.hostname, (keepalivesFrom.get(d.from.hostname) ?? 0) + 1);
      }
    };
    n.runFor(110_000);
    assert.equal(initiations, 0, "an idle edge was probed with a handshake");
    assert.ok(meshComplete([...members]), "an idle edge went down");
    if (members.length === 2) {
      // Each end speaks on its own, every keepalive interval.
      for (const host of ["198.18.5.10", "198.18.5.11"]) {
        assert.ok((keepalivesFrom.get(host) ?? 0) >= 4, `${host}: ${keepalivesFrom.get(host)}`);
      }
    }
  }
});
