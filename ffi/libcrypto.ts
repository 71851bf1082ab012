/**
 * ChaCha20-Poly1305 from OpenSSL's EVP interface (`libcrypto.so.3`) through Deno FFI: one cipher
 * context per key, reused for every packet (only the nonce changes), which avoids the per-packet
 * object churn of `node:crypto`. Linux only for now; {@linkcode openSslAead} returns null where
 * the library is missing, and callers fall back to the portable provider.
 *
 * @module
 */
import {
  AEAD_NONCE_LEN,
  AEAD_TAG_LEN,
  type AeadKey,
  type AeadProvider,
  NODE_CRYPTO_AEAD,
} from "../protocol/wireguard/aead.ts";

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

/** Bytes of one `OSSL_PARAM` (LP64): key, data_type (+pad), data, data_size, return_size. */
const OSSL_PARAM_BYTES = 40;
/**
 * Where {@linkcode EvpKey}'s native memory keeps each thing. Each list ends with an all-zero
 * entry: the memory starts zeroed and those bytes are never written.
 */
const AT = {
  /** `OSSL_PARAM` list: nonce, tag, end (sets both before a decryption). */
  nonceTagList: 0,
  /** `OSSL_PARAM` list: tag, end (reads the tag after an encryption; the tail of the above). */
  tagList: OSSL_PARAM_BYTES,
  /** `OSSL_PARAM` list: nonce, end (sets it before an encryption). */
  nonceList: 3 * OSSL_PARAM_BYTES,
  nonceName: 5 * OSSL_PARAM_BYTES,
  tagName: 5 * OSSL_PARAM_BYTES + 12, // after "tlsivfixed\0"
  nonce: 5 * OSSL_PARAM_BYTES + 16, // after "tag\0"
  tag: 5 * OSSL_PARAM_BYTES + 32, // after the nonce, 8-byte aligned
} as const;

/**
 * How a context is given each packet's nonce.
 *
 * - `"param"`: the `tlsivfixed` parameter (`OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED`), which for
 *   ChaCha20-Poly1305 is the whole 12-byte nonce and which the provider copies straight into
 *   the cipher state, in the same `EVP_CIPHER_CTX_set_params` call that sets the tag when
 *   opening. No TLS mode is entered: that needs the `tlsaad` parameter, never set here, and the
 *   message state was already reset by the previous Final. About 0.15 µs less per packet than
 *   `EVP_*Init_ex`, whose generic path in OpenSSL 3 looks up the IV length by name each time.
 * - `"init"`: `EVP_*Init_ex` with only the nonce, the documented way, used when the library
 *   fails {@linkcode openSslAead}'s known-answer check of `"param"`.
 */
export type NonceMode = "param" | "init";

/**
 * One key's two contexts and the native memory the per-packet calls use: `OSSL_PARAM` lists
 * naming the 12-byte nonce ("tlsivfixed") and the 16-byte tag ("tag"), so neither goes through
 * `EVP_CIPHER_CTX_ctrl` translating a ctrl code into parameters on every packet.
 *
 * Per packet: set the nonce (and, opening, the tag), Update over the data, Final (tag computed
 * or checked; Final also resets the message state, even when the check fails), and read the tag
 * when sealing. (`EVP_Cipher` cannot replace Final here: with no input the provider's cipher
 * call returns before finishing the message.)
 */
class EvpKey implements AeadKey {
  readonly #c: LibCrypto;
  readonly #byParam: boolean;
  #enc: Deno.PointerValue;
  #dec: Deno.PointerValue;
  /**
   * Native-stable memory (an ArrayBuffer large enough to live outside V8's heap), laid out as
   * {@linkcode AT} says.
   */
  readonly #native = new Uint8Array(256);
  readonly #nonceTagList: Deno.PointerValue;
  readonly #tagList: Deno.PointerValue;
  readonly #nonceList: Deno.PointerValue;
  readonly #nonce: Uint8Array;
  readonly #tag: Uint8Array;
  readonly #outLen = new Uint8Array(4);
  readonly #scratch = new Uint8Array(16);

  constructor(c: LibCrypto, key: Uint8Array, mode: NonceMode) {
    this.#c = c;
    this.#byParam = mode === "param";
    const cipher = c.EVP_chacha20_poly1305();
    this.#enc = this.#context(cipher, key, true);
    this.#dec = this.#context(cipher, key, false);
    const m = this.#native;
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(m)));
    const view = new DataView(m.buffer);
    m.set(new TextEncoder().encode("tlsivfixed\0"), AT.nonceName);
    m.set(new TextEncoder().encode("tag\0"), AT.tagName);
    const param = (at: number, nameAt: number, dataAt: number, size: number) => {
      view.setBigUint64(at, base + BigInt(nameAt), true);
      view.setUint32(at + 8, OSSL_PARAM_OCTET_STRING, true);
      view.setBigUint64(at + 16, base + BigInt(dataAt), true);
      view.setBigUint64(at + 24, BigInt(size), true);
    };
    param(AT.nonceTagList, AT.nonceName, AT.nonce, AEAD_NONCE_LEN);
    param(AT.tagList, AT.tagName, AT.tag, AEAD_TAG_LEN);
    param(AT.nonceList, AT.nonceName, AT.nonce, AEAD_NONCE_LEN);
    const at = (offset: number) => Deno.UnsafePointer.create(base + BigInt(offset));
    this.#nonceTagList = at(AT.nonceTagList);
    this.#tagList = at(AT.tagList);
    this.#nonceList = at(AT.nonceList);
    this.#nonce = m.subarray(AT.nonce, AT.nonce + AEAD_NONCE_LEN);
    this.#tag = m.subarray(AT.tag, AT.tag + AEAD_TAG_LEN);
  }

  #context(cipher: Deno.PointerValue, key: Uint8Array, encrypt: boolean): Deno.PointerValue {
    const ctx = this.#c.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed");
    contexts.register(this, ctx, ctx);
    const init = encrypt ? this.#c.EVP_EncryptInit_ex : this.#c.EVP_DecryptInit_ex;
    if (
      init(ctx, cipher, null, null, null) !== 1 ||
      this.#c.EVP_CIPHER_CTX_ctrl(ctx, CTRL_SET_IVLEN, AEAD_NONCE_LEN, null) !== 1 ||
      init(ctx, null, null, key, null) !== 1
    ) {
      throw new Error("EVP ChaCha20-Poly1305 initialisation failed");
    }
    return ctx;
  }

  seal(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const c = this.#c;
    const ctx = this.#enc;
    if (this.#byParam) {
      this.#nonce.set(nonce);
      c.EVP_CIPHER_CTX_set_params(ctx, this.#nonceList);
    } else {
      c.EVP_EncryptInit_ex(ctx, null, null, null, nonce);
    }
    const n = plaintext.length;
    if (n > 0) c.EVP_EncryptUpdate(ctx, out, this.#outLen, plaintext, n);
    c.EVP_EncryptFinal_ex(ctx, this.#scratch, this.#outLen);
    c.EVP_CIPHER_CTX_get_params(ctx, this.#tagList);
    out.set(this.#tag, n);
  }

  open(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    const n = sealed.length - AEAD_TAG_LEN;
    if (n < 0) return false;
    const c = this.#c;
    const ctx = this.#dec;
    const tag = this.#tag;
    for (let i = 0; i < AEAD_TAG_LEN; i++) tag[i] = sealed[n + i]!;
    if (this.#byParam) {
      this.#nonce.set(nonce);
      c.EVP_CIPHER_CTX_set_params(ctx, this.#nonceTagList);
    } else {
      c.EVP_DecryptInit_ex(ctx, null, null, null, nonce);
      c.EVP_CIPHER_CTX_set_params(ctx, this.#tagList);
    }
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
 *
 * @param mode how each packet's nonce is set (tests); default `"param"` where this library
 *   passes a known-answer check of it at first use, else `"init"`.
 */
export function openSslAead(mode?: NonceMode): AeadProvider | null {
  const c = load();
  if (c === null) return null;
  const nonceMode = mode ?? checkedNonceMode(c);
  return { name: "openssl-evp", key: (key) => new EvpKey(c, key, nonceMode) };
}

let checked: NonceMode | undefined;

/** The nonce mode {@linkcode openSslAead} picks by default here, or null without libcrypto. */
export function openSslNonceMode(): NonceMode | null {
  const c = load();
  return c === null ? null : checkedNonceMode(c);
}

/**
 * `"param"` when this libcrypto seals and opens messages under changing nonces exactly as
 * `node:crypto` does that way (and rejects a forged tag), else `"init"`: the parameter's effect
 * on a non-TLS message is the provider's behaviour, not its documented contract, so it is
 * checked once per process rather than trusted.
 */
function checkedNonceMode(c: LibCrypto): NonceMode {
  if (checked !== undefined) return checked;
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  let probe: EvpKey | undefined;
  const reference = NODE_CRYPTO_AEAD.key(key);
  let agrees = true;
  try {
    probe = new EvpKey(c, key, "param");
    for (const [seq, len] of [[1, 0], [2, 100], [3, 64], [1 << 20, 1300]] as const) {
      const nonce = new Uint8Array(AEAD_NONCE_LEN);
      new DataView(nonce.buffer).setUint32(4, seq, true);
      const plain = new Uint8Array(len).map((_, i) => i ^ seq);
      const sealed = new Uint8Array(len + AEAD_TAG_LEN);
      const expected = new Uint8Array(len + AEAD_TAG_LEN);
      probe.seal(nonce, plain, sealed);
      reference.seal(nonce, plain, expected);
      const back = new Uint8Array(len);
      const forged = expected.slice();
      forged[len]! ^= 1;
      agrees &&= sealed.every((b, i) => b === expected[i]) && !probe.open(nonce, forged, back) &&
        probe.open(nonce, expected, back) && back.every((b, i) => b === plain[i]);
    }
  } catch {
    // A context that cannot even be made fails here as it would for the first real key: the
    // caller learns of it then, as before this check existed.
    agrees = false;
  } finally {
    probe?.dispose();
    reference.dispose();
  }
  return checked = agrees ? "param" : "init";
}
