import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  ADVERT_MAX_LEN,
  ADVERT_MIN_LEN,
  CHALLENGE_LEN,
  decodeHubMessage,
  encodeHubMessage,
  GONE_LEN,
  type HubMessage,
  isHubMessage,
  LEAVE_LEN,
  PUNCH_LEN,
  REGISTER_MAX_LEN,
  REGISTER_MIN_LEN,
} from "./hub_messages.ts";

const bytes = (len: number, fill: number) => new Uint8Array(len).fill(fill);
const NET = bytes(16, 0x11);
const NODE = bytes(16, 0x22);
const TOKEN = bytes(16, 0x33);
const ADVERT = crypto.getRandomValues(new Uint8Array(120));

/** One valid instance of every message, with both endpoint families where there is one. */
const SAMPLES: HubMessage[] = [
  { kind: "register", networkId: NET, nodeId: NODE, token: TOKEN, advert: ADVERT, fullList: true },
  {
    kind: "register",
    networkId: NET,
    nodeId: NODE,
    token: new Uint8Array(16),
    advert: bytes(ADVERT_MIN_LEN, 1),
    fullList: false,
  },
  {
    kind: "register",
    networkId: NET,
    nodeId: NODE,
    token: TOKEN,
    advert: bytes(ADVERT_MAX_LEN, 2),
    fullList: false,
  },
  { kind: "challenge", networkId: NET, nodeId: NODE, token: TOKEN },
  {
    kind: "registered",
    networkId: NET,
    nodeId: NODE,
    keepaliveS: 20,
    members: 3,
    endpoint: { hostname: "198.18.0.1", port: 40000 },
  },
  {
    kind: "registered",
    networkId: NET,
    nodeId: NODE,
    keepaliveS: 65535,
    members: 65535,
    endpoint: { hostname: "fd00::1:2", port: 1 },
  },
  {
    kind: "member",
    networkId: NET,
    nodeId: NODE,
    endpoint: { hostname: "198.18.0.1", port: 40000 },
    advert: ADVERT,
  },
  {
    kind: "member",
    networkId: NET,
    nodeId: NODE,
    endpoint: { hostname: "fd00::1", port: 3731 },
    advert: bytes(ADVERT_MAX_LEN, 3),
  },
  { kind: "leave", networkId: NET, nodeId: NODE, token: TOKEN },
  { kind: "gone", networkId: NET, nodeId: NODE },
  { kind: "punch", nonce: bytes(8, 0x44) },
];

Deno.test("encodeHubMessage() round-trips every message through decodeHubMessage()", () => {
  for (const msg of SAMPLES) {
    const wire = encodeHubMessage(msg);
    ok(isHubMessage(wire), msg.kind);
    deepStrictEqual(decodeHubMessage(wire), msg, msg.kind);
  }
});

Deno.test("encodeHubMessage() produces the documented sizes and header", () => {
  const sizes = SAMPLES.map((m) => encodeHubMessage(m).length);
  deepStrictEqual(sizes, [
    REGISTER_MIN_LEN - ADVERT_MIN_LEN + 120,
    REGISTER_MIN_LEN,
    REGISTER_MAX_LEN,
    CHALLENGE_LEN,
    47,
    59,
    4 + 32 + 7 + 2 + 120,
    4 + 32 + 19 + 2 + ADVERT_MAX_LEN,
    LEAVE_LEN,
    GONE_LEN,
    PUNCH_LEN,
  ]);
  equal(CHALLENGE_LEN, 52);
  const wire = encodeHubMessage(SAMPLES[0]!);
  deepStrictEqual(Array.from(wire.subarray(0, 4)), [0x11, 1, 1, 0]);
  deepStrictEqual(Array.from(wire.subarray(52, 54)), [0, 120]);
});

Deno.test("replies without a valid token are smaller than any REGISTER", () => {
  ok(CHALLENGE_LEN < REGISTER_MIN_LEN);
  ok(59 < REGISTER_MIN_LEN, "REGISTERED with an IPv6 endpoint");
});

Deno.test("decodeHubMessage() rejects every proper prefix of a valid message", () => {
  for (const msg of SAMPLES) {
    const wire = encodeHubMessage(msg);
    for (let len = 0; len < wire.length; len++) {
      equal(decodeHubMessage(wire.subarray(0, len)).kind, "invalid", `${msg.kind} cut at ${len}`);
    }
  }
});

Deno.test("decodeHubMessage() rejects trailing bytes", () => {
  for (const msg of SAMPLES) {
    const wire = encodeHubMessage(msg);
    const longer = new Uint8Array(wire.length + 1);
    longer.set(wire);
    deepStrictEqual(decodeHubMessage(longer), { kind: "invalid", reason: "bad length" }, msg.kind);
  }
});

Deno.test("decodeHubMessage() checks type, version, reserved byte and lengths", () => {
  const wire = encodeHubMessage(SAMPLES[3]!);
  const patched = (at: number, value: number) => {
    const copy = wire.slice();
    copy[at] = value;
    return decodeHubMessage(copy);
  };
  deepStrictEqual(decodeHubMessage(new Uint8Array(0)), { kind: "invalid", reason: "empty" });
  deepStrictEqual(patched(0, 1), { kind: "invalid", reason: "not a meshub message" });
  deepStrictEqual(patched(0, 0x20), { kind: "invalid", reason: "not a meshub message" });
  deepStrictEqual(patched(0, 0x18), { kind: "invalid", reason: "reserved type" });
  deepStrictEqual(patched(0, 0x1f), { kind: "invalid", reason: "reserved type" });
  deepStrictEqual(patched(1, 2), { kind: "invalid", reason: "unsupported version" });
  deepStrictEqual(patched(3, 1), { kind: "invalid", reason: "reserved byte not zero" });
  equal(patched(2, 0xff).kind, "challenge", "unknown flags are ignored");
  // Advert length out of range, and a length field that disagrees with the datagram.
  const reg = encodeHubMessage(SAMPLES[1]!);
  const short = reg.slice();
  short[53] = ADVERT_MIN_LEN - 1;
  deepStrictEqual(decodeHubMessage(short), { kind: "invalid", reason: "bad advert length" });
  const big = reg.slice();
  big[52] = 0x04;
  big[53] = 0x01; // 1025
  deepStrictEqual(decodeHubMessage(big), { kind: "invalid", reason: "bad advert length" });
  const longer = reg.slice();
  longer[53] = ADVERT_MIN_LEN + 1;
  deepStrictEqual(decodeHubMessage(longer), { kind: "invalid", reason: "bad length" });
  // Unknown endpoint family in REGISTERED.
  const registered = encodeHubMessage(SAMPLES[4]!);
  registered[40] = 5;
  deepStrictEqual(decodeHubMessage(registered), { kind: "invalid", reason: "bad endpoint" });
});

Deno.test("isHubMessage() tells meshub messages from WireGuard", () => {
  equal(isHubMessage(new Uint8Array([1, 0, 0, 0])), false);
  equal(isHubMessage(new Uint8Array([4, 0, 0, 0])), false);
  equal(isHubMessage(new Uint8Array([0x11])), true);
  equal(isHubMessage(new Uint8Array([0x1f])), true);
  equal(isHubMessage(new Uint8Array([0x20])), false);
  equal(isHubMessage(new Uint8Array(0)), false);
});

Deno.test("decodeHubMessage() never throws on 10k random buffers", () => {
  for (let i = 0; i < 10_000; i++) {
    const buf = crypto.getRandomValues(
      new Uint8Array(Math.floor(Math.random() * (i % 3 === 0 ? 64 : 1100))),
    );
    if (buf.length >= 4 && i % 2 === 0) {
      // Make the header plausible so the body parsers are exercised.
      buf[0] = 0x11 + (i % 8);
      buf[1] = 1;
      buf[3] = 0;
    }
    const decoded = decodeHubMessage(buf);
    if (decoded.kind !== "invalid") {
      equal(encodeHubMessage(decoded).length, buf.length);
    }
  }
});

Deno.test("decodeHubMessage() survives every single-byte mutation of valid messages", () => {
  for (const msg of SAMPLES) {
    const wire = encodeHubMessage(msg);
    for (let at = 0; at < Math.min(wire.length, 80); at++) {
      for (const value of [0, 1, 4, 6, 0x7f, 0xff]) {
        const copy = wire.slice();
        copy[at] = value;
        const decoded = decodeHubMessage(copy);
        if (decoded.kind !== "invalid") equal(encodeHubMessage(decoded).length, copy.length);
      }
    }
  }
});

Deno.test("encodeHubMessage() throws RangeError on wrong field sizes", () => {
  throws(
    () => encodeHubMessage({ kind: "gone", networkId: bytes(15, 0), nodeId: NODE }),
    RangeError,
  );
  throws(() =>
    encodeHubMessage({
      kind: "register",
      networkId: NET,
      nodeId: NODE,
      token: TOKEN,
      advert: bytes(ADVERT_MIN_LEN - 1, 0),
      fullList: false,
    }), RangeError);
  throws(() =>
    encodeHubMessage({
      kind: "registered",
      networkId: NET,
      nodeId: NODE,
      keepaliveS: 70000,
      members: 1,
      endpoint: { hostname: "1.2.3.4", port: 1 },
    }), RangeError);
  throws(() => encodeHubMessage({ kind: "punch", nonce: bytes(7, 0) }), RangeError);
});
