/**
 * WireGuard protocol layer of meshub: byte-compatible with wireguard-go, with no I/O. A
 * {@linkcode WgDevice} turns received datagrams into actions and a {@linkcode WgPeer} turns IP
 * packets and timer ticks into datagrams; the caller owns sockets, the TUN device and the clock.
 *
 * ```ts
 * import { generatePrivateKey, WgDevice } from "./mod.ts";
 * const a = new WgDevice({ privateKey: generatePrivateKey() });
 * const b = new WgDevice({ privateKey: generatePrivateKey() });
 * const peerB = a.addPeer(b.publicKey);
 * b.addPeer(a.publicKey);
 * const init = peerB.createInitiation(Date.now());
 * const r = b.receive(init, new Uint8Array([1]), Date.now()); // { kind: "reply", ... }
 * ```
 *
 * @module
 */

/** Timer settings and protocol constants (whitepaper section 6). */
export {
  DEFAULT_WG_TIMERS,
  INITIATION_MIN_INTERVAL_MS,
  KEEPALIVE_TIMEOUT_MS,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_MS,
  REKEY_ATTEMPT_MS,
  REKEY_TIMEOUT_MS,
  type WgTimers,
} from "./timers.ts";
/** Key generation. */
export { generatePrivateKey, publicKeyOf } from "./noise.ts";
/** The dispatcher. */
export {
  DEFAULT_LOAD_THRESHOLD_PER_S,
  WgDevice,
  type WgDeviceOptions,
  type WgReceiveResult,
} from "./device.ts";
/** Per-peer state. */
export {
  ipPacketLength,
  MAX_QUEUED_PACKETS,
  WG_DROP_REASONS,
  type WgDropReason,
  WgPeer,
  type WgPeerStats,
} from "./peer.ts";
/** Size of a transport datagram, for callers that seal into their own buffers. */
export { sealedLength } from "./session.ts";
/** Wire formats, for tools and tests. */
export { decodeMessage, type DecodeResult, type WgMessage } from "./messages.ts";
