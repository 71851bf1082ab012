import { REPLAY_WINDOW_SIZE, ReplayFilter } from "./replay.ts";
import { assertEquals } from "./_test_helpers.ts";

Deno.test("ReplayFilter accepts each counter once, in any order inside the window", () => {
  const f = new ReplayFilter();
  assertEquals(f.validate(0), true);
  assertEquals(f.validate(0), false);
  assertEquals(f.validate(2), true);
  assertEquals(f.validate(1), true);
  assertEquals(f.validate(1), false);
  assertEquals(f.validate(2), false);
  assertEquals(f.validate(100), true);
  assertEquals(f.validate(50), true);
  assertEquals(f.validate(50), false);
});

Deno.test("ReplayFilter window is at least wireguard-go's 8128 counters", () => {
  const f = new ReplayFilter();
  const top = 20_000;
  assertEquals(f.validate(top), true);
  assertEquals(REPLAY_WINDOW_SIZE >= 8128, true);
  assertEquals(f.validate(top - REPLAY_WINDOW_SIZE), true);
  assertEquals(f.validate(top - REPLAY_WINDOW_SIZE - 1), false);
  assertEquals(f.validate(top - 8128), true);
});

Deno.test("ReplayFilter forgets old bits when the window slides far ahead", () => {
  const f = new ReplayFilter();
  for (let i = 0; i < 100; i++) assertEquals(f.validate(i), true);
  // Jump far: a whole ring's worth; counters just below the new top are new.
  const top = 100 + 10 * REPLAY_WINDOW_SIZE;
  assertEquals(f.validate(top), true);
  for (let i = top - 64; i < top; i++) assertEquals(f.validate(i), true, `counter ${i}`);
  assertEquals(f.validate(top), false);
  // Slide one word at a time across the ring boundary.
  const g = new ReplayFilter();
  for (let i = 0; i < 3 * REPLAY_WINDOW_SIZE; i += 31) assertEquals(g.validate(i), true);
  for (let i = 0; i < 3 * REPLAY_WINDOW_SIZE; i += 31) assertEquals(g.validate(i), false);
});

Deno.test("ReplayFilter rejects counters at or above the limit, and non-integers", () => {
  const f = new ReplayFilter();
  assertEquals(f.validate(10, 10), false);
  assertEquals(f.validate(9, 10), true);
  assertEquals(f.validate(2 ** 53), false);
  assertEquals(f.validate(-1), false);
  assertEquals(f.validate(1.5), false);
  assertEquals(f.validate(Number.MAX_SAFE_INTEGER - 1), true);
  f.reset();
  assertEquals(f.validate(0), true);
});
