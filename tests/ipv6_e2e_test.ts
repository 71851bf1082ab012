/**
 * End-to-end over an IPv6-only underlay (hub and clients have only fd00::/8 addresses), and over
 * a dual-stack one.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import type { ClientSite } from "./lab/topology.ts";
import { newPsk, pingPairs, startClient, startHub, waitForEdges } from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "ping"], "IPv6 underlay e2e") !== null;

async function run(dualStack: boolean): Promise<void> {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-v6-" });
  try {
    const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:6::/64");
    const hubNs = await lab.namespace("hub");
    const v4 = (host: number) => dualStack ? [`198.18.0.${host}/24`] : [];
    await lab.attach(internet, hubNs, "eth0", ["fd00:0:6::1/64", ...v4(1)]);
    const sites: ClientSite[] = [];
    for (const [i, name] of ["a", "b", "c"].entries()) {
      const ns = await lab.namespace(name);
      const address6 = `fd00:0:6::${11 + i}`;
      await lab.attach(internet, ns, "eth0", [`${address6}/64`, ...v4(11 + i)]);
      sites.push({ name, ns, address: address6, address6, publicAddress: address6 });
    }
    await startHub(lab, hubNs, {
      addresses: ["fd00:0:6::1", ...(dualStack ? ["198.18.0.1"] : [])],
    });
    const hubs = ["[fd00:0:6::1]:3731", ...(dualStack ? ["198.18.0.1:3731"] : [])];
    const options = { dir, psk: newPsk(), hubs };
    const nodes = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));
    for (const n of nodes) {
      const edges = await waitForEdges(n, nodes.filter((m) => m !== n).map((m) => m.name));
      for (const e of edges) {
        if (!dualStack) {
          assert.match(e.endpoint, /^\[?fd00:0:6::1[123]\]?:\d+$/, `${n.name}→${e.peer}`);
        }
      }
      if (dualStack) {
        await n.proc.waitForLine(/registered with hub 198\.18\.0\.1:3731/);
        await n.proc.waitForLine(/registered with hub \[?fd00:0:6::1\]?:3731/);
      }
    }
    const failed = (await pingPairs(lab, nodes, nodes)).filter((p) => p.result.received !== 3);
    assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "ipv6 underlay: hub and clients with only IPv6 addresses form the mesh",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, () => run(false));

Deno.test({
  name: "ipv6 underlay: dual-stack clients register with the hub over both families and mesh",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, () => run(true));
