/**
 * The client's single data-path loop where both the TUN device and the UDP socket are file
 * descriptors (Linux): one combined wait per wake-up, and, after light traffic, a short, bounded
 * busy-poll in the style of the kernel's `SO_BUSY_POLL`.
 *
 * Why: every awaited wait resolves through one of Deno's helper threads: the helper's `poll`
 * returns, wakes the event loop's thread, which resolves the promise (~40-200 µs on this VM, two
 * thread wake-ups), and an idle ping costs four such wake-ups (sender TUN, receiver UDP,
 * receiver TUN, sender UDP). Yet after a packet went out its answer usually follows soon: the
 * kernel answers a ping written to the TUN before the write returns, the peer answers a datagram
 * within one of its own turns. So after a light turn the loop waits for the next packet right
 * here, in a synchronous `poll` on its own thread with a short timeout ({@linkcode SPIN_IDLE_MS}):
 * the kernel wakes it directly, no helper thread, no event-loop round, and no CPU is burnt while
 * it sleeps. Each such spin is one synchronous job bounded by {@linkcode SPIN_JOB_MS} (plus one
 * idle wait), so timers, signals and the control socket are delayed by at most that.
 *
 * For {@linkcode HOT_MS} after the last packet the loop stays "hot": between spins it only gives
 * the event loop one round (an awaited `poll` with timeout 0) and goes back to waiting on its own
 * thread, so the next packet of a sparse flow (a ping every 10 ms, keystrokes) also skips the two
 * hops. That costs ~7% of a core per client while hot (one round per ms), nothing otherwise: an
 * idle client never spins and waits only in the awaited `poll`; its CPU use stays ~0. Heavy turns
 * (more than {@linkcode SPIN_MAX_BATCH} packets) go straight back to the awaited wait: under load
 * the queues are rarely empty and the awaited wait returns at once anyway.
 *
 * @module
 */

/** The readiness the pump needs: `ffi/poll_set.ts` over the TUN and UDP fds, or a test fake. */
export interface PumpPoll {
  /** Whether something is ready, waiting synchronously at most `timeoutMs` (0: no wait). */
  ready(timeoutMs?: number): boolean;
  /** Resolves when something may be ready, or after `sliceMs` (default: a long safety slice). */
  wait(sliceMs?: number): Promise<unknown>;
}

/** How the pump drives the data path. */
export interface PumpOptions {
  /** Readiness of the TUN device and the UDP socket together. */
  poll: PumpPoll;
  /**
   * One turn: drains both fds with synchronous reads (each within its own budget) and flushes
   * the batches. Returns how many packets and datagrams it handled.
   */
  turn(): number;
  /** True once the client is stopping: the pump returns at its next check. */
  stopping(): boolean;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** Synchronous wait for more after a light turn, ms (default {@linkcode SPIN_IDLE_MS}; 0: off). */
  spinIdleMs?: number;
  /** Longest synchronous spin job, ms (default {@linkcode SPIN_JOB_MS}). */
  spinJobMs?: number;
}

/** How long a spin waits for the next packet after the last one (whole ms: `poll`'s unit). */
export const SPIN_IDLE_MS = 1;
/** Longest run of turns in one spin; the event loop waits at most this plus one idle wait. */
export const SPIN_JOB_MS = 2;
/** Turns that handled more packets than this do not spin (a burst: the awaited wait is fine). */
export const SPIN_MAX_BATCH = 16;
/** How long after the last packet the loop keeps waiting on its own thread (see above). */
export const HOT_MS = 50;
/** A spin that ran more turns than this met a stream, not sparse packets: no spinning for a while. */
export const SPIN_STREAM_TURNS = 4;
/** Count bound of one spin's turns, beside its time bound (a stuck clock cannot hang it). */
const SPIN_MAX_TURNS = 4096;

/** Runs the data path until `stopping()`; rejects with whatever `turn` throws. */
export async function runPump(o: PumpOptions): Promise<void> {
  const now = o.now ?? (() => performance.now());
  const idleMs = o.spinIdleMs ?? SPIN_IDLE_MS;
  const jobMs = o.spinJobMs ?? SPIN_JOB_MS;
  let lastActive = -Infinity;
  let streamUntil = -Infinity;
  while (!o.stopping()) {
    const handled = o.turn();
    const t = now();
    if (handled > 0) lastActive = t;
    const hot = idleMs > 0 && handled <= SPIN_MAX_BATCH && t - lastActive < HOT_MS &&
      t >= streamUntil;
    // A steady stream of small turns is better served in batches by the awaited wait: prompt
    // wake-ups would cut it into one-packet turns, each paying for its own flushes.
    if (hot && spin(o, now, idleMs, jobMs) > SPIN_STREAM_TURNS) streamUntil = now() + HOT_MS;
    if (o.stopping()) return;
    // The only await: lets timers and other I/O run; returns at once when a fd is ready. While
    // hot it returns at once anyway, so the loop goes back to sleeping on its own thread.
    await o.poll.wait(hot ? 0 : undefined);
  }
}

/**
 * Waits synchronously (at most `idleMs` each time) for the next packet and runs a turn for it,
 * until a wait comes back empty, a turn is heavy, or `jobMs` has passed since the start. Returns
 * the number of turns it ran.
 */
export function spin(
  o: Pick<PumpOptions, "poll" | "turn" | "stopping">,
  now: () => number,
  idleMs: number,
  jobMs: number,
): number {
  const jobEnd = now() + jobMs;
  let turns = 0;
  while (turns < SPIN_MAX_TURNS && now() < jobEnd && !o.stopping()) {
    if (!o.poll.ready(idleMs)) break;
    turns++;
    if (o.turn() > SPIN_MAX_BATCH) break;
  }
  return turns;
}
