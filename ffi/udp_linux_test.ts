import assert from "node:assert/strict";
import {
  encodeSockaddr,
  linuxUdpAvailable,
  type LinuxUdpSocket,
  openLinuxUdpSocket,
  RECEIVE_BATCH,
} from "./udp_linux.ts";
import { OsError } from "./libc.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { Lab, randomLabPrefix } from "../tests/lab/netns.ts";
import { labSkipReason } from "../tests/lab/packages.ts";

const NOT_LINUX = !linuxUdpAvailable();
const NEEDS_ROOT = labSkipReason(["ip"], "UDP send-queue test") !== null;
if (NEEDS_ROOT) {
  console.error(
    "ffi/udp_linux_test.ts: the full-send-buffer test is skipped, needs root (ip netns)",
  );
}
/** Bounds every wait in these tests; they never depend on speed. */
const WAIT_LIMIT = 200;

/** Receives until `want` datagrams arrived (copies), bounded in waits. */
async function receiveAll(
  sock: LinuxUdpSocket,
  want: number,
): Promise<{ data: Uint8Array[]; from: Endpoint[] }> {
  const data: Uint8Array[] = [];
  const from: Endpoint[] = [];
  for (let i = 0; i < WAIT_LIMIT && data.length < want; i++) {
    await sock.waitReadable();
    sock.tryReceive((d, f) => {
      data.push(d.slice());
      from.push(f);
    });
  }
  return { data, from };
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i) & 0xff;
  return b;
}

function pair(options: { gso?: boolean; gro?: boolean } = {}): [LinuxUdpSocket, LinuxUdpSocket] {
  const a = openLinuxUdpSocket({ port: 0, ...options });
  try {
    return [a, openLinuxUdpSocket({ port: 0, ...options })];
  } catch (e) {
    a.close();
    throw e;
  }
}

Deno.test({
  name:
    "LinuxUdpSocket: a batch of mixed sizes arrives complete and in order, from a normalised IPv4 endpoint",
  ignore: NOT_LINUX,
  async fn() {
    const [a, b] = pair();
    try {
      assert.equal(a.family, 6, "dual-stack by default");
      const sizes = Array.from({ length: 3 * RECEIVE_BATCH + 5 }, (_, i) => 1 + (i * 97) % 1500);
      const to = { hostname: "127.0.0.1", port: b.port };
      // Each buffer is reused at once: the socket must have copied it.
      const scratch = new Uint8Array(1500);
      for (const [i, n] of sizes.entries()) {
        scratch.set(pattern(n, i));
        a.send(scratch.subarray(0, n), to);
        scratch.fill(0xee);
      }
      a.flush();
      assert.equal(a.stats.sent, sizes.length);
      assert.equal(a.stats.sendDropped + a.stats.sendErrors, 0);
      // Batched: a few sendmmsg calls, not one per datagram.
      assert.ok(a.stats.sendCalls < sizes.length / 10, `${a.stats.sendCalls} calls`);
      const got = await receiveAll(b, sizes.length);
      assert.equal(got.data.length, sizes.length);
      for (const [i, n] of sizes.entries()) assert.deepEqual(got.data[i], pattern(n, i), `#${i}`);
      // `::ffff:127.0.0.1` on the dual-stack socket is reported as plain IPv4, one object.
      assert.deepEqual(got.from[0], { hostname: "127.0.0.1", port: a.port });
      assert.ok(got.from.every((f) => f === got.from[0]), "the sender's endpoint is cached");
      assert.ok(b.stats.receiveCalls >= 1 && b.stats.receiveCalls < sizes.length);
      assert.equal(b.tryReceive(() => assert.fail("nothing left")), 0);
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name: "LinuxUdpSocket: equal-size datagrams to one peer share GSO messages and arrive one by one",
  ignore: NOT_LINUX,
  async fn() {
    for (const gro of [true, false]) {
      const [a, b] = pair({ gro });
      try {
        const to = { hostname: "127.0.0.1", port: b.port };
        const other = { hostname: "127.0.0.1", port: a.port };
        // 100 × 1200 (two GSO messages: 64 segments at most), a short tail that ends the
        // second, then one to another endpoint that must not join it.
        for (let i = 0; i < 100; i++) a.send(pattern(1200, i), to);
        a.send(pattern(700, 100), to);
        a.send(pattern(1200, 101), to);
        a.send(pattern(5, 102), other);
        a.flush();
        assert.equal(a.stats.sent, 103);
        if (a.gso) {
          assert.equal(a.stats.gsoMessages, 2);
          assert.equal(a.stats.sendCalls, 1);
        }
        const got = await receiveAll(b, 102);
        assert.equal(got.data.length, 102);
        for (let i = 0; i < 100; i++) assert.deepEqual(got.data[i], pattern(1200, i), `#${i}`);
        assert.deepEqual(got.data[100], pattern(700, 100));
        assert.deepEqual(got.data[101], pattern(1200, 101));
        if (!gro) assert.equal(b.stats.groBuffers, 0);
        const self = await receiveAll(a, 1);
        assert.deepEqual(self.data[0], pattern(5, 102));
      } finally {
        a.close();
        b.close();
      }
    }
  },
});

Deno.test({
  name: "LinuxUdpSocket: IPv6 senders get canonical text; replies to a received endpoint go back",
  ignore: NOT_LINUX,
  async fn() {
    const [a, b] = pair();
    try {
      a.send(pattern(10, 1), { hostname: "0:0:0:0:0:0:0:1", port: b.port });
      a.flush();
      if (a.stats.sendErrors > 0) return; // no IPv6 loopback here
      const got = await receiveAll(b, 1);
      assert.deepEqual(got.from[0], { hostname: "::1", port: a.port });
      // Mapped IPv4 text is accepted as a destination too.
      b.send(pattern(20, 2), got.from[0]!);
      b.send(pattern(30, 3), { hostname: "::ffff:127.0.0.1", port: a.port });
      b.flush();
      const back = await receiveAll(a, 2);
      assert.deepEqual(back.data, [pattern(20, 2), pattern(30, 3)]);
      assert.deepEqual(back.from[0], { hostname: "::1", port: b.port });
      assert.deepEqual(back.from[1], { hostname: "127.0.0.1", port: b.port });
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name: "LinuxUdpSocket: an IPv4-only socket counts IPv6 and non-IP destinations as errors",
  ignore: NOT_LINUX,
  async fn() {
    const a = openLinuxUdpSocket({ port: 0, family: 4 });
    try {
      assert.equal(a.family, 4);
      a.send(pattern(10, 1), { hostname: "fd00::1", port: 9 });
      a.send(pattern(10, 1), { hostname: "example.org", port: 9 });
      a.send(pattern(10, 1), { hostname: "127.0.0.1", port: 0 });
      a.send(pattern(10, 1), { hostname: "127.0.0.1", port: a.port });
      a.flush();
      assert.equal(a.stats.sendErrors, 3);
      const got = await receiveAll(a, 1);
      assert.deepEqual(got.from[0], { hostname: "127.0.0.1", port: a.port });
    } finally {
      a.close();
    }
  },
});

Deno.test("encodeSockaddr() writes sockaddr_in6 (IPv4 mapped) or sockaddr_in", () => {
  const six = encodeSockaddr({ hostname: "198.18.0.1", port: 0x1234 }, 6)!;
  assert.equal(six.length, 28);
  assert.deepEqual([...six.subarray(0, 4)], [10, 0, 0x12, 0x34]);
  assert.deepEqual([...six.subarray(8, 24)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    198,
    18,
    0,
    1,
  ]);
  const four = encodeSockaddr({ hostname: "::ffff:198.18.0.1", port: 80 }, 4)!;
  assert.deepEqual([...four.subarray(0, 8)], [2, 0, 0, 80, 198, 18, 0, 1]);
  assert.equal(encodeSockaddr({ hostname: "fd00::1", port: 80 }, 4), null);
  assert.equal(encodeSockaddr({ hostname: "fd00::1", port: 65536 }, 6), null);
  assert.equal(encodeSockaddr({ hostname: "[fd00::1]", port: 80 }, 6), null);
});

Deno.test({
  name: "LinuxUdpSocket: tryReceive() honours its budget and leaves the rest for the next call",
  ignore: NOT_LINUX,
  async fn() {
    const [a, b] = pair({ gro: false });
    try {
      for (let i = 0; i < 10; i++) {
        a.send(pattern(100 + i, i), { hostname: "127.0.0.1", port: b.port });
      }
      a.flush();
      await b.waitReadable();
      const first: number[] = [];
      // The budget is checked between recvmmsg calls: one call may return up to a batch.
      assert.ok(b.tryReceive((d) => first.push(d.length), 1) >= 1);
      const rest = await receiveAll(b, 10 - first.length);
      assert.deepEqual(
        [...first, ...rest.data.map((d) => d.length)],
        [...Array(10).keys()].map((i) => 100 + i),
      );
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name:
    "LinuxUdpSocket: close() wakes a pending wait at once, later calls fail or count, the port is free",
  ignore: NOT_LINUX,
  async fn() {
    const a = openLinuxUdpSocket({ port: 0 });
    const waiting = a.waitReadable();
    a.close();
    const woke = await Promise.race([
      waiting.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 5_000)),
    ]);
    assert.equal(woke, true);
    assert.equal(a.closed, true);
    assert.throws(() => a.tryReceive(() => {}), /closed/);
    a.send(new Uint8Array(1), { hostname: "127.0.0.1", port: 9 });
    a.flush();
    assert.equal(a.stats.sendErrors, 1);
    a.close();
    // The fd is closed once the waiter has returned: the port can be bound again.
    const again = openLinuxUdpSocket({ port: a.port });
    again.close();
  },
});

Deno.test({
  name: "openLinuxUdpSocket() refuses a port in use with EADDRINUSE and a readable message",
  ignore: NOT_LINUX,
  fn() {
    const a = openLinuxUdpSocket({ port: 0 });
    try {
      assert.throws(
        () => openLinuxUdpSocket({ port: a.port }),
        (e: unknown) =>
          e instanceof OsError && e.code === "EADDRINUSE" &&
          e.message.includes(`udp port ${a.port} is already in use`),
      );
      assert.throws(() => openLinuxUdpSocket({ port: 70000 }), RangeError);
    } finally {
      a.close();
    }
  },
});

Deno.test({
  name:
    "LinuxUdpSocket: a full send buffer drops and counts (EAGAIN) instead of queueing, and recovers",
  ignore: NOT_LINUX || NEEDS_ROOT,
  async fn() {
    await using lab = new Lab({ prefix: randomLabPrefix("mhudp") });
    const ns = await lab.namespace("s");
    // A segment whose only other address never answers ARP: datagrams wait in the neighbour
    // queue, charged to the socket's send buffer.
    for (
      const cmd of [
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", "198.18.77.1/24", "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
      ]
    ) await lab.exec(ns, cmd, { check: true });
    const fixture = new URL("../tests/fixtures/udp_full.ts", import.meta.url).pathname;
    const r = await lab.exec(
      ns,
      [
        Deno.execPath(),
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-run",
        fixture,
        "198.18.77.2",
      ],
      { check: true, timeoutMs: 30_000 },
    );
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    const full = out.full;
    assert.equal(full.sent + full.sendDropped + full.sendErrors, 20 * 64, r.stdout);
    assert.ok(full.sendDropped > 20 * 64 / 2, `only ${full.sendDropped} dropped: ${r.stdout}`);
    assert.ok(full.sent >= 1, r.stdout);
    assert.equal(full.sendErrors, 0, r.stdout);
    assert.equal(out.sentAfter, 1, "sending works again once the queue drained");
    assert.equal(out.loopback, 1, r.stdout);
    assert.ok(out.rssGrowth < 16 << 20, r.stdout);
  },
});

Deno.test({
  name:
    "LinuxUdpSocket: reserve()/commit() send in place, join GSO runs, and an uncommitted room sends nothing",
  ignore: NOT_LINUX,
  async fn() {
    const [a, b] = pair();
    try {
      const to = { hostname: "127.0.0.1", port: b.port };
      for (let i = 0; i < 10; i++) {
        const room = a.reserve(1500)!;
        room.set(pattern(1200, i));
        a.commit(1200, to);
      }
      // Reserved but never committed (e.g. the packet was queued for a handshake).
      a.reserve(1500)!.set(pattern(1200, 99));
      a.send(pattern(300, 10), to);
      a.flush();
      assert.equal(a.stats.sent, 11);
      if (a.gso) assert.equal(a.stats.gsoMessages, 1);
      const got = await receiveAll(b, 11);
      assert.equal(got.data.length, 11);
      for (let i = 0; i < 10; i++) assert.deepEqual(got.data[i], pattern(1200, i));
      assert.deepEqual(got.data[10], pattern(300, 10));
      assert.equal(a.reserve(70_000), null);
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name:
    "LinuxUdpSocket: datagrams longer than the path MTU still leave (fragmented) once GSO is refused, which is remembered",
  ignore: NOT_LINUX || NEEDS_ROOT,
  async fn() {
    await using lab = new Lab({ prefix: randomLabPrefix("mhudp") });
    const ns = await lab.namespace("m");
    for (
      const cmd of [
        ["ip", "link", "add", "v0", "mtu", "1280", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", "198.18.78.1/24", "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
        ["ip", "neigh", "replace", "198.18.78.2", "lladdr", "02:00:00:00:00:02", "dev", "v0"],
      ]
    ) await lab.exec(ns, cmd, { check: true });
    const fixture = new URL("../tests/fixtures/udp_full.ts", import.meta.url).pathname;
    const r = await lab.exec(
      ns,
      [Deno.execPath(), "run", "--allow-ffi", "--allow-read", fixture, "--mtu", "198.18.78.2"],
      { check: true, timeoutMs: 30_000 },
    );
    const [first, second] = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(first.sent, 10, r.stdout);
    assert.equal(first.sendErrors + first.sendDropped, 0, r.stdout);
    assert.equal(second.sent, 20, r.stdout);
    if (first.gso) {
      assert.equal(first.gsoRefused, 1, "the first round tried GSO once and fell back");
      assert.equal(second.gsoRefused, 1, "the second round did not try again");
      assert.equal(second.gsoMessages, 0);
    }
  },
});
