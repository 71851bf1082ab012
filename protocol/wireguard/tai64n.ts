/**
 * TAI64N timestamps as carried in handshake initiations (whitepaper 5.1, 5.4.2): 8 bytes of
 * big-endian seconds offset by 2^62 + 10 (TAI minus UTC at the epoch of the label), then 4 bytes
 * of big-endian nanoseconds. Like wireguard-go we clear the low 24 bits of the nanoseconds so the
 * timestamp does not leak a fine-grained clock; receivers only need strict monotonicity.
 *
 * @module
 */

/** Length of a TAI64N timestamp in bytes. */
export const TAI64N_LEN = 12;

/** The TAI64 label of the Unix epoch (2^62 + 10 s), as wireguard-go uses. */
const TAI64_BASE = 0x400000000000000an;
/** Nanosecond bits cleared before sending (about 16.8 ms of resolution left). */
const WHITENER_MASK = 0xffffff;
const NS_PER_S = 1_000_000_000;

/** Encodes a wall-clock time given in Unix milliseconds. */
export function tai64n(unixMs: number): Uint8Array {
  const ms = Math.floor(unixMs);
  const secs = Math.floor(ms / 1000);
  const nanos = (ms - secs * 1000) * 1_000_000;
  return encode(TAI64_BASE + BigInt(secs), nanos & ~WHITENER_MASK);
}

/** The smallest whitened timestamp strictly after `t` (keeps our own initiations monotonic). */
export function nextTai64n(t: Uint8Array): Uint8Array {
  const dv = view(t);
  let secs = dv.getBigUint64(0, false);
  let nanos = dv.getUint32(8, false) + WHITENER_MASK + 1;
  if (nanos >= NS_PER_S) {
    secs += 1n;
    nanos = 0;
  }
  return encode(secs, nanos & ~WHITENER_MASK);
}

/** Lexicographic comparison, which is chronological for TAI64N: <0, 0 or >0. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_LEN; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** True when `a` is strictly later than `b`. */
export function isAfter(a: Uint8Array, b: Uint8Array): boolean {
  return compareTai64n(a, b) > 0;
}

function encode(secs: bigint, nanos: number): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const dv = view(out);
  dv.setBigUint64(0, secs, false);
  dv.setUint32(8, nanos >>> 0, false);
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
