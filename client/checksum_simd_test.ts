import assert from "node:assert/strict";
import wabtInit from "wabt";
import { CHECKSUM_SIMD_WASM, SIMD_SUM_MAX_LEN, SimdChecksum } from "./checksum_simd.ts";
import { sum16, wordView } from "./checksum.ts";
import { decodeBase64 } from "../util/base64.ts";

Deno.test("checksum_simd.wat builds to exactly the embedded module", async () => {
  const wabt = await wabtInit();
  const source = await Deno.readTextFile(new URL("./checksum_simd.wat", import.meta.url));
  const module = wabt.parseWat("checksum_simd.wat", source, { simd: true });
  try {
    module.validate();
    assert.deepEqual(new Uint8Array(module.toBinary({}).buffer), decodeBase64(CHECKSUM_SIMD_WASM));
  } finally {
    module.destroy();
  }
});

Deno.test("SimdChecksum.sum16 equals sum16 on every alignment, length and content", () => {
  const simd = SimdChecksum.create(70_000);
  assert.ok(simd !== null, "WebAssembly SIMD is missing");
  const m = simd.bytes;
  const words = wordView(m);
  let seed = 7;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 65_536; i++) m[i] = random() & 0xff;
  // Every start parity and length class 0..40, then random ranges up to 64 KB.
  for (let start = 0; start < 20; start++) {
    for (let len = 0; len <= 40; len++) {
      assert.equal(simd.sum16(start, start + len), sum16(m, start, start + len, words));
    }
  }
  for (let t = 0; t < 3000; t++) {
    const start = random() % 4096;
    const len = random() % (65_536 - start);
    assert.equal(simd.sum16(start, start + len), sum16(m, start, start + len, words));
  }
  assert.equal(simd.sum16(0, 65_536), sum16(m, 0, 65_536, words));
});

Deno.test("SimdChecksum.sum16 folds like sum16: 0 only for zeros, 0xffff for a full sum", () => {
  const simd = SimdChecksum.create(SIMD_SUM_MAX_LEN + 16)!;
  const m = simd.bytes;
  assert.equal(simd.sum16(0, 1000), 0);
  m.fill(0xff, 0, SIMD_SUM_MAX_LEN);
  // The largest range: every 32-bit lane near its limit, still no overflow.
  assert.equal(simd.sum16(0, SIMD_SUM_MAX_LEN), 0xffff);
  assert.equal(simd.sum16(1, 2), 0xff00);
  m[0] = 0x12;
  m[1] = 0x34;
  m[2] = 0xab;
  assert.equal(simd.sum16(0, 3), sum16(m, 0, 3)); // 0x1234 + 0xab00
  assert.equal(simd.sum16(0, 3), 0x1234 + 0xab00);
});
