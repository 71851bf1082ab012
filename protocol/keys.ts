/**
 * Network-level values derived from the network secret (in PSK mode: the 32-byte network PSK;
 * later, in CA mode, bytes derived from the CA key).
 *
 * Every value comes from HKDF-SHA256 (RFC 5869) with salt `"meshub v1"` and its own info string,
 * so learning one (the hub learns the network id) reveals nothing about the others:
 *
 * | value          | info                  | length | who sees it                         |
 * | -------------- | --------------------- | ------ | ----------------------------------- |
 * | network id     | `meshub network id`   | 16     | the hub (opaque)                    |
 * | advert key     | `meshub advert key`   | 32     | members only (seals advertisements) |
 * | node id key    | `meshub node id key`  | 32     | members only                        |
 * | ULA prefix     | `meshub ula prefix`   | 5      | members only (`fd` + these 40 bits) |
 *
 * A node id is `HMAC-SHA256(node id key, WireGuard public key)[0..16]`: stable per node and
 * network, but the hub cannot link it to the public key (nor across networks).
 *
 * A node's default VPN address is the ULA /48 prefix, subnet `0000`, and the first 8 bytes of
 * `SHA-256(public key)` as interface id.
 *
 * @module
 */

import { hkdf } from "@noble/hashes/hkdf";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha256";

/** HKDF salt of every derivation in this module. */
export const KEY_DERIVATION_SALT = "meshub v1";
/** Length of a network id in bytes. */
export const NETWORK_ID_LEN = 16;
/** Length of a node id in bytes. */
export const NODE_ID_LEN = 16;
/** Length of the advertisement sealing key in bytes (XChaCha20-Poly1305). */
export const ADVERT_KEY_LEN = 32;
/** Length of the node-id HMAC key in bytes. */
export const NODE_ID_KEY_LEN = 32;
/** Length of a WireGuard (X25519) public key in bytes. */
export const PUBLIC_KEY_LEN = 32;
/** Length of the ULA routing prefix in bytes (a /48). */
export const ULA_PREFIX_LEN = 6;
/** Length of a network PSK in bytes. */
export const PSK_LEN = 32;
/** Shortest network secret accepted (128 bits). */
export const NETWORK_SECRET_MIN_LEN = 16;

const INFO_NETWORK_ID = "meshub network id";
const INFO_ADVERT_KEY = "meshub advert key";
const INFO_NODE_ID_KEY = "meshub node id key";
const INFO_ULA_PREFIX = "meshub ula prefix";

/** Everything a member derives once from the network secret. */
export interface NetworkKeys {
  /** 16 bytes; the only derived value the hub sees. */
  readonly networkId: Uint8Array;
  /** 32 bytes; seals member advertisements. */
  readonly advertKey: Uint8Array;
  /** 32 bytes; HMAC key for node ids. */
  readonly nodeIdKey: Uint8Array;
  /** 6 bytes; the default ULA /48 of the network. */
  readonly ulaPrefix: Uint8Array;
}

function derive(secret: Uint8Array, info: string, length: number): Uint8Array {
  if (!(secret instanceof Uint8Array) || secret.length < NETWORK_SECRET_MIN_LEN) {
    throw new RangeError(
      `network secret needs at least ${NETWORK_SECRET_MIN_LEN} bytes, got ${secret?.length}`,
    );
  }
  return hkdf(sha256, secret, KEY_DERIVATION_SALT, info, length);
}

function checkPublicKey(publicKey: Uint8Array): void {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LEN) {
    throw new RangeError(`public key needs ${PUBLIC_KEY_LEN} bytes, got ${publicKey?.length}`);
  }
}

/**
 * The network id (16 bytes) the hub uses to group members. Throws `RangeError` when the secret
 * is shorter than 16 bytes (a bug or a start-up mistake).
 */
export function networkId(secret: Uint8Array): Uint8Array {
  return derive(secret, INFO_NETWORK_ID, NETWORK_ID_LEN);
}

/** The advertisement sealing key (32 bytes). Throws `RangeError` on a short secret. */
export function advertKey(secret: Uint8Array): Uint8Array {
  return derive(secret, INFO_ADVERT_KEY, ADVERT_KEY_LEN);
}

/** The node-id HMAC key (32 bytes). Throws `RangeError` on a short secret. */
export function nodeIdKey(secret: Uint8Array): Uint8Array {
  return derive(secret, INFO_NODE_ID_KEY, NODE_ID_KEY_LEN);
}

/**
 * A node's id in the network (16 bytes) from its WireGuard public key, given the node-id key
 * (see {@linkcode nodeIdKey}). Throws `RangeError` when the public key is not 32 bytes.
 */
export function nodeIdFromKey(idKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkPublicKey(publicKey);
  return hmac(sha256, idKey, publicKey).slice(0, NODE_ID_LEN);
}

/**
 * A node's id in the network (16 bytes): `HMAC-SHA256(nodeIdKey(secret), publicKey)[0..16]`.
 * Throws `RangeError` on a short secret or a public key that is not 32 bytes.
 */
export function nodeId(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return nodeIdFromKey(nodeIdKey(secret), publicKey);
}

/**
 * The network's default ULA prefix (6 bytes, RFC 4193 style /48): `fd` followed by 40 derived
 * bits. Throws `RangeError` on a short secret.
 */
export function ulaPrefix(secret: Uint8Array): Uint8Array {
  const out = new Uint8Array(ULA_PREFIX_LEN);
  out[0] = 0xfd;
  out.set(derive(secret, INFO_ULA_PREFIX, ULA_PREFIX_LEN - 1), 1);
  return out;
}

/**
 * A node's default VPN address (16 bytes): the 6-byte prefix, subnet id `0000`, and the first 8
 * bytes of `SHA-256(publicKey)` as interface id. Throws `RangeError` on wrong input lengths.
 */
export function nodeAddress(prefix6: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (!(prefix6 instanceof Uint8Array) || prefix6.length !== ULA_PREFIX_LEN) {
    throw new RangeError(`prefix needs ${ULA_PREFIX_LEN} bytes, got ${prefix6?.length}`);
  }
  checkPublicKey(publicKey);
  const out = new Uint8Array(16);
  out.set(prefix6, 0);
  out.set(sha256(publicKey).subarray(0, 8), 8);
  return out;
}

/** Derives all of {@linkcode NetworkKeys} at once. Throws `RangeError` on a short secret. */
export function deriveNetworkKeys(secret: Uint8Array): NetworkKeys {
  return {
    networkId: networkId(secret),
    advertKey: advertKey(secret),
    nodeIdKey: nodeIdKey(secret),
    ulaPrefix: ulaPrefix(secret),
  };
}
