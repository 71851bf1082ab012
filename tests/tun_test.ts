/**
 * Real TUN devices (root only, Linux): a fixture opens a TUN in a fresh namespace and answers
 * pings through it; the interface disappears with the process.
 */

import assert from "node:assert/strict";
import { Lab, listNamespaces, randomLabPrefix } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";

const NEEDS_ROOT = labSkipReason(["ip", "ping"], "TUN tests") !== null;
if (NEEDS_ROOT) console.error("tests/tun_test.ts: skipped, needs root on Linux (TUN, ip netns)");

const FIXTURE = new URL("./fixtures/tun_echo.ts", import.meta.url).pathname;
const DENO_RUN = [Deno.execPath(), "run", "--allow-ffi", "--allow-run", "--allow-read", FIXTURE];

Deno.test({
  name: "a TUN device answers ping -6 through the fixture and vanishes when its process ends",
  ignore: NEEDS_ROOT,
  async fn() {
    const prefix = randomLabPrefix("mhtun");
    {
      await using lab = new Lab({ prefix });
      const ns = await lab.namespace("t");
      const echo = lab.spawn(ns, [...DENO_RUN, "tun0"]);
      const ready = await echo.waitForLine(/^ready (\S+)$/, { timeoutMs: 20_000 });
      assert.equal(ready.match[1], "tun0");
      const busy = await echo.waitForLine(/^second open: /);
      assert.match(busy.line, /TUN device name tun0 is busy/);

      const link = await lab.exec(ns, ["ip", "-o", "link", "show", "tun0"], { check: true });
      assert.match(link.stdout, /mtu 1420/);
      assert.match(link.stdout, /UP/);

      const ping = await lab.ping(ns, "fd00:99::2", { count: 3, timeoutS: 2 });
      assert.equal(ping.received, 3, `${ping.output}\nfixture:\n${echo.tail()}`);
      await echo.waitForLine(/^replied 3$/);

      const status = await echo.stop();
      assert.equal(status.code, 0, echo.tail());
      const gone = await lab.exec(ns, ["ip", "link", "show", "tun0"]);
      assert.equal(gone.success, false, gone.stdout);
      assert.match(gone.stderr, /does not exist/);
      const route = await lab.exec(ns, ["ip", "-6", "route", "show", "fd00:99::/64"]);
      assert.equal(route.stdout.trim(), "");
    }
    assert.deepEqual(await listNamespaces(prefix), []);
  },
});

Deno.test({
  name: "a TUN device opened with offloads has virtio headers and TSO, and still answers ping -6",
  ignore: NEEDS_ROOT,
  async fn() {
    await using lab = new Lab({ prefix: randomLabPrefix("mhtun") });
    const ns = await lab.namespace("o");
    const echo = lab.spawn(ns, [...DENO_RUN, "--offload", "tun0"]);
    const offloads = await echo.waitForLine(/^offloads (\S+) vnet (\S+)$/, { timeoutMs: 20_000 });
    assert.match(offloads.match[1]!, /^csum,tso4,tso6/);
    assert.equal(offloads.match[2], "true");
    await echo.waitForLine(/^ready tun0$/);
    const ping = await lab.ping(ns, "fd00:99::2", { count: 3, timeoutS: 2 });
    assert.equal(ping.received, 3, `${ping.output}\nfixture:\n${echo.tail()}`);
    await echo.waitForLine(/^replied 3$/);
    const status = await echo.stop();
    assert.equal(status.code, 0, echo.tail());
  },
});

Deno.test({
  name: "opening a TUN device without root fails with a CAP_NET_ADMIN hint",
  ignore: NEEDS_ROOT,
  async fn() {
    await using lab = new Lab({ prefix: randomLabPrefix("mhtun") });
    const ns = await lab.namespace("u");
    const r = await lab.exec(ns, [...DENO_RUN, "--drop-privileges", "tun0"], {
      timeoutMs: 20_000,
      check: true,
    });
    assert.match(r.stdout, /^uid 65534 euid 65534$/m);
    assert.match(
      r.stdout,
      /error: creating TUN device tun0 needs root or CAP_NET_ADMIN: ioctl\(TUNSETIFF\) failed: Operation not permitted \(EPERM\)/,
      r.stdout + r.stderr,
    );
  },
});
