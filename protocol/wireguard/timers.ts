/**
 * Protocol timing constants (whitepaper section 6, "Timers & Stateless UX") and the tunable
 * {@linkcode WgTimers} record that peers actually run on. Keeping the record injectable lets tests
 * run hours of protocol time in milliseconds of wall time.
 *
 * @module
 */

/** Initiator starts a new handshake once its session is this old (REKEY_AFTER_TIME). */
export const REKEY_AFTER_MS = 120_000;
/** No session is used for sending or receiving after this age (REJECT_AFTER_TIME). */
export const REJECT_AFTER_MS = 180_000;
/** Handshake retries stop after this long without success (REKEY_ATTEMPT_TIME). */
export const REKEY_ATTEMPT_MS = 90_000;
/** A handshake initiation is retried after this long without a response (REKEY_TIMEOUT). */
export const REKEY_TIMEOUT_MS = 5_000;
/** Random extra delay added to each retry, at most this much (wireguard-go's jitter). */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
/** An empty keepalive answers received data after this much send silence (KEEPALIVE_TIMEOUT). */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Rekey once this many messages were sent with one session (REKEY_AFTER_MESSAGES = 2^60). */
export const REKEY_AFTER_MESSAGES: bigint = 1n << 60n;
/** Hard limit of messages per session (REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1). */
export const REJECT_AFTER_MESSAGES: bigint = (1n << 64n) - (1n << 13n) - 1n;
/** Minimum spacing of handled initiations from one peer (wireguard-go HandshakeInitationRate). */
export const INITIATION_MIN_INTERVAL_MS = 50;

/** Timer settings of a device; see {@linkcode DEFAULT_WG_TIMERS}. */
export interface WgTimers {
  /** REKEY_AFTER_TIME in ms (120 000). */
  rekeyAfterMs: number;
  /** REJECT_AFTER_TIME in ms (180 000). */
  rejectAfterMs: number;
  /** REKEY_ATTEMPT_TIME in ms (90 000). */
  rekeyAttemptMs: number;
  /** REKEY_TIMEOUT in ms (5 000). */
  rekeyTimeoutMs: number;
  /** KEEPALIVE_TIMEOUT in ms (10 000). */
  keepaliveTimeoutMs: number;
  /** Persistent keepalive interval in ms; 0 disables it. */
  persistentKeepaliveMs: number;
  /** REKEY_AFTER_MESSAGES (2^60). */
  rekeyAfterMessages: bigint;
  /** REJECT_AFTER_MESSAGES (2^64 - 2^13 - 1); values above 2^53 act as 2^53 - 1. */
  rejectAfterMessages: bigint;
}

/** The whitepaper's values. */
export const DEFAULT_WG_TIMERS: Readonly<WgTimers> = Object.freeze({
  rekeyAfterMs: REKEY_AFTER_MS,
  rejectAfterMs: REJECT_AFTER_MS,
  rekeyAttemptMs: REKEY_ATTEMPT_MS,
  rekeyTimeoutMs: REKEY_TIMEOUT_MS,
  keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
  persistentKeepaliveMs: 0,
  rekeyAfterMessages: REKEY_AFTER_MESSAGES,
  rejectAfterMessages: REJECT_AFTER_MESSAGES,
});

/** Timers with message limits as safe-integer numbers, as the data path compares them. */
export interface ResolvedTimers extends Readonly<WgTimers> {
  readonly rekeyAfterMessagesNum: number;
  readonly rejectAfterMessagesNum: number;
  /** Retries before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
  readonly maxHandshakeAttempts: number;
}

/** Merges overrides into the defaults and precomputes derived values. */
export function resolveTimers(overrides: Partial<WgTimers> = {}): ResolvedTimers {
  const t: WgTimers = { ...DEFAULT_WG_TIMERS, ...overrides };
  const cap = (v: bigint) =>
    Number(v > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : v);
  return {
    ...t,
    rekeyAfterMessagesNum: cap(t.rekeyAfterMessages),
    rejectAfterMessagesNum: cap(t.rejectAfterMessages),
    maxHandshakeAttempts: Math.max(1, Math.ceil(t.rekeyAttemptMs / t.rekeyTimeoutMs)),
  };
}
