/**
 * ChaCha20-Poly1305 from OpenSSL's EVP interface (`libcrypto.so.3`) through Deno FFI: one cipher
 * context per key, reused for every packet (only the nonce changes), which avoids the per-packet
 * object churn of `node:crypto`. Linux only for now; {@linkcode openSslAead} returns null where
 * the library is missing, and callers fall back to the portable provider.
 *
 * @module
 */
import { AEAD_TAG_LEN, type AeadKey, type AeadProvider } from "../protocol/wireguard/aead.ts";

/** EVP_CTRL_AEAD_SET_IVLEN. */
const CTRL_SET_IVLEN = 0x9;
/** `OSSL_PARAM_OCTET_STRING`. */
const OSSL_PARAM_OCTET_STRING = 5;

/** The libcrypto symbols used, one comment per parameter list. */
const SYMBOLS = {
  /** () → EVP_CIPHER_CTX* */
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  /** (ctx) */
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  /** () → const EVP_CIPHER* */
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  /** (ctx, cipher, engine, key, iv) → 1 on success; NULL arguments keep what is set. */
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  /** (ctx, cipher, engine, key, iv) → 1 on success. */
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  /** (ctx, out, int* outl, in, inl) → 1 on success. */
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (ctx, out, int* outl, in, inl) → 1 on success. */
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (ctx, out, int* outl) → 1 on success. */
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  /** (ctx, out, int* outl) → 1 when the tag verified. */
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  /** (ctx, type, arg, ptr) → 1 on success. */
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  /** (ctx, const OSSL_PARAM params[]) → 1 on success. */
  EVP_CIPHER_CTX_get_params: { parameters: ["pointer", "pointer"], result: "i32" },
  /** (ctx, const OSSL_PARAM params[]) → 1 on success. */
  EVP_CIPHER_CTX_set_params: { parameters: ["pointer", "pointer"], result: "i32" },
} as const;

type LibCrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const LIBRARY_NAMES = ["libcrypto.so.3", "libcrypto.so"];

let loaded: LibCrypto | null | undefined;

function load(): LibCrypto | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (Deno.build.os !== "linux") return null;
  for (const name of LIBRARY_NAMES) {
    try {
      loaded = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // try the next name
    }
  }
  return loaded;
}

/** Frees contexts whose key object was dropped without dispose(). */
const contexts = new FinalizationRegistry<Deno.PointerValue>((ctx) => {
  if (ctx !== null && loaded) loaded.EVP_CIPHER_CTX_free(ctx);
});

/**
 * One key's two contexts and the native memory the per-packet calls use: an `OSSL_PARAM` list
 * naming the 16-byte tag buffer ("tag"), so the tag is read and set without `EVP_CIPHER_CTX_ctrl`
 * translating a ctrl code into parameters on every packet.
 *
 * Per packet: set the nonce (`EVP_*Init_ex`), Update over the data, Final (tag computed or
 * checked), and the tag parameter. (`EVP_Cipher` cannot replace Final here: with no input the
 * provider's cipher call returns before finishing the message.)
 */
class EvpKey implements AeadKey {
  readonly #c: LibCrypto;
  #enc: Deno.PointerValue;
  #dec: Deno.PointerValue;
  /**
   * Native-stable memory (an ArrayBuffer large enough to live outside V8's heap): the OSSL_PARAM
   * list at 0 (the tag entry, then the terminator), the key name at 96, the tag at 112.
   */
  readonly #native = new Uint8Array(256);
  readonly #params: Deno.PointerValue;
  readonly #tag: Uint8Array;
  readonly #outLen = new Uint8Array(4);
  readonly #scratch = new Uint8Array(16);

  constructor(c: LibCrypto, key: Uint8Array) {
    this.#c = c;
    const cipher = c.EVP_chacha20_poly1305();
    this.#enc = this.#context(cipher, key, true);
    this.#dec = this.#context(cipher, key, false);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#native));
    const view = new DataView(this.#native.buffer);
    const NAME_AT = 96;
    const TAG_AT = 112;
    this.#native.set([0x74, 0x61, 0x67, 0], NAME_AT); // "tag"
    view.setBigUint64(0, BigInt(base) + BigInt(NAME_AT), true);
    view.setUint32(8, OSSL_PARAM_OCTET_STRING, true);
    view.setBigUint64(16, BigInt(base) + BigInt(TAG_AT), true);
    view.setBigUint64(24, BigInt(AEAD_TAG_LEN), true);
    // An OSSL_PARAM (LP64) is key, data_type (+pad), data, data_size, return_size: 40 bytes.
    // Bytes 40..79 stay zero: the terminating one.
    this.#params = Deno.UnsafePointer.of(this.#native);
    this.#tag = this.#native.subarray(TAG_AT, TAG_AT + AEAD_TAG_LEN);
  }

  #context(cipher: Deno.PointerValue, key: Uint8Array, encrypt: boolean): Deno.PointerValue {
    const ctx = this.#c.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed");
    contexts.register(this, ctx, ctx);
    const init = encrypt ? this.#c.EVP_EncryptInit_ex : this.#c.EVP_DecryptInit_ex;
    if (
      init(ctx, cipher, null, null, null) !== 1 ||
      this.#c.EVP_CIPHER_CTX_ctrl(ctx, CTRL_SET_IVLEN, 12, null) !== 1 ||
      init(ctx, null, null, key, null) !== 1
    ) {
      throw new Error("EVP ChaCha20-Poly1305 initialisation failed");
    }
    return ctx;
  }

  seal(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const c = this.#c;
    const ctx = this.#enc;
    c.EVP_EncryptInit_ex(ctx, null, null, null, nonce);
    const n = plaintext.length;
    if (n > 0) c.EVP_EncryptUpdate(ctx, out, this.#outLen, plaintext, n);
    c.EVP_EncryptFinal_ex(ctx, this.#scratch, this.#outLen);
    c.EVP_CIPHER_CTX_get_params(ctx, this.#params);
    out.set(this.#tag, n);
  }

  open(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    const n = sealed.length - AEAD_TAG_LEN;
    if (n < 0) return false;
    const c = this.#c;
    const ctx = this.#dec;
    c.EVP_DecryptInit_ex(ctx, null, null, null, nonce);
    const tag = this.#tag;
    for (let i = 0; i < AEAD_TAG_LEN; i++) tag[i] = sealed[n + i]!;
    c.EVP_CIPHER_CTX_set_params(ctx, this.#params);
    // No views per packet: the length argument bounds what is read.
    if (n > 0) c.EVP_DecryptUpdate(ctx, out, this.#outLen, sealed, n);
    return c.EVP_DecryptFinal_ex(ctx, this.#scratch, this.#outLen) === 1;
  }

  dispose(): void {
    for (const ctx of [this.#enc, this.#dec]) {
      if (ctx === null) continue;
      contexts.unregister(ctx);
      // EVP_CIPHER_CTX_free also cleanses the key schedule.
      this.#c.EVP_CIPHER_CTX_free(ctx);
    }
    this.#enc = this.#dec = null;
  }
}

/**
 * OpenSSL's ChaCha20-Poly1305 (EVP, reused contexts), or null when libcrypto cannot be loaded
 * (not Linux, library missing, or no `--allow-ffi`).
 */
export function openSslAead(): AeadProvider | null {
  const c = load();
  if (c === null) return null;
  return { name: "openssl-evp", key: (key) => new EvpKey(c, key) };
}
