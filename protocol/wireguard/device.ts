/**
 * The dispatcher: one static identity, its peers, and the table from our receiver indices to
 * handshakes in flight and sessions. `receive()` takes one datagram and says what to do:
 *
 * ```
 * datagram ─► type 1 initiation ─► mac1 ─► [under load: mac2 or cookie reply] ─► decrypt,
 *             │                     find peer by static key, TAI64N + flood check ─► "reply"
 *             ├► type 2 response ───► mac1 ─► [under load: mac2] ─► index ─► "established"
 *             ├► type 3 cookie reply ─► index ─► peer stores cookie ─► "none"
 *             └► type 4 transport ──► index ─► session: age, AEAD, replay ─► "data"/"keepalive"
 * ```
 *
 * Every failure is a counted {@linkcode WgDropReason}; `receive()` does not throw on any input.
 *
 * @module
 */
import { type AeadProvider, NODE_CRYPTO_AEAD } from "./aead.ts";
import { CookieChecker } from "./cookie.ts";
import { consumeInitiation, type StaticKeys } from "./handshake.ts";
import {
  decodeMessage,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  messageType,
  readU32,
  TRANSPORT_MIN_LEN,
} from "./messages.ts";
import { defaultRandomBytes, KEY_LEN, publicKeyOf } from "./noise.ts";
import { type PeerHost, WG_DROP_REASONS, type WgDropReason, WgPeer } from "./peer.ts";
import type { Session } from "./session.ts";
import { type ResolvedTimers, resolveTimers, type WgTimers } from "./timers.ts";

/** Handshake messages per second above which a device demands mac2 (cookies). */
export const DEFAULT_LOAD_THRESHOLD_PER_S = 1000;
/** How long the device stays "under load" after the threshold was crossed, in ms. */
export const UNDER_LOAD_AFTER_MS = 1000;

/** What to do with a received datagram. */
export type WgReceiveResult =
  | { kind: "drop"; reason: WgDropReason }
  /**
   * Send `packet` back to the datagram's source. A handshake response has `peer` set and
   * `authenticated` true (the caller may move the peer's endpoint there); a cookie reply has
   * `peer` null and `authenticated` false.
   */
  | { kind: "reply"; peer: WgPeer | null; packet: Uint8Array; authenticated: boolean }
  /**
   * We were initiator and a valid response arrived: the session is ready; send `packets` (queued
   * data, or a keepalive confirming the session) to the peer.
   */
  | { kind: "established"; peer: WgPeer; packets: Uint8Array[] }
  /**
   * A decrypted inner IP packet (padding stripped), a view of a buffer that the session reuses:
   * valid until the next receive() (write it to the TUN, or copy it). This result object, like a
   * "keepalive" one, is itself reused by the next receive(). `outgoing` holds datagrams to send
   * to the peer now: packets queued while the session waited for confirmation (usually empty).
   */
  | { kind: "data"; peer: WgPeer; packet: Uint8Array; outgoing: readonly Uint8Array[] }
  /** An authenticated empty transport message; `outgoing` as for "data". */
  | { kind: "keepalive"; peer: WgPeer; outgoing: readonly Uint8Array[] }
  /** Consumed with nothing to do (a cookie reply was stored). */
  | { kind: "none" };

/** Options of {@linkcode WgDevice}. */
export interface WgDeviceOptions {
  /** Our static X25519 private key (32 bytes). */
  privateKey: Uint8Array;
  /** Overrides of {@linkcode DEFAULT_WG_TIMERS}. */
  timers?: Partial<WgTimers>;
  /** Randomness for ephemeral keys, indices, cookie secrets, jitter; inject for tests. */
  randomBytes?: (n: number) => Uint8Array;
  /** Wall clock in Unix ms for TAI64N timestamps (default `Date.now`). */
  wallClockMs?: () => number;
  /** Handshake messages per second that put the device under load (default 1000). */
  loadThresholdPerSecond?: number;
  /** Demand mac2 on every handshake message, as if always under load. */
  alwaysUnderLoad?: boolean;
  /** Transport AEAD implementation (default: {@linkcode NODE_CRYPTO_AEAD}, portable). */
  aead?: AeadProvider;
  /**
   * The TUN MTU: padding never takes a plaintext past it, so a full-size packet stays one
   * underlay datagram (default: no bound).
   */
  mtu?: number;
}

interface IndexEntry {
  readonly peer: WgPeer;
  /** null while the index names an initiation in flight. */
  session: Session | null;
}

/** A WireGuard endpoint without I/O: feed it datagrams, it returns datagrams. */
export class WgDevice {
  /** Our static public key. */
  readonly publicKey: Uint8Array;
  /** Drop counters by reason. */
  readonly drops: Record<WgDropReason, number>;
  /** Demand mac2 on every handshake message (tests, or an operator under attack). */
  alwaysUnderLoad: boolean;

  readonly #keys: StaticKeys;
  readonly #timers: ResolvedTimers;
  readonly #randomBytes: (n: number) => Uint8Array;
  readonly #wallClockMs: () => number;
  readonly #checker: CookieChecker;
  readonly #peers = new Map<string, WgPeer>();
  readonly #index = new Map<number, IndexEntry>();
  readonly #host: PeerHost;
  readonly #loadThreshold: number;
  #loadWindowStartMs = Number.NEGATIVE_INFINITY;
  #loadWindowCount = 0;
  #underLoadUntilMs = Number.NEGATIVE_INFINITY;

  /** Creates a device with static key `opts.privateKey`. */
  constructor(opts: WgDeviceOptions) {
    if (opts.privateKey.length !== KEY_LEN) throw new RangeError("private key must be 32 bytes");
    const privateKey = opts.privateKey.slice();
    this.publicKey = publicKeyOf(privateKey);
    this.#keys = { privateKey, publicKey: this.publicKey };
    this.#timers = resolveTimers(opts.timers);
    const rb = opts.randomBytes ?? defaultRandomBytes;
    this.#randomBytes = rb;
    this.#wallClockMs = opts.wallClockMs ?? Date.now;
    this.#checker = new CookieChecker(this.publicKey, rb);
    this.#loadThreshold = opts.loadThresholdPerSecond ?? DEFAULT_LOAD_THRESHOLD_PER_S;
    this.alwaysUnderLoad = opts.alwaysUnderLoad ?? false;
    this.drops = Object.fromEntries(WG_DROP_REASONS.map((r) => [r, 0])) as Record<
      WgDropReason,
      number
    >;
    const index = this.#index;
    const keys = this.#keys;
    const timers = this.#timers;
    const wall = this.#wallClockMs;
    this.#host = {
      staticKeys: keys,
      timers,
      aead: opts.aead ?? NODE_CRYPTO_AEAD,
      mtu: opts.mtu ?? Infinity,
      randomBytes: rb,
      wallClockMs: () => wall(),
      allocateIndex(peer: WgPeer): number {
        for (let i = 0; i < 1000; i++) {
          // Below 2^30, so an index is always a small integer (Smi) in V8: looking up the
          // receiver of a transport message then allocates nothing.
          const idx = readU32(rb(4), 0) & 0x3fffffff;
          if (!index.has(idx)) {
            index.set(idx, { peer, session: null });
            return idx;
          }
        }
        throw new Error("randomBytes keeps returning used indices");
      },
      bindIndex(idx: number, peer: WgPeer, session: Session): void {
        index.set(idx, { peer, session });
      },
      freeIndex(idx: number): void {
        index.delete(idx);
      },
    };
  }

  /** The timers in effect. */
  get timers(): Readonly<WgTimers> {
    return this.#timers;
  }

  /** Adds a peer (or returns the existing one with that key). PSK defaults to all zeros. */
  addPeer(publicKey: Uint8Array, presharedKey?: Uint8Array): WgPeer {
    const key = keyId(publicKey);
    const existing = this.#peers.get(key);
    if (existing !== undefined) return existing;
    const peer = new WgPeer(this.#host, publicKey, presharedKey ?? new Uint8Array(KEY_LEN));
    this.#peers.set(key, peer);
    return peer;
  }

  /** Removes a peer and forgets its sessions. */
  removePeer(peer: WgPeer): void {
    const key = keyId(peer.publicKey);
    if (this.#peers.get(key) !== peer) return;
    this.#peers.delete(key);
    peer.remove();
    for (const [idx, e] of this.#index) if (e.peer === peer) this.#index.delete(idx);
  }

  /** The peer with static key `publicKey`, if any. */
  peer(publicKey: Uint8Array): WgPeer | undefined {
    return publicKey.length === KEY_LEN ? this.#peers.get(keyId(publicKey)) : undefined;
  }

  /** All peers. */
  get peers(): Iterable<WgPeer> {
    return this.#peers.values();
  }

  /** True when handshake messages must carry a valid mac2. */
  isUnderLoad(nowMs: number): boolean {
    return this.alwaysUnderLoad || nowMs < this.#underLoadUntilMs;
  }

  /**
   * Handles one datagram from the network. `source` identifies the sender's address and port
   * (any stable encoding; cookies are bound to it). Never throws.
   */
  receive(datagram: Uint8Array, source: Uint8Array, nowMs: number): WgReceiveResult {
    const type = messageType(datagram);
    if (type === MESSAGE_TRANSPORT) {
      // Hot path: no decode object.
      if (datagram.length < TRANSPORT_MIN_LEN) return this.#drop("bad_length");
      const e = this.#index.get(readU32(datagram, 4));
      if (e === undefined || e.session === null) return this.#drop("unknown_index");
      const r = e.peer.handleTransport(e.session, datagram, nowMs);
      // "data" and "keepalive" results are the peer's reused objects: no object per packet.
      return r.kind === "drop" ? this.#drop(r.reason) : r;
    }

    const decoded = decodeMessage(datagram);
    if (!decoded.ok) return this.#drop(decoded.reason);
    const msg = decoded.message;
    switch (msg.type) {
      case MESSAGE_INITIATION:
      case MESSAGE_RESPONSE: {
        this.#countHandshake(nowMs);
        if (!this.#checker.checkMac1(datagram)) return this.#drop("bad_mac1");
        if (this.isUnderLoad(nowMs) && !this.#checker.checkMac2(datagram, source, nowMs)) {
          const packet = this.#checker.createReply(datagram, msg.sender, source, nowMs);
          return { kind: "reply", peer: null, packet, authenticated: false };
        }
        if (msg.type === MESSAGE_INITIATION) {
          const consumed = consumeInitiation(
            msg,
            this.#keys,
            (pub) => this.#peers.get(keyId(pub))?.staticStatic ?? null,
          );
          if (typeof consumed === "string") return this.#drop(consumed);
          const peer = this.#peers.get(keyId(consumed.remoteStatic))!;
          const r = peer.handleInitiation(consumed, nowMs);
          if ("reason" in r) return this.#drop(r.reason);
          return { kind: "reply", peer, packet: r.response, authenticated: true };
        }
        const e = this.#index.get(msg.receiver);
        if (e === undefined || e.session !== null) return this.#drop("unknown_index");
        const r = e.peer.handleResponse(msg, nowMs);
        if ("reason" in r) return this.#drop(r.reason);
        return { kind: "established", peer: e.peer, packets: r.packets };
      }
      case MESSAGE_COOKIE_REPLY: {
        const e = this.#index.get(msg.receiver);
        if (e === undefined) return this.#drop("unknown_index");
        if (!e.peer.cookies.consumeReply(msg, nowMs)) return this.#drop("bad_cookie_reply");
        return { kind: "none" };
      }
      default:
        // Transport was handled above; decodeMessage knows no other types.
        return this.#drop("unknown_type");
    }
  }

  #drop(reason: WgDropReason): WgReceiveResult {
    this.drops[reason]++;
    return { kind: "drop", reason };
  }

  #countHandshake(nowMs: number): void {
    if (nowMs - this.#loadWindowStartMs >= 1000) {
      this.#loadWindowStartMs = nowMs;
      this.#loadWindowCount = 0;
    }
    if (++this.#loadWindowCount > this.#loadThreshold) {
      this.#underLoadUntilMs = nowMs + UNDER_LOAD_AFTER_MS;
    }
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function keyId(key: Uint8Array): string {
  let s = "";
  for (const b of key) s += HEX[b];
  return s;
}
