/**
 * The mesh without a hub, over the fake network (tests/fake_net.ts): a member that restarts with
 * every hub dead finds its former peers from its peer cache, and a new member that only knows one
 * member (`[[bootstrap]]`) joins through member-to-member introductions. a and b are each behind
 * their own NAT (address-and-port-dependent filtering), c is public.
 */
import assert from "node:assert/strict";
import {
  addCrowd,
  addMember,
  FakeHub,
  type FakeMember,
  FakeNat,
  FakeNet,
  fmt,
} from "../tests/fake_net.ts";
import type { MeshTimers } from "./mesh.ts";
import type { UdpEndpoint } from "./udp.ts";
import { publicKeyOf } from "../protocol/wireguard/mod.ts";
import type { CachedPeer } from "./peer_cache.ts";
import { encodeHello } from "../protocol/signal.ts";
import { deriveNetworkKeys, nodeIdFromKey, ulaPrefix } from "../protocol/keys.ts";
import {
  caIdOf,
  CERT_KIND_NODE,
  fingerprintOf,
  selfSignCa,
  signCertificate,
} from "../protocol/cert.ts";
import { caNetworkSecret, CaPolicy, caWireGuardPsk } from "./ca.ts";
import { ed25519 } from "@noble/curves/ed25519";

const TIMERS: MeshTimers = {
  rekeyAfterMs: 30_000,
  rejectAfterMs: 45_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};
const HUB: UdpEndpoint = { hostname: "198.18.0.1", port: 3731 };

interface World {
  net: FakeNet;
  hub: FakeHub;
  psk: Uint8Array;
  nats: Map<FakeMember, FakeNat>;
  keys: Map<FakeMember, Uint8Array>;
  a: FakeMember;
  b: FakeMember;
  c: FakeMember;
}

/** Builds the world; `watch` sees every datagram sent (before NAT and loss). */
function world(seed: number, watch?: (data: Uint8Array) => void): World {
  const net = new FakeNet({ seed });
  if (watch !== undefined) {
    const send = net.send.bind(net);
    net.send = (socket, data, to) => {
      watch(data);
      send(socket, data, to);
    };
  }
  const psk = net.rng.bytes(32);
  const hub = new FakeHub(net, [HUB], { keepaliveMs: TIMERS.hubKeepaliveMs });
  const natA = net.nat("198.18.1.1");
  const natB = net.nat("198.18.2.1");
  const keys = new Map<FakeMember, Uint8Array>();
  const make = (name: string, host: ReturnType<FakeNet["host"]>) => {
    const privateKey = net.rng.bytes(32);
    const m = addMember(net, { name, host, psk, hubs: [HUB], timers: TIMERS, privateKey });
    keys.set(m, privateKey);
    return m;
  };
  const a = make("a", net.host("198.19.1.2", natA));
  const b = make("b", net.host("198.19.2.2", natB));
  const c = make("c", net.host("198.18.3.10"));
  const nats = new Map<FakeMember, FakeNat>([[a, natA], [b, natB]]);
  assert.ok(net.runUntil(() => complete([a, b, c]), 30_000), "mesh did not form via the hub");
  return { net, hub, psk, nats, keys, a, b, c };
}

/** Every member has an up edge to every other, and nobody else. */
function complete(members: FakeMember[]): boolean {
  return members.every((m) => {
    const s = m.mesh.status();
    return members.every((o) => o === m || s.members.some((x) => x.name === o.name && x.up));
  });
}

/** The endpoint a member's traffic comes from on the internet (its NAT mapping, if any). */
function publicOf(w: World, m: FakeMember): string {
  const nat = w.nats.get(m);
  if (nat === undefined) return fmt(m.socket.endpoint);
  const ep = nat.publicEndpointOf(m.socket.endpoint);
  assert.ok(ep, `${m.name} has no NAT mapping`);
  return fmt(ep);
}

/** A new member d behind its own NAT that knows only c, through a bootstrap entry. */
function joinThroughC(w: World): FakeMember {
  const natD = w.net.nat("198.18.4.1");
  const d = addMember(w.net, {
    name: "d",
    host: w.net.host("198.19.4.2", natD),
    psk: w.psk,
    hubs: [HUB],
    timers: TIMERS,
    extra: {
      bootstrap: [{ endpoint: w.c.socket.endpoint, publicKey: publicKeyOf(w.keys.get(w.c)!) }],
    },
  });
  w.nats.set(d, natD);
  return d;
}

/** The process dies: its socket goes away and it never sends again. */
function kill(m: FakeMember): void {
  m.socket.close();
  m.socket.send = () => {};
  m.socket.receive = () => {};
}

/** A minimal IPv6 packet (next header 59: none) from `from` to `to`. */
function packet(from: FakeMember, to: FakeMember, marker: number): Uint8Array {
  const p = new Uint8Array(48);
  p[0] = 0x60;
  p[5] = 8; // payload length
  p[6] = 59;
  p[7] = 64;
  p.set(from.address, 8);
  p.set(to.address, 24);
  p.fill(marker, 40);
  return p;
}

function assertDelivers(net: FakeNet, from: FakeMember, to: FakeMember, marker: number): void {
  const p = packet(from, to, marker);
  const before = to.tun.written.length;
  from.tun.inject(p);
  assert.ok(
    net.runUntil(() => to.tun.written.length > before, 10_000),
    `${from.name}→${to.name}: nothing arrived`,
  );
  assert.deepEqual(to.tun.written.at(-1), p, `${from.name}→${to.name}: wrong packet`);
}

function edgeOf(of: FakeMember, name: string) {
  const s = of.mesh.status().members.find((m) => m.name === name);
  assert.ok(s, `${of.name} does not know ${name}`);
  return s;
}

/**
 * Member A again, with the same key and host but a new socket (a new port, so a new NAT mapping
 * the others' NATs have never seen), starting from `cache`.
 */
function restartA(w: World, cache: CachedPeer[]): FakeMember {
  const a2 = addMember(w.net, {
    name: "a",
    host: w.a.host,
    psk: w.psk,
    hubs: [HUB],
    timers: TIMERS,
    privateKey: w.keys.get(w.a)!,
    port: 40_000,
    extra: { peerCache: cache },
  });
  w.nats.set(a2, w.nats.get(w.a)!);
  return a2;
}

Deno.test("mesh: the peer cache holds every member whose edge was up, with its endpoints", () => {
  const w = world(1);
  const entries = w.a.mesh.peerCacheEntries();
  assert.equal(entries.length, 2);
  for (const m of [w.b, w.c]) {
    const id = nodeIdFromKey(deriveNetworkKeys(w.psk).nodeIdKey, publicKeyOf(w.keys.get(m)!));
    const e = entries.find((x) => x.nodeId.every((v, i) => v === id[i]));
    assert.ok(e, `no entry for ${m.name}`);
    assert.equal(fmt(e.endpoints[0]!), publicOf(w, m), `${m.name}: edge endpoint first`);
    assert.ok(Math.abs(e.lastSeenMs - Date.now()) < 60_000);
  }
  // It changes when an edge does, not with traffic.
  const version = w.a.mesh.peerCacheVersion;
  for (let i = 0; i < 5; i++) assertDelivers(w.net, w.a, w.b, i);
  assert.equal(w.a.mesh.peerCacheVersion, version);
});

Deno.test("mesh: with the hub dead, a restarted member reconnects to all former peers from its cache", () => {
  const w = world(2);
  const cache = w.a.mesh.peerCacheEntries();
  w.hub.down();
  kill(w.a);
  const a2 = restartA(w, cache);
  const all = [a2, w.b, w.c];
  assert.ok(w.net.runUntil(() => complete(all), 30_000), "a did not get its edges back");
  // The others' edges moved to a's new public endpoint.
  for (const m of [w.b, w.c]) assert.equal(edgeOf(m, "a").endpoint, publicOf(w, a2), m.name);
  // b is behind a filtering NAT: it could only let a in after c told it where a is now.
  assert.ok(
    edgeOf(w.b, "a").tried.some((t) => t.source === "peer" && t.endpoint === publicOf(w, a2)),
    "b never heard of a's new endpoint from c",
  );
  assertDelivers(w.net, a2, w.b, 1);
  assertDelivers(w.net, w.b, a2, 2);
  assertDelivers(w.net, a2, w.c, 3);
  assertDelivers(w.net, w.c, a2, 4);
});

Deno.test("mesh: with the hub dead, a new member knowing one member joins with direct edges to all", () => {
  const w = world(3);
  w.hub.down();
  const d = joinThroughC(w);
  const all = [w.a, w.b, w.c, d];
  assert.ok(w.net.runUntil(() => complete(all), 30_000), "d did not join");
  // Direct edges: each at the member's own public endpoint, never through the bootstrap member.
  for (const m of [w.a, w.b, w.c]) {
    assert.equal(edgeOf(d, m.name).endpoint, publicOf(w, m), `d→${m.name}`);
    assert.equal(edgeOf(m, "d").endpoint, publicOf(w, d), `${m.name}→d`);
  }
  // The bootstrap member is known by its real name and address now.
  assert.deepEqual(edgeOf(d, "c").addresses, [`${edgeOf(w.a, "c").addresses[0]}`]);
  for (const [i, m] of [w.a, w.b, w.c].entries()) {
    assertDelivers(w.net, d, m, 10 + i);
    assertDelivers(w.net, m, d, 20 + i);
  }
});

Deno.test("mesh: a member no hub sees joins through a member while the hub is alive", () => {
  // Transport datagrams above keepalive size with no data sent are signalling (PEERS/INTRO);
  // HELLOs have their own type.
  const counts = { signal: 0, hello: 0 };
  const w = world(4, (data) => {
    if (data[0] === 4 && data.length > 32) counts.signal++;
    if (data[0] === 0x18) counts.hello++;
  });
  // While the hub sees everyone, signalling costs nothing.
  assert.deepEqual(counts, { signal: 0, hello: 0 });
  const natD = w.net.nat("198.18.4.1");
  const d = addMember(w.net, {
    name: "d",
    host: w.net.host("198.19.4.2", natD),
    psk: w.psk,
    hubs: [],
    timers: TIMERS,
    extra: {
      bootstrap: [{ endpoint: w.c.socket.endpoint, publicKey: publicKeyOf(w.keys.get(w.c)!) }],
    },
  });
  const all = [w.a, w.b, w.c, d];
  assert.ok(w.net.runUntil(() => complete(all), 30_000), "d did not join");
  assert.ok(counts.signal > 0 && counts.hello > 0);
  console.log(`d joined through c with the hub alive: ${counts.signal} PEERS/INTRO datagrams`);
  assertDelivers(w.net, w.a, d, 1);
  assertDelivers(w.net, d, w.b, 2);
  // And the mesh stays whole afterwards (no flapping from duplicated news).
  w.net.runFor(120_000);
  assert.ok(complete(all));
});

Deno.test("mesh: cache entries that do not open or belong to another network are dropped", () => {
  const w = world(5);
  const good = w.a.mesh.peerCacheEntries();
  const tampered: CachedPeer = { ...good[0]!, advert: good[0]!.advert.slice() };
  tampered.advert[50]! ^= 1;
  // b's and c's adverts under another PSK: they never open.
  const net = new FakeNet({ seed: 6 });
  const other = addMember(net, {
    name: "x",
    host: net.host("198.18.9.9"),
    psk: net.rng.bytes(32),
    hubs: [],
    timers: TIMERS,
    extra: { peerCache: [tampered, good[1]!] },
  });
  net.runFor(5_000);
  assert.equal(other.mesh.status().members.length, 0);
  const drops = other.mesh.status().drops;
  assert.equal(drops["advert-authentication failed"], 2);
});

Deno.test("mesh: a HELLO is never answered, even a valid one from a spoofed address", () => {
  const w = world(7);
  const trapped: Uint8Array[] = [];
  w.net.host("198.18.66.6").bind(666, (d) => trapped.push(d));
  const trap = { hostname: "198.18.66.6", port: 666 };
  const networkId = deriveNetworkKeys(w.psk).networkId;
  // a's real advert, as anyone on the path to a hub could have captured it.
  const aEntry = w.c.mesh.peerCacheEntries().find((e) =>
    e.nodeId.every((v, i) =>
      v === nodeIdFromKey(deriveNetworkKeys(w.psk).nodeIdKey, publicKeyOf(w.keys.get(w.a)!))[i]
    )
  )!;
  const hello = encodeHello({ networkId, nodeId: aEntry.nodeId, advert: aEntry.advert });
  // To a member that does not know a: it learns a's key, and answers nothing.
  const x = addMember(w.net, {
    name: "x",
    host: w.net.host("198.18.9.9"),
    psk: w.psk,
    hubs: [],
    timers: TIMERS,
  });
  for (const m of [w.c, x]) {
    for (let i = 0; i < 100; i++) m.socket.receive(hello, trap);
  }
  w.c.socket.receive(
    encodeHello({ networkId: new Uint8Array(16), nodeId: aEntry.nodeId, advert: aEntry.advert }),
    trap,
  );
  w.net.runFor(30_000);
  assert.deepEqual(trapped, []);
  assert.equal(w.c.mesh.status().drops["hello-wrong-network"], 1);
  assert.equal(x.mesh.status().members.map((m) => m.name).join(), "a");
  // Known already, identical bytes: not even opened, so not rate-limited either.
  assert.equal(w.c.mesh.status().drops["hello-rate"], undefined);
  assert.ok(complete([w.a, w.b, w.c]));
});

Deno.test("mesh: a bootstrap member that is down at start is tried again until it answers", () => {
  const w = world(8);
  w.hub.down();
  w.c.host.up = false;
  const d = addMember(w.net, {
    name: "d",
    host: w.net.host("198.18.5.5"),
    psk: w.psk,
    hubs: [HUB],
    timers: TIMERS,
    extra: {
      bootstrap: [{ endpoint: w.c.socket.endpoint, publicKey: publicKeyOf(w.keys.get(w.c)!) }],
    },
  });
  w.net.runFor(45_000);
  assert.equal(d.mesh.status().members.filter((m) => m.up).length, 0);
  w.c.host.up = true;
  assert.ok(w.net.runUntil(() => complete([w.a, w.b, w.c, d]), 120_000), "d never joined");
});

Deno.test("mesh: a lost introduction is asked for again when punching runs out", () => {
  const w = world(9);
  w.hub.down();
  // Every PEERS to b in d's first 10 s is lost (transport datagrams above keepalive size): c's
  // introduction, and a's once d and a meet.
  const until = w.net.nowMs + 10_000;
  const deliver = w.b.socket.receive;
  let lost = 0;
  w.b.socket.receive = (data, from) => {
    if (w.net.nowMs < until && data[0] === 4 && data.length > 100) {
      lost++;
      return;
    }
    deliver(data, from);
  };
  const d = joinThroughC(w);
  w.net.runFor(10_000);
  assert.ok(lost > 0, "no introduction was lost: the test tests nothing");
  assert.ok(!edgeOf(d, "b").up, "b and d met although the introduction was lost");
  assert.ok(w.net.runUntil(() => complete([w.a, w.b, w.c, d]), 60_000), "b and d never met");
  assertDelivers(w.net, d, w.b, 1);
});

Deno.test("mesh (CA mode): a cached member whose certificate is revoked or expired is not restored", () => {
  const net = new FakeNet({ seed: 10 });
  const caKey = net.rng.bytes(32);
  const t0S = Math.floor(Date.now() / 1000);
  const ca = selfSignCa(caKey, "test-ca", t0S - 3600, t0S + 86400);
  const secret = caNetworkSecret(ca.publicKey, null);
  const psk = caWireGuardPsk(ca.publicKey, null);
  const prefix = ulaPrefix(secret);
  // The virtual clock runs from now; the certificates are dated in wall-clock seconds.
  const wallClockMs = () => t0S * 1000 + net.nowMs;
  const hub = new FakeHub(net, [HUB], { keepaliveMs: TIMERS.hubKeepaliveMs });
  const names = ["a", "b", "c"];
  const validS = [86400, 86400, 600];
  const keys = names.map(() => net.rng.bytes(32));
  const certs = names.map((name, i) => {
    const address = new Uint8Array(16);
    address.set(prefix);
    address[15] = i + 1;
    return signCertificate({
      kind: CERT_KIND_NODE,
      caId: caIdOf(ed25519.getPublicKey(caKey)),
      publicKey: publicKeyOf(keys[i]!),
      notBefore: t0S - 60,
      notAfter: t0S + validS[i]!,
      name,
      addresses: [{ address, prefixLength: 48 }],
      groups: [],
    }, caKey);
  });
  const start = (i: number) =>
    addMember(net, {
      name: names[i]!,
      host: net.host(`198.18.0.${10 + i}`),
      psk,
      hubs: [HUB],
      timers: TIMERS,
      privateKey: keys[i]!,
      address: certs[i]!.addresses[0]!.address,
      extra: { networkSecret: secret, policy: new CaPolicy({ ca, own: certs[i]!, wallClockMs }) },
    });
  const members = [0, 1, 2].map(start);
  assert.ok(net.runUntil(() => complete(members), 30_000), "CA mesh did not form");
  const cache = members[0]!.mesh.peerCacheEntries();
  assert.equal(cache.length, 2);
  hub.down();
  kill(members[0]!);
  // 15 minutes on: c's certificate (10 minutes) has expired; b's is revoked in the new config.
  net.runFor(15 * 60_000);
  // A restarted from the cache, on a new port, with the CA policy it would load then.
  const restartA = (port: number, revoked: Uint8Array[]) =>
    addMember(net, {
      name: "a",
      host: members[0]!.host,
      psk,
      hubs: [HUB],
      timers: TIMERS,
      privateKey: keys[0]!,
      address: certs[0]!.addresses[0]!.address,
      port,
      extra: {
        networkSecret: secret,
        policy: new CaPolicy({ ca, own: certs[0]!, wallClockMs, revoked }),
        peerCache: cache,
      },
    });
  const a2 = restartA(40_000, [fingerprintOf(certs[1]!)]);
  net.runFor(30_000);
  assert.deepEqual(a2.mesh.status().members, []);
  const drops = a2.mesh.status().drops;
  assert.equal(drops["member-revoked"], 1);
  assert.equal(drops["member-expired"], 1);
  // The same cache without the revocation: b (still valid) comes back, c (expired) does not.
  kill(a2);
  const a3 = restartA(40_001, []);
  assert.ok(net.runUntil(() => edgeOf(a3, "b").up, 30_000), "b did not come back");
  assert.deepEqual(a3.mesh.status().members.map((m) => m.name), ["b"]);
  assertDelivers(net, a3, members[1]!, 1);
});

Deno.test("mesh: a newcomer joining 20 members without a hub costs O(n) signalling, not O(n²)", () => {
  const n = 20;
  const net = new FakeNet({ seed: 11 });
  let signal = 0;
  const send = net.send.bind(net);
  net.send = (socket, data, to) => {
    if (data[0] === 4 && data.length > 32) signal++;
    send(socket, data, to);
  };
  const psk = net.rng.bytes(32);
  const hub = new FakeHub(net, [HUB], { keepaliveMs: TIMERS.hubKeepaliveMs });
  const { members, keys } = addCrowd(net, n, { psk, hubs: [HUB], timers: TIMERS });
  assert.ok(net.runUntil(() => complete(members), 60_000), "mesh did not form");
  assert.equal(signal, 0, "signalling while the hub saw everyone");
  hub.down();
  const newcomer = addMember(net, {
    name: "new",
    host: net.host("198.19.250.2", net.nat("198.18.250.1")),
    psk,
    hubs: [HUB],
    timers: TIMERS,
    extra: {
      bootstrap: [{ endpoint: members[0]!.socket.endpoint, publicKey: publicKeyOf(keys[0]!) }],
    },
  });
  assert.ok(net.runUntil(() => complete([...members, newcomer]), 60_000), "newcomer did not join");
  assert.ok(signal > 0 && signal < 3 * n, `${signal} signalling datagrams for ${n} members`);
});

Deno.test("mesh: a member restarted from its cache whose introductions were lost asks for them again", () => {
  const w = world(12);
  const cache = w.a.mesh.peerCacheEntries();
  w.hub.down();
  kill(w.a);
  // Every PEERS to b in the first 10 s is lost: c's introduction of a's new endpoint too.
  const until = w.net.nowMs + 10_000;
  const deliver = w.b.socket.receive;
  w.b.socket.receive = (data, from) => {
    if (w.net.nowMs < until && data[0] === 4 && data.length > 100) return;
    deliver(data, from);
  };
  const a2 = restartA(w, cache);
  w.net.runFor(10_000);
  assert.ok(!edgeOf(a2, "b").up, "a and b met although every introduction was lost");
  assert.ok(w.net.runUntil(() => complete([a2, w.b, w.c]), 60_000), "a and b never met again");
  assertDelivers(w.net, a2, w.b, 1);
});
