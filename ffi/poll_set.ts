/**
 * One `poll` over several file descriptors (the client's TUN device and UDP socket), so a single
 * wait per wake-up serves both directions of the data path, plus a synchronous, short wait on the
 * calling thread for busy-polling (`client/pump.ts`). The TUN devices and the UDP socket wait
 * on their own fd through {@linkcode PollSet.readable} too.
 *
 * An awaited wait runs `poll` on one of Deno's helper threads (a `nonblocking` FFI call) and
 * costs ~40-200 µs of wake-up latency on top of the event itself (two thread hops: the helper
 * thread, then the event loop's thread); {@linkcode PollSet.ready} is a plain syscall on the
 * calling thread, woken by the kernel directly.
 *
 * @module
 */
import { libc } from "./libc.ts";

/** `struct pollfd`: fd i32 @0, events i16 @4, revents i16 @6. */
const POLLFD_LEN = 8;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;
const READY = POLLIN | POLLERR | POLLHUP | POLLNVAL;
/**
 * Longest single wait in {@linkcode PollSet.wait}: a `poll` on a helper thread cannot be
 * interrupted, so this bounds how long a waiter takes to notice a close that does not wake it
 * (closing a TUN fd does not; shutting down a socket does).
 */
export const POLL_SET_SLICE_MS = 250;

/** Readiness of a fixed set of file descriptors. */
export class PollSet {
  /** The pollfd array for the synchronous check (waits use private copies). */
  readonly #fds: Uint8Array;
  readonly #count: number;

  /** Watches `fds` for readability (errors and hang-ups count as ready: a read reports them). */
  constructor(fds: readonly number[]) {
    if (fds.length === 0) throw new RangeError("PollSet needs at least one fd");
    this.#count = fds.length;
    this.#fds = new Uint8Array(POLLFD_LEN * fds.length);
    const view = new DataView(this.#fds.buffer);
    for (const [i, fd] of fds.entries()) {
      view.setInt32(i * POLLFD_LEN, fd, true);
      view.setInt16(i * POLLFD_LEN + 4, POLLIN, true);
    }
  }

  /**
   * Whether any fd is ready, waiting at most `timeoutMs` on the calling thread (a synchronous
   * `poll`: it blocks the event loop meanwhile, so keep it short; 0 never waits).
   */
  ready(timeoutMs = 0): boolean {
    return libc().symbols.poll(this.#fds, BigInt(this.#count), timeoutMs) > 0;
  }

  /**
   * Resolves with true when some fd is ready, false when `sliceMs` passed first (or `poll`
   * failed: the caller's reads report real errors). Never hangs longer than one slice.
   */
  async wait(sliceMs: number = POLL_SET_SLICE_MS): Promise<boolean> {
    return (await this.#pollOnce(sliceMs)) > 0;
  }

  /**
   * Resolves once some fd is ready, `closed()` is true, or `poll` failed (the caller's read then
   * reports the real error), waiting in slices of `sliceMs`: a close that does not wake the
   * `poll` is noticed within one slice.
   */
  async readable(closed: () => boolean, sliceMs: number = POLL_SET_SLICE_MS): Promise<void> {
    // Bounded: each slice is at most sliceMs; the loop ends on readiness, failure or close.
    while (!closed()) {
      if ((await this.#pollOnce(sliceMs)) !== 0) return;
    }
  }

  /** One awaited `poll`: 1 when some fd is ready, 0 when the slice passed, -1 when it failed. */
  async #pollOnce(sliceMs: number): Promise<number> {
    // A private copy: a concurrent synchronous check or wait must not race this one's revents.
    const pfd = this.#fds.slice();
    const n = await libc().symbols.poll_wait(pfd, BigInt(this.#count), sliceMs);
    if (n < 0) return -1;
    for (let at = 0; n > 0 && at < pfd.length; at += POLLFD_LEN) {
      if ((pfd[at + 6]! | (pfd[at + 7]! << 8)) & READY) return 1;
    }
    return 0;
  }
}
