/**
 * End-to-end: real meshub processes in network namespaces (the demo topology: a hub, c1 public,
 * c2 and c3 each behind its own MASQUERADE NAT), real TUN devices, real ping and TCP.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { addNatClient, buildDemoTopology, type ClientSite } from "./lab/topology.ts";
import {
  type ClientNode,
  failedPairs,
  newPsk,
  startClient,
  startHub,
  startTcpTransfer,
  waitForEdges,
} from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "mesh e2e") !== null;
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

// Short timers so a rekey happens within the test; hub keepalive short so a restarted hub is
// whole again quickly.
const TESTING = `
[testing]
rekey_after_ms = 4000
reject_after_ms = 12000
keepalive_ms = 2000
hub_keepalive_ms = 2000
`;

Deno.test({
  name: "mesh: 3 clients (2 behind NATs) form a full mesh that outlives its hub",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-e2e-" });
  try {
    const topo = await buildDemoTopology(lab);
    const sites = ["c1", "c2", "c3"].map((n) => topo.clients[n]!) as ClientSite[];
    const psk = newPsk();
    const hubOptions = {
      addresses: [topo.hub.address, topo.hub.address6],
      extraArgs: ["--keepalive", "2"],
    };
    let hub = await startHub(lab, topo.hub.ns, hubOptions);
    const options = {
      dir,
      psk,
      hubs: [`${topo.hub.address}:3731`],
      extraToml: TESTING,
      extraArgs: ["-v"],
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));

    await t.step("every client gets a direct edge to every other", async () => {
      for (const node of nodes) {
        const edges = await waitForEdges(node, nodes.filter((n) => n !== node).map((n) => n.name));
        for (const e of edges) {
          // Never through the hub: the endpoint is the peer's own (NAT) address.
          const host = e.endpoint.replace(/:\d+$/, "");
          assert.notEqual(host, topo.hub.address, `${node.name}→${e.peer} via the hub`);
          assert.equal(host, topo.clients[e.peer]!.publicAddress, `${node.name}→${e.peer}`);
        }
      }
    });

    await t.step("every pair pings over the VPN's IPv6 addresses", async () => {
      assert.deepEqual(await failedPairs(lab, nodes, nodes), []);
    });

    await t.step("a TCP transfer through the mesh arrives intact", async () => {
      const [c1, , c3] = nodes as [ClientNode, ClientNode, ClientNode];
      const transfer = await startTcpTransfer(lab, {
        fromNs: c3.site.ns,
        toNs: c1.site.ns,
        address: c1.address6,
        bytes: 8_000_000,
      });
      const { sent, received } = await transfer.done;
      assert.equal(received, sent);
      assert.match(sent, /bytes 8000000$/);
    });

    await t.step("with the hub dead, traffic keeps flowing across a rekey", async () => {
      await hub.stop();
      const marks = nodes.map((n) => n.proc.lineCount);
      // Each edge rekeys every rekey_after_ms (4 s) from its initiator side; every client takes
      // part in at least one new handshake with no hub around.
      await Promise.all(
        nodes.map((n, i) =>
          n.proc.waitForLine(/handshake with \S+ (done|answered)/, {
            since: marks[i],
            timeoutMs: 30_000,
          })
        ),
      );
      assert.deepEqual(await failedPairs(lab, nodes, nodes), []);
    });

    await t.step("the hub restarts and a 4th client (behind NAT) joins", async () => {
      hub = await startHub(lab, topo.hub.ns, hubOptions);
      const site = await addNatClient(lab, topo, "c4");
      const c4 = await startClient(lab, site, options);
      const old = [...nodes];
      nodes.push(c4);
      await waitForEdges(c4, old.map((n) => n.name));
      for (const n of old) await waitForEdges(n, ["c4"]);
      assert.deepEqual(await failedPairs(lab, [c4], old), []);
      assert.deepEqual(await failedPairs(lab, old, [c4]), []);
    });

    await t.step(
      "random garbage to the hub's and a client's UDP ports changes nothing",
      async () => {
        const c1 = nodes[0]!;
        const garbage = (ns: string, host: string, port: number) =>
          lab.exec(ns, [
            Deno.execPath(),
            "run",
            "--quiet",
            "--unstable-net",
            "--allow-net",
            `${FIXTURES}udp_garbage.ts`,
            host,
            String(port),
            "3000",
          ], { timeoutMs: 60_000, check: true });
        await garbage(c1.site.ns, topo.hub.address, 3731);
        await garbage(topo.hub.ns, c1.site.address, c1.port);
        await garbage(nodes[1]!.site.ns, c1.site.address, c1.port);
        assert.ok(!hub.exited, "hub crashed");
        for (const n of nodes) assert.ok(!n.proc.exited, `${n.name} crashed`);
        assert.deepEqual(await failedPairs(lab, nodes, nodes), []);
        // The hub still works: a restarted client finds every member again through it.
        const c2 = nodes[1]!;
        await c2.proc.stop();
        // SIGTERM removed the TUN device, and with it the addresses and routes.
        const link = await lab.exec(c2.site.ns, ["ip", "link", "show", "meshub0"]);
        assert.notEqual(link.code, 0, "meshub0 still exists after SIGTERM");
        const again = await startClient(lab, c2.site, options);
        nodes[1] = again;
        await waitForEdges(again, nodes.filter((n) => n !== again).map((n) => n.name));
        assert.deepEqual(await failedPairs(lab, [again], nodes), []);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
