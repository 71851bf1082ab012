import assert from "node:assert/strict";
import { HOT_MS, type PumpPoll, runPump, spin, SPIN_MAX_BATCH, SPIN_STREAM_TURNS } from "./pump.ts";

/** A fake clock and poll set: each synchronous wait advances the clock by `step` ms. */
function fakes(options: { ready: () => boolean; step: number }) {
  let t = 1000;
  const waits: number[] = [];
  const slices: (number | undefined)[] = [];
  const poll: PumpPoll & { awaited: number } = {
    awaited: 0,
    ready(timeoutMs = 0) {
      waits.push(timeoutMs);
      const r = options.ready();
      // An empty wait lasts its whole timeout; a ready one returns after `step`.
      t += r ? options.step : timeoutMs;
      return r;
    },
    wait(sliceMs?: number) {
      this.awaited++;
      slices.push(sliceMs);
      return Promise.resolve(true);
    },
  };
  return { poll, waits, slices, now: () => t };
}

Deno.test("spin: always-ready light traffic never runs past its job bound", () => {
  const f = fakes({ ready: () => true, step: 0.05 });
  let turns = 0;
  const start = f.now();
  const ran = spin({ poll: f.poll, turn: () => (turns++, 1), stopping: () => false }, f.now, 1, 2);
  assert.equal(ran, turns);
  assert.ok(turns > 1, "it kept serving packets");
  assert.ok(f.now() - start <= 2 + 0.05, `spun ${f.now() - start} ms`);
  assert.ok(f.waits.every((w) => w === 1), "each wait is bounded by the idle window");
});

Deno.test("spin: ends after one empty idle wait, after a heavy turn, and when stopping", () => {
  const idle = fakes({ ready: () => false, step: 0 });
  assert.equal(spin({ poll: idle.poll, turn: () => 1, stopping: () => false }, idle.now, 1, 2), 0);
  assert.deepEqual(idle.waits, [1]);

  const busy = fakes({ ready: () => true, step: 0.01 });
  const heavy = spin(
    { poll: busy.poll, turn: () => SPIN_MAX_BATCH + 1, stopping: () => false },
    busy.now,
    1,
    2,
  );
  assert.equal(heavy, 1, "a burst goes back to the awaited wait");

  let stop = false;
  const s = fakes({ ready: () => true, step: 0.01 });
  const n = spin(
    { poll: s.poll, turn: () => ((stop = true), 1), stopping: () => stop },
    s.now,
    1,
    2,
  );
  assert.equal(n, 1);
});

Deno.test("runPump: no traffic, no spin; light traffic spins and stays hot; stops when told", async () => {
  const f = fakes({ ready: () => false, step: 0 });
  const handled = [0, 0, 3, 0, 2 * SPIN_MAX_BATCH, 0];
  let turn = 0;
  let advance = 0;
  await runPump({
    poll: f.poll,
    turn: () => handled[turn++] ?? 0,
    stopping: () => turn >= handled.length,
    // The last turn comes long after the others: the loop has cooled down by then.
    now: () => f.now() + (turn >= handled.length ? (advance = HOT_MS + 1) : advance),
  });
  assert.equal(turn, handled.length);
  // Cold idle turns neither spin nor give up the long wait; the light turn and the idle one
  // after it (hot) wait synchronously once each and then only yield; the heavy one does not spin.
  assert.deepEqual(f.waits, [1, 1]);
  assert.deepEqual(f.slices, [undefined, undefined, 0, 0, undefined]);
});

Deno.test("runPump: a stream of small turns stops the spinning for a while", async () => {
  const f = fakes({ ready: () => true, step: 0.3 });
  let turns = 0;
  let spinsAfterStream = -1;
  await runPump({
    poll: f.poll,
    turn: () => {
      turns++;
      // The first spin meets a stream (every wait is ready); count the waits after it.
      if (turns === 15) spinsAfterStream = f.waits.length;
      return 1;
    },
    stopping: () => turns >= 20,
    now: f.now,
  });
  assert.ok(spinsAfterStream > SPIN_STREAM_TURNS, "the first spin ran");
  assert.equal(f.waits.length, spinsAfterStream, "no synchronous waits after the stream");
});
