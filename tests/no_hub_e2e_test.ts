/**
 * End-to-end without a hub, in network namespaces (the demo topology: a hub, c1 public, c2 and c3
 * each behind its own MASQUERADE NAT), with real meshub processes that drop root to `nobody`:
 *
 * (a) the mesh forms through the hub, the hub dies, c2 (behind NAT) restarts and gets its edges
 *     back from its peer cache alone (c3 is behind a filtering NAT too: it only lets c2's new
 *     mapping in after c1 introduced them);
 * (b) with the hub still dead, a new client c4 (behind NAT) that knows only c1 (`[[bootstrap]]`)
 *     joins and gets a direct edge to every member, at each member's own address.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { addNatClient, buildDemoTopology, type ClientSite } from "./lab/topology.ts";
import {
  type ClientNode,
  failedPairs,
  meshubCommand,
  newPsk,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "no-hub e2e") !== null;

const TESTING = `
[testing]
keepalive_ms = 2000
hub_keepalive_ms = 2000
`;

function hostOf(endpoint: string): string {
  return endpoint.replace(/:\d+$/, "");
}

Deno.test({
  name: "no hub: a restarted client reconnects from its peer cache; a new one joins via bootstrap",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-nohub-" });
  try {
    const topo = await buildDemoTopology(lab);
    const sites = ["c1", "c2", "c3"].map((n) => topo.clients[n]!) as ClientSite[];
    const hub = await startHub(lab, topo.hub.ns, {
      addresses: [topo.hub.address],
      extraArgs: ["--keepalive", "2"],
    });
    const options = {
      dir,
      psk: newPsk(),
      hubs: [`${topo.hub.address}:3731`],
      extraToml: TESTING,
      extraArgs: ["-v"],
      // The cache must stay writable after the drop (the directory is root's, mode 0700).
      nodeToml: 'user = "nobody"\ngroup = "nogroup"',
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));
    const others = (n: ClientNode) => nodes.filter((m) => m !== n).map((m) => m.name);

    await t.step(
      "(a) the mesh forms via the hub and every client caches its two peers",
      async () => {
        for (const n of nodes) await waitForEdges(n, others(n));
        for (const n of nodes) {
          await n.proc.waitForLine(/peer cache: 2 members saved/, { timeoutMs: 20_000 });
          const info = await Deno.stat(`${dir}/${n.name}.key.peers`);
          assert.equal(info.mode! & 0o777, 0o600, `${n.name}: cache mode`);
        }
        assert.deepEqual(await failedPairs(lab, nodes, nodes), []);
      },
    );

    await t.step("(a) the hub dies; c2 restarts and reconnects to all from its cache", async () => {
      await hub.stop();
      const old = nodes[1]!;
      await old.proc.stop();
      const c2 = await startClient(lab, old.site, options);
      nodes[1] = c2;
      await c2.proc.waitForLine(/peer cache \S+: 2 members, 0 expired/);
      const edges = await waitForEdges(c2, ["c1", "c3"], { timeoutMs: 60_000 });
      console.log(
        `c2 restarted without a hub: ${
          edges.map((e) => `${e.peer} up ${e.afterMs} ms after loading the cache`).join(", ")
        }`,
      );
      for (const e of edges) {
        assert.equal(hostOf(e.endpoint), topo.clients[e.peer]!.publicAddress, `c2→${e.peer}`);
      }
      // c3's NAT only let c2's new mapping in once c1 had introduced them: c3 learnt c2's new
      // endpoint from a member (no hub is left to tell it).
      const c3 = nodes[2]!;
      const status = await lab.exec(c3.site.ns, meshubCommand("status", "--json", c3.configPath), {
        check: true,
        timeoutMs: 60_000,
      });
      const c2Row = JSON.parse(status.stdout).members.find((m: { name: string }) =>
        m.name === "c2"
      );
      assert.ok(c2Row, "c3 does not know c2");
      assert.equal(hostOf(c2Row.endpoint), old.site.publicAddress);
      assert.ok(
        c2Row.candidates.some((c: { source: string; endpoint: string }) =>
          c.source === "peer" && c.endpoint === c2Row.endpoint
        ),
        `c3 never heard of c2's new endpoint from c1: ${JSON.stringify(c2Row.candidates)}`,
      );
      assert.deepEqual(await failedPairs(lab, nodes, nodes), []);
      assert.ok(hub.exited, "the hub must be dead");
    });

    await t.step("(b) a new client knowing only c1 joins with direct edges to all", async () => {
      const c1 = nodes[0]!;
      const pubkey = await lab.exec(c1.site.ns, meshubCommand("pubkey", c1.configPath), {
        check: true,
        timeoutMs: 60_000,
      });
      const bootstrap = `
[[bootstrap]]
endpoint = "${c1.site.address}:${c1.port}"
public_key = "${pubkey.stdout.trim()}"
`;
      const site = await addNatClient(lab, topo, "c4");
      const c4 = await startClient(lab, site, {
        ...options,
        extraToml: TESTING + bootstrap,
      });
      await c4.proc.waitForLine(/edge up: bootstrap@\S+ via (\S+)/, { timeoutMs: 30_000 });
      await c4.proc.waitForLine(/bootstrap member \S+ is c1/, { timeoutMs: 30_000 });
      // Direct: each edge goes to the member's own public address, not to c1's.
      const edges = await waitForEdges(c4, ["c2", "c3"], { timeoutMs: 60_000 });
      console.log(
        `c4 joined via c1: ${
          edges.map((e) => `${e.peer} up ${e.afterMs} ms after being introduced`).join(", ")
        }`,
      );
      for (const e of edges) {
        assert.equal(hostOf(e.endpoint), topo.clients[e.peer]!.publicAddress, `c4→${e.peer}`);
        assert.notEqual(hostOf(e.endpoint), c1.site.address);
      }
      for (const n of nodes) {
        const [e] = await waitForEdges(n, ["c4"], { timeoutMs: 60_000 });
        assert.equal(hostOf(e!.endpoint), site.publicAddress, `${n.name}→c4`);
      }
      assert.deepEqual(await failedPairs(lab, [c4], nodes), []);
      assert.deepEqual(await failedPairs(lab, nodes, [c4]), []);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
