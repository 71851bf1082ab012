import assert from "node:assert/strict";
import { DENO_MAX_SENDS_IN_FLIGHT, openUdpSocket, type UdpEndpoint } from "./udp.ts";

const LINUX = Deno.build.os === "linux";

Deno.test({
  name:
    "openUdpSocket(): the FFI socket (Linux) and the Deno one exchange datagrams, senders as plain IPv4",
  ignore: !LINUX,
  sanitizeOps: false,
  async fn() {
    const ffi = openUdpSocket(0);
    const deno = openUdpSocket(0, { preferFfi: false });
    try {
      assert.equal(ffi.kind, "linux-mmsg");
      assert.equal(deno.kind, "deno");
      ffi.send(new Uint8Array([1, 2, 3]), { hostname: "127.0.0.1", port: deno.port });
      ffi.flush();
      const [data, from] = await deno.receive();
      assert.deepEqual([...data], [1, 2, 3]);
      assert.deepEqual(from, { hostname: "127.0.0.1", port: ffi.port });
      for (let i = 0; i < 3; i++) deno.send(new Uint8Array([i]), from);
      const got: [number, UdpEndpoint][] = [];
      // Bounded: three datagrams on loopback; each call waits once.
      for (let i = 0; i < 50 && got.length < 3; i++) {
        await ffi.receiveBatch((d, f) => got.push([d[0]!, f]));
      }
      assert.deepEqual(got.map(([b]) => b), [0, 1, 2]);
      assert.deepEqual(got[0]![1], { hostname: "127.0.0.1", port: deno.port });
      // receive() hands out copies that survive later receives.
      deno.send(new Uint8Array([7]), { hostname: "127.0.0.1", port: ffi.port });
      deno.send(new Uint8Array([8]), { hostname: "127.0.0.1", port: ffi.port });
      const first = await ffi.receive();
      const second = await ffi.receive();
      assert.deepEqual([first[0][0], second[0][0]], [7, 8]);
    } finally {
      ffi.close();
      deno.close();
    }
  },
});

Deno.test({
  name: "openUdpSocket(): receiveBatch() rejects once the socket is closed",
  sanitizeOps: false,
  async fn() {
    const sock = openUdpSocket(0);
    const pending = sock.receiveBatch(() => assert.fail("nothing was sent"));
    sock.close();
    await assert.rejects(pending);
  },
});

Deno.test({
  name:
    "openUdpSocket() without FFI bounds Deno's in-flight sends: a burst beyond it is dropped and counted",
  sanitizeOps: false,
  async fn() {
    const sock = openUdpSocket(0, { preferFfi: false });
    const sink = openUdpSocket(0, { preferFfi: false });
    try {
      const burst = DENO_MAX_SENDS_IN_FLIGHT * 3;
      const to = { hostname: "127.0.0.1", port: sink.port };
      for (let i = 0; i < burst; i++) sock.send(new Uint8Array(100), to);
      assert.ok(
        sock.stats.sendDropped >= burst - DENO_MAX_SENDS_IN_FLIGHT,
        `${sock.stats.sendDropped}`,
      );
      assert.ok(sock.stats.sendDropped < burst);
      // Once the sends complete the bound frees up again (bounded wait, not a fixed sleep).
      let accepted = false;
      for (let i = 0; i < 200 && !accepted; i++) {
        await new Promise((r) => setTimeout(r, 10));
        const before = sock.stats.sendDropped;
        sock.send(new Uint8Array(1), to);
        accepted = sock.stats.sendDropped === before;
      }
      assert.ok(accepted, "sends are accepted again once the burst has left");
    } finally {
      sock.close();
      sink.close();
    }
  },
});
