/**
 * The data path's clock: `performance.now()` read once per drain instead of once per packet.
 *
 * Why: every packet asks the mesh for the time (timers, keepalives, path liveness), and each
 * `performance.now()` is an op call into the runtime: ~3% of a client's CPU under a full TCP
 * load. Within one drain of the TUN or the socket (at most a few ms) one reading is as good:
 * the timers it feeds count in tens of ms and more (WireGuard's own are seconds).
 *
 * Outside a drain (timers, control requests) {@linkcode TurnClock.now} reads the real clock.
 *
 * @module
 */

/** A clock that can be held at one reading for the length of a synchronous drain. */
export class TurnClock {
  #held = false;
  #at = 0;
  readonly #read: () => number;

  /** @param read The underlying clock in ms (default `performance.now`). */
  constructor(read: () => number = () => performance.now()) {
    this.#read = read;
  }

  /** The held reading inside {@linkcode TurnClock.hold}, the real clock outside it. */
  readonly now = (): number => this.#held ? this.#at : this.#read();

  /** Runs `drain` with the clock held at one fresh reading; nests (an inner hold re-reads). */
  hold<T>(drain: () => T): T {
    const outer = this.#held;
    this.#at = this.#read();
    this.#held = true;
    try {
      return drain();
    } finally {
      this.#held = outer;
    }
  }
}
