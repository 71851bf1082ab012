/**
 * A bounded delay line for the lab's link impairment (`impair_tun.ts`): packets go in with a
 * release time of now + a random delay, and come out when they are due, earliest first (like
 * netem with jitter, packets can be reordered). Pure: no I/O, no timers, the clock and the
 * random source are parameters.
 *
 * Bounded in packets and in bytes: a packet that would exceed either bound is dropped and
 * counted, never queued.
 *
 * @module
 */

/** Settings of a {@linkcode DelayLine}. */
export interface DelayLineOptions {
  /** Mean one-way delay, ms. */
  delayMs: number;
  /** Each packet's delay is uniform in `delayMs ± jitterMs` (never below 0). */
  jitterMs: number;
  /** Most packets held at once. */
  maxPackets: number;
  /** Most bytes held at once. */
  maxBytes: number;
  /** Uniform random numbers in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** Counters of a {@linkcode DelayLine}. */
export interface DelayLineCounters {
  /** Packets accepted. */
  queued: number;
  /** Packets released by {@linkcode DelayLine.due}. */
  released: number;
  /** Packets refused because the line was full (packets or bytes). */
  dropped: number;
  /** Most packets held at once so far. */
  peakPackets: number;
}

interface Entry {
  at: number;
  packet: Uint8Array;
}

/** A bounded priority queue of packets by release time. */
export class DelayLine {
  readonly #o: Required<DelayLineOptions>;
  /** Binary min-heap on `at`. */
  readonly #heap: Entry[] = [];
  #bytes = 0;
  /** Counters so far. */
  readonly counters: DelayLineCounters = { queued: 0, released: 0, dropped: 0, peakPackets: 0 };

  /** Throws `RangeError` on settings that make no sense. */
  constructor(options: DelayLineOptions) {
    const { delayMs, jitterMs, maxPackets, maxBytes } = options;
    if (!(delayMs >= 0) || !(jitterMs >= 0) || jitterMs > delayMs) {
      throw new RangeError(`need 0 <= jitter (${jitterMs}) <= delay (${delayMs})`);
    }
    if (!(maxPackets >= 1) || !(maxBytes >= 1)) {
      throw new RangeError("maxPackets and maxBytes must be at least 1");
    }
    this.#o = { random: Math.random, ...options };
  }

  /** Packets held now. */
  get packets(): number {
    return this.#heap.length;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues a copy of `packet` (the caller may reuse its buffer) for release at `nowMs` plus a
   * random delay. Returns false, and counts a drop, when the line is full.
   */
  push(packet: Uint8Array, nowMs: number): boolean {
    if (
      this.#heap.length >= this.#o.maxPackets || this.#bytes + packet.length > this.#o.maxBytes
    ) {
      this.counters.dropped++;
      return false;
    }
    const { delayMs, jitterMs } = this.#o;
    const at = nowMs + delayMs - jitterMs + 2 * jitterMs * this.#o.random();
    const heap = this.#heap;
    heap.push({ at, packet: packet.slice() });
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
    this.#bytes += packet.length;
    this.counters.queued++;
    this.counters.peakPackets = Math.max(this.counters.peakPackets, heap.length);
    return true;
  }

  /** Release time of the earliest packet, or undefined when empty. */
  nextDueMs(): number | undefined {
    return this.#heap[0]?.at;
  }

  /** Removes and returns the packets due at `nowMs`, earliest first. */
  due(nowMs: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (this.#heap.length > 0 && this.#heap[0]!.at <= nowMs) out.push(this.#pop());
    this.counters.released += out.length;
    return out;
  }

  #pop(): Uint8Array {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l]!.at < heap[m]!.at) m = l;
        if (r < heap.length && heap[r]!.at < heap[m]!.at) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i]!, heap[m]!];
        i = m;
      }
    }
    this.#bytes -= top.packet.length;
    return top.packet;
  }
}
