/**
 * One transport session (a "keypair" in wireguard-go): directional keys from a completed
 * handshake, the send counter and the replay window of received counters (whitepaper 5.4.6).
 *
 * The data path uses the runtime's native ChaCha20-Poly1305 (`node:crypto`) and reuses one nonce
 * buffer per direction. Plaintext is padded with zeros to a multiple of 16 bytes as WireGuard
 * does; a keepalive is the empty plaintext.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { ReplayFilter } from "./replay.ts";
import { TAG_LEN } from "./noise.ts";
import { MESSAGE_TRANSPORT, TRANSPORT_HEADER_LEN, writeTransportHeader } from "./messages.ts";
import type { TransportKeys } from "./handshake.ts";

/** Plaintext padding unit, in bytes. */
export const PADDING_MULTIPLE = 16;

const AEAD_OPTS = { authTagLength: TAG_LEN } as const;
const EMPTY = new Uint8Array(0);

/** A transport session between us and one peer. */
export class Session {
  /** Our index: the `receiver` field of transport messages the peer sends us. */
  readonly localIndex: number;
  /** The peer's index: the `receiver` field we write. */
  readonly remoteIndex: number;
  /** True when we sent the initiation of the handshake that created this session. */
  readonly isInitiator: boolean;
  /** When the handshake completed (caller's clock, ms). */
  readonly createdMs: number;
  /** Next counter to send; also the number of messages sent. */
  sendCounter = 0;
  /** Replay window of received counters. */
  readonly replay: ReplayFilter = new ReplayFilter();
  #sendKey: Uint8Array;
  #receiveKey: Uint8Array;
  readonly #sendNonce = new Uint8Array(12);
  readonly #receiveNonce = new Uint8Array(12);
  #pad = new Uint8Array(2048);

  /** Creates a session from freshly derived keys. */
  constructor(
    keys: TransportKeys,
    localIndex: number,
    remoteIndex: number,
    isInitiator: boolean,
    createdMs: number,
  ) {
    this.#sendKey = keys.sendKey;
    this.#receiveKey = keys.receiveKey;
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.isInitiator = isInitiator;
    this.createdMs = createdMs;
  }

  /**
   * Encrypts `plaintext` (empty for a keepalive) into a complete type-4 datagram with the next
   * counter. The caller checks limits (`sendCounter`, age) first.
   */
  seal(plaintext: Uint8Array): Uint8Array {
    const counter = this.sendCounter++;
    const len = plaintext.length;
    const padded = (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
    let input = plaintext;
    if (padded !== len) {
      if (this.#pad.length < padded) this.#pad = new Uint8Array(padded * 2);
      this.#pad.set(plaintext);
      this.#pad.fill(0, len, padded);
      input = this.#pad.subarray(0, padded);
    }
    const out = new Uint8Array(TRANSPORT_HEADER_LEN + padded + TAG_LEN);
    writeTransportHeader(out, this.remoteIndex, counter);
    // Nonce = 4 zero bytes then the counter as u64 LE, which the header holds at bytes 8..16.
    this.#sendNonce.set(out.subarray(8, 16), 4);
    const cipher = createCipheriv("chacha20-poly1305", this.#sendKey, this.#sendNonce, AEAD_OPTS);
    if (padded > 0) out.set(cipher.update(input), TRANSPORT_HEADER_LEN);
    cipher.final();
    out.set(cipher.getAuthTag(), TRANSPORT_HEADER_LEN + padded);
    return out;
  }

  /**
   * Authenticates and decrypts a type-4 datagram addressed to this session. Returns the padded
   * plaintext, or null when authentication fails. Does not touch the replay window: the caller
   * validates the counter afterwards, so forged packets cannot move it.
   */
  open(datagram: Uint8Array): Uint8Array | null {
    if (datagram.length < TRANSPORT_HEADER_LEN + TAG_LEN || datagram[0] !== MESSAGE_TRANSPORT) {
      return null;
    }
    this.#receiveNonce.set(datagram.subarray(8, 16), 4);
    const tagAt = datagram.length - TAG_LEN;
    try {
      const d = createDecipheriv(
        "chacha20-poly1305",
        this.#receiveKey,
        this.#receiveNonce,
        AEAD_OPTS,
      );
      d.setAuthTag(datagram.subarray(tagAt));
      const buf = tagAt > TRANSPORT_HEADER_LEN
        ? d.update(datagram.subarray(TRANSPORT_HEADER_LEN, tagAt))
        : EMPTY;
      d.final(); // throws when the tag does not verify; the plaintext is discarded then
      // Hand out a plain Uint8Array, not a node Buffer: Buffer#slice() makes views, not copies,
      // which silently breaks callers that copy with slice().
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch {
      return null;
    }
  }

  /** Overwrites the keys; the session is useless afterwards. */
  zero(): void {
    this.#sendKey.fill(0);
    this.#receiveKey.fill(0);
    this.#pad.fill(0);
  }
}
