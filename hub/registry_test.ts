import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import type { Endpoint } from "../protocol/endpoint.ts";
import {
  type DecodedHubMessage,
  decodeHubMessage,
  encodeHubMessage,
} from "../protocol/hub_messages.ts";
import { type HubSend, Registry, type RegistryOptions, toHex } from "./registry.ts";

const T0 = 1_700_000_000_000;
const SECRET = new Uint8Array(32).fill(5);

/** A fake member: its ids, its observed endpoint and the socket its packets reach the hub on. */
class FakeMember {
  token: Uint8Array = new Uint8Array(16);
  constructor(
    readonly networkId: Uint8Array,
    readonly nodeId: Uint8Array,
    public from: Endpoint,
    public advert: Uint8Array = crypto.getRandomValues(new Uint8Array(100)),
    public socketIndex = 0,
  ) {}

  register(hub: Registry, now: number, fullList = false): HubSend[] {
    const bytes = encodeHubMessage({
      kind: "register",
      networkId: this.networkId,
      nodeId: this.nodeId,
      token: this.token,
      advert: this.advert,
      fullList,
    });
    return hub.handle(bytes, this.from, this.socketIndex, now);
  }

  /** Registers, answering a CHALLENGE like a real client; returns what the second REGISTER got. */
  join(hub: Registry, now: number, fullList = false): HubSend[] {
    const first = this.register(hub, now, fullList);
    const reply = first.length === 1 ? decode(first[0]!) : undefined;
    if (reply?.kind !== "challenge") return first;
    this.token = reply.token.slice();
    return this.register(hub, now, fullList);
  }

  leave(hub: Registry, now: number, token = this.token): HubSend[] {
    const bytes = encodeHubMessage({
      kind: "leave",
      networkId: this.networkId,
      nodeId: this.nodeId,
      token,
    });
    return hub.handle(bytes, this.from, this.socketIndex, now);
  }
}

function decode(send: HubSend): DecodedHubMessage {
  return decodeHubMessage(send.bytes);
}

/** Summarises sends as "kind→port" (plus the subject's node id byte for MEMBER/GONE). */
function summary(sends: HubSend[]): string[] {
  return sends.map((s) => {
    const msg = decode(s);
    const subject = msg.kind === "member" || msg.kind === "gone" ? `(${msg.nodeId[0]})` : "";
    return `${msg.kind}${subject}→${s.to.port}`;
  });
}

const NET = new Uint8Array(16).fill(0xa1);
const OTHER_NET = new Uint8Array(16).fill(0xb2);
const id = (n: number) => new Uint8Array(16).fill(n);
const ep = (port: number, hostname = "198.18.1.1"): Endpoint => ({ hostname, port });
const hub = (options: RegistryOptions = {}) => new Registry({ secret: SECRET, ...options });

Deno.test("REGISTER without a token gets a CHALLENGE, then REGISTERED with the token", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const first = a.register(registry, T0);
  equal(first.length, 1);
  const challenge = decode(first[0]!);
  equal(challenge.kind, "challenge");
  ok(first[0]!.bytes.length < 4 + 48 + 2 + a.advert.length);
  equal(registry.memberCount, 0);
  const second = a.join(registry, T0);
  deepStrictEqual(summary(second), ["registered→1001"]);
  deepStrictEqual(decode(second[0]!), {
    kind: "registered",
    networkId: NET,
    nodeId: id(1),
    keepaliveS: 20,
    members: 1,
    endpoint: ep(1001),
  });
  equal(registry.memberCount, 1);
  equal(registry.networkCount, 1);
  equal(registry.counters.challenges, 2); // join() starts over without a token
});

Deno.test("every reply to a REGISTER without a valid token is smaller than it", () => {
  const registry = hub();
  for (let i = 0; i < 2000; i++) {
    const advertLen = 40 + (i % 985);
    const token = i % 2 === 0 ? new Uint8Array(16) : crypto.getRandomValues(new Uint8Array(16));
    const bytes = encodeHubMessage({
      kind: "register",
      networkId: crypto.getRandomValues(new Uint8Array(16)),
      nodeId: crypto.getRandomValues(new Uint8Array(16)),
      token,
      advert: new Uint8Array(advertLen),
      fullList: i % 3 === 0,
    });
    const from = i % 2 === 0 ? ep(2000 + i) : ep(2000 + i, "fd00::99");
    const replies = registry.handle(bytes, from, 0, T0 + i);
    const total = replies.reduce((sum, r) => sum + r.bytes.length, 0);
    ok(total < bytes.length, `${total} ≥ ${bytes.length}`);
  }
  equal(registry.memberCount, 0);
});

Deno.test("a join is pushed to the others at once and the newcomer gets the full list", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002), undefined, 1);
  const c = new FakeMember(NET, id(3), ep(1003, "fd00::3"));
  deepStrictEqual(summary(a.join(registry, T0)), ["registered→1001"]);
  deepStrictEqual(summary(b.join(registry, T0 + 1)), [
    "registered→1002",
    "member(2)→1001",
    "member(1)→1002",
  ]);
  const sends = c.join(registry, T0 + 2);
  deepStrictEqual(summary(sends), [
    "registered→1003",
    "member(3)→1001",
    "member(3)→1002",
    "member(1)→1003",
    "member(2)→1003",
  ]);
  // Pushes go out of the socket the receiving member uses; replies out of the arrival socket.
  deepStrictEqual(sends.map((s) => s.socketIndex), [0, 0, 1, 0, 0]);
  const memberOfA = decode(sends[3]!);
  ok(memberOfA.kind === "member");
  deepStrictEqual(memberOfA.endpoint, ep(1001));
  deepStrictEqual(memberOfA.advert, a.advert);
});

Deno.test("a refresh without change pushes nothing", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  deepStrictEqual(summary(a.register(registry, T0 + 20_000)), ["registered→1001"]);
  equal(registry.members(NET)!.get(toHex(id(1)))!.lastSeenMs, T0 + 20_000);
});

Deno.test("a new advert or a new endpoint is pushed to the others", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  a.advert = crypto.getRandomValues(new Uint8Array(90));
  deepStrictEqual(summary(a.register(registry, T0 + 1)), ["registered→1001", "member(1)→1002"]);
  // NAT rebinding: the token no longer fits the endpoint, so the member proves the new one.
  a.from = ep(5555, "198.18.9.9");
  deepStrictEqual(summary(a.register(registry, T0 + 2)), ["challenge→5555"]);
  const sends = a.join(registry, T0 + 2);
  deepStrictEqual(summary(sends), ["registered→5555", "member(1)→1002"]);
  const pushed = decode(sends[1]!);
  ok(pushed.kind === "member");
  deepStrictEqual(pushed.endpoint, ep(5555, "198.18.9.9"));
  deepStrictEqual(pushed.advert, a.advert);
});

Deno.test("the full-list flag sends every other member, at most every 5 s", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  const c = new FakeMember(NET, id(3), ep(1003));
  a.join(registry, T0);
  b.join(registry, T0);
  c.join(registry, T0);
  deepStrictEqual(summary(a.register(registry, T0 + 5000, true)), [
    "registered→1001",
    "member(2)→1001",
    "member(3)→1001",
  ]);
  deepStrictEqual(summary(a.register(registry, T0 + 6000, true)), ["registered→1001"]);
  equal(registry.drops["full list rate limited"], 1);
  equal(summary(a.register(registry, T0 + 10_000, true)).length, 3);
});

Deno.test("members are forgotten after missed keepalives and the others get GONE", () => {
  const registry = hub({ keepaliveMs: 10_000 }); // expiry 30 s
  equal(registry.expireAfterMs, 30_000);
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  b.register(registry, T0 + 20_000);
  deepStrictEqual(summary(registry.sweep(T0 + 29_999)), []);
  deepStrictEqual(summary(registry.sweep(T0 + 30_000)), ["gone(1)→1002"]);
  equal(registry.memberCount, 1);
  equal(registry.counters.expiries, 1);
  deepStrictEqual(summary(registry.sweep(T0 + 50_000)), []);
  equal(registry.networkCount, 0);
  equal(registry.memberCount, 0);
});

Deno.test("an expired but unswept member that registers again is a new join", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  b.register(registry, T0 + 50_000);
  const sends = a.join(registry, T0 + 61_000);
  deepStrictEqual(summary(sends), [
    "gone(1)→1002",
    "registered→1001",
    "member(1)→1002",
    "member(2)→1001",
  ]);
  equal(registry.memberCount, 2);
});

Deno.test("stale members are left out of lists and pushes", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  deepStrictEqual(summary(b.join(registry, T0 + 60_000)), ["registered→1002"]);
});

Deno.test("tokens of the previous epoch are accepted, older ones challenged", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const epochStart = Math.ceil(T0 / 60_000) * 60_000;
  a.join(registry, epochStart);
  deepStrictEqual(summary(a.register(registry, epochStart + 60_000)), ["registered→1001"]);
  deepStrictEqual(summary(a.register(registry, epochStart + 119_999)), ["registered→1001"]);
  deepStrictEqual(summary(a.register(registry, epochStart + 120_000)), ["challenge→1001"]);
});

Deno.test("a restarted hub challenges old tokens, then is whole again", () => {
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  const before = hub();
  a.join(before, T0);
  b.join(before, T0);
  const after = new Registry(); // fresh random secret, empty state
  deepStrictEqual(summary(a.register(after, T0 + 1000)), ["challenge→1001"]);
  a.join(after, T0 + 1000);
  deepStrictEqual(summary(b.join(after, T0 + 1000)), [
    "registered→1002",
    "member(2)→1001",
    "member(1)→1002",
  ]);
});

Deno.test("LEAVE with a valid token forgets the member and tells the others", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  const c = new FakeMember(NET, id(3), ep(1003));
  a.join(registry, T0);
  b.join(registry, T0);
  c.join(registry, T0);
  deepStrictEqual(summary(a.leave(registry, T0 + 1)), ["gone(1)→1002", "gone(1)→1003"]);
  equal(registry.memberCount, 2);
  equal(registry.counters.leaves, 1);
  equal(registry.members(NET)!.has(toHex(id(1))), false);
});

Deno.test("LEAVE without a valid token, or from another endpoint, changes nothing", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  deepStrictEqual(a.leave(registry, T0, new Uint8Array(16)), []);
  equal(registry.drops["leave with bad token"], 1);
  // An attacker with its own valid token for a's node id, from its own endpoint.
  const mallory = new FakeMember(NET, id(1), ep(6666, "198.18.6.6"));
  mallory.token = registry.token(mallory.from, NET, id(1), T0)!;
  deepStrictEqual(mallory.leave(registry, T0), []);
  equal(registry.drops["leave from other endpoint"], 1);
  const stranger = new FakeMember(NET, id(9), ep(7777));
  stranger.token = registry.token(stranger.from, NET, id(9), T0)!;
  deepStrictEqual(stranger.leave(registry, T0), []);
  equal(registry.drops["leave of unknown member"], 1);
  equal(registry.memberCount, 2);
});

Deno.test("networks are isolated", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), ep(1001));
  const x = new FakeMember(OTHER_NET, id(2), ep(1002));
  a.join(registry, T0);
  deepStrictEqual(summary(x.join(registry, T0)), ["registered→1002"]);
  equal(registry.networkCount, 2);
});

Deno.test("bounds drop new members with a counted reason", () => {
  const perNetwork = hub({ maxMembersPerNetwork: 2 });
  new FakeMember(NET, id(1), ep(1001)).join(perNetwork, T0);
  new FakeMember(NET, id(2), ep(1002)).join(perNetwork, T0);
  deepStrictEqual(new FakeMember(NET, id(3), ep(1003)).join(perNetwork, T0), []);
  equal(perNetwork.drops["network full"], 1);
  // Existing members still refresh.
  equal(
    summary(new FakeMember(NET, id(1), ep(1001)).join(perNetwork, T0 + 1))[0],
    "registered→1001",
  );

  const networks = hub({ maxNetworks: 1 });
  new FakeMember(NET, id(1), ep(1001)).join(networks, T0);
  deepStrictEqual(new FakeMember(OTHER_NET, id(2), ep(1002)).join(networks, T0), []);
  equal(networks.drops["too many networks"], 1);

  const total = hub({ maxMembers: 2 });
  new FakeMember(NET, id(1), ep(1001)).join(total, T0);
  new FakeMember(OTHER_NET, id(2), ep(1002)).join(total, T0);
  deepStrictEqual(new FakeMember(NET, id(3), ep(1003)).join(total, T0), []);
  equal(total.drops["hub full"], 1);
  equal(total.memberCount, 2);
});

Deno.test("garbage and hub-to-client messages are dropped and counted", () => {
  const registry = hub();
  const from = ep(1001);
  deepStrictEqual(registry.handle(new Uint8Array([1, 0, 0, 0, 9, 9]), from, 0, T0), []);
  deepStrictEqual(
    registry.handle(encodeHubMessage({ kind: "gone", networkId: NET, nodeId: id(1) }), from, 0, T0),
    [],
  );
  deepStrictEqual(
    registry.handle(encodeHubMessage({ kind: "punch", nonce: new Uint8Array(8) }), from, 0, T0),
    [],
  );
  const register = encodeHubMessage({
    kind: "register",
    networkId: NET,
    nodeId: id(1),
    token: new Uint8Array(16),
    advert: new Uint8Array(40),
    fullList: false,
  });
  deepStrictEqual(registry.handle(register, { hostname: "not-an-ip", port: 1 }, 0, T0), []);
  deepStrictEqual(registry.drops, {
    "invalid: not a meshub message": 1,
    "unexpected gone": 1,
    "unexpected punch": 1,
    "bad source": 1,
  });
  for (let i = 0; i < 10_000; i++) {
    const buf = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 200)));
    if (buf.length > 4) buf.set([0x11 + (i % 7), 1, 0, 0]);
    const replies = registry.handle(buf, from, 0, T0);
    for (const r of replies) ok(r.bytes.length < buf.length);
  }
  equal(registry.memberCount, 0);
});

Deno.test("IPv4-mapped senders are the same member as plain IPv4 senders", () => {
  const registry = hub();
  const a = new FakeMember(NET, id(1), { hostname: "::ffff:198.18.1.1", port: 1001 });
  const sends = a.join(registry, T0);
  const registered = decode(sends[0]!);
  ok(registered.kind === "registered");
  deepStrictEqual(registered.endpoint, ep(1001));
  a.from = ep(1001);
  deepStrictEqual(summary(a.register(registry, T0 + 1)), ["registered→1001"]);
});

Deno.test("events report joins, leaves, expiries and drops", () => {
  const events: string[] = [];
  const registry = hub({
    onEvent: (e) => events.push("members" in e ? `${e.kind}:${e.members}` : e.kind),
  });
  const a = new FakeMember(NET, id(1), ep(1001));
  const b = new FakeMember(NET, id(2), ep(1002));
  a.join(registry, T0);
  b.join(registry, T0);
  a.leave(registry, T0);
  registry.sweep(T0 + 60_000);
  registry.handle(new Uint8Array([0]), ep(1), 0, T0);
  deepStrictEqual(events, [
    "network-created",
    "joined:1",
    "joined:2",
    "left:1",
    "expired:0",
    "network-removed",
    "dropped",
  ]);
});

Deno.test("Registry() rejects nonsensical options", () => {
  throws(() => new Registry({ keepaliveMs: 1500 }), RangeError);
  throws(() => new Registry({ keepaliveMs: 0 }), RangeError);
  throws(() => new Registry({ keepaliveMs: 20_000, expireAfterMs: 20_000 }), RangeError);
  throws(() => new Registry({ maxNetworks: 0 }), RangeError);
  throws(() => new Registry({ secret: new Uint8Array(8) }), RangeError);
});
