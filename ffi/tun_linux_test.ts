import assert from "node:assert/strict";
import { sysOpen } from "./libc.ts";
import {
  LinuxTun,
  POLL_SLICE_MS,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_USO4,
  TUN_F_USO6,
  validateLinuxIfName,
} from "./tun_linux.ts";

// Creating a real TUN device needs root and a network namespace: see tests/tun_test.ts. Here the
// LinuxTun read/write/wait logic runs over a FIFO, which behaves like a packet fd for this purpose.

async function withFifo(fn: (tun: LinuxTun) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "meshub_tun_test" });
  const path = `${dir}/fifo`;
  try {
    const mk = await new Deno.Command("mkfifo", { args: [path] }).output();
    assert.ok(mk.success, "mkfifo");
    // O_RDWR on a FIFO is allowed on Linux and never blocks the open.
    const fd = sysOpen(path, 0x2 | 0x800 | 0x80000);
    assert.ok(fd >= 0, "open fifo");
    const tun = new LinuxTun(fd, "fifo0");
    try {
      await fn(tun);
    } finally {
      tun.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "LinuxTun.tryRead() returns 0 when drained and a written packet otherwise",
  ignore: Deno.build.os !== "linux",
  fn: () =>
    withFifo(async (tun) => {
      const buf = new Uint8Array(2048);
      assert.equal(tun.tryRead(buf), 0);
      assert.equal(tun.write(new Uint8Array([0x60, 1, 2, 3])), true);
      await tun.waitReadable();
      assert.equal(tun.tryRead(buf), 4);
      assert.deepEqual([...buf.subarray(0, 4)], [0x60, 1, 2, 3]);
      assert.equal(tun.tryRead(buf), 0);
    }),
});

Deno.test({
  name: "LinuxTun.waitReadable() resolves soon after close() when nothing arrives",
  ignore: Deno.build.os !== "linux",
  fn: () =>
    withFifo(async (tun) => {
      const t0 = performance.now();
      const wait = tun.waitReadable();
      setTimeout(() => tun.close(), 50);
      await wait;
      const ms = performance.now() - t0;
      assert.ok(ms < POLL_SLICE_MS + 200, `took ${ms} ms`);
      assert.equal(tun.fd, -1);
      assert.throws(() => tun.tryRead(new Uint8Array(10)), /closed/);
      assert.throws(() => tun.write(new Uint8Array(10)), /closed/);
      await tun.waitReadable(); // resolves at once when closed
    }),
});

Deno.test("validateLinuxIfName() rejects empty, long and slash names", () => {
  validateLinuxIfName("meshub0");
  validateLinuxIfName("meshub%d");
  assert.throws(() => validateLinuxIfName(""), TypeError);
  assert.throws(() => validateLinuxIfName("a".repeat(16)), RangeError);
  assert.throws(() => validateLinuxIfName("a/b"), RangeError);
});

Deno.test("LinuxTun reports virtio headers and offload names from the accepted TUN_F_* bits", () => {
  const plain = new LinuxTun(-1, "t0");
  assert.equal(plain.vnetHdr, false);
  assert.deepEqual(plain.offloads, []);
  const tso = new LinuxTun(-1, "t1", TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
  assert.equal(tso.vnetHdr, true);
  assert.deepEqual(tso.offloads, ["csum", "tso4", "tso6"]);
  const all = new LinuxTun(
    -1,
    "t2",
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
  );
  assert.deepEqual(all.offloads, ["csum", "tso4", "tso6", "uso4", "uso6"]);
});
