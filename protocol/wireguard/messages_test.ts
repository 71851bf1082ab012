import {
  COOKIE_REPLY_LEN,
  decodeMessage,
  encodeCookieReply,
  encodeInitiation,
  encodeResponse,
  INITIATION_LEN,
  RESPONSE_LEN,
  writeTransportHeader,
} from "./messages.ts";
import { assertEquals, seededRandom } from "./_test_helpers.ts";

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

Deno.test("encodeInitiation() / decodeMessage() round-trip at the whitepaper offsets", () => {
  const b = encodeInitiation({
    sender: 0x11223344,
    ephemeral: fill(32, 1),
    encryptedStatic: fill(48, 2),
    encryptedTimestamp: fill(28, 3),
  });
  assertEquals(b.length, INITIATION_LEN);
  assertEquals(Array.from(b.subarray(0, 8)), [1, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
  const d = decodeMessage(b);
  if (!d.ok || d.message.type !== 1) throw new Error("not an initiation");
  assertEquals(d.message.sender, 0x11223344);
  assertEquals(d.message.ephemeral, fill(32, 1));
  assertEquals(d.message.encryptedStatic, fill(48, 2));
  assertEquals(d.message.encryptedTimestamp, fill(28, 3));
  assertEquals(d.message.mac1, fill(16, 0));
});

Deno.test("encodeResponse() and encodeCookieReply() round-trip", () => {
  const r = encodeResponse({
    sender: 7,
    receiver: 0xfffffffe,
    ephemeral: fill(32, 9),
    encryptedNothing: fill(16, 8),
  });
  assertEquals(r.length, RESPONSE_LEN);
  const d = decodeMessage(r);
  if (!d.ok || d.message.type !== 2) throw new Error("not a response");
  assertEquals([d.message.sender, d.message.receiver], [7, 0xfffffffe]);
  assertEquals(d.message.encryptedNothing, fill(16, 8));
  const c = encodeCookieReply(5, fill(24, 4), fill(32, 6));
  assertEquals(c.length, COOKIE_REPLY_LEN);
  const dc = decodeMessage(c);
  if (!dc.ok || dc.message.type !== 3) throw new Error("not a cookie reply");
  assertEquals(dc.message.receiver, 5);
  assertEquals(dc.message.nonce, fill(24, 4));
});

Deno.test("writeTransportHeader() writes type 4, zero reserved, receiver and u64 counter LE", () => {
  const b = new Uint8Array(32);
  writeTransportHeader(b, 0x01020304, 2 ** 40 + 5);
  assertEquals(Array.from(b.subarray(0, 16)), [4, 0, 0, 0, 4, 3, 2, 1, 5, 0, 0, 0, 0, 1, 0, 0]);
  const d = decodeMessage(b);
  if (!d.ok || d.message.type !== 4) throw new Error("not transport");
  assertEquals(d.message.counter, 2n ** 40n + 5n);
  assertEquals(d.message.encrypted.length, 16);
});

Deno.test("decodeMessage() rejects every truncated or padded handshake and garbage, never throws", () => {
  const rnd = seededRandom("garbage");
  for (let type = 0; type <= 6; type++) {
    for (let len = 0; len <= 200; len++) {
      const b = rnd(len);
      if (len >= 4) b.set([type, 0, 0, 0]);
      const d = decodeMessage(b);
      const valid = (type === 1 && len === 148) || (type === 2 && len === 92) ||
        (type === 3 && len === 64) || (type === 4 && len >= 32);
      assertEquals(d.ok, valid, `type ${type} len ${len}`);
      if (!d.ok) {
        const want = len < 4 || (type >= 1 && type <= 4) ? "bad_length" : "unknown_type";
        assertEquals(d.reason, want, `type ${type} len ${len}`);
      }
    }
  }
  // Non-zero reserved bytes make it an unknown type, as in wireguard-go.
  const b = new Uint8Array(148);
  b.set([1, 0, 1, 0]);
  assertEquals(decodeMessage(b), { ok: false, reason: "unknown_type" });
});
