import assert from "node:assert/strict";
import { POLL_SET_SLICE_MS, PollSet } from "./poll_set.ts";
import { linuxUdpAvailable, type LinuxUdpSocket, openLinuxUdpSocket } from "./udp_linux.ts";

const NOT_LINUX = !linuxUdpAvailable();
/** Bounds the waits below; the tests never depend on speed. */
const WAIT_LIMIT = 40;

function sockets(n: number): LinuxUdpSocket[] {
  const out: LinuxUdpSocket[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(openLinuxUdpSocket({ port: 0 }));
  } catch (e) {
    for (const s of out) s.close();
    throw e;
  }
  return out;
}

/** Awaits `set.wait()` until it reports readiness, bounded in count. */
async function waitReady(set: PollSet): Promise<boolean> {
  for (let i = 0; i < WAIT_LIMIT; i++) if (await set.wait()) return true;
  return false;
}

Deno.test({
  name: "PollSet: one wait wakes for whichever fd becomes readable; ready() sees both",
  ignore: NOT_LINUX,
  async fn() {
    const [first, second, sender] = sockets(3);
    try {
      const set = new PollSet([first!.fd, second!.fd]);
      assert.equal(set.ready(), false, "nothing sent yet");
      for (const target of [second!, first!]) {
        const woke = set.wait();
        sender!.send(new Uint8Array([1, 2, 3]), { hostname: "127.0.0.1", port: target.port });
        sender!.flush();
        assert.equal(await woke || await waitReady(set), true);
        assert.equal(set.ready(), true);
        assert.equal(set.ready(5), true, "a synchronous wait returns at once when ready");
        assert.equal(target.tryReceive(() => {}), 1);
        assert.equal(set.ready(), false, "drained");
      }
    } finally {
      for (const s of [first, second, sender]) s!.close();
    }
  },
});

Deno.test({
  name: "PollSet: a synchronous wait times out empty; closing a socket wakes a pending wait",
  ignore: NOT_LINUX,
  async fn() {
    const [a, b] = sockets(2);
    try {
      const set = new PollSet([a!.fd, b!.fd]);
      const start = performance.now();
      assert.equal(set.ready(2), false);
      assert.ok(performance.now() - start >= 1, "it did wait");
      const pending = set.wait(60_000);
      b!.close();
      // Shutdown reports POLLHUP: the wait ends long before its (one minute) slice.
      assert.equal(await pending, true);
      assert.ok(POLL_SET_SLICE_MS < 60_000);
    } finally {
      a!.close();
      b!.close();
    }
  },
});
