import assert from "node:assert/strict";
import { DataPathError, superviseLoops } from "./supervise.ts";

Deno.test("superviseLoops reports a loop that throws while running, once", async () => {
  const failures: DataPathError[] = [];
  const broken = Promise.reject(new Error("read: EBADF"));
  const alsoBroken = Promise.reject(new Error("second"));
  superviseLoops([broken, alsoBroken], () => false, (e) => failures.push(e));
  await Promise.allSettled([broken, alsoBroken]);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.message, /data path failed: read: EBADF/);
  assert.ok(failures[0]!.cause instanceof Error);
});

Deno.test("superviseLoops reports a loop that returns while running", async () => {
  const failures: DataPathError[] = [];
  const ended = Promise.resolve();
  superviseLoops([ended], () => false, (e) => failures.push(e));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.message, /ended unexpectedly/);
});

Deno.test("superviseLoops stays quiet when loops end after the stop began", async () => {
  const failures: DataPathError[] = [];
  let stopping = false;
  const { promise, resolve } = Promise.withResolvers<void>();
  superviseLoops([promise], () => stopping, (e) => failures.push(e));
  stopping = true;
  resolve();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(failures, []);
});
