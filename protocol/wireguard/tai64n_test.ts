import { compareTai64n, isAfter, nextTai64n, tai64n } from "./tai64n.ts";
import { assertEquals, hex } from "./_test_helpers.ts";

Deno.test("tai64n() encodes the Unix epoch as label 2^62 + 10 and whitens nanoseconds", () => {
  assertEquals(hex(tai64n(0)), "400000000000000a" + "00000000");
  // 1.5 s: 500 000 000 ns = 0x1dcd6500, low 24 bits cleared = 0x1d000000.
  assertEquals(hex(tai64n(1500)), "400000000000000b" + "1d000000");
});

Deno.test("isAfter() orders timestamps chronologically", () => {
  const a = tai64n(1_700_000_000_000);
  const b = tai64n(1_700_000_000_100);
  assertEquals(isAfter(b, a), true);
  assertEquals(isAfter(a, b), false);
  assertEquals(isAfter(a, a), false);
  assertEquals(compareTai64n(a, a), 0);
  // Within one whitening step the timestamp repeats.
  assertEquals(compareTai64n(tai64n(1000), tai64n(1010)), 0);
});

Deno.test("nextTai64n() is the next whitened step, carrying into seconds", () => {
  const t = tai64n(1000);
  const n = nextTai64n(t);
  assertEquals(isAfter(n, t), true);
  assertEquals(hex(n), "400000000000000b" + "01000000");
  const late = tai64n(1999);
  assertEquals(hex(nextTai64n(late)), "400000000000000c" + "00000000");
});
