import { COOKIE_REFRESH_MS, CookieChecker, CookieGenerator } from "./cookie.ts";
import { decodeMessage, encodeInitiation } from "./messages.ts";
import { generatePrivateKey, publicKeyOf } from "./noise.ts";
import { assertEquals, seededRandom } from "./_test_helpers.ts";

function initiation(): Uint8Array {
  return encodeInitiation({
    sender: 42,
    ephemeral: new Uint8Array(32).fill(1),
    encryptedStatic: new Uint8Array(48).fill(2),
    encryptedTimestamp: new Uint8Array(28).fill(3),
  });
}

const SRC = Uint8Array.of(198, 18, 0, 1, 0x12, 0x34);
const OTHER_SRC = Uint8Array.of(198, 18, 0, 9, 0x12, 0x34);

Deno.test("mac1 is verified with the receiver's key; mac2 is zero without a cookie", () => {
  const responder = publicKeyOf(generatePrivateKey());
  const gen = new CookieGenerator(responder);
  const checker = new CookieChecker(responder, seededRandom("c"));
  const msg = initiation();
  gen.addMacs(msg, 0);
  assertEquals(checker.checkMac1(msg), true);
  assertEquals(msg.subarray(132), new Uint8Array(16));
  assertEquals(checker.checkMac2(msg, SRC, 0), false);
  const wrong = new CookieChecker(publicKeyOf(generatePrivateKey()));
  assertEquals(wrong.checkMac1(msg), false);
  msg[10]! ^= 1;
  assertEquals(checker.checkMac1(msg), false);
});

Deno.test("cookie reply → mac2 valid from the same source until the secret rotates", () => {
  const responder = publicKeyOf(generatePrivateKey());
  const gen = new CookieGenerator(responder);
  const checker = new CookieChecker(responder, seededRandom("c"));
  const msg = initiation();
  gen.addMacs(msg, 1000);
  const reply = decodeMessage(checker.createReply(msg, 42, SRC, 1000));
  if (!reply.ok || reply.message.type !== 3) throw new Error("no cookie reply");
  assertEquals(reply.message.receiver, 42);
  assertEquals(gen.consumeReply(reply.message, 1000), true);
  assertEquals(gen.hasFreshCookie(1000), true);

  const retry = initiation();
  gen.addMacs(retry, 1100);
  assertEquals(checker.checkMac1(retry), true);
  assertEquals(checker.checkMac2(retry, SRC, 1100), true);
  assertEquals(checker.checkMac2(retry, OTHER_SRC, 1100), false);
  // The checker's secret expires after COOKIE_REFRESH_MS; so does the initiator's cookie.
  assertEquals(checker.checkMac2(retry, SRC, 1000 + COOKIE_REFRESH_MS + 1), false);
  assertEquals(gen.hasFreshCookie(1000 + COOKIE_REFRESH_MS + 1), false);
});

Deno.test("a cookie reply bound to another mac1 is refused", () => {
  const responder = publicKeyOf(generatePrivateKey());
  const gen = new CookieGenerator(responder);
  const checker = new CookieChecker(responder);
  const other = initiation();
  other[9] = 99; // different message, different mac1
  new CookieGenerator(responder).addMacs(other, 0);
  const reply = decodeMessage(checker.createReply(other, 42, SRC, 0));
  if (!reply.ok || reply.message.type !== 3) throw new Error("no cookie reply");
  // No initiation sent yet at all:
  assertEquals(gen.consumeReply(reply.message, 0), false);
  const mine = initiation();
  gen.addMacs(mine, 0);
  assertEquals(gen.consumeReply(reply.message, 0), false);
});
