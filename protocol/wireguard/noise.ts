/**
 * The cryptographic vocabulary of the WireGuard whitepaper (section 5.4): HASH, MAC, HMAC,
 * KDF1..3, DH, AEAD and XAEAD, plus the protocol's fixed strings. Every primitive comes from an
 * audited library (noble for handshake-time work, the runtime's native ChaCha20-Poly1305 for the
 * transport hot path in `session.ts`); this file only names and composes them.
 *
 * @module
 */
import { blake2s } from "@noble/hashes/blake2s";
import { hmac as nobleHmac } from "@noble/hashes/hmac";
import { x25519 } from "@noble/curves/ed25519";
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha";

const encoder = new TextEncoder();

/** Noise protocol name, hashed into the initial chaining key. */
export const CONSTRUCTION: Uint8Array = encoder.encode("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s");
/** WireGuard's prologue, mixed into the initial handshake hash. */
export const IDENTIFIER: Uint8Array = encoder.encode("WireGuard v1 zx2c4 Jason@zx2c4.com");
/** Label hashed with the receiver's static public key to key mac1. */
export const LABEL_MAC1: Uint8Array = encoder.encode("mac1----");
/** Label hashed with the sender's static public key to key the cookie-reply XAEAD. */
export const LABEL_COOKIE: Uint8Array = encoder.encode("cookie--");

/** Length of X25519 keys, BLAKE2s digests, chaining keys and symmetric keys, in bytes. */
export const KEY_LEN = 32;
/** Length of a BLAKE2s-128 MAC (mac1, mac2, cookie) in bytes. */
export const MAC_LEN = 16;
/** Length of a Poly1305 tag in bytes. */
export const TAG_LEN = 16;
/** Length of an XChaCha20 nonce in bytes. */
export const XNONCE_LEN = 24;

/** Concatenates byte strings (handshake-time only; not for the data path). */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** HASH(input): BLAKE2s-256 of the concatenation of `parts`. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: KEY_LEN });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** HMAC(key, input): HMAC over BLAKE2s-256 (RFC 2104 with a 64-byte block). */
export function hmac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return nobleHmac(blake2s, key, input);
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF1(key, input): the HKDF-style first output of the whitepaper. */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

/** KDF2(key, input): first two outputs. */
export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, concat(t1, TWO));
  t0.fill(0);
  return [t1, t2];
}

/** KDF3(key, input): first three outputs. */
export function kdf3(
  key: Uint8Array,
  input: Uint8Array,
): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, concat(t1, TWO));
  const t3 = hmac(t0, concat(t2, THREE));
  t0.fill(0);
  return [t1, t2, t3];
}

/**
 * DH(private, public): X25519. Returns null when the result is all zeros (a low-order public
 * key), which WireGuard treats as a failed handshake rather than a usable secret.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  if (privateKey.length !== KEY_LEN || publicKey.length !== KEY_LEN) {
    throw new RangeError("X25519 keys must be 32 bytes");
  }
  try {
    const shared = x25519.getSharedSecret(privateKey, publicKey);
    let acc = 0;
    for (const b of shared) acc |= b;
    return acc === 0 ? null : shared;
  } catch {
    // noble refuses an all-zero result itself; same meaning.
    return null;
  }
}

/** Returns a new clamped X25519 private key drawn from `randomBytes`. */
export function generatePrivateKey(
  randomBytes: (n: number) => Uint8Array = defaultRandomBytes,
): Uint8Array {
  const k = randomBytes(KEY_LEN).slice(0, KEY_LEN);
  if (k.length !== KEY_LEN) throw new RangeError("randomBytes returned too few bytes");
  // Clamp as RFC 7748 and wg genkey do, so the stored key equals the one X25519 uses.
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/** Returns the X25519 public key of `privateKey`. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LEN) throw new RangeError("X25519 private key must be 32 bytes");
  return x25519.getPublicKey(privateKey);
}

/** The default randomness source: the platform CSPRNG. */
export function defaultRandomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Builds the 12-byte AEAD nonce of WireGuard: 32 zero bits then the 64-bit counter LE. */
function nonce12(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter), true);
  return n;
}

/** AEAD(key, counter, plain, ad): ChaCha20-Poly1305 as used by the handshake. */
export function aeadSeal(
  key: Uint8Array,
  counter: number,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return chacha20poly1305(key, nonce12(counter), ad).encrypt(plaintext);
}

/** Inverse of {@linkcode aeadSeal}; null when authentication fails. */
export function aeadOpen(
  key: Uint8Array,
  counter: number,
  ciphertext: Uint8Array,
  ad: Uint8Array,
): Uint8Array | null {
  if (ciphertext.length < TAG_LEN) return null;
  try {
    return chacha20poly1305(key, nonce12(counter), ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

/** XAEAD(key, nonce24, plain, ad): XChaCha20-Poly1305, used by cookie replies. */
export function xaeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/** Inverse of {@linkcode xaeadSeal}; null when authentication fails. */
export function xaeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
): Uint8Array | null {
  if (ciphertext.length < TAG_LEN || nonce.length !== XNONCE_LEN) return null;
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

/** Constant-time equality of two byte strings of public length. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/** The initial chaining key: HASH(CONSTRUCTION). */
export const INITIAL_CHAIN_KEY: Uint8Array = hash(CONSTRUCTION);
/** The initial handshake hash before the responder key: HASH(Ci || IDENTIFIER). */
export const INITIAL_HASH: Uint8Array = hash(INITIAL_CHAIN_KEY, IDENTIFIER);
