/**
 * The hostile-hub proof, in-process (fake network, virtual clock): a hub that replays, forges,
 * rewrites endpoints, swaps networks, floods punches and records every byte, next to or instead
 * of an honest hub; PSK mode and CA mode; plus an attacker on the network who sends well-formed
 * unauthenticated handshakes and replays members' packets from its own endpoint.
 *
 * What must hold: no client accepts a forged or replayed member; no edge ends at the attacker;
 * traffic flows whenever an honest path exists; a marker sent through the VPN never appears in
 * anything the hub or the attacker saw; nothing the hub holds contains a member's VPN address,
 * name or public key. In CA mode a certified member can claim neither another's address nor its
 * name, its spoofed packets are dropped, and revoked or expired members are dropped within a
 * minute.
 */
import assert from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519";
import {
  addMember,
  FakeHub,
  type FakeMember,
  type FakeNat,
  FakeNet,
  fmt,
  Rng,
} from "./fake_net.ts";
import { containsBytes, FakeHostileHub } from "./hostile_hub.ts";
import type { MeshTimers } from "../client/mesh.ts";
import type { UdpEndpoint } from "../client/udp.ts";
import { deriveNetworkKeys, nodeIdFromKey, ulaPrefix } from "../protocol/keys.ts";
import { type Advert, sealAdvert } from "../protocol/advert.ts";
import { encodeHubMessage } from "../protocol/hub_messages.ts";
import { formatIPv6 } from "../protocol/ip_address.ts";
import { publicKeyOf, WgDevice } from "../protocol/wireguard/mod.ts";
import {
  caIdOf,
  CERT_KIND_NODE,
  type Certificate,
  fingerprintOf,
  selfSignCa,
  signCertificate,
  signRevocationList,
} from "../protocol/cert.ts";
import {
  caNetworkSecret,
  CaPolicy,
  caWireGuardPsk,
  EXT_CERTIFICATE,
  toTlvs,
} from "../client/ca.ts";

const TIMERS: MeshTimers = {
  rekeyAfterMs: 30_000,
  rejectAfterMs: 45_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};
const HONEST: UdpEndpoint = { hostname: "198.18.0.1", port: 3731 };
const HOSTILE: UdpEndpoint = { hostname: "198.18.0.2", port: 3731 };
const ATTACKER: UdpEndpoint = { hostname: "198.18.66.6", port: 666 };
const MARKER = new TextEncoder().encode("MARKER-7f3e-never-on-the-wire-in-clear");
const NAMES = ["member-alpha", "member-bravo", "member-charlie"];

interface Capture {
  /** Every datagram delivered to the hostile hub or the attacker. */
  bytes: Uint8Array[];
  /** Datagrams that reached the attacker's host. */
  atAttacker: Uint8Array[];
}

interface World {
  net: FakeNet;
  members: FakeMember[];
  nats: Map<FakeMember, FakeNat | null>;
  hostile: FakeHostileHub;
  honest: FakeHub | null;
  capture: Capture;
}

interface Identity {
  privateKey: Uint8Array;
  address: Uint8Array;
  extra: Record<string, unknown>;
  psk: Uint8Array;
}

/** UDP-in-IPv6 packet with `payload` (checksums are not the mesh's business). */
function udp6(src: Uint8Array, dst: Uint8Array, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(48 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, 8 + payload.length);
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  v.setUint16(40, 4000);
  v.setUint16(42, 4001);
  v.setUint16(44, 8 + payload.length);
  p.set(payload, 48);
  return p;
}

/** A network on the fake net: 3 members (two behind NATs), an attacker host, hubs. */
function world(
  seed: number,
  identities: (net: FakeNet, i: number) => Identity,
  options: { honestHub: boolean; attackIntervalMs?: number; otherNetwork?: boolean },
): World {
  const net = new FakeNet({ seed });
  const bytes: Uint8Array[] = [];
  const atAttacker: Uint8Array[] = [];
  net.tap = (d) => {
    if (d.to.hostname === HOSTILE.hostname || d.to.hostname === ATTACKER.hostname) {
      bytes.push(d.data.slice());
    }
    if (d.to.hostname === ATTACKER.hostname) atAttacker.push(d.data.slice());
  };
  net.host(ATTACKER.hostname).bind(ATTACKER.port, () => {});
  const honest = options.honestHub
    ? new FakeHub(net, [HONEST], { keepaliveMs: TIMERS.hubKeepaliveMs })
    : null;
  const hostile = new FakeHostileHub(net, HOSTILE, {
    attacker: ATTACKER,
    registry: { keepaliveMs: TIMERS.hubKeepaliveMs },
    ...(options.attackIntervalMs ? { attackIntervalMs: options.attackIntervalMs } : {}),
  });
  const hubs = honest ? [HONEST, HOSTILE] : [HOSTILE];
  const natA = net.nat("198.18.1.1");
  const natB = net.nat("198.18.2.1");
  const hosts = [
    net.host("198.19.1.2", natA),
    net.host("198.19.2.2", natB),
    net.host("198.18.3.10"),
  ];
  const nats = new Map<FakeMember, FakeNat | null>();
  const members = hosts.map((host, i) => {
    const id = identities(net, i);
    const m = addMember(net, {
      name: NAMES[i]!,
      host,
      psk: id.psk,
      hubs,
      timers: TIMERS,
      privateKey: id.privateKey,
      address: id.address,
      extra: { ...id.extra, ipv6: { address: id.address, prefixLength: 128 } },
    });
    nats.set(m, [natA, natB, null][i]!);
    return m;
  });
  if (options.otherNetwork) {
    // Another network on the same hostile hub: material for swapping.
    const psk = net.rng.bytes(32);
    for (const [i, ip] of ["198.18.9.1", "198.18.9.2"].entries()) {
      addMember(net, {
        name: `other-${i}`,
        host: net.host(ip),
        psk,
        hubs: [HOSTILE],
        timers: TIMERS,
      });
    }
  }
  return { net, members, nats, hostile, honest, capture: { bytes, atAttacker } };
}

function pskIdentities(psk: Uint8Array) {
  return (net: FakeNet): Identity => {
    const privateKey = net.rng.bytes(32);
    const address = new Uint8Array(16);
    address.set(ulaPrefix(psk), 0);
    address.set(net.rng.bytes(8), 8);
    return { privateKey, address, extra: {}, psk };
  };
}

function meshComplete(members: FakeMember[]): boolean {
  return members.every((m) => {
    const s = m.mesh.status();
    const names = members.filter((o) => o !== m).map((o) => o.name);
    return names.every((n) => s.members.some((x) => x.name === n && x.up));
  });
}

function publicEndpoint(w: World, m: FakeMember): string {
  const nat = w.nats.get(m) ?? null;
  return fmt(nat === null ? m.socket.endpoint : nat.publicEndpointOf(m.socket.endpoint)!);
}

/** Marker-carrying packets between every pair; returns how many arrived intact. */
function sendMarkers(w: World, seq: number): { sent: number; arrived: number } {
  const before = w.members.map((m) => m.tun.written.length);
  let sent = 0;
  for (const from of w.members) {
    for (const to of w.members) {
      if (from === to) continue;
      const payload = new Uint8Array(MARKER.length + 4);
      payload.set(MARKER);
      new DataView(payload.buffer).setUint32(MARKER.length, seq);
      from.tun.inject(udp6(from.address, to.address, payload));
      sent++;
    }
  }
  w.net.runFor(2_000);
  let arrived = 0;
  w.members.forEach((m, i) => {
    for (const p of m.tun.written.slice(before[i]!)) if (containsBytes(p, MARKER)) arrived++;
  });
  return { sent, arrived };
}

/** The assertions every hostile scenario ends with. */
function assertNothingLeakedOrHijacked(w: World, extraSecrets: Uint8Array[] = []): void {
  const attacker = `${ATTACKER.hostname}:`;
  for (const m of w.members) {
    const s = m.mesh.status();
    const others = w.members.filter((o) => o !== m);
    // Exactly the real members, each at its real public endpoint.
    assert.deepEqual(s.members.map((x) => x.name).sort(), others.map((o) => o.name).sort());
    for (const o of others) {
      const st = s.members.find((x) => x.name === o.name)!;
      assert.equal(st.endpoint, publicEndpoint(w, o), `${m.name}→${o.name} endpoint`);
    }
    for (const e of m.events) {
      if ("endpoint" in e) {
        assert.ok(!e.endpoint.startsWith(attacker), `${m.name}: ${e.kind} at attacker`);
      }
    }
  }
  // The attacker only ever got punches and handshake initiations (never data, never a reply).
  for (const d of w.capture.atAttacker) assert.ok(d[0] === 0x17 || d[0] === 1, `type ${d[0]}`);
  // Nothing captured or held by the hub contains the marker or a member's identity.
  const secrets: [string, Uint8Array][] = [["marker", MARKER]];
  for (const m of w.members) {
    secrets.push([`${m.name} address`, m.address], [`${m.name} public key`, m.mesh.publicKey]);
    secrets.push([`${m.name} name`, new TextEncoder().encode(m.name)]);
  }
  for (const s of extraSecrets) secrets.push(["extra", s]);
  const everything = [...w.capture.bytes, ...w.hostile.core.everything()];
  for (const [what, secret] of secrets) {
    for (const b of everything) {
      assert.ok(!containsBytes(b, secret), `the hub/attacker saw ${what}`);
    }
  }
}

Deno.test("hostile hub next to an honest one (PSK mode): nothing forged or replayed is accepted, no edge at the attacker, traffic flows, nothing leaks", () => {
  const psk = new Rng(1).bytes(32);
  const w = world(21, pskIdentities(psk), { honestHub: true, otherNetwork: true });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 60_000), "mesh did not form");
  const [a, b] = w.members as [FakeMember, FakeMember, FakeMember];
  // B re-seals its advert (new local address): the hostile hub's first MEMBER about B is now a
  // genuine but old advert, and its replays must be refused.
  b.localAddresses = [b.host.ip, "198.19.2.99"];
  let sent = 0;
  let arrived = 0;
  for (let seq = 0; seq < 30; seq++) {
    const r = sendMarkers(w, seq);
    sent += r.sent;
    arrived += r.arrived;
    w.net.runFor(3_000);
  }
  assert.equal(arrived, sent, `only ${arrived}/${sent} marker packets arrived under attack`);
  const counts = w.hostile.core.counts;
  for (
    const attack of [
      "replayed",
      "forged-random",
      "forged-as-member",
      "rewritten",
      "swapped",
      "punch-flood",
    ]
  ) {
    assert.ok((counts[attack] ?? 0) > 0, `attack ${attack} never ran`);
  }
  const drops = a.mesh.status().drops;
  assert.ok((drops["advert-authentication failed"] ?? 0) > 0, JSON.stringify(drops));
  assert.ok((drops["advert-replayed"] ?? 0) > 0, JSON.stringify(drops));
  assert.ok(
    (drops["advert-node id mismatch"] ?? 0) + (drops["advert-authentication failed"] ?? 0) > 0,
  );
  assert.ok((drops["hub-wrong-network"] ?? 0) > 0, JSON.stringify(drops));
  assertNothingLeakedOrHijacked(w, [psk]);
});

Deno.test("hostile hub as the only hub (PSK mode): the mesh still forms from its honest half, and nothing is hijacked or leaked", () => {
  const psk = new Rng(2).bytes(32);
  const w = world(22, pskIdentities(psk), { honestHub: false });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 120_000), "mesh did not form");
  const r = sendMarkers(w, 1);
  assert.equal(r.arrived, r.sent);
  w.net.runFor(60_000);
  const r2 = sendMarkers(w, 2);
  assert.equal(r2.arrived, r2.sent);
  assert.ok(w.capture.atAttacker.length > 0, "no member was ever sent to the attacker");
  assertNothingLeakedOrHijacked(w, [psk]);
});

Deno.test("hostile hub: an attacker without the key gets no bigger answers than it sends and cannot hijack an edge by replaying from its own endpoint", () => {
  const psk = new Rng(3).bytes(32);
  const w = world(23, pskIdentities(psk), {
    honestHub: true,
    attackIntervalMs: 1_000_000, // the hostile hub stays quiet here: this is about the attacker
  });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 60_000));
  const [a, b, c] = w.members as [FakeMember, FakeMember, FakeMember];
  // Capture B's packets to C (public) on the wire: a handshake initiation and transport data.
  const fromB: Uint8Array[] = [];
  const cEndpoint = fmt(c.socket.endpoint);
  const tap = w.net.tap!;
  w.net.tap = (d) => {
    tap(d);
    if (fmt(d.to) === cEndpoint && fmt(d.from) === publicEndpoint(w, b)) fromB.push(d.data.slice());
  };
  w.net.runUntil(() => fromB.some((p) => p[0] === 1) && fromB.some((p) => p[0] === 4), 120_000);
  w.net.tap = tap;

  const received: Uint8Array[] = [];
  const attacker = w.net.host("198.18.77.7").bind(5555, (d) => received.push(d));
  let sentBytes = 0;
  const send = (d: Uint8Array) => {
    sentBytes += d.length;
    attacker.send(d, c.socket.endpoint);
  };
  // 1. Well-formed initiations (valid mac1 for C's key) from a key C does not know, with and
  //    without a guess at the PSK; enough of them to put C's device under load (cookies).
  const mallory = new WgDevice({ privateKey: new Rng(4).bytes(32) });
  const toC = mallory.addPeer(c.mesh.publicKey, new Rng(5).bytes(32));
  for (let i = 0; i < 3000; i++) send(toC.createInitiation(w.net.nowMs + i));
  // 2. Replays of B's captured handshake and transport packets from the attacker's endpoint.
  for (const p of fromB) send(p);
  w.net.runFor(5_000);
  const receivedBytes = received.reduce((n, d) => n + d.length, 0);
  assert.ok(receivedBytes <= sentBytes, `amplification: ${receivedBytes} > ${sentBytes}`);
  assert.ok(received.every((d) => d[0] === 3), "C answered with something other than cookies");
  // 3. B's own sealed advert, registered at the honest hub from the attacker's endpoint (the
  //    hub checks that the attacker owns that endpoint, which it does).
  const keys = deriveNetworkKeys(psk);
  const bId = nodeIdFromKey(keys.nodeIdKey, b.mesh.publicKey);
  const bAdvert = w.honest!.registry.members(keys.networkId)!.get(hexOf(bId))!.advert;
  const hubReplies: Uint8Array[] = [];
  const thief = w.net.host("198.18.77.8").bind(5556, (d) => hubReplies.push(d));
  const register = (token: Uint8Array) =>
    thief.send(
      encodeHubMessage({
        kind: "register",
        networkId: keys.networkId,
        nodeId: bId,
        token,
        fullList: true,
        advert: bAdvert,
      }),
      HONEST,
    );
  register(new Uint8Array(16));
  w.net.runFor(100);
  const challenge = hubReplies.find((d) => d[0] === 0x12)!;
  register(challenge.subarray(36, 52));
  w.net.runFor(10_000);
  // The edges to B stay where B is; traffic to B still arrives.
  assert.equal(
    a.mesh.status().members.find((m) => m.name === b.name)!.endpoint,
    publicEndpoint(w, b),
  );
  assert.equal(
    c.mesh.status().members.find((m) => m.name === b.name)!.endpoint,
    publicEndpoint(w, b),
  );
  for (const m of [a, c]) {
    assert.ok(!m.events.some((e) => "endpoint" in e && e.endpoint.startsWith("198.18.77.")));
  }
  const r = sendMarkers(w, 9);
  assert.equal(r.arrived, r.sent);
});

// --- CA mode -----------------------------------------------------------------------------

const WALL_T0_MS = Date.UTC(2030, 0, 1);

interface CaSetup {
  caKey: Uint8Array;
  ca: Certificate;
  prefix: Uint8Array;
  secret: Uint8Array;
  wgPsk: Uint8Array;
  certs: Certificate[];
  policies: CaPolicy[];
  /** Virtual wall clock (Unix ms) shared by every policy. */
  wall: { offsetMs: number; net: FakeNet | null };
}

function caSetup(seed: number): CaSetup {
  const rng = new Rng(seed);
  const caKey = rng.bytes(32);
  const t0 = WALL_T0_MS / 1000;
  const ca = selfSignCa(caKey, "test-ca", t0 - 3600, t0 + 86400 * 365);
  const secret = caNetworkSecret(ca.publicKey, null);
  return {
    caKey,
    ca,
    prefix: ulaPrefix(secret),
    secret,
    wgPsk: caWireGuardPsk(ca.publicKey, null),
    certs: [],
    policies: [],
    wall: { offsetMs: 0, net: null },
  };
}

function wallClock(s: CaSetup): () => number {
  return () => WALL_T0_MS + s.wall.offsetMs + (s.wall.net?.nowMs ?? 0);
}

function issue(
  s: CaSetup,
  name: string,
  publicKey: Uint8Array,
  address: Uint8Array,
  validS = 86400,
): Certificate {
  const t0 = WALL_T0_MS / 1000;
  return signCertificate({
    kind: CERT_KIND_NODE,
    caId: caIdOf(ed25519.getPublicKey(s.caKey)),
    publicKey,
    notBefore: t0 - 60,
    notAfter: t0 + validS,
    name,
    addresses: [{ address, prefixLength: 48 }],
    groups: [],
  }, s.caKey);
}

function caAddress(s: CaSetup, host: number): Uint8Array {
  const a = new Uint8Array(16);
  a.set(s.prefix, 0);
  a[15] = host;
  return a;
}

function caIdentities(s: CaSetup, names: string[] = NAMES, validS: number[] = []) {
  return (net: FakeNet, i: number): Identity => {
    s.wall.net = net;
    const privateKey = net.rng.bytes(32);
    const address = caAddress(s, i + 1);
    const cert = issue(s, names[i]!, publicKeyOf(privateKey), address, validS[i] ?? 86400);
    const policy = new CaPolicy({ ca: s.ca, own: cert, wallClockMs: wallClock(s) });
    s.certs[i] = cert;
    s.policies[i] = policy;
    return {
      privateKey,
      address,
      psk: s.wgPsk,
      extra: { networkSecret: s.secret, policy },
    };
  };
}

function hexOf(bytes: Uint8Array): string {
  return [...bytes].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("hostile hub (CA mode): members form a mesh under attack, nothing leaks, no edge at the attacker", () => {
  const s = caSetup(31);
  const w = world(31, caIdentities(s), { honestHub: true, otherNetwork: true });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 60_000), "mesh did not form");
  for (let seq = 0; seq < 10; seq++) {
    const r = sendMarkers(w, seq);
    assert.equal(r.arrived, r.sent);
    w.net.runFor(3_000);
  }
  // The CA's key and every certificate stay away from the hub too.
  assertNothingLeakedOrHijacked(w, [
    s.ca.publicKey,
    ...s.certs.map((c) => c.bytes.subarray(0, 60)),
  ]);
});

Deno.test("CA mode: a certified member cannot claim another member's address or name, and its spoofed packets are dropped", () => {
  const s = caSetup(32);
  // The third member, "member-charlie", plays the insider: it holds a valid certificate.
  const w = world(32, caIdentities(s), { honestHub: true, attackIntervalMs: 1_000_000 });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 60_000));
  const [a, b, c] = w.members as [FakeMember, FakeMember, FakeMember];
  const keys = deriveNetworkKeys(s.secret);
  const cId = nodeIdFromKey(keys.nodeIdKey, c.mesh.publicKey);
  const advert = (over: Partial<Advert>): Uint8Array =>
    encodeHubMessage({
      kind: "member",
      networkId: keys.networkId,
      nodeId: cId,
      endpoint: { hostname: "198.18.3.10", port: 51820 },
      advert: sealAdvert(keys, keys.networkId, {
        timestampMs: Date.now() + 3_600_000,
        publicKey: c.mesh.publicKey,
        name: c.name,
        ipv6: { address: c.address, prefixLen: 48 },
        ipv4: null,
        udpPort: 51820,
        localEndpoints: [],
        extensions: toTlvs(EXT_CERTIFICATE, s.certs[2]!.bytes),
        ...over,
      }),
    });
  // C (which can seal adverts: it is a member) claims B's address, then B's name, then shows
  // B's certificate, then a certificate from another CA.
  a.mesh.handleDatagram(advert({ ipv6: { address: b.address, prefixLen: 48 } }), HONEST);
  a.mesh.handleDatagram(advert({ name: b.name }), HONEST);
  a.mesh.handleDatagram(advert({ extensions: toTlvs(EXT_CERTIFICATE, s.certs[1]!.bytes) }), HONEST);
  const rogue = caSetup(99);
  const rogueCert = issue(rogue, c.name, c.mesh.publicKey, c.address);
  a.mesh.handleDatagram(advert({ extensions: toTlvs(EXT_CERTIFICATE, rogueCert.bytes) }), HONEST);
  a.mesh.handleDatagram(advert({ extensions: [] }), HONEST);
  const drops = a.mesh.status().drops;
  assert.equal(drops["member-address not certified"], 1);
  assert.equal(drops["member-name not certified"], 1);
  assert.equal(drops["member-certificate for another key"], 1);
  assert.equal(drops["member-wrong CA"], 1);
  assert.equal(drops["member-no certificate"], 1);
  const bStatus = a.mesh.status().members.find((m) => m.name === b.name)!;
  assert.deepEqual(bStatus.addresses, [`${formatIPv6(b.address)}/128`]);
  assert.equal(a.mesh.status().members.find((m) => m.name === c.name)!.addresses.length, 1);
  // C sends packets to A with B's address (and an uncertified one) as the inner source.
  const before = a.tun.written.length;
  const spoofDrops = drops["inner-source-not-allowed"] ?? 0;
  c.tun.inject(udp6(b.address, a.address, MARKER));
  c.tun.inject(udp6(caAddress(s, 77), a.address, MARKER));
  w.net.runFor(2_000);
  assert.equal(a.tun.written.length, before, "a spoofed packet reached A");
  assert.equal(a.mesh.status().drops["inner-source-not-allowed"], spoofDrops + 2);
  // Its own certified address still works, and B is still B.
  const r = sendMarkers(w, 1);
  assert.equal(r.arrived, r.sent);
});

Deno.test("CA mode: a revocation list given to one member reaches the others through adverts and the revoked member is dropped within a minute; an expired one too", () => {
  const s = caSetup(33);
  // Charlie's certificate is good for 10 virtual minutes.
  const w = world(33, caIdentities(s, NAMES, [86400, 86400, 600]), {
    honestHub: true,
    attackIntervalMs: 1_000_000,
  });
  assert.ok(w.net.runUntil(() => meshComplete(w.members), 60_000));
  const [a, b, c] = w.members as [FakeMember, FakeMember, FakeMember];
  // A fourth member with a valid certificate joins; then the CA revokes it and hands the list
  // to A only.
  const mallory = addMember(w.net, {
    name: "mallory",
    host: w.net.host("198.18.4.4"),
    psk: s.wgPsk,
    hubs: [HONEST],
    timers: TIMERS,
    privateKey: new Rng(44).bytes(32),
    address: caAddress(s, 44),
    extra: (() => {
      const privateKey = new Rng(44).bytes(32);
      const cert = issue(s, "mallory", publicKeyOf(privateKey), caAddress(s, 44));
      s.certs[3] = cert;
      return {
        ipv6: { address: caAddress(s, 44), prefixLength: 128 },
        networkSecret: s.secret,
        policy: new CaPolicy({ ca: s.ca, own: cert, wallClockMs: wallClock(s) }),
      };
    })(),
  });
  const all = [...w.members, mallory];
  assert.ok(w.net.runUntil(() => meshComplete(all), 60_000), "mallory never joined");
  const crl = signRevocationList(
    { caId: s.ca.caId, serial: WALL_T0_MS, fingerprints: [fingerprintOf(s.certs[3]!)] },
    s.caKey,
  );
  assert.ok(s.policies[0]!.offerRevocationList(crl));
  const start = w.net.nowMs;
  const dropped = (m: FakeMember, name: string) =>
    m.events.some((e) => e.kind === "member-removed" && e.name === name);
  assert.ok(
    w.net.runUntil(() => [a, b, c].every((m) => dropped(m, "mallory")), 60_000),
    "mallory was not dropped everywhere within a minute",
  );
  assert.ok(w.net.nowMs - start < 60_000);
  assert.ok(s.policies[1]!.revocationList !== null, "B never learned the list");
  // Mallory's packets no longer reach anyone; it is not re-added by later adverts.
  const before = b.tun.written.length;
  mallory.tun.inject(udp6(mallory.address, b.address, MARKER));
  w.net.runFor(30_000);
  assert.equal(b.tun.written.length, before);
  assert.ok(!b.mesh.status().members.some((m) => m.name === "mallory"));
  assert.ok((b.mesh.status().drops["member-revoked"] ?? 0) > 0);

  // Charlie's certificate expires 600 s after T0: within a minute of that it is gone.
  const expiry = 600_000 - w.net.nowMs;
  w.net.runFor(Math.max(0, expiry));
  assert.ok(
    w.net.runUntil(() => [a, b].every((m) => dropped(m, c.name)), 60_000),
    "the expired member was not dropped within a minute",
  );
  const r = (() => {
    const before = b.tun.written.length;
    a.tun.inject(udp6(a.address, b.address, MARKER));
    w.net.runFor(2_000);
    return b.tun.written.length - before;
  })();
  assert.equal(r, 1, "A and B lost each other");
});
