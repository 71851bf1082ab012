/**
 * Per-peer state: the three session slots (previous/current/next, as in wireguard-go), the
 * handshake we initiated and are waiting on, the replay-relevant handshake history of the peer,
 * the timers of whitepaper section 6 as deadlines, and a bounded queue of packets waiting for a
 * session.
 *
 * Nothing here does I/O or reads a clock: every entry point takes `nowMs` (a monotonic clock in
 * ms, any origin) and returns the datagrams to send.
 *
 * Session rotation (wireguard-go `BeginSymmetricSession` / `ReceivedWithKeypair`):
 * - As initiator, a consumed response makes the new session `current` at once (the old current,
 *   or an unconfirmed `next`, becomes `previous`), and we send data or a keepalive so the
 *   responder can confirm it.
 * - As responder, the new session waits in `next` until the first transport message arrives on
 *   it; only then does it become `current`. We never send on an unconfirmed session.
 * - Transport messages are accepted on any of the three slots.
 *
 * @module
 */
import type { AeadProvider } from "./aead.ts";
import { compareTai64n, isAfter, nextTai64n, tai64n, TAI64N_LEN } from "./tai64n.ts";
import { CookieGenerator } from "./cookie.ts";
import {
  type ConsumedInitiation,
  consumeResponse,
  createInitiation as buildInitiation,
  createResponse,
  type InitiatorState,
  type StaticKeys,
} from "./handshake.ts";
import { dh, generatePrivateKey, KEY_LEN } from "./noise.ts";
import type { ResponseMessage } from "./messages.ts";
import { Session } from "./session.ts";
import { edgeMessageLength } from "../signal.ts";
import {
  INITIATION_MIN_INTERVAL_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  type ResolvedTimers,
} from "./timers.ts";

/** Packets kept while waiting for a handshake (wireguard-go QueueStagedSize). */
export const MAX_QUEUED_PACKETS = 128;

const NEVER = Number.POSITIVE_INFINITY;
const EMPTY = new Uint8Array(0);

/** Why a received datagram was dropped. */
export type WgDropReason =
  | "bad_length"
  | "unknown_type"
  | "bad_mac1"
  | "unknown_peer"
  | "handshake_decrypt_failed"
  | "weak_key"
  | "stale_timestamp"
  | "initiation_flood"
  | "unknown_index"
  | "bad_cookie_reply"
  | "expired_session"
  | "decrypt_failed"
  | "replay"
  | "invalid_inner_packet";

/** Every {@linkcode WgDropReason}, for counters and tests. */
export const WG_DROP_REASONS: readonly WgDropReason[] = [
  "bad_length",
  "unknown_type",
  "bad_mac1",
  "unknown_peer",
  "handshake_decrypt_failed",
  "weak_key",
  "stale_timestamp",
  "initiation_flood",
  "unknown_index",
  "bad_cookie_reply",
  "expired_session",
  "decrypt_failed",
  "replay",
  "invalid_inner_packet",
];

/** Traffic counters of one peer (transport datagrams, including keepalives). */
export interface WgPeerStats {
  /** Clock value (the callers' nowMs) of the last completed handshake; 0 = never. */
  lastHandshakeMs: number;
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
  handshakesCompleted: number;
}

/**
 * What a peer needs from its device. Implemented by `WgDevice`; not part of the public API.
 * @internal
 */
export interface PeerHost {
  readonly staticKeys: StaticKeys;
  readonly timers: ResolvedTimers;
  /** Transport AEAD for new sessions. */
  readonly aead: AeadProvider;
  /** The MTU that bounds the padding of new sessions (Infinity: none). */
  readonly mtu: number;
  randomBytes(n: number): Uint8Array;
  wallClockMs(): number;
  /** Reserves a fresh random local index pointing at `peer` (handshake in flight). */
  allocateIndex(peer: WgPeer): number;
  /** Points an index at an established session. */
  bindIndex(index: number, peer: WgPeer, session: Session): void;
  freeIndex(index: number): void;
}

/** Result of a transport message handled by a peer. @internal */
export type PeerTransportResult =
  | { kind: "drop"; reason: WgDropReason }
  | { kind: "data"; peer: WgPeer; packet: Uint8Array; outgoing: readonly Uint8Array[] }
  | { kind: "keepalive"; peer: WgPeer; outgoing: readonly Uint8Array[] };

/** The `outgoing` of nearly every transport result: shared, so no array per packet. */
export const NO_DATAGRAMS: readonly Uint8Array[] = Object.freeze([]);

/** One remote peer of a {@linkcode WgDevice}. Create with `WgDevice.addPeer()`. */
export class WgPeer {
  /** The peer's static X25519 public key. */
  readonly publicKey: Uint8Array;
  /** Counters; see {@linkcode WgPeerStats}. */
  readonly stats: WgPeerStats = {
    lastHandshakeMs: 0,
    txBytes: 0,
    rxBytes: 0,
    txPackets: 0,
    rxPackets: 0,
    handshakesCompleted: 0,
  };
  /** Free slot for the caller's own per-peer data (endpoint, addresses ...). */
  context: unknown = undefined;
  /**
   * Counts the persistent keepalive interval from our own last send only. WireGuard restarts it on
   * any authenticated packet, sent or received, so on an idle edge only one side ever speaks: the
   * silent side's NAT mapping is refreshed by inbound packets alone (not every NAT does that), and
   * the speaking side cannot tell a silent peer from a dead one. Both ends of a meshub edge set
   * this; a plain WireGuard peer does not need to.
   */
  keepaliveFromOwnSendsOnly = false;

  readonly #host: PeerHost;
  readonly #psk: Uint8Array;
  readonly #staticStatic: Uint8Array;
  readonly #cookies: CookieGenerator;
  /**
   * Reused by every "data" / "keepalive" result of {@linkcode WgPeer.handleTransport}, which
   * the device hands on as they are.
   */
  readonly #dataResult: Extract<PeerTransportResult, { kind: "data" }> = {
    kind: "data",
    peer: this,
    packet: EMPTY,
    outgoing: NO_DATAGRAMS,
  };
  readonly #keepaliveResult: Extract<PeerTransportResult, { kind: "keepalive" }> = {
    kind: "keepalive",
    peer: this,
    outgoing: NO_DATAGRAMS,
  };

  #current: Session | null = null;
  #previous: Session | null = null;
  #next: Session | null = null;

  #initiator: InitiatorState | null = null;
  #lastTimestampSent: Uint8Array | null = null;
  #lastTimestampReceived: Uint8Array = new Uint8Array(TAI64N_LEN);
  #lastInitiationConsumedMs = Number.NEGATIVE_INFINITY;
  #lastSentHandshakeMs = Number.NEGATIVE_INFINITY;

  #queue: Uint8Array[] = [];
  #wantHandshake = false;
  #attempts = 0;
  #retransmitAtMs = NEVER;
  #sendKeepaliveAtMs = NEVER;
  #needAnotherKeepalive = false;
  #newHandshakeAtMs = NEVER;
  #zeroKeysAtMs = NEVER;
  #lastTraversalMs = Number.NEGATIVE_INFINITY;
  #lastSentMs = Number.NEGATIVE_INFINITY;
  #removed = false;

  /** @internal Use `WgDevice.addPeer()`. */
  constructor(host: PeerHost, publicKey: Uint8Array, presharedKey: Uint8Array) {
    if (publicKey.length !== KEY_LEN) throw new RangeError("peer public key must be 32 bytes");
    if (presharedKey.length !== KEY_LEN) throw new RangeError("preshared key must be 32 bytes");
    const ss = dh(host.staticKeys.privateKey, publicKey);
    if (ss === null) throw new RangeError("peer public key is a low-order point");
    this.#host = host;
    this.publicKey = publicKey.slice();
    this.#psk = presharedKey.slice();
    this.#staticStatic = ss;
    this.#cookies = new CookieGenerator(publicKey);
  }

  /** True when a session exists that may encrypt now. */
  hasSession(nowMs: number): boolean {
    return this.#sendable(nowMs) !== null;
  }

  /**
   * Encrypts one IP packet into a transport datagram (a fresh buffer). Returns null when no usable
   * session exists: the packet was copied into the bounded queue (oldest dropped first) and a
   * handshake is wanted, which {@linkcode tick} emits.
   */
  encrypt(packet: Uint8Array, nowMs: number): Uint8Array | null {
    const s = this.#sendable(nowMs);
    if (s === null) {
      this.#enqueue(packet);
      return null;
    }
    return this.#sealOn(s, packet, nowMs);
  }

  /**
   * Encrypts a control message of the caller's own (a path probe, signalling) on the current
   * session, or returns null when there is none: never queued, never a reason for a handshake.
   * WireGuard's timers do not see it: it may go to another path than the edge's (a path probe),
   * so it neither stands in for a keepalive on the edge's path nor, unanswered, makes an idle
   * edge re-handshake as unanswered data would (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT).
   */
  encryptControl(packet: Uint8Array, nowMs: number): Uint8Array | null {
    const s = this.#sendable(nowMs);
    if (s === null) return null;
    const dg = s.seal(packet);
    this.#afterSeal(s, 0, dg.length, nowMs, false);
    return dg;
  }

  /**
   * {@linkcode WgPeer.encrypt} into the caller's buffer, which must hold
   * `sealedLength(packet.length, mtu)` bytes (the device's MTU). Returns the datagram's length,
   * or 0 when no usable session exists (the packet was queued, as with `encrypt`).
   */
  encryptInto(packet: Uint8Array, nowMs: number, out: Uint8Array): number {
    const s = this.#sendable(nowMs);
    if (s === null) {
      this.#enqueue(packet);
      return 0;
    }
    const len = s.sealInto(packet, out);
    this.#afterSeal(s, packet.length, len, nowMs);
    return len;
  }

  /**
   * Creates a handshake initiation now, regardless of the retry timer (the caller rate-limits;
   * used when a punch opportunity appears). Carries mac1, and mac2 when a fresh cookie is held.
   * Replaces any initiation still in flight.
   */
  createInitiation(nowMs: number): Uint8Array {
    return this.#sendInitiation(nowMs, false);
  }

  /**
   * Runs the timers; call every 100-500 ms. Returns datagrams to send to the peer now: handshake
   * (re)initiations, keepalives, and queued packets once a session is usable.
   */
  tick(nowMs: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#removed) return out;
    const t = this.#host.timers;

    if (nowMs >= this.#zeroKeysAtMs) {
      // REJECT_AFTER_TIME * 3 after the last session: nothing can be decrypted any more.
      this.#zeroKeysAtMs = NEVER;
      this.#clearSessions();
      this.#dropInitiator();
    }

    if (nowMs >= this.#retransmitAtMs) {
      if (this.#attempts >= t.maxHandshakeAttempts) {
        // REKEY_ATTEMPT_TIME exhausted: give up until new data is queued.
        this.#retransmitAtMs = NEVER;
        this.#wantHandshake = false;
        this.#queue = [];
        this.#sendKeepaliveAtMs = NEVER;
        this.#newHandshakeAtMs = NEVER;
        this.#dropInitiator();
        if (this.#zeroKeysAtMs === NEVER) this.#zeroKeysAtMs = nowMs + t.rejectAfterMs * 3;
      } else {
        this.#attempts++;
        out.push(this.#sendInitiation(nowMs, true));
      }
    }

    if (nowMs >= this.#newHandshakeAtMs) {
      // We sent data but heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT.
      this.#newHandshakeAtMs = NEVER;
      this.#wantHandshake = true;
    }

    if (nowMs >= this.#sendKeepaliveAtMs) {
      this.#sendKeepaliveAtMs = NEVER;
      const s = this.#sendable(nowMs);
      if (s !== null) out.push(this.#sealOn(s, EMPTY, nowMs));
      if (this.#needAnotherKeepalive) {
        this.#needAnotherKeepalive = false;
        this.#sendKeepaliveAtMs = nowMs + t.keepaliveTimeoutMs;
      }
    }

    const keepaliveFromMs = this.keepaliveFromOwnSendsOnly
      ? this.#lastSentMs
      : this.#lastTraversalMs;
    if (t.persistentKeepaliveMs > 0 && nowMs - keepaliveFromMs >= t.persistentKeepaliveMs) {
      const s = this.#sendable(nowMs);
      if (s !== null) out.push(this.#sealOn(s, EMPTY, nowMs));
      else if (this.#queue.length === 0) this.#enqueue(EMPTY);
      else this.#wantHandshake = true;
    }

    if (
      this.#wantHandshake && this.#retransmitAtMs === NEVER &&
      nowMs - this.#lastSentHandshakeMs >= t.rekeyTimeoutMs
    ) {
      out.push(this.#sendInitiation(nowMs, false));
    }

    if (this.#queue.length > 0) {
      const s = this.#sendable(nowMs);
      if (s !== null) { for (const p of this.#flush(s, nowMs)) out.push(p); }
    }
    return out;
  }

  // ---- called by WgDevice --------------------------------------------------------------------

  /** @internal Precomputed DH(our static, peer static). */
  get staticStatic(): Uint8Array {
    return this.#staticStatic;
  }

  /** @internal The local index of the initiation in flight, if any. */
  get pendingInitiationIndex(): number | null {
    return this.#initiator?.localIndex ?? null;
  }

  /** @internal Cookie state of messages we send to this peer. */
  get cookies(): CookieGenerator {
    return this.#cookies;
  }

  /**
   * @internal Handles a decrypted initiation from this peer: freshness and flood checks, then
   * builds the response and installs the responder session in `next`.
   */
  handleInitiation(
    init: ConsumedInitiation,
    nowMs: number,
  ): { response: Uint8Array } | { reason: WgDropReason } {
    // Replay protection for initiations: TAI64N must strictly increase per peer.
    if (!isAfter(init.timestamp, this.#lastTimestampReceived)) return { reason: "stale_timestamp" };
    if (nowMs - this.#lastInitiationConsumedMs < INITIATION_MIN_INTERVAL_MS) {
      return { reason: "initiation_flood" };
    }
    const host = this.#host;
    const localIndex = host.allocateIndex(this);
    const eph = generatePrivateKey((n) => host.randomBytes(n));
    const r = createResponse({
      initiation: init,
      localIndex,
      ephemeralPrivate: eph,
      presharedKey: this.#psk,
    });
    eph.fill(0);
    if (r === null) {
      host.freeIndex(localIndex);
      return { reason: "weak_key" };
    }
    this.#lastTimestampReceived = init.timestamp;
    this.#lastInitiationConsumedMs = nowMs;

    const session = new Session(r.keys, localIndex, init.remoteIndex, false, nowMs, {
      aead: host.aead,
      mtu: host.mtu,
    });
    host.bindIndex(localIndex, this, session);
    // Responder rotation: the new session waits in `next`; `previous` goes.
    this.#release(this.#next);
    this.#release(this.#previous);
    this.#previous = null;
    this.#next = session;

    this.#cookies.addMacs(r.message, nowMs);
    this.#lastSentHandshakeMs = nowMs;
    this.#anyAuthenticatedReceived(nowMs);
    this.#anyAuthenticatedSent(nowMs);
    this.#zeroKeysAtMs = nowMs + host.timers.rejectAfterMs * 3;
    return { response: r.message };
  }

  /**
   * @internal Handles a response to our initiation in flight. On success the new session is
   * current and the returned datagrams (queued data, or a keepalive) confirm it to the peer.
   */
  handleResponse(
    msg: ResponseMessage,
    nowMs: number,
  ): { packets: Uint8Array[] } | { reason: WgDropReason } {
    const state = this.#initiator;
    if (state === null || state.localIndex !== msg.receiver) return { reason: "unknown_index" };
    const keys = consumeResponse(msg, state, this.#host.staticKeys, this.#psk);
    if (keys === null) return { reason: "handshake_decrypt_failed" };
    state.ephemeralPrivate.fill(0);
    this.#initiator = null;
    const session = new Session(keys, state.localIndex, msg.sender, true, nowMs, {
      aead: this.#host.aead,
      mtu: this.#host.mtu,
    });
    this.#host.bindIndex(state.localIndex, this, session);

    // Initiator rotation: new session is current at once.
    if (this.#next !== null) {
      this.#release(this.#previous);
      this.#previous = this.#next;
      this.#next = null;
      this.#release(this.#current);
    } else {
      this.#release(this.#previous);
      this.#previous = this.#current;
    }
    this.#current = session;

    this.#handshakeComplete(nowMs);
    this.#zeroKeysAtMs = nowMs + this.#host.timers.rejectAfterMs * 3;
    this.#anyAuthenticatedReceived(nowMs);
    const packets = this.#flush(session, nowMs);
    if (packets.length === 0) packets.push(this.#sealOn(session, EMPTY, nowMs));
    return { packets };
  }

  /**
   * @internal Handles a transport datagram whose receiver index maps to `session`. A "data" or
   * "keepalive" result is an object of this peer's that the next call reuses: the hot path
   * allocates nothing per packet.
   */
  handleTransport(session: Session, datagram: Uint8Array, nowMs: number): PeerTransportResult {
    const t = this.#host.timers;
    if (
      nowMs - session.createdMs >= t.rejectAfterMs ||
      (session !== this.#current && session !== this.#previous && session !== this.#next)
    ) {
      return { kind: "drop", reason: "expired_session" };
    }
    const plainLen = session.openInto(datagram);
    if (plainLen < 0) return { kind: "drop", reason: "decrypt_failed" };
    const lo = datagram[8]! | datagram[9]! << 8 | datagram[10]! << 16 | datagram[11]! << 24;
    const hi = (datagram[12]! | datagram[13]! << 8 | datagram[14]! << 16 | datagram[15]! << 24) >>>
      0;
    const counter = hi * 0x1_0000_0000 + (lo >>> 0);
    if (!session.replay.validate(counter, t.rejectAfterMessagesNum)) {
      return { kind: "drop", reason: "replay" };
    }

    let outgoing = NO_DATAGRAMS;
    if (session === this.#next) {
      // First message on the responder's session confirms it.
      this.#release(this.#previous);
      this.#previous = this.#current;
      this.#current = session;
      this.#next = null;
      this.#handshakeComplete(nowMs);
      outgoing = this.#flush(session, nowMs);
    }
    this.#anyAuthenticatedReceived(nowMs);
    this.stats.rxPackets++;
    this.stats.rxBytes += datagram.length;

    // keepKeyFreshReceiving: an initiator whose session nears REJECT_AFTER_TIME rekeys now.
    if (
      session === this.#current && session.isInitiator &&
      nowMs - session.createdMs >= t.rejectAfterMs - t.keepaliveTimeoutMs - t.rekeyTimeoutMs
    ) {
      this.#wantHandshake = true;
    }

    if (plainLen === 0) {
      this.#keepaliveResult.outgoing = outgoing;
      return this.#keepaliveResult;
    }

    // Data received: answer with a keepalive if we stay silent for KEEPALIVE_TIMEOUT.
    if (this.#sendKeepaliveAtMs === NEVER) {
      this.#sendKeepaliveAtMs = nowMs + t.keepaliveTimeoutMs;
    } else {
      this.#needAnotherKeepalive = true;
    }
    // meshub's member-to-member signalling (protocol/signal.ts) cannot start like an IP packet;
    // the mesh takes it off before the inner-source check and never lets it reach a TUN.
    const plain = session.plaintext;
    let len = ipPacketLength(plain, plainLen);
    if (len < 0) len = edgeMessageLength(plain, plainLen);
    if (len < 0) return { kind: "drop", reason: "invalid_inner_packet" };
    const result = this.#dataResult;
    result.packet = plain.subarray(0, len);
    result.outgoing = outgoing;
    return result;
  }

  /** @internal Forgets everything; the device has dropped the peer. */
  remove(): void {
    this.#removed = true;
    this.#clearSessions();
    this.#dropInitiator();
    this.#queue = [];
  }

  /** @internal Used by tests: the last TAI64N timestamp accepted from this peer. */
  get lastTimestampReceived(): Uint8Array {
    return this.#lastTimestampReceived;
  }

  // ---- internals -----------------------------------------------------------------------------

  #sendable(nowMs: number): Session | null {
    const s = this.#current;
    if (s === null) return null;
    const t = this.#host.timers;
    if (s.sendCounter >= t.rejectAfterMessagesNum || nowMs - s.createdMs >= t.rejectAfterMs) {
      return null;
    }
    return s;
  }

  #sealOn(s: Session, packet: Uint8Array, nowMs: number): Uint8Array {
    const dg = s.seal(packet);
    this.#afterSeal(s, packet.length, dg.length, nowMs);
    return dg;
  }

  /** Counters and timers after a transport datagram was sealed on `s`. */
  #afterSeal(
    s: Session,
    plaintextLen: number,
    datagramLen: number,
    nowMs: number,
    timers = true,
  ): void {
    const t = this.#host.timers;
    this.stats.txPackets++;
    this.stats.txBytes += datagramLen;
    if (timers) this.#anyAuthenticatedSent(nowMs);
    if (plaintextLen > 0 && this.#newHandshakeAtMs === NEVER) {
      // Data sent: expect to hear back within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT.
      this.#newHandshakeAtMs = nowMs + t.keepaliveTimeoutMs + t.rekeyTimeoutMs;
    }
    // keepKeyFreshSending.
    if (
      s.sendCounter > t.rekeyAfterMessagesNum ||
      (s.isInitiator && nowMs - s.createdMs >= t.rekeyAfterMs)
    ) {
      this.#wantHandshake = true;
    }
  }

  #enqueue(packet: Uint8Array): void {
    if (this.#queue.length >= MAX_QUEUED_PACKETS) this.#queue.shift();
    this.#queue.push(packet.slice());
    this.#wantHandshake = true;
  }

  #flush(s: Session, nowMs: number): Uint8Array[] {
    if (this.#queue.length === 0) return [];
    const q = this.#queue;
    this.#queue = [];
    const out: Uint8Array[] = [];
    for (const p of q) out.push(this.#sealOn(s, p, nowMs));
    return out;
  }

  #sendInitiation(nowMs: number, isRetry: boolean): Uint8Array {
    const host = this.#host;
    if (!isRetry) this.#attempts = 0;
    this.#dropInitiator();
    const localIndex = host.allocateIndex(this);
    let ts = tai64n(host.wallClockMs());
    // Whitening can repeat a timestamp within ~17 ms; the peer needs strictly increasing ones.
    if (this.#lastTimestampSent !== null && compareTai64n(ts, this.#lastTimestampSent) <= 0) {
      ts = nextTai64n(this.#lastTimestampSent);
    }
    this.#lastTimestampSent = ts;
    const built = buildInitiation({
      local: host.staticKeys,
      remotePublic: this.publicKey,
      staticStatic: this.#staticStatic,
      localIndex,
      ephemeralPrivate: generatePrivateKey((n) => host.randomBytes(n)),
      timestamp: ts,
    });
    if (built === null) throw new Error("unreachable: peer key was validated as not low-order");
    this.#initiator = built.state;
    this.#cookies.addMacs(built.message, nowMs);
    this.#lastSentHandshakeMs = nowMs;
    this.#anyAuthenticatedSent(nowMs);
    const jitter = readU16(host.randomBytes(2)) % REKEY_TIMEOUT_JITTER_MAX_MS;
    this.#retransmitAtMs = nowMs + host.timers.rekeyTimeoutMs + jitter;
    return built.message;
  }

  #handshakeComplete(nowMs: number): void {
    this.#retransmitAtMs = NEVER;
    this.#attempts = 0;
    this.#wantHandshake = false;
    this.stats.lastHandshakeMs = nowMs;
    this.stats.handshakesCompleted++;
  }

  #anyAuthenticatedSent(nowMs: number): void {
    this.#sendKeepaliveAtMs = NEVER;
    this.#needAnotherKeepalive = false;
    this.#lastTraversalMs = nowMs;
    this.#lastSentMs = nowMs;
  }

  #anyAuthenticatedReceived(nowMs: number): void {
    this.#newHandshakeAtMs = NEVER;
    this.#lastTraversalMs = nowMs;
  }

  #dropInitiator(): void {
    const st = this.#initiator;
    if (st === null) return;
    this.#host.freeIndex(st.localIndex);
    st.ephemeralPrivate.fill(0);
    this.#initiator = null;
  }

  #release(s: Session | null): void {
    if (s === null) return;
    this.#host.freeIndex(s.localIndex);
    s.zero();
  }

  #clearSessions(): void {
    this.#release(this.#previous);
    this.#release(this.#current);
    this.#release(this.#next);
    this.#previous = this.#current = this.#next = null;
  }
}

function readU16(b: Uint8Array): number {
  return (b[0] ?? 0) | (b[1] ?? 0) << 8;
}

/**
 * Length of the IP packet at the start of `p` per its header (IPv4 total length, IPv6 40 +
 * payload length), or -1 if `p` is not a complete IPv4/IPv6 packet. Strips WireGuard's padding.
 * `end`: where the bytes end in `p` (a reused buffer may be longer); default `p.length`.
 */
export function ipPacketLength(p: Uint8Array, end: number = p.length): number {
  if (end < 1) return -1;
  const version = p[0]! >> 4;
  let len: number;
  if (version === 4) {
    if (end < 20) return -1;
    len = p[2]! << 8 | p[3]!;
    if (len < 20) return -1;
  } else if (version === 6) {
    if (end < 40) return -1;
    len = 40 + (p[4]! << 8 | p[5]!);
  } else {
    return -1;
  }
  return len > end ? -1 : len;
}
