import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
} from "./handshake.ts";
import { decodeMessage, type InitiationMessage, type ResponseMessage } from "./messages.ts";
import { dh, generatePrivateKey, publicKeyOf } from "./noise.ts";
import { tai64n } from "./tai64n.ts";
import { assertEquals, hex } from "./_test_helpers.ts";

function keys() {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

function run(pskI: Uint8Array, pskR: Uint8Array) {
  const i = keys();
  const r = keys();
  const init = createInitiation({
    local: i,
    remotePublic: r.publicKey,
    staticStatic: dh(i.privateKey, r.publicKey)!,
    localIndex: 1,
    ephemeralPrivate: generatePrivateKey(),
    timestamp: tai64n(1_700_000_000_000),
  })!;
  const d = decodeMessage(init.message);
  if (!d.ok) throw new Error("bad initiation");
  const consumed = consumeInitiation(
    d.message as InitiationMessage,
    r,
    (pub) => hex(pub) === hex(i.publicKey) ? dh(r.privateKey, pub) : null,
  );
  if (typeof consumed === "string") throw new Error(consumed);
  assertEquals(consumed.remoteStatic, i.publicKey);
  assertEquals(consumed.remoteIndex, 1);
  assertEquals(consumed.timestamp, tai64n(1_700_000_000_000));
  const resp = createResponse({
    initiation: consumed,
    localIndex: 2,
    ephemeralPrivate: generatePrivateKey(),
    presharedKey: pskR,
  })!;
  const dr = decodeMessage(resp.message);
  if (!dr.ok) throw new Error("bad response");
  const ikeys = consumeResponse(dr.message as ResponseMessage, init.state, i, pskI);
  return { ikeys, rkeys: resp.keys, i, r, init };
}

Deno.test("IKpsk2: both sides derive mirrored transport keys", () => {
  const psk = new Uint8Array(32).fill(5);
  const { ikeys, rkeys } = run(psk, psk);
  if (ikeys === null) throw new Error("response refused");
  assertEquals(hex(ikeys.sendKey), hex(rkeys.receiveKey));
  assertEquals(hex(ikeys.receiveKey), hex(rkeys.sendKey));
  assertEquals(hex(ikeys.sendKey) === hex(ikeys.receiveKey), false);
});

Deno.test("IKpsk2: a different preshared key makes the response fail", () => {
  const { ikeys } = run(new Uint8Array(32), new Uint8Array(32).fill(1));
  assertEquals(ikeys, null);
});

Deno.test("consumeInitiation() reports an unknown peer and a tampered message", () => {
  const i = keys();
  const r = keys();
  const init = createInitiation({
    local: i,
    remotePublic: r.publicKey,
    staticStatic: dh(i.privateKey, r.publicKey)!,
    localIndex: 1,
    ephemeralPrivate: generatePrivateKey(),
    timestamp: tai64n(0),
  })!;
  const d = decodeMessage(init.message);
  if (!d.ok) throw new Error("bad initiation");
  assertEquals(consumeInitiation(d.message as InitiationMessage, r, () => null), "unknown_peer");
  const tampered = init.message.slice();
  tampered[100]! ^= 1;
  const dt = decodeMessage(tampered);
  if (!dt.ok) throw new Error("bad initiation");
  assertEquals(
    consumeInitiation(dt.message as InitiationMessage, r, (p) => dh(r.privateKey, p)),
    "handshake_decrypt_failed",
  );
  // Addressed to someone else: the static key does not decrypt.
  assertEquals(
    consumeInitiation(d.message as InitiationMessage, keys(), () => null),
    "handshake_decrypt_failed",
  );
});
