;; The Internet checksum's ones' complement sum (RFC 1071) with WebAssembly SIMD, for
;; client/checksum_simd.ts (which embeds the binary; its test rebuilds it from this file).
;;
;; sum16(p, n): the sum of the 16-bit big-endian words of memory[p, p+n) (an odd last byte
;; padded with zero), folded to 16 bits, not complemented: 0 only when every byte is 0.
;; The words are added little-endian, 8 at a time, and the folded sum is byte-swapped at the
;; end (RFC 1071 §2(B): the sum does not depend on byte order). Each i32 lane gains at most
;; 2 * 0xffff per 16 bytes, so n must stay below 512 KB; callers pass at most 64 KB.
(module
  (import "env" "memory" (memory 1))
  (func (export "sum16") (param $p i32) (param $n i32) (result i32)
    (local $acc v128)
    (local $end i32)
    (local $s i64)
    (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -16))))
    (block $vec_done
      (loop $vec
        (br_if $vec_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $acc
          (i32x4.add (local.get $acc)
            (i32x4.extadd_pairwise_i16x8_u (v128.load align=1 (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $vec)))
    (local.set $s
      (i64.add
        (i64.add
          (i64.extend_i32_u (i32x4.extract_lane 0 (local.get $acc)))
          (i64.extend_i32_u (i32x4.extract_lane 1 (local.get $acc))))
        (i64.add
          (i64.extend_i32_u (i32x4.extract_lane 2 (local.get $acc)))
          (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $acc))))))
    ;; The 0..15 bytes left: pairs, then an odd last byte (the low byte of a little-endian word).
    (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 15))))
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.ge_u (i32.add (local.get $p) (i32.const 1)) (local.get $end)))
        (local.set $s (i64.add (local.get $s) (i64.load16_u align=1 (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 2)))
        (br $pairs)))
    (if (i32.lt_u (local.get $p) (local.get $end))
      (then (local.set $s (i64.add (local.get $s) (i64.load8_u (local.get $p))))))
    ;; End-around carries down to 16 bits: a non-zero sum never folds to 0.
    (block $folded
      (loop $fold
        (br_if $folded (i64.le_u (local.get $s) (i64.const 0xffff)))
        (local.set $s
          (i64.add (i64.and (local.get $s) (i64.const 0xffff)) (i64.shr_u (local.get $s) (i64.const 16))))
        (br $fold)))
    (i32.or
      (i32.shl (i32.and (i32.wrap_i64 (local.get $s)) (i32.const 0xff)) (i32.const 8))
      (i32.shr_u (i32.wrap_i64 (local.get $s)) (i32.const 8)))))
