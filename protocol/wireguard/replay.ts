/**
 * Sliding-window replay filter for transport counters (whitepaper 5.4.6, RFC 6479 style), the
 * same shape as wireguard-go's `replay/`: a ring of bitmap words; moving the window forward clears
 * the words it enters. The window is (RING_WORDS - 1) * 32 = 8160 counters, wider than
 * wireguard-go's 8128, so every packet wireguard-go would accept is accepted here too.
 *
 * Counters are JavaScript numbers. They are exact below 2^53; the filter refuses anything at or
 * beyond the caller's limit, which is never above `Number.MAX_SAFE_INTEGER`. A real peer would need
 * centuries at line rate to get there, so nothing legitimate is lost.
 *
 * @module
 */

const WORD_BITS = 32;
const RING_WORDS = 256; // power of two
const RING_MASK = RING_WORDS - 1;

/** Number of counters behind the highest one seen that can still be accepted once. */
export const REPLAY_WINDOW_SIZE: number = (RING_WORDS - 1) * WORD_BITS;

/** Sliding-window replay filter. */
export class ReplayFilter {
  #last = 0;
  #ring = new Uint32Array(RING_WORDS);

  /** Forgets everything (back to the state of a new filter). */
  reset(): void {
    this.#last = 0;
    this.#ring.fill(0);
  }

  /**
   * Records `counter` and returns true if it is new and inside the window; returns false (and
   * records nothing) for a replay, a counter too old, or one at or above `limit`.
   * Call only after the packet has been authenticated, or an attacker could move the window.
   */
  validate(counter: number, limit: number = Number.MAX_SAFE_INTEGER): boolean {
    if (!(counter >= 0) || counter >= limit || !Number.isSafeInteger(counter)) return false;
    const word = Math.floor(counter / WORD_BITS);
    if (counter > this.#last) {
      const current = Math.floor(this.#last / WORD_BITS);
      const diff = Math.min(word - current, RING_WORDS);
      for (let i = 1; i <= diff; i++) this.#ring[(current + i) & RING_MASK] = 0;
      this.#last = counter;
    } else if (this.#last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const idx = word & RING_MASK;
    const bit = 1 << (counter % WORD_BITS);
    const old = this.#ring[idx]!;
    if ((old & bit) !== 0) return false;
    this.#ring[idx] = old | bit;
    return true;
  }
}
