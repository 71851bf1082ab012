/**
 * Checks the lab helpers on the real demo topology (root only): reachability through the NATs,
 * the addresses and ports the hub sees, isolation of the NAT LANs, and complete teardown.
 */

import assert from "node:assert/strict";
import { Lab, listNamespaces } from "./lab/netns.ts";
import { addNatClient, buildDemoTopology } from "./lab/topology.ts";
import { labSkipReason } from "./lab/packages.ts";

const NEEDS_ROOT = labSkipReason(["ip", "iptables", "ping"], "lab tests") !== null;
if (NEEDS_ROOT) console.error("tests/lab_test.ts: skipped, needs root on Linux (ip netns)");

const HUB_PORTS = [5001, 5002];

/** Prints "ready", then "<local port> <remote addr> <remote port>" per datagram received. */
const LISTENER = `
const ports = Deno.args.slice(1).map(Number);
const socks = ports.map((port) => Deno.listenDatagram({ transport: "udp", hostname: Deno.args[0], port }));
console.log("ready");
await Promise.all(socks.map(async (s, i) => {
  for await (const [, from] of s) console.log("got", ports[i], from.hostname, from.port);
}));
`;

/** Sends one datagram from local port args[0] to args[1] on each port in args[2..]. */
const SENDER = `
const [local, host, ...ports] = Deno.args;
const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: Number(local) });
for (const p of ports) await s.send(new TextEncoder().encode("probe"), { transport: "udp", hostname: host, port: Number(p) });
s.close();
`;

Deno.test({
  name: "demo topology: NAT clients reach the hub from their NAT address, LANs stay apart",
  ignore: NEEDS_ROOT,
  async fn() {
    const deno = Deno.execPath();
    let prefix: string;
    {
      await using lab = new Lab();
      prefix = lab.prefix;
      const topo = await buildDemoTopology(lab);
      const { c1, c2, c3 } = topo.clients;
      assert.ok(c1 && c2 && c3);
      const c4 = await addNatClient(lab, topo, "c4", { randomFully: true });
      assert.equal(c4.publicAddress, "198.18.0.4");
      assert.equal(c4.address, "198.19.4.10");

      // No namespace has a default route.
      for (const ns of lab.namespaces) {
        const r = await lab.exec(ns, ["ip", "route", "show", "default"], { check: true });
        assert.equal(r.stdout.trim(), "", `default route in ${ns}`);
      }

      // Everyone reaches the hub; c1 also over the IPv6 underlay.
      for (const c of [c1, c2, c3, c4]) {
        const p = await lab.ping(c.ns, topo.hub.address, { count: 2 });
        assert.equal(p.received, 2, `${c.name} -> hub:\n${p.output}`);
        assert.ok(p.avgRttMs !== undefined && p.avgRttMs < 100);
      }
      const p6 = await lab.ping(c1.ns, topo.hub.address6, { count: 2 });
      assert.equal(p6.received, 2, `c1 -> hub over IPv6:\n${p6.output}`);

      // The hub sees NAT clients from their router's WAN address. The plain MASQUERADE keeps the
      // port and one mapping for both destinations; --random-fully gives one port per destination.
      const listener = lab.spawn(topo.hub.ns, [
        deno,
        "eval",
        "--unstable-net",
        LISTENER,
        topo.hub.address,
        ...HUB_PORTS.map(String),
      ]);
      await listener.waitForLine(/^ready$/);
      const seen = new Map<string, { address: string; port: number }[]>();
      for (const [c, local] of [[c1, 40001], [c2, 40002], [c4, 40004]] as const) {
        const since = listener.lineCount;
        await lab.exec(c.ns, [
          deno,
          "eval",
          "--unstable-net",
          SENDER,
          String(local),
          topo.hub.address,
          ...HUB_PORTS.map(String),
        ], { check: true });
        const got = [];
        let from = since;
        for (let i = 0; i < HUB_PORTS.length; i++) {
          const m = await listener.waitForLine(/^got (\d+) (\S+) (\d+)$/, { since: from });
          from = m.index + 1;
          got.push({ address: m.match[2]!, port: Number(m.match[3]) });
        }
        seen.set(c.name, got);
      }
      const [c1a, c1b] = seen.get("c1")!;
      assert.deepEqual([c1a, c1b], [{ address: "198.18.0.11", port: 40001 }, {
        address: "198.18.0.11",
        port: 40001,
      }]);
      const [c2a, c2b] = seen.get("c2")!;
      assert.deepEqual([c2a, c2b], [{ address: "198.18.0.2", port: 40002 }, {
        address: "198.18.0.2",
        port: 40002,
      }]);
      const [c4a, c4b] = seen.get("c4")!;
      assert.equal(c4a!.address, "198.18.0.4");
      assert.equal(c4b!.address, "198.18.0.4");
      assert.notEqual(c4a!.port, c4b!.port, "symmetric NAT should map each destination anew");

      // c2 has no route to c3's LAN; the hub cannot reach into a NAT LAN either.
      const direct = await lab.ping(c2.ns, c3.address, { count: 1, timeoutS: 1 });
      assert.equal(direct.received, 0, direct.output);
      const inbound = await lab.ping(topo.hub.ns, c2.address, { count: 1, timeoutS: 1 });
      assert.equal(inbound.received, 0, inbound.output);

      await listener.stop();
    }
    assert.deepEqual(await listNamespaces(prefix), [], "lab namespaces left behind");
  },
});

Deno.test({
  name: "Lab.close() removes namespaces and processes after a failure inside the lab",
  ignore: NEEDS_ROOT,
  async fn() {
    const lab = new Lab();
    let sleeper;
    try {
      const a = await lab.namespace("a");
      sleeper = lab.spawn(a, ["sleep", "30"]);
      await lab.exec(a, ["false"], { check: true });
      assert.fail("exec with check should have thrown");
    } catch (e) {
      assert.match(String(e), /lab command `ip netns exec \S+-a false` exited with 1/);
    } finally {
      await lab.close();
    }
    const status = await sleeper!.status;
    assert.equal(status.success, false);
    assert.deepEqual(await listNamespaces(lab.prefix), []);
  },
});

Deno.test({
  name: "Lab.exec() kills a command at its timeout and waitForLine() gives up in time",
  ignore: NEEDS_ROOT,
  async fn() {
    await using lab = new Lab();
    const a = await lab.namespace("a");
    const t0 = performance.now();
    const r = await lab.exec(a, ["sleep", "10"], { timeoutMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.success, false);
    assert.ok(performance.now() - t0 < 3000);
    const p = lab.spawn(a, ["sh", "-c", "echo one; sleep 10"]);
    await p.waitForLine(/^one$/);
    await assert.rejects(p.waitForLine(/^two$/, { timeoutMs: 200 }), /no line matching/);
  },
});

Deno.test("Lab refuses addresses outside the lab ranges", async () => {
  const { assertLabAddress } = await import("./lab/netns.ts");
  for (const ok of ["198.18.0.1/24", "198.19.255.10", "fd00:0:1::1/64", "fdab::1"]) {
    assertLabAddress(ok);
  }
  for (
    const bad of ["10.0.0.1/24", "192.168.1.1", "172.16.0.1", "8.8.8.8", "198.20.0.1", "fe80::1"]
  ) {
    assert.throws(() => assertLabAddress(bad), RangeError, bad);
  }
  assert.throws(() => assertLabAddress("198.18.0.0/8"), RangeError);
  assert.throws(() => assertLabAddress("fd::1/64"), RangeError);
});
