/**
 * The transport AEAD (ChaCha20-Poly1305, RFC 8439) behind a small interface, so the data path
 * can use the fastest implementation the platform has without the protocol code knowing it:
 * the default here is the runtime's native one (`node:crypto`, a new cipher object per packet);
 * `ffi/libcrypto.ts` provides OpenSSL's EVP interface with one reused context per key.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

/** Length of the Poly1305 tag, in bytes. */
export const AEAD_TAG_LEN = 16;
/** Length of the ChaCha20-Poly1305 nonce, in bytes. */
export const AEAD_NONCE_LEN = 12;

/** One ChaCha20-Poly1305 key, ready for many packets. Not safe for concurrent use. */
export interface AeadKey {
  /**
   * Encrypts `plaintext` into `out` (exactly `plaintext.length + 16` bytes: ciphertext then
   * tag). Empty associated data, as WireGuard transport messages use.
   */
  seal(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /**
   * Authenticates and decrypts `sealed` (ciphertext then tag) into the first
   * `sealed.length - 16` bytes of `out` (which may be longer). Returns false, with `out`
   * unspecified, when the tag is wrong.
   */
  open(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  /** Releases native resources; the key is unusable afterwards. */
  dispose(): void;
}

/** Makes {@linkcode AeadKey}s: one implementation of ChaCha20-Poly1305. */
export interface AeadProvider {
  /** Short name for logs and benchmarks, e.g. `node:crypto` or `openssl-evp`. */
  readonly name: string;
  /** Prepares a 32-byte key. The provider may copy it; the caller may zero its own copy. */
  key(key: Uint8Array): AeadKey;
}

const OPTIONS = { authTagLength: AEAD_TAG_LEN } as const;

/** The portable provider: `node:crypto` (native in Deno), a new cipher object per packet. */
export const NODE_CRYPTO_AEAD: AeadProvider = {
  name: "node:crypto",
  key(key: Uint8Array): AeadKey {
    const k = key.slice();
    return {
      seal(nonce, plaintext, out) {
        const cipher = createCipheriv("chacha20-poly1305", k, nonce, OPTIONS);
        if (plaintext.length > 0) out.set(cipher.update(plaintext));
        cipher.final();
        out.set(cipher.getAuthTag(), plaintext.length);
      },
      open(nonce, sealed, out) {
        const tagAt = sealed.length - AEAD_TAG_LEN;
        if (tagAt < 0) return false;
        try {
          const d = createDecipheriv("chacha20-poly1305", k, nonce, OPTIONS);
          d.setAuthTag(sealed.subarray(tagAt));
          if (tagAt > 0) out.set(d.update(sealed.subarray(0, tagAt)));
          d.final(); // throws when the tag does not verify
          return true;
        } catch {
          return false;
        }
      },
      dispose() {
        k.fill(0);
      },
    };
  },
};
