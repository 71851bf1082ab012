import assert from "node:assert/strict";
import fc from "fast-check";
import { addressSum, fold16, ipv4HeaderChecksum, sum16, wordView } from "./checksum.ts";

/** RFC 1071 the slow, obvious way. */
function reference(data: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) {
    sum += (data[i]! << 8) | (i + 1 < end ? data[i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

Deno.test("sum16() matches RFC 1071 for every alignment, length and buffer offset", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.nat(7),
      fc.nat(3000),
      fc.nat(3000),
      (bytes, shift, a, b) => {
        // A view that starts at an odd or unaligned place of its buffer.
        const backing = new Uint8Array(bytes.length + shift + 8);
        backing.set(bytes, shift);
        const view = backing.subarray(shift, shift + bytes.length);
        const words = wordView(view);
        const start = Math.min(a, b, bytes.length);
        const end = Math.min(Math.max(a, b), bytes.length);
        const want = reference(view, start, end);
        assert.equal(sum16(view, start, end, words), want);
        assert.equal(sum16(view, start, end), want);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("sum16() of RFC 1071's example and of a 64 KB range of 0xff bytes", () => {
  // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
  const ex = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(sum16(ex, 0, 8), 0xddf2);
  const big = new Uint8Array(65_536 + 4).fill(0xff);
  assert.equal(sum16(big, 1, 65_537, wordView(big)), 0xffff);
  assert.equal(sum16(new Uint8Array(64), 0, 64, wordView(new Uint8Array(64))), 0);
});

Deno.test("fold16() keeps the value mod 0xffff and maps only 0 to 0", () => {
  assert.equal(fold16(0), 0);
  assert.equal(fold16(0xffff), 0xffff);
  assert.equal(fold16(0x1fffe), 0xffff);
  assert.equal(fold16(0x10000), 1);
  assert.equal(fold16(2 ** 50), fold16((2 ** 50) % 0xffff));
});

Deno.test("ipv4HeaderChecksum() and addressSum() on a hand-checked header", () => {
  // Wikipedia's IPv4 header checksum example: b861.
  const h = new Uint8Array([
    0x45,
    0x00,
    0x00,
    0x73,
    0x00,
    0x00,
    0x40,
    0x00,
    0x40,
    0x11,
    0x00,
    0x00,
    0xc0,
    0xa8,
    0x00,
    0x01,
    0xc0,
    0xa8,
    0x00,
    0xc7,
  ]);
  assert.equal(ipv4HeaderChecksum(h, 0, 20), 0xb861);
  h[10] = 0x12; // the old value is ignored
  assert.equal(ipv4HeaderChecksum(h, 0, 20), 0xb861);
  assert.equal(addressSum(h, false), 0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7);
  const shifted = new Uint8Array(24);
  shifted.set(h, 4);
  assert.equal(addressSum(shifted, false, 4), addressSum(h, false));
});
