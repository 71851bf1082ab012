/**
 * End-to-end NAT behaviour in network namespaces: two members behind one NAT that does not
 * hairpin meet over their LAN addresses.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { natLan } from "./lab/nat.ts";
import { addPublicClient, type DemoTopology } from "./lab/topology.ts";
import { newPsk, pingPairs, startClient, startHub, waitForEdges } from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "NAT e2e") !== null;

/** An internet segment with a hub at 198.18.0.1 and nothing else yet. */
async function internetWithHub(lab: Lab): Promise<DemoTopology> {
  const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:1::/64");
  const hubNs = await lab.namespace("hub");
  await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24", "fd00:0:1::1/64"]);
  return {
    internet,
    hub: { ns: hubNs, address: "198.18.0.1", address6: "fd00:0:1::1" },
    clients: {},
  };
}

Deno.test({
  name: "nat: two members behind one NAT without hairpinning connect over the LAN",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-lan-" });
  try {
    const topo = await internetWithHub(lab);
    await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address] });
    const lan = await natLan(lab, {
      name: "r7",
      internet: topo.internet,
      wanAddress: "198.18.0.7/24",
      lanBase: "198.19.7",
      clients: ["l1", "l2"],
    });
    const l1 = lan[0]!;
    const l2 = lan[1]!;
    const c1 = await addPublicClient(lab, topo, "c1", 11);
    const options = { dir, psk: newPsk(), hubs: [`${topo.hub.address}:3731`] };
    const nodes = [
      await startClient(lab, l1, options),
      await startClient(lab, l2, options),
      await startClient(lab, c1, options),
    ];
    const [n1, n2] = nodes;
    const [e12] = await waitForEdges(n1!, ["l2"]);
    const [e21] = await waitForEdges(n2!, ["l1"]);
    assert.equal(e12!.path, "LAN");
    assert.equal(e21!.path, "LAN");
    assert.match(e12!.endpoint, /^198\.19\.7\.12:\d+$/);
    assert.match(e21!.endpoint, /^198\.19\.7\.11:\d+$/);
    // The public member reaches both through the NAT's one public address.
    for (const e of await waitForEdges(nodes[2]!, ["l1", "l2"])) {
      assert.match(e.endpoint, /^198\.18\.0\.7:\d+$/);
    }
    const failed = (await pingPairs(lab, nodes, nodes)).filter((p) => p.result.received !== 3);
    assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
