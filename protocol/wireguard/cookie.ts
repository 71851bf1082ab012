/**
 * mac1/mac2 and cookie replies (whitepaper 5.4.4, 5.4.7), the DoS-mitigation layer around the
 * handshake. Both handshake messages end in `mac1 || mac2`:
 *
 * - mac1 = MAC(HASH(LABEL_MAC1 || receiver static public), msg[..mac1]) proves the sender knows
 *   whom it talks to, so a responder can drop junk before any Curve25519 work.
 * - mac2 = MAC(cookie, msg[..mac2]) where cookie = MAC(secret, source address) is only demanded
 *   under load; without it the responder answers with a cookie reply, encrypted with XAEAD under
 *   HASH(LABEL_COOKIE || responder static public) and bound to the mac1 it answers.
 *
 * {@linkcode CookieChecker} is the receiving side (one per device), {@linkcode CookieGenerator}
 * the sending side (one per peer).
 *
 * @module
 */
import {
  defaultRandomBytes,
  equalBytes,
  hash,
  LABEL_COOKIE,
  LABEL_MAC1,
  mac,
  MAC_LEN,
  xaeadOpen,
  xaeadSeal,
  XNONCE_LEN,
} from "./noise.ts";
import { type CookieReplyMessage, encodeCookieReply } from "./messages.ts";

/** Lifetime of the responder's cookie secret and of a cookie held by an initiator, in ms. */
export const COOKIE_REFRESH_MS = 120_000;

/** Receiving side: verifies mac1/mac2 of handshake messages and builds cookie replies. */
export class CookieChecker {
  readonly #mac1Key: Uint8Array;
  readonly #cookieKey: Uint8Array;
  readonly #randomBytes: (n: number) => Uint8Array;
  #secret = new Uint8Array(32);
  #secretSetMs = Number.NEGATIVE_INFINITY;

  /** `ownPublicKey` is the static public key of the device receiving handshakes. */
  constructor(
    ownPublicKey: Uint8Array,
    randomBytes: (n: number) => Uint8Array = defaultRandomBytes,
  ) {
    this.#mac1Key = hash(LABEL_MAC1, ownPublicKey);
    this.#cookieKey = hash(LABEL_COOKIE, ownPublicKey);
    this.#randomBytes = randomBytes;
  }

  /** True when the mac1 of handshake message `msg` (initiation or response) is valid. */
  checkMac1(msg: Uint8Array): boolean {
    const off = msg.length - 2 * MAC_LEN;
    if (off < 0) return false;
    return equalBytes(mac(this.#mac1Key, msg.subarray(0, off)), msg.subarray(off, off + MAC_LEN));
  }

  /** True when mac2 of `msg` is valid for a cookie of `source` under the current secret. */
  checkMac2(msg: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    const off = msg.length - MAC_LEN;
    if (off < MAC_LEN) return false;
    // An expired secret means any cookie the sender holds is stale too.
    if (nowMs - this.#secretSetMs > COOKIE_REFRESH_MS) return false;
    const cookie = mac(this.#secret, source);
    return equalBytes(mac(cookie, msg.subarray(0, off)), msg.subarray(off));
  }

  /**
   * Builds a cookie reply to handshake message `msg` from `source`, addressed to the message's
   * sender index `receiver`. Rotates the secret when it is older than {@linkcode COOKIE_REFRESH_MS}.
   */
  createReply(msg: Uint8Array, receiver: number, source: Uint8Array, nowMs: number): Uint8Array {
    if (nowMs - this.#secretSetMs > COOKIE_REFRESH_MS) {
      this.#secret = this.#randomBytes(32).slice(0, 32);
      this.#secretSetMs = nowMs;
    }
    const cookie = mac(this.#secret, source);
    const nonce = this.#randomBytes(XNONCE_LEN).slice(0, XNONCE_LEN);
    const off = msg.length - 2 * MAC_LEN;
    const mac1 = msg.subarray(off, off + MAC_LEN);
    return encodeCookieReply(receiver, nonce, xaeadSeal(this.#cookieKey, nonce, cookie, mac1));
  }
}

/** Sending side, one per peer: fills mac1/mac2 and stores cookies from cookie replies. */
export class CookieGenerator {
  readonly #mac1Key: Uint8Array;
  readonly #cookieKey: Uint8Array;
  #cookie: Uint8Array | null = null;
  #cookieSetMs = Number.NEGATIVE_INFINITY;
  #lastMac1: Uint8Array | null = null;

  /** `peerPublicKey` is the static public key of the peer the messages go to. */
  constructor(peerPublicKey: Uint8Array) {
    this.#mac1Key = hash(LABEL_MAC1, peerPublicKey);
    this.#cookieKey = hash(LABEL_COOKIE, peerPublicKey);
  }

  /** True when a cookie younger than {@linkcode COOKIE_REFRESH_MS} is held. */
  hasFreshCookie(nowMs: number): boolean {
    return this.#cookie !== null && nowMs - this.#cookieSetMs <= COOKIE_REFRESH_MS;
  }

  /** Writes mac1, and mac2 when a fresh cookie is held (zeros otherwise), into `msg` in place. */
  addMacs(msg: Uint8Array, nowMs: number): void {
    const off1 = msg.length - 2 * MAC_LEN;
    const off2 = msg.length - MAC_LEN;
    const mac1 = mac(this.#mac1Key, msg.subarray(0, off1));
    msg.set(mac1, off1);
    this.#lastMac1 = mac1;
    if (this.#cookie !== null && this.hasFreshCookie(nowMs)) {
      msg.set(mac(this.#cookie, msg.subarray(0, off2)), off2);
    } else {
      msg.fill(0, off2);
    }
  }

  /** Decrypts and stores the cookie of `reply`; false if it does not answer our last mac1. */
  consumeReply(reply: CookieReplyMessage, nowMs: number): boolean {
    if (this.#lastMac1 === null) return false;
    const cookie = xaeadOpen(this.#cookieKey, reply.nonce, reply.encryptedCookie, this.#lastMac1);
    if (cookie === null) return false;
    this.#cookie = cookie;
    this.#cookieSetMs = nowMs;
    return true;
  }
}
