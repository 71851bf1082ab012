/**
 * The Internet checksum (RFC 1071) for the TUN offload path: fast enough to run over every byte
 * of bulk TCP traffic.
 *
 * {@linkcode sum16} adds 32-bit words through a `Uint32Array` view of the whole buffer when the
 * caller has one (4-5x faster than pairs of bytes in V8). The ones' complement sum does not care
 * how bytes are grouped (2^16 ≡ 1 mod 0xffff), so the words are read little-endian from 4-byte
 * aligned addresses and the folded result is byte-swapped back when the range starts at an even
 * address (RFC 1071 §2(B)).
 *
 * @module
 */

/** IP protocol number of TCP. */
export const IPPROTO_TCP = 6;
/** IP protocol number of UDP. */
export const IPPROTO_UDP = 17;

/**
 * A `Uint32Array` over all of `bytes.buffer` (from offset 0), for {@linkcode sum16}. Create it
 * once per buffer, never per packet.
 */
export function wordView(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
}

/** Folds a non-negative sum of any size (up to 2^53) to 16 bits in ones' complement. */
export function fold16(sum: number): number {
  // Repeated end-around carry keeps the value mod 0xffff and gives 0 only for 0.
  return sum === 0 ? 0 : ((sum - 1) % 0xffff) + 1;
}

/**
 * The ones' complement sum of `data[start..end)` as 16-bit big-endian words (an odd last byte is
 * padded with zero), folded to 16 bits, not complemented.
 *
 * @param words {@linkcode wordView} of `data.buffer`: the fast path. Without it, pairs of bytes.
 */
export function sum16(
  data: Uint8Array,
  start: number,
  end: number,
  words: Uint32Array | null = null,
): number {
  if (words === null || end - start < 16) {
    let sum = 0;
    let i = start;
    for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
    if (i < end) sum += data[i]! << 8;
    return fold16(sum);
  }
  // Little-endian by absolute address: a byte at an even address weighs 1, at an odd one 256.
  const base = data.byteOffset;
  let a = base + start;
  const aEnd = base + end;
  const swap = (a & 1) === 0;
  let sum = 0;
  for (; (a & 3) !== 0; a++) sum += (a & 1) === 0 ? data[a - base]! : data[a - base]! << 8;
  const wEnd = aEnd >>> 2;
  // At most 2^14 words of < 2^32 for a 64 KB packet: far below 2^53, no carries needed.
  for (let w = a >>> 2; w < wEnd; w++) sum += words[w]!;
  for (a = wEnd << 2; a < aEnd; a++) {
    sum += (a & 1) === 0 ? data[a - base]! : data[a - base]! << 8;
  }
  const s = fold16(sum);
  return swap ? ((s & 0xff) << 8) | (s >>> 8) : s;
}

/**
 * The unfolded sum of the pseudo-header addresses of the IP packet at `packet[start..]` (IPv4
 * bytes 12-19, IPv6 bytes 8-39); add the protocol and the upper-layer length for the full
 * pseudo-header.
 */
export function addressSum(packet: Uint8Array, v6: boolean, start = 0): number {
  let sum = 0;
  const end = start + (v6 ? 40 : 20);
  for (let i = start + (v6 ? 8 : 12); i < end; i += 2) sum += (packet[i]! << 8) | packet[i + 1]!;
  return sum;
}

/** The IPv4 header checksum of `packet[start..start+headerLen)`, to store at byte 10. */
export function ipv4HeaderChecksum(packet: Uint8Array, start: number, headerLen: number): number {
  let sum = 0;
  const end = start + headerLen;
  for (let i = start; i < end; i += 2) {
    if (i !== start + 10) sum += (packet[i]! << 8) | packet[i + 1]!;
  }
  return ~fold16(sum) & 0xffff;
}
