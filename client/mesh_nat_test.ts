/**
 * The mesh behind hard NATs, over the fake network (tests/fake_net.ts): a member behind a
 * sequential symmetric NAT and one behind a port-restricted NAT meet through port prediction;
 * two symmetric ones do not (and nobody sprays); status says what NAT each side is behind.
 */
import assert from "node:assert/strict";
import { addMember, FakeHub, type FakeMember, FakeNet, fmt } from "../tests/fake_net.ts";
import type { MeshTimers } from "./mesh.ts";
import type { UdpEndpoint } from "./udp.ts";

const TIMERS: MeshTimers = {
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};
const HUB1: UdpEndpoint = { hostname: "198.18.0.1", port: 3731 };
const HUB2: UdpEndpoint = { hostname: "198.18.0.2", port: 3731 };

function edgeUp(of: FakeMember, name: string): boolean {
  return of.mesh.status().members.some((m) => m.name === name && m.up);
}

function world(seed: number, kinds: { a: "symmetric" | "restricted"; b: "symmetric" }) {
  const net = new FakeNet({ seed });
  const psk = net.rng.bytes(32);
  // Two hubs with their own registries: each sees its own mapping of every member.
  new FakeHub(net, [HUB1], { keepaliveMs: 20_000 });
  new FakeHub(net, [HUB2], { keepaliveMs: 20_000 });
  const natA = net.nat("198.18.1.1", { symmetric: kinds.a === "symmetric" });
  const natB = net.nat("198.18.2.1", { symmetric: true });
  const common = { psk, hubs: [HUB1, HUB2], timers: TIMERS };
  const a = addMember(net, { ...common, name: "a", host: net.host("198.19.1.2", natA) });
  const b = addMember(net, { ...common, name: "b", host: net.host("198.19.2.2", natB) });
  return { net, a, b };
}

Deno.test("mesh: port-restricted meets sequential symmetric through port prediction", () => {
  const { net, a, b } = world(7, { a: "restricted", b: "symmetric" });
  assert.ok(
    net.runUntil(() => edgeUp(a, "b") && edgeUp(b, "a"), 30_000),
    "no edge between a and b",
  );
  const sa = a.mesh.status();
  const sb = b.mesh.status();
  assert.equal(sa.natKind, "endpoint-independent");
  assert.equal(sb.natKind, "symmetric");
  const bAtA = sa.members.find((m) => m.name === "b")!;
  assert.equal(bAtA.natKind, "symmetric");
  assert.equal(bAtA.portAllocation, "sequential");
  assert.equal(bAtA.spray?.mode, "predict");
  assert.ok(bAtA.spray!.sent > 0 && bAtA.spray!.sent <= 48, `${bAtA.spray!.sent}`);
  // The edge is at a port of b's NAT that no hub saw: a predicted one.
  const observed = sb.hubs.map((h) => h.observed);
  assert.ok(bAtA.endpoint !== null && !observed.includes(bAtA.endpoint), bAtA.endpoint!);
  assert.match(bAtA.endpoint!, /^198\.18\.2\.1:\d+$/);
  assert.equal(sa.members.find((m) => m.name === "b")!.spray?.host, "198.18.2.1");
  // The symmetric side never sprays.
  assert.equal(sb.members.find((m) => m.name === "a")!.spray, null);
});

Deno.test("mesh: two symmetric NATs do not meet, and neither sprays", () => {
  const { net, a, b } = world(8, { a: "symmetric", b: "symmetric" });
  // Distinct ports of the members' NATs that got PUNCH packets: a spray would be dozens.
  const punched = new Set<string>();
  net.tap = (d) => {
    if (d.data[0] === 0x17 && d.to.hostname.startsWith("198.18.")) punched.add(fmt(d.to));
  };
  net.runFor(40_000);
  assert.ok(!edgeUp(a, "b") && !edgeUp(b, "a"));
  for (const m of [a, b]) {
    const s = m.mesh.status();
    assert.equal(s.natKind, "symmetric", m.name);
    assert.equal(s.members[0]!.natKind, "symmetric");
    assert.equal(s.members[0]!.spray, null);
  }
  // Only the hub-observed endpoints got punches (two hubs, two mappings each side).
  assert.ok(punched.size <= 4, [...punched].join(" "));
});
