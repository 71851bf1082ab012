/**
 * The lab's link impairment (tests/lab/impair.ts): the bounded delay line on its own, and in a
 * real core router, that the delay and the loss are really applied (ping RTTs and loss).
 */
import assert from "node:assert/strict";
import { DelayLine } from "./lab/delay_line.ts";
import { impairedInternet } from "./lab/impair.ts";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";

/** A deterministic random source: a fixed cycle of values. */
function cycle(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

Deno.test("delay line: each packet waits delay ± jitter, released earliest first", () => {
  const line = new DelayLine({
    delayMs: 100,
    jitterMs: 50,
    maxPackets: 10,
    maxBytes: 1000,
    random: cycle([0.99, 0, 0.5]),
  });
  const buf = new Uint8Array([1]);
  assert.ok(line.push(buf, 0)); // at 149
  buf[0] = 2; // the line keeps a copy
  assert.ok(line.push(buf, 0)); // at 50
  buf[0] = 3;
  assert.ok(line.push(buf, 10)); // at 110
  assert.equal(line.nextDueMs(), 50);
  assert.deepEqual(line.due(49), []);
  assert.deepEqual(line.due(50).map((p) => p[0]), [2]);
  assert.deepEqual(line.due(1000).map((p) => p[0]), [3, 1]);
  assert.equal(line.nextDueMs(), undefined);
  assert.deepEqual(line.counters, { queued: 3, released: 3, dropped: 0, peakPackets: 3 });
});

Deno.test("delay line: bounded in packets and bytes, drops counted", () => {
  const line = new DelayLine({ delayMs: 10, jitterMs: 0, maxPackets: 3, maxBytes: 250 });
  assert.ok(line.push(new Uint8Array(100), 0));
  assert.ok(line.push(new Uint8Array(100), 0));
  assert.ok(!line.push(new Uint8Array(100), 0), "byte bound");
  assert.ok(line.push(new Uint8Array(50), 0));
  assert.ok(!line.push(new Uint8Array(1), 0), "packet bound");
  assert.equal(line.packets, 3);
  assert.equal(line.bytes, 250);
  assert.equal(line.counters.dropped, 2);
  assert.equal(line.due(10).length, 3);
  assert.equal(line.bytes, 0);
  assert.ok(line.push(new Uint8Array(250), 10), "room again once released");
});

Deno.test("delay line: random delays stay within the bounds, mean close to the delay", () => {
  const line = new DelayLine({ delayMs: 100, jitterMs: 50, maxPackets: 10_000, maxBytes: 1e6 });
  const n = 5000;
  for (let i = 0; i < n; i++) line.push(new Uint8Array(1), 0);
  let sum = 0;
  let last = -Infinity;
  for (let t = 0; t <= 151 && line.packets > 0; t++) {
    for (const _ of line.due(t)) {
      assert.ok(t >= 50 && t <= 151, `released at ${t}`);
      assert.ok(t >= last);
      last = t;
      sum += t;
    }
  }
  assert.equal(line.counters.released, n);
  assert.ok(Math.abs(sum / n - 100) < 5, `mean ${sum / n}`);
  assert.throws(() => new DelayLine({ delayMs: 10, jitterMs: 20, maxPackets: 1, maxBytes: 1 }));
});

const skip = labSkipReason(["ip", "iptables", "ping"], "impairment lab test") !== null;

Deno.test({
  name: "impairment: pings through the core are delayed 100 ± 50 ms each way and 10% lost",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using lab = new Lab();
  const net = await impairedInternet(lab, { lossPercent: 10, delayMs: 100, jitterMs: 50 });
  const a = await net.publicClient("a", 21);
  const b = await net.publicClient("b", 22);
  const count = 300;
  const ping = await lab.ping(a.ns, b.address, { count, intervalS: 0.02, timeoutS: 2 });
  const rtts = [...ping.rttsMs].sort((x, y) => x - y);
  const at = (q: number) => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))]!;
  const counters = await net.counters();
  net.delay.kill("SIGUSR1");
  const { line: stats } = await net.delay.waitForLine(/^stats /);
  console.log(
    `${count} pings a→b through the core: ${ping.received} replies (loss ${
      ping.lossPercent.toFixed(1)
    }%), RTT min ${at(0)} / median ${at(0.5)} / p90 ${at(0.9)} / max ${
      at(1)
    } ms; core: ${counters.lost} of ${counters.offered} lost; delay line: ${stats}`,
  );
  // Two traversals of the core per round trip: each at least 50 ms, 100 ms on average.
  assert.ok(at(0) >= 99, `min RTT ${at(0)} ms: the delay is not applied`);
  assert.ok(at(0.5) >= 170 && at(0.5) <= 240, `median RTT ${at(0.5)} ms, expected ≈ 200`);
  // Loss: 1 − 0.9² = 19% per round trip; binomial over 300 pings, ± 4 standard deviations.
  assert.ok(
    ping.lossPercent >= 10 && ping.lossPercent <= 28,
    `round-trip loss ${ping.lossPercent}%, expected ≈ 19%`,
  );
  // Each direction: the loss rule dropped ≈ 10% of what the core was asked to forward.
  const lostPercent = (100 * counters.lost) / counters.offered;
  assert.ok(counters.offered >= count, `offered ${counters.offered}`);
  assert.ok(lostPercent >= 5 && lostPercent <= 15, `core lost ${lostPercent.toFixed(1)}%`);
});
