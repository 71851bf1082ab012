import assert from "node:assert/strict";
import { type NonceMode, openSslAead, openSslNonceMode } from "./libcrypto.ts";
import { AEAD_TAG_LEN, NODE_CRYPTO_AEAD } from "../protocol/wireguard/aead.ts";

const evp = openSslAead();
const MODES: NonceMode[] = ["param", "init"];

Deno.test({
  name: "openSslAead() sets nonces by parameter here (its known-answer check passes)",
  ignore: evp === null,
  fn() {
    assert.equal(openSslNonceMode(), "param");
  },
});

const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** One random key, as `mode`'s OpenSSL key and as node:crypto's (the reference). */
function keyPair(mode: NonceMode) {
  const keyBytes = rnd(32);
  return { evp: openSslAead(mode)!.key(keyBytes), ref: NODE_CRYPTO_AEAD.key(keyBytes) };
}

for (const mode of MODES) {
  Deno.test({
    name: `openSslAead("${mode}") seals exactly like node:crypto and opens what it sealed`,
    ignore: evp === null,
    fn() {
      const { evp: a, ref: b } = keyPair(mode);
      for (const len of [0, 1, 15, 16, 17, 63, 64, 1280, 1420, 1500, 9000]) {
        const nonce = rnd(12);
        const plain = rnd(len);
        const x = new Uint8Array(len + AEAD_TAG_LEN);
        const y = new Uint8Array(len + AEAD_TAG_LEN);
        a.seal(nonce, plain, x);
        b.seal(nonce, plain, y);
        assert.deepEqual(x, y, `length ${len}`);
        const back = new Uint8Array(len);
        assert.ok(a.open(nonce, x, back));
        assert.deepEqual(back, plain);
        assert.ok(b.open(nonce, x, back));
        // Any flipped bit, in ciphertext or tag, fails authentication.
        const bad = x.slice();
        bad[Math.floor(Math.random() * bad.length)]! ^= 1 << Math.floor(Math.random() * 8);
        assert.equal(a.open(nonce, bad, back), false);
      }
      assert.equal(a.open(rnd(12), new Uint8Array(5), new Uint8Array(0)), false);
      a.dispose();
      b.dispose();
    },
  });

  Deno.test({
    name: `openSslAead("${mode}") keeps working after failed opens, with one key for many nonces`,
    ignore: evp === null,
    fn() {
      const { evp: a, ref } = keyPair(mode);
      for (let i = 0; i < 200; i++) {
        const nonce = new Uint8Array(12);
        new DataView(nonce.buffer).setUint32(4, i, true);
        const plain = rnd(i * 7);
        const sealed = new Uint8Array(plain.length + AEAD_TAG_LEN);
        a.seal(nonce, plain, sealed);
        const expected = new Uint8Array(sealed.length);
        ref.seal(nonce, plain, expected);
        assert.deepEqual(sealed, expected, `message ${i}`);
        const back = new Uint8Array(plain.length);
        if (i % 3 === 0) {
          // A forged tag (or the wrong nonce) leaves no state behind for the next message.
          const forged = sealed.slice();
          forged[forged.length - 1]! ^= 0x80;
          assert.equal(a.open(nonce, forged, back), false);
          assert.equal(a.open(rnd(12), sealed, back), false);
        }
        assert.ok(a.open(nonce, sealed, back), `message ${i}`);
        assert.deepEqual(back, plain);
      }
      a.dispose();
      ref.dispose();
    },
  });
}
