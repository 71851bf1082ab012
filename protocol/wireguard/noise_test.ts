import { createCipheriv, createHmac } from "node:crypto";
import { blake2s } from "@noble/hashes/blake2s";
import { x25519 } from "@noble/curves/ed25519";
import {
  aeadOpen,
  aeadSeal,
  dh,
  generatePrivateKey,
  hash,
  hmac,
  kdf1,
  kdf2,
  kdf3,
  mac,
  publicKeyOf,
  xaeadOpen,
  xaeadSeal,
} from "./noise.ts";
import { assertEquals, h, hex } from "./_test_helpers.ts";

const te = new TextEncoder();
const SUNSCREEN = te.encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const KEY_80_9F = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const AAD = h("50515253c0c1c2c3c4c5c6c7");

Deno.test("hash() is BLAKE2s-256 (RFC 7693 appendix B, 'abc')", () => {
  assertEquals(
    hex(hash(te.encode("abc"))),
    "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
  );
  assertEquals(hex(hash(te.encode("a"), te.encode("bc"))), hex(hash(te.encode("abc"))));
});

Deno.test("dh() and publicKeyOf() match RFC 7748 §5.2 and §6.1", () => {
  assertEquals(
    hex(x25519.scalarMult(
      h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
      h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    )),
    "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
  );
  const alice = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const bob = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  assertEquals(
    hex(publicKeyOf(alice)),
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  );
  assertEquals(
    hex(publicKeyOf(bob)),
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  );
  const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  assertEquals(hex(dh(alice, publicKeyOf(bob))!), shared);
  assertEquals(hex(dh(bob, publicKeyOf(alice))!), shared);
});

Deno.test("dh() returns null for a low-order public key", () => {
  assertEquals(dh(generatePrivateKey(), new Uint8Array(32)), null);
  const order8 = h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
  assertEquals(dh(generatePrivateKey(), order8), null);
});

Deno.test("generatePrivateKey() clamps", () => {
  const k = generatePrivateKey(() => new Uint8Array(32).fill(0xff));
  assertEquals(k[0]! & 7, 0);
  assertEquals(k[31]! & 0xc0, 0x40);
});

// RFC 8439 §2.8.2
const RFC8439_NONCE = h("070000004041424344454647");
const RFC8439_CT = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
  "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
  "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
  "3ff4def08e4b7a9de576d26586cec64b6116";
const RFC8439_TAG = "1ae10b594f09e26a7e902ecbd0600691";

Deno.test("ChaCha20-Poly1305 (noble and node:crypto) match RFC 8439 §2.8.2", async () => {
  const { chacha20poly1305 } = await import("@noble/ciphers/chacha");
  assertEquals(
    hex(chacha20poly1305(KEY_80_9F, RFC8439_NONCE, AAD).encrypt(SUNSCREEN)),
    RFC8439_CT + RFC8439_TAG,
  );
  const c = createCipheriv("chacha20-poly1305", KEY_80_9F, RFC8439_NONCE, { authTagLength: 16 });
  c.setAAD(AAD, { plaintextLength: SUNSCREEN.length });
  const ct = c.update(SUNSCREEN);
  c.final();
  assertEquals(hex(ct) + hex(c.getAuthTag()), RFC8439_CT + RFC8439_TAG);
});

Deno.test("aeadSeal() uses WireGuard's nonce: 4 zero bytes then the counter LE", async () => {
  const { chacha20poly1305 } = await import("@noble/ciphers/chacha");
  const key = hash(te.encode("k"));
  const nonce = h("000000000201000000000000"); // counter 0x0102
  const want = chacha20poly1305(key, nonce, AAD).encrypt(SUNSCREEN);
  assertEquals(hex(aeadSeal(key, 0x0102, SUNSCREEN, AAD)), hex(want));
  assertEquals(aeadOpen(key, 0x0102, want, AAD), SUNSCREEN);
  const bad = want.slice();
  bad[0]! ^= 1;
  assertEquals(aeadOpen(key, 0x0102, bad, AAD), null);
  assertEquals(aeadOpen(key, 0x0103, want, AAD), null);
  assertEquals(aeadOpen(key, 0, new Uint8Array(3), AAD), null);
});

Deno.test("xaeadSeal() matches draft-irtf-cfrg-xchacha §A.3.1", () => {
  const nonce = h("404142434445464748494a4b4c4d4e4f5051525354555657");
  const want = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb" +
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452" +
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9" +
    "21f9664c97637da9768812f615c68b13b52e" + "c0875924c1c7987947deafd8780acf49";
  const sealed = xaeadSeal(KEY_80_9F, nonce, SUNSCREEN, AAD);
  assertEquals(hex(sealed), want);
  assertEquals(xaeadOpen(KEY_80_9F, nonce, sealed, AAD), SUNSCREEN);
  assertEquals(xaeadOpen(KEY_80_9F, nonce, sealed, new Uint8Array(0)), null);
});

Deno.test("hmac() equals node:crypto HMAC-BLAKE2s and kdf1..3 chain as in the whitepaper", () => {
  const key = hash(te.encode("chaining key"));
  const inputs = [new Uint8Array(0), te.encode("abc"), new Uint8Array(200).fill(7)];
  for (const input of inputs) {
    const ref = createHmac("blake2s256", key).update(input).digest();
    assertEquals(hex(hmac(key, input)), hex(ref));
  }
  // KDF_n per whitepaper 5.4: τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i-1) || i).
  const input = te.encode("input keying material");
  const t0 = createHmac("blake2s256", key).update(input).digest();
  const t1 = createHmac("blake2s256", t0).update(Uint8Array.of(1)).digest();
  const t2 = createHmac("blake2s256", t0).update(Buffer.concat([t1, Uint8Array.of(2)])).digest();
  const t3 = createHmac("blake2s256", t0).update(Buffer.concat([t2, Uint8Array.of(3)])).digest();
  assertEquals(hex(kdf1(key, input)), hex(t1));
  assertEquals(kdf2(key, input).map(hex), [hex(t1), hex(t2)]);
  assertEquals(kdf3(key, input).map(hex), [hex(t1), hex(t2), hex(t3)]);
});

Deno.test("mac() is keyed BLAKE2s-128", () => {
  const key = te.encode("0123456789abcdef0123456789abcdef");
  assertEquals(hex(mac(key, te.encode("abc"))), hex(blake2s("abc", { key, dkLen: 16 })));
  assertEquals(mac(key, te.encode("abc")).length, 16);
});
