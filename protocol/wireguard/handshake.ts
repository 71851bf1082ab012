/**
 * The Noise IKpsk2 handshake of WireGuard (whitepaper 5.4.2-5.4.5) as pure functions: no state
 * beyond what is passed in, no clock, no randomness (ephemeral keys and indices come from the
 * caller). `peer.ts` and `device.ts` own the state machine around them.
 *
 * Message MACs are not handled here (see `cookie.ts`): builders return messages with zero
 * mac1/mac2.
 *
 * @module
 */
import {
  aeadOpen,
  aeadSeal,
  dh,
  hash,
  INITIAL_CHAIN_KEY,
  INITIAL_HASH,
  kdf1,
  kdf2,
  kdf3,
  publicKeyOf,
} from "./noise.ts";
import {
  encodeInitiation,
  encodeResponse,
  type InitiationMessage,
  type ResponseMessage,
} from "./messages.ts";
import { TAI64N_LEN } from "./tai64n.ts";

const EMPTY = new Uint8Array(0);

/** A static X25519 key pair. */
export interface StaticKeys {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** What the initiator keeps between sending an initiation and receiving the response. */
export interface InitiatorState {
  readonly localIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/** Directional transport keys of one session. */
export interface TransportKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
}

/** HASH(HASH(HASH(CONSTRUCTION) || IDENTIFIER) || responder public): precomputable per peer. */
export function initialHash(responderPublic: Uint8Array): Uint8Array {
  return hash(INITIAL_HASH, responderPublic);
}

/** Inputs of {@linkcode createInitiation}. */
export interface CreateInitiationArgs {
  readonly local: StaticKeys;
  readonly remotePublic: Uint8Array;
  /** DH(local static private, remote static public), precomputed per peer. */
  readonly staticStatic: Uint8Array;
  readonly localIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  /** 12-byte TAI64N timestamp. */
  readonly timestamp: Uint8Array;
}

/**
 * Builds an initiation (zero MACs) and the state needed to consume the response; null if the
 * remote key is a low-order point.
 */
export function createInitiation(
  a: CreateInitiationArgs,
): { message: Uint8Array; state: InitiatorState } | null {
  if (a.timestamp.length !== TAI64N_LEN) throw new RangeError("timestamp must be 12 bytes");
  let c = INITIAL_CHAIN_KEY;
  let h = initialHash(a.remotePublic);
  const ephemeral = publicKeyOf(a.ephemeralPrivate);
  c = kdf1(c, ephemeral);
  h = hash(h, ephemeral);
  const es = dh(a.ephemeralPrivate, a.remotePublic);
  if (es === null) return null;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const encryptedStatic = aeadSeal(k, 0, a.local.publicKey, h);
  h = hash(h, encryptedStatic);
  [c, k] = kdf2(c, a.staticStatic);
  const encryptedTimestamp = aeadSeal(k, 0, a.timestamp, h);
  h = hash(h, encryptedTimestamp);
  k.fill(0);
  const message = encodeInitiation({
    sender: a.localIndex,
    ephemeral,
    encryptedStatic,
    encryptedTimestamp,
  });
  return {
    message,
    state: { localIndex: a.localIndex, ephemeralPrivate: a.ephemeralPrivate, chainKey: c, hash: h },
  };
}

/** A decrypted initiation: who sent it, when, and the handshake state to answer it. */
export interface ConsumedInitiation {
  readonly remoteStatic: Uint8Array;
  readonly remoteIndex: number;
  readonly remoteEphemeral: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/** Why an initiation could not be consumed. */
export type ConsumeInitiationFailure = "handshake_decrypt_failed" | "unknown_peer";

/**
 * Decrypts an initiation addressed to `local`. `staticStaticOf` maps the revealed initiator
 * static key to the precomputed DH(local private, initiator public), or null for an unknown peer.
 * Freshness (timestamp) and flood checks are the caller's.
 */
export function consumeInitiation(
  msg: InitiationMessage,
  local: StaticKeys,
  staticStaticOf: (remoteStatic: Uint8Array) => Uint8Array | null,
): ConsumedInitiation | ConsumeInitiationFailure {
  let c = INITIAL_CHAIN_KEY;
  let h = initialHash(local.publicKey);
  c = kdf1(c, msg.ephemeral);
  h = hash(h, msg.ephemeral);
  const es = dh(local.privateKey, msg.ephemeral);
  if (es === null) return "handshake_decrypt_failed";
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const remoteStatic = aeadOpen(k, 0, msg.encryptedStatic, h);
  if (remoteStatic === null) return "handshake_decrypt_failed";
  h = hash(h, msg.encryptedStatic);
  const ss = staticStaticOf(remoteStatic);
  if (ss === null) return "unknown_peer";
  [c, k] = kdf2(c, ss);
  const timestamp = aeadOpen(k, 0, msg.encryptedTimestamp, h);
  k.fill(0);
  if (timestamp === null) return "handshake_decrypt_failed";
  h = hash(h, msg.encryptedTimestamp);
  return {
    remoteStatic,
    remoteIndex: msg.sender,
    remoteEphemeral: msg.ephemeral.slice(),
    timestamp,
    chainKey: c,
    hash: h,
  };
}

/** Inputs of {@linkcode createResponse}. */
export interface CreateResponseArgs {
  readonly initiation: ConsumedInitiation;
  readonly localIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  readonly presharedKey: Uint8Array;
}

/** Builds a response (zero MACs) and the responder's transport keys; null on a low-order key. */
export function createResponse(
  a: CreateResponseArgs,
): { message: Uint8Array; keys: TransportKeys } | null {
  let c = a.initiation.chainKey;
  let h = a.initiation.hash;
  const ephemeral = publicKeyOf(a.ephemeralPrivate);
  c = kdf1(c, ephemeral);
  h = hash(h, ephemeral);
  const ee = dh(a.ephemeralPrivate, a.initiation.remoteEphemeral);
  const se = dh(a.ephemeralPrivate, a.initiation.remoteStatic);
  if (ee === null || se === null) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, a.presharedKey);
  h = hash(h, tau);
  const encryptedNothing = aeadSeal(k, 0, EMPTY, h);
  k.fill(0);
  const [initiatorSend, responderSend] = kdf2(c2, EMPTY);
  const message = encodeResponse({
    sender: a.localIndex,
    receiver: a.initiation.remoteIndex,
    ephemeral,
    encryptedNothing,
  });
  return { message, keys: { sendKey: responderSend, receiveKey: initiatorSend } };
}

/** Verifies a response against our initiation state; returns the initiator's keys or null. */
export function consumeResponse(
  msg: ResponseMessage,
  state: InitiatorState,
  local: StaticKeys,
  presharedKey: Uint8Array,
): TransportKeys | null {
  let c = state.chainKey;
  let h = state.hash;
  c = kdf1(c, msg.ephemeral);
  h = hash(h, msg.ephemeral);
  const ee = dh(state.ephemeralPrivate, msg.ephemeral);
  const se = dh(local.privateKey, msg.ephemeral);
  if (ee === null || se === null) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, presharedKey);
  h = hash(h, tau);
  const ok = aeadOpen(k, 0, msg.encryptedNothing, h);
  k.fill(0);
  if (ok === null) return null;
  const [initiatorSend, responderSend] = kdf2(c2, EMPTY);
  return { sendKey: initiatorSend, receiveKey: responderSend };
}
