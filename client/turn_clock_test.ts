import assert from "node:assert/strict";
import { TurnClock } from "./turn_clock.ts";

Deno.test("TurnClock: one reading per hold, the real clock outside", () => {
  let t = 100;
  const clock = new TurnClock(() => t++);
  assert.equal(clock.now(), 100);
  assert.equal(clock.now(), 101);
  const seen = clock.hold(() => [clock.now(), clock.now(), clock.now()]);
  assert.deepEqual(seen, [102, 102, 102]);
  assert.equal(clock.now(), 103);
});

Deno.test("TurnClock: a hold re-reads and releases even when the drain throws", () => {
  let t = 0;
  const clock = new TurnClock(() => (t += 10));
  assert.equal(clock.hold(() => clock.now()), 10);
  assert.equal(clock.hold(() => clock.now()), 20);
  assert.throws(() =>
    clock.hold(() => {
      throw new Error("boom");
    }), /boom/);
  assert.equal(clock.now(), 40);
});

Deno.test("TurnClock: a nested hold takes a fresh reading and keeps the outer one held", () => {
  let t = 0;
  const clock = new TurnClock(() => ++t);
  const readings = clock.hold(() => {
    const a = clock.now();
    const b = clock.hold(() => clock.now());
    return [a, b, clock.now()];
  });
  // The inner hold's reading stays until the outer drain ends: still one clock per drain.
  assert.deepEqual(readings, [1, 2, 2]);
  assert.equal(clock.now(), 3);
});
