/**
 * Sealed member advertisements: the only member data the hub relays, and opaque to it.
 *
 * ## Plaintext (big-endian)
 *
 * ```text
 * version        u8     = 1
 * timestamp_ms   u64    Unix ms, strictly increasing per node: max(now, last + 1); ≤ 2^53 - 1
 * public_key     32     the node's WireGuard (X25519) public key
 * name_len       u8     0..63 (0 = unnamed)
 * name           name_len bytes of [A-Za-z0-9._-]
 * ipv6           16     the node's VPN IPv6 address
 * ipv6_prefix    u8     0..128, the prefix routed into the VPN
 * ipv4_flag      u8     0 = no IPv4 inside, 1 = followed by:
 *   ipv4         4      the node's VPN IPv4 address
 *   ipv4_prefix  u8     0..32
 * udp_port       u16    1..65535, the node's local UDP port
 * local_count    u8     0..8
 * local          local_count endpoints (family u8 | port u16 | 4 or 16 address bytes, endpoint.ts)
 * extensions     zero or more TLVs up to the end: type u8 | len u8 | value (len bytes)
 * ```
 *
 * Nothing is ignored silently: every byte up to the end must parse. The TLV area is the room for
 * future fields. TLV types `0x00..0x7f` are optional: a decoder that does not know one returns it
 * in {@linkcode Advert.extensions}. Types `0x80..0xff` are critical: a decoder that does not know
 * one rejects the advert. Defined types (CA mode, `client/ca.ts`): `0x01` certificate fragment,
 * `0x02` revocation-list fragment (each the concatenation of its TLVs' values, in order); and
 * `0x03` the node's view of its own NAT (`client/port_prediction.ts`: kind u8 | allocation u8). The
 * plaintext is at most 984 bytes, so the sealed advert fits the 1024-byte limit of hub messages.
 *
 * ## Sealing
 *
 * ```text
 * sealed = nonce (24 random bytes) | XChaCha20-Poly1305(advert key, nonce, plaintext, aad)
 * aad    = "meshub-advert-v1" | network_id (16) | node_id (16)
 * ```
 *
 * The advert key and node id come from the network secret (`keys.ts`); the node id must equal
 * `nodeId(secret, public_key)`. Binding the network id and node id into the AAD, and checking the
 * node id against the public key inside, means a hub can neither read nor forge an advert, nor
 * move one to another node id or network.
 *
 * ## Replay
 *
 * A hub can replay an old sealed advert. That is the receiver's to handle: a client keeps the
 * newest `timestamp_ms` it has accepted per node id and ignores adverts that are not newer.
 * Senders keep theirs increasing with {@linkcode nextAdvertTimestamp}.
 *
 * @module
 */

import { xchacha20poly1305 } from "@noble/ciphers/chacha";
import { decodeEndpoint, encodedEndpointLength, type Endpoint, writeEndpoint } from "./endpoint.ts";
import { IPV4_LEN, IPV6_LEN } from "./ip_address.ts";
import {
  ADVERT_KEY_LEN,
  NETWORK_ID_LEN,
  NODE_ID_LEN,
  nodeIdFromKey,
  PUBLIC_KEY_LEN,
} from "./keys.ts";

/** Version byte of the advert plaintext. */
export const ADVERT_VERSION = 1;
/** Length of the XChaCha20 nonce in front of the ciphertext. */
export const ADVERT_NONCE_LEN = 24;
/** Length of the Poly1305 tag at the end of the ciphertext. */
export const ADVERT_TAG_LEN = 16;
/** Longest sealed advert (the limit of hub messages). */
export const SEALED_ADVERT_MAX_LEN = 1024;
/** Longest advert plaintext. */
export const ADVERT_PLAINTEXT_MAX_LEN = SEALED_ADVERT_MAX_LEN - ADVERT_NONCE_LEN - ADVERT_TAG_LEN;
/** Longest node name in bytes. */
export const ADVERT_NAME_MAX_LEN = 63;
/** Most local endpoints in one advert. */
export const ADVERT_LOCAL_ENDPOINTS_MAX = 8;
/** Prefix of the AAD; followed by network id and node id. */
export const ADVERT_AAD_LABEL = "meshub-advert-v1";

const NAME_PATTERN = /^[A-Za-z0-9._-]{0,63}$/;
const AAD_LABEL_BYTES = new TextEncoder().encode(ADVERT_AAD_LABEL);
const CRITICAL_EXTENSION = 0x80;

/** An address with the length of the prefix it belongs to. */
export interface IpPrefix {
  /** 16 bytes for IPv6, 4 bytes for IPv4. */
  readonly address: Uint8Array;
  /** Prefix length in bits. */
  readonly prefixLen: number;
}

/** One TLV of the extension area. */
export interface AdvertExtension {
  /** 0x00..0x7f optional, 0x80..0xff critical. */
  readonly type: number;
  /** 0..255 bytes. */
  readonly value: Uint8Array;
}

/** What a member tells the others about itself. */
export interface Advert {
  /** Unix time in ms; strictly increasing per node (see {@linkcode nextAdvertTimestamp}). */
  readonly timestampMs: number;
  /** The node's WireGuard public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** 0..63 characters of `[A-Za-z0-9._-]`; empty when the node has no name. */
  readonly name: string;
  /** The node's VPN IPv6 address and prefix length. */
  readonly ipv6: IpPrefix;
  /** The node's VPN IPv4 address and prefix length, if it has one. */
  readonly ipv4: IpPrefix | null;
  /** The node's local UDP port, 1..65535. */
  readonly udpPort: number;
  /** Up to 8 local interface endpoints (same-LAN candidates). */
  readonly localEndpoints: readonly Endpoint[];
  /** Optional TLVs this version does not know (always present, possibly empty, when decoded). */
  readonly extensions?: readonly AdvertExtension[];
}

/** The keys needed to seal and open adverts (a subset of `NetworkKeys` from `keys.ts`). */
export interface AdvertKeys {
  /** 32-byte XChaCha20-Poly1305 key. */
  readonly advertKey: Uint8Array;
  /** 32-byte node-id HMAC key. */
  readonly nodeIdKey: Uint8Array;
}

/** Why an advert was rejected. A fixed set, safe to count by. */
export type AdvertError =
  | "bad sealed length"
  | "authentication failed"
  | "node id mismatch"
  | "unsupported version"
  | "truncated"
  | "timestamp out of range"
  | "bad name"
  | "bad prefix length"
  | "bad ipv4 flag"
  | "bad udp port"
  | "too many local endpoints"
  | "bad endpoint"
  | "bad extension"
  | "unknown critical extension"
  | "too long";

/** Result of {@linkcode decodeAdvert} and {@linkcode openAdvert}. */
export type AdvertResult =
  | { readonly advert: Advert; readonly error?: undefined }
  | { readonly error: AdvertError; readonly advert?: undefined };

/** The timestamp for a node's next advert: `max(now, last + 1)`, so it always increases. */
export function nextAdvertTimestamp(nowMs: number, lastMs: number): number {
  return Math.max(Math.floor(nowMs), lastMs + 1);
}

/** Checks an advert for encoding; returns a problem or null. */
function problem(advert: Advert): string | null {
  const ts = advert.timestampMs;
  if (!Number.isSafeInteger(ts) || ts < 0) return "timestampMs must be a safe integer ≥ 0";
  if (!(advert.publicKey instanceof Uint8Array) || advert.publicKey.length !== PUBLIC_KEY_LEN) {
    return "publicKey must be 32 bytes";
  }
  if (typeof advert.name !== "string" || !NAME_PATTERN.test(advert.name)) {
    return "name must be 0..63 characters of [A-Za-z0-9._-]";
  }
  if (!prefixOk(advert.ipv6, IPV6_LEN)) return "ipv6 must be 16 bytes with prefix 0..128";
  if (advert.ipv4 !== null && !prefixOk(advert.ipv4, IPV4_LEN)) {
    return "ipv4 must be 4 bytes with prefix 0..32";
  }
  if (!Number.isInteger(advert.udpPort) || advert.udpPort < 1 || advert.udpPort > 65535) {
    return "udpPort must be 1..65535";
  }
  if (advert.localEndpoints.length > ADVERT_LOCAL_ENDPOINTS_MAX) {
    return `at most ${ADVERT_LOCAL_ENDPOINTS_MAX} local endpoints`;
  }
  for (const ep of advert.localEndpoints) {
    if (encodedEndpointLength(ep) === 0) return "local endpoint is not encodable";
  }
  for (const ext of advert.extensions ?? []) {
    if (!Number.isInteger(ext.type) || ext.type < 0 || ext.type > 255) {
      return "extension type must be 0..255";
    }
    if (!(ext.value instanceof Uint8Array) || ext.value.length > 255) {
      return "extension value must be 0..255 bytes";
    }
  }
  return null;
}

function prefixOk(p: IpPrefix, len: number): boolean {
  return p.address instanceof Uint8Array && p.address.length === len &&
    Number.isInteger(p.prefixLen) && p.prefixLen >= 0 && p.prefixLen <= len * 8;
}

/**
 * Encodes an advert's plaintext. Throws `RangeError` when a field is out of range or the result
 * exceeds {@linkcode ADVERT_PLAINTEXT_MAX_LEN} (bugs or start-up mistakes: validate config first).
 */
export function encodeAdvert(advert: Advert): Uint8Array {
  const bad = problem(advert);
  if (bad !== null) throw new RangeError(`advert: ${bad}`);
  const name = new TextEncoder().encode(advert.name);
  let len = 1 + 8 + PUBLIC_KEY_LEN + 1 + name.length + IPV6_LEN + 1 + 1 +
    (advert.ipv4 === null ? 0 : IPV4_LEN + 1) + 2 + 1;
  for (const ep of advert.localEndpoints) len += encodedEndpointLength(ep);
  for (const ext of advert.extensions ?? []) len += 2 + ext.value.length;
  if (len > ADVERT_PLAINTEXT_MAX_LEN) {
    throw new RangeError(`advert: ${len} bytes exceed ${ADVERT_PLAINTEXT_MAX_LEN}`);
  }
  const out = new Uint8Array(len);
  const view = new DataView(out.buffer);
  let at = 0;
  out[at++] = ADVERT_VERSION;
  view.setBigUint64(at, BigInt(advert.timestampMs));
  at += 8;
  out.set(advert.publicKey, at);
  at += PUBLIC_KEY_LEN;
  out[at++] = name.length;
  out.set(name, at);
  at += name.length;
  out.set(advert.ipv6.address, at);
  at += IPV6_LEN;
  out[at++] = advert.ipv6.prefixLen;
  if (advert.ipv4 === null) {
    out[at++] = 0;
  } else {
    out[at++] = 1;
    out.set(advert.ipv4.address, at);
    at += IPV4_LEN;
    out[at++] = advert.ipv4.prefixLen;
  }
  view.setUint16(at, advert.udpPort);
  at += 2;
  out[at++] = advert.localEndpoints.length;
  for (const ep of advert.localEndpoints) at = writeEndpoint(out, at, ep);
  for (const ext of advert.extensions ?? []) {
    out[at++] = ext.type;
    out[at++] = ext.value.length;
    out.set(ext.value, at);
    at += ext.value.length;
  }
  return out;
}

function fail(error: AdvertError): AdvertResult {
  return { error };
}

/**
 * Decodes an advert's plaintext. Total: returns `{ error }` for any byte string that is not
 * exactly one valid advert; never throws. Byte fields are copies (safe to keep).
 */
export function decodeAdvert(bytes: Uint8Array): AdvertResult {
  if (bytes.length > ADVERT_PLAINTEXT_MAX_LEN) return fail("too long");
  const len = bytes.length;
  let at = 0;
  const need = (n: number) => at + n <= len;
  if (!need(1)) return fail("truncated");
  if (bytes[at++] !== ADVERT_VERSION) return fail("unsupported version");
  if (!need(8 + PUBLIC_KEY_LEN + 1)) return fail("truncated");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hi = view.getUint32(at);
  const lo = view.getUint32(at + 4);
  at += 8;
  if (hi > 0x1fffff) return fail("timestamp out of range");
  const timestampMs = hi * 0x1_0000_0000 + lo;
  const publicKey = bytes.slice(at, at + PUBLIC_KEY_LEN);
  at += PUBLIC_KEY_LEN;
  const nameLen = bytes[at++]!;
  if (nameLen > ADVERT_NAME_MAX_LEN) return fail("bad name");
  if (!need(nameLen)) return fail("truncated");
  let name = "";
  for (let i = 0; i < nameLen; i++) name += String.fromCharCode(bytes[at + i]!);
  at += nameLen;
  if (!NAME_PATTERN.test(name)) return fail("bad name");
  if (!need(IPV6_LEN + 2)) return fail("truncated");
  const ipv6 = { address: bytes.slice(at, at + IPV6_LEN), prefixLen: bytes[at + IPV6_LEN]! };
  at += IPV6_LEN + 1;
  if (ipv6.prefixLen > 128) return fail("bad prefix length");
  const ipv4Flag = bytes[at++]!;
  let ipv4: IpPrefix | null = null;
  if (ipv4Flag === 1) {
    if (!need(IPV4_LEN + 1)) return fail("truncated");
    ipv4 = { address: bytes.slice(at, at + IPV4_LEN), prefixLen: bytes[at + IPV4_LEN]! };
    at += IPV4_LEN + 1;
    if (ipv4.prefixLen > 32) return fail("bad prefix length");
  } else if (ipv4Flag !== 0) {
    return fail("bad ipv4 flag");
  }
  if (!need(3)) return fail("truncated");
  const udpPort = view.getUint16(at);
  at += 2;
  if (udpPort === 0) return fail("bad udp port");
  const localCount = bytes[at++]!;
  if (localCount > ADVERT_LOCAL_ENDPOINTS_MAX) return fail("too many local endpoints");
  const localEndpoints: Endpoint[] = [];
  for (let i = 0; i < localCount; i++) {
    if (!need(1)) return fail("truncated");
    const ep = decodeEndpoint(bytes, at);
    if (ep === null) return fail("bad endpoint");
    localEndpoints.push(ep.endpoint);
    at = ep.end;
  }
  const extensions: AdvertExtension[] = [];
  while (at < len) {
    if (!need(2)) return fail("bad extension");
    const type = bytes[at]!;
    const valueLen = bytes[at + 1]!;
    at += 2;
    if (!need(valueLen)) return fail("bad extension");
    if (type >= CRITICAL_EXTENSION) return fail("unknown critical extension");
    extensions.push({ type, value: bytes.slice(at, at + valueLen) });
    at += valueLen;
  }
  return {
    advert: { timestampMs, publicKey, name, ipv6, ipv4, udpPort, localEndpoints, extensions },
  };
}

function aad(networkId: Uint8Array, nodeId: Uint8Array): Uint8Array {
  const out = new Uint8Array(AAD_LABEL_BYTES.length + NETWORK_ID_LEN + NODE_ID_LEN);
  out.set(AAD_LABEL_BYTES, 0);
  out.set(networkId, AAD_LABEL_BYTES.length);
  out.set(nodeId, AAD_LABEL_BYTES.length + NETWORK_ID_LEN);
  return out;
}

function checkKeys(keys: AdvertKeys, networkId: Uint8Array): void {
  if (keys.advertKey?.length !== ADVERT_KEY_LEN) throw new RangeError("advert key needs 32 bytes");
  if (!(keys.nodeIdKey instanceof Uint8Array)) throw new RangeError("node id key missing");
  if (networkId?.length !== NETWORK_ID_LEN) throw new RangeError("network id needs 16 bytes");
}

/**
 * Seals an advert for the network: a fresh random nonce, then XChaCha20-Poly1305 bound to the
 * network id and the node id of `advert.publicKey`. Returns 40 + plaintext bytes (≤ 1024).
 * Throws `RangeError` on bad keys or fields (bugs or start-up mistakes).
 */
export function sealAdvert(keys: AdvertKeys, networkId: Uint8Array, advert: Advert): Uint8Array {
  checkKeys(keys, networkId);
  const plaintext = encodeAdvert(advert);
  const nodeId = nodeIdFromKey(keys.nodeIdKey, advert.publicKey);
  const nonce = crypto.getRandomValues(new Uint8Array(ADVERT_NONCE_LEN));
  const ciphertext = xchacha20poly1305(keys.advertKey, nonce, aad(networkId, nodeId))
    .encrypt(plaintext);
  const out = new Uint8Array(ADVERT_NONCE_LEN + ciphertext.length);
  out.set(nonce, 0);
  out.set(ciphertext, ADVERT_NONCE_LEN);
  return out;
}

/**
 * Opens a sealed advert received for `nodeId` in `networkId`. Total on `sealed`: returns
 * `{ error }` when the length is wrong, authentication fails (wrong key, tampered bytes, other
 * network or node id), the plaintext is malformed, or the public key inside does not hash to
 * `nodeId`. Throws `RangeError` only on bad keys or ids (bugs).
 *
 * Replay is not checked here: keep the newest `timestampMs` per node and ignore older adverts.
 */
export function openAdvert(
  keys: AdvertKeys,
  networkId: Uint8Array,
  nodeId: Uint8Array,
  sealed: Uint8Array,
): AdvertResult {
  checkKeys(keys, networkId);
  if (nodeId?.length !== NODE_ID_LEN) throw new RangeError("node id needs 16 bytes");
  if (
    sealed.length < ADVERT_NONCE_LEN + ADVERT_TAG_LEN || sealed.length > SEALED_ADVERT_MAX_LEN
  ) {
    return fail("bad sealed length");
  }
  let plaintext: Uint8Array;
  try {
    plaintext = xchacha20poly1305(
      keys.advertKey,
      sealed.subarray(0, ADVERT_NONCE_LEN),
      aad(networkId, nodeId),
    ).decrypt(sealed.subarray(ADVERT_NONCE_LEN));
  } catch {
    return fail("authentication failed");
  }
  const result = decodeAdvert(plaintext);
  if (result.advert === undefined) return result;
  const expected = nodeIdFromKey(keys.nodeIdKey, result.advert.publicKey);
  let diff = 0;
  for (let i = 0; i < NODE_ID_LEN; i++) diff |= expected[i]! ^ nodeId[i]!;
  if (diff !== 0) return fail("node id mismatch");
  return result;
}
