import { Lab } from "./tests/lab/netns.ts";
import { buildDemoTopology } from "./tests/lab/topology.ts";
import { newPsk, startClient, startHub, waitForEdges } from "./tests/lab/meshub.ts";
await using lab = new Lab();
const dir = await Deno.makeTempDir();
const topo = await buildDemoTopology(lab);
const psk = newPsk();
const t0 = performance.now();
await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address] });
const hubs = [`${topo.hub.address}:3731`];
const c1 = await startClient(lab, topo.clients.c1!, { dir, psk, hubs });
const c2 = await startClient(lab, topo.clients.c2!, { dir, psk, hubs });
const t1 = performance.now();
await waitForEdges(c2, ["c1"]);
console.log("c2 start→edge up ms", performance.now() - t1, "hub+c1 start", t1 - t0);
const under = await lab.ping(c2.site.ns, "198.18.0.11", {
  count: 50,
  intervalS: 0.02,
  timeoutS: 2,
});
const vpn = await lab.ping(c2.site.ns, c1.address6, {
  count: 50,
  intervalS: 0.02,
  timeoutS: 2,
  v6: true,
});
const med = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log("underlay median", med(under.rttsMs), "vpn median", med(vpn.rttsMs));
const cmd = Deno.args[0];
if (cmd === "iperf") {
  const srv = lab.spawn(c1.site.ns, ["iperf3", "-s", "-1"]);
  await new Promise((r) => setTimeout(r, 500));
  const r = await lab.exec(c2.site.ns, [
    "timeout",
    "30",
    "iperf3",
    "-c",
    c1.address6,
    "-t",
    "5",
    "-f",
    "m",
  ], { timeoutMs: 40000 });
  console.log(r.stdout.split("\n").filter((l) => /sender|receiver/.test(l)).join("\n"));
  const r2 = await lab.exec(c2.site.ns, [
    "timeout",
    "30",
    "iperf3",
    "-c",
    "198.18.0.11",
    "-t",
    "3",
    "-f",
    "m",
  ], { timeoutMs: 40000 }).catch((e) => ({ stdout: String(e) }));
  void srv;
  void r2;
}
await Deno.remove(dir, { recursive: true });
