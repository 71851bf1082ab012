/**
 * One transport session (a "keypair" in wireguard-go): directional keys from a completed
 * handshake, the send counter and the replay window of received counters (whitepaper 5.4.6).
 *
 * The AEAD comes from an {@linkcode AeadProvider} (portable `node:crypto` by default, OpenSSL
 * through FFI on the client's data path); one nonce buffer per direction is reused. Plaintext is
 * padded with zeros to a multiple of 16 bytes, but never beyond the MTU, as Linux WireGuard does
 * (WireGuard's usual MTU, 1420, leaves exactly room for the outer IPv6, UDP and WireGuard headers
 * in 1500 bytes: padding a full-size packet to 1424 would make it an IPv6 fragment pair); a
 * keepalive is the empty plaintext.
 *
 * @module
 */
import { AEAD_NONCE_LEN, type AeadKey, type AeadProvider, NODE_CRYPTO_AEAD } from "./aead.ts";
import { ReplayFilter } from "./replay.ts";
import { TAG_LEN } from "./noise.ts";
import { MESSAGE_TRANSPORT, TRANSPORT_HEADER_LEN, writeTransportHeader } from "./messages.ts";
import type { TransportKeys } from "./handshake.ts";

/** Plaintext padding unit, in bytes. */
export const PADDING_MULTIPLE = 16;

/**
 * The padded length of a `plaintextLen`-byte plaintext: the next multiple of 16, unless that
 * would exceed `mtu` (then `mtu`, or the plaintext itself if it is longer still).
 */
export function paddedLength(plaintextLen: number, mtu = Infinity): number {
  const aligned = (plaintextLen + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  return aligned <= mtu ? aligned : Math.max(plaintextLen, mtu);
}

/**
 * Length of the transport datagram that carries `plaintextLen` bytes (header, padding, tag),
 * padded under `mtu` as {@linkcode paddedLength}.
 */
export function sealedLength(plaintextLen: number, mtu = Infinity): number {
  return TRANSPORT_HEADER_LEN + paddedLength(plaintextLen, mtu) + TAG_LEN;
}

/** How a {@linkcode Session} seals. */
export interface SessionOptions {
  /** Transport AEAD (default {@linkcode NODE_CRYPTO_AEAD}, portable). */
  aead?: AeadProvider;
  /** Padding never takes a plaintext past this many bytes (the TUN MTU); default: no bound. */
  mtu?: number;
}

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
  readonly #sendKey: AeadKey;
  readonly #receiveKey: AeadKey;
  readonly #sendNonce = new Uint8Array(AEAD_NONCE_LEN);
  readonly #receiveNonce = new Uint8Array(AEAD_NONCE_LEN);
  readonly #mtu: number;
  #pad = new Uint8Array(2048);
  /** The bytes behind a packet padded in place (fewer than 16), put back after sealing. */
  readonly #aside = new Uint8Array(16);
  #plain = new Uint8Array(2048);

  /** Creates a session from freshly derived keys (which it zeroes once the AEAD has them). */
  constructor(
    keys: TransportKeys,
    localIndex: number,
    remoteIndex: number,
    isInitiator: boolean,
    createdMs: number,
    options: SessionOptions = {},
  ) {
    const aead = options.aead ?? NODE_CRYPTO_AEAD;
    this.#sendKey = aead.key(keys.sendKey);
    this.#receiveKey = aead.key(keys.receiveKey);
    this.#mtu = options.mtu ?? Infinity;
    keys.sendKey.fill(0);
    keys.receiveKey.fill(0);
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
    const out = new Uint8Array(sealedLength(plaintext.length, this.#mtu));
    this.sealInto(plaintext, out);
    return out;
  }

  /**
   * {@linkcode Session.seal} into the caller's buffer (e.g. the UDP socket's send batch), which
   * must hold {@linkcode sealedLength}`(plaintext.length, mtu)` bytes (the session's MTU).
   * Returns the datagram's length.
   * Allocation-free apart from two views: a fresh buffer per packet costs more than the cipher.
   *
   * The padding is added in place when `plaintext`'s buffer has room behind it: the up to 15
   * bytes there are zeroed during the call and restored before it returns, so callers see no
   * change (nothing else runs meanwhile).
   */
  sealInto(plaintext: Uint8Array, out: Uint8Array): number {
    const counter = this.sendCounter++;
    const len = plaintext.length;
    const total = sealedLength(len, this.#mtu);
    const padded = total - TRANSPORT_HEADER_LEN - TAG_LEN;
    if (out.length < total) {
      throw new RangeError(`datagram needs ${total} bytes, got ${out.length}`);
    }
    writeTransportHeader(out, this.remoteIndex, counter);
    // Nonce = 4 zero bytes then the counter as u64 LE, which the header holds at bytes 8..16.
    const nonce = this.#sendNonce;
    for (let i = 0; i < 8; i++) nonce[4 + i] = out[8 + i]!;
    const sealed = out.subarray(TRANSPORT_HEADER_LEN, total);
    if (padded === len) {
      this.#sendKey.seal(nonce, plaintext, sealed);
      return total;
    }
    const buffer = plaintext.buffer;
    const at = plaintext.byteOffset;
    if (buffer === out.buffer || at + padded > buffer.byteLength) {
      // No room behind the packet (or it shares the output's buffer): pad a copy.
      if (this.#pad.length < padded) this.#pad = new Uint8Array(padded * 2);
      this.#pad.set(plaintext);
      this.#pad.fill(0, len, padded);
      this.#sendKey.seal(nonce, this.#pad.subarray(0, padded), sealed);
      return total;
    }
    // Padding in place: the up to 15 bytes behind the packet are set aside, zeroed for the
    // cipher and put back, instead of copying the whole packet (a TSO segment lies in the
    // middle of its frame, so there is room behind it).
    const whole = new Uint8Array(buffer, at, padded);
    const aside = this.#aside;
    for (let i = len; i < padded; i++) {
      aside[i - len] = whole[i]!;
      whole[i] = 0;
    }
    try {
      this.#sendKey.seal(nonce, whole, sealed);
    } finally {
      for (let i = len; i < padded; i++) whole[i] = aside[i - len]!;
    }
    return total;
  }

  /**
   * Authenticates and decrypts a type-4 datagram addressed to this session. Returns the padded
   * plaintext (a view of a buffer reused by the next open() of this session), or null when
   * authentication fails. Does not touch the replay window: the caller validates the counter
   * afterwards, so forged packets cannot move it.
   */
  open(datagram: Uint8Array): Uint8Array | null {
    const n = this.openInto(datagram);
    return n < 0 ? null : this.#plain.subarray(0, n);
  }

  /**
   * {@linkcode Session.open} without a view: decrypts into {@linkcode Session.plaintext} and
   * returns the padded plaintext's length, or -1 when authentication fails. For the data path,
   * where a view per packet is an allocation per packet.
   */
  openInto(datagram: Uint8Array): number {
    if (datagram.length < TRANSPORT_HEADER_LEN + TAG_LEN || datagram[0] !== MESSAGE_TRANSPORT) {
      return -1;
    }
    const nonce = this.#receiveNonce;
    for (let i = 0; i < 8; i++) nonce[4 + i] = datagram[8 + i]!;
    const n = datagram.length - TRANSPORT_HEADER_LEN - TAG_LEN;
    if (this.#plain.length < n) this.#plain = new Uint8Array(n * 2);
    return this.#receiveKey.open(nonce, datagram.subarray(TRANSPORT_HEADER_LEN), this.#plain)
      ? n
      : -1;
  }

  /**
   * The buffer {@linkcode Session.openInto} decrypts into (its first bytes are the plaintext),
   * reused by the next open; it may be longer than any plaintext.
   */
  get plaintext(): Uint8Array {
    return this.#plain;
  }

  /** Overwrites the keys; the session is useless afterwards. */
  zero(): void {
    this.#sendKey.dispose();
    this.#receiveKey.dispose();
    this.#pad.fill(0);
    this.#aside.fill(0);
    this.#plain.fill(0);
  }
}
