/**
 * Mesh formation benchmark: one hub and N meshub clients on the lab "internet" (198.18.0.0/24),
 * half of them each behind its own NAT router (endpoint-independent MASQUERADE):
 *
 * - time from starting every client at once until each reports an edge to every other, and
 *   until one ping over the VPN (IPv6 inside) has crossed every pair;
 * - the hub is killed and one NATed client restarts: how many edges it gets back with no hub
 *   (meshub keeps no peer cache, so none are expected), then the hub is started again and the
 *   time until the restarted client has all its edges again (verified by pings);
 * - RSS of every client process and of the hub.
 *
 * Addresses: public clients `p<i>` at 198.18.0.(11+i); NAT client `n<k>` behind router `r<k+1>`
 * (sites 2-10 via `addNatClient`: WAN 198.18.0.(k+1), LAN 198.19.(k+1).0/24), further NAT sites
 * WAN 198.18.0.(100+k), LAN 198.19.(100+k).0/24.
 *
 * @module
 */
import type { Lab } from "../tests/lab/netns.ts";
import {
  addNatClient,
  addPublicClient,
  type ClientSite,
  type DemoTopology,
} from "../tests/lab/topology.ts";
import {
  type ClientNode,
  newPsk,
  startClient,
  startHub,
  waitForEdges,
} from "../tests/lab/meshub.ts";
import { median, rssBytes, sleep } from "./lib.ts";

/** What {@linkcode runFormation} measured. */
export interface FormationResult {
  n: number;
  natted: number;
  /** ms from starting the clients until every client reported every edge up. */
  edgesUpMs: number;
  /** ms from starting the clients until a ping crossed every pair. */
  pingsOkMs: number;
  /** Unordered pairs. */
  pairs: number;
  /** Pairs a ping crossed. */
  pairsOk: number;
  /** Edges the restarted client got with the hub down, within the wait. */
  restartWithoutHub: { edges: number; waitedMs: number };
  /** After the hub came back: ms until the restarted client had every edge and pings crossed. */
  restartWithHub: { allEdgesMs: number; pingsOkMs: number; pairsOk: number };
  clientRssMedian: number;
  clientRssMax: number;
  clientRssSum: number;
  hubRss: number;
  /** Hub keepalive interval the run used (seconds). */
  hubKeepaliveS: number;
  error?: string;
}

/** Options of {@linkcode runFormation}. */
export interface FormationOptions {
  quick: boolean;
  say: (line: string) => void;
}

async function addNatSite(lab: Lab, topo: DemoTopology, k: number): Promise<ClientSite> {
  const name = `n${k}`;
  if (k + 1 <= 10) return await addNatClient(lab, topo, name, { site: k + 1 });
  const s = 100 + k;
  const router = await lab.natRouter({
    name: `r${s}`,
    internet: topo.internet,
    wanAddress: `198.18.0.${s}/24`,
    client: name,
    routerLanAddress: `198.19.${s}.1/24`,
    clientAddress: `198.19.${s}.10/24`,
  });
  const site: ClientSite = {
    name,
    ns: router.clientNs,
    address: router.clientAddress,
    publicAddress: router.wanAddress,
    router,
  };
  topo.clients[name] = site;
  return site;
}

/** Pings across the given pairs (one echo, up to 3 tries each), `limit` at a time. */
async function pingAll(
  lab: Lab,
  pairs: [ClientNode, ClientNode][],
  limit = 6,
): Promise<number> {
  let ok = 0;
  let next = 0;
  const worker = async () => {
    while (next < pairs.length) {
      const [a, b] = pairs[next++]!;
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await lab.ping(a.site.ns, b.address6, { count: 1, timeoutS: 1, v6: true });
        if (r.received > 0) {
          ok++;
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return ok;
}

/** Runs the formation benchmark with `n` clients in `lab`. */
export async function runFormation(
  lab: Lab,
  n: number,
  dir: string,
  o: FormationOptions,
): Promise<FormationResult> {
  const natted = Math.floor(n / 2);
  const hubKeepaliveS = o.quick ? 3 : 20;
  const res: FormationResult = {
    n,
    natted,
    edgesUpMs: NaN,
    pingsOkMs: NaN,
    pairs: (n * (n - 1)) / 2,
    pairsOk: 0,
    restartWithoutHub: { edges: 0, waitedMs: 0 },
    restartWithHub: { allEdgesMs: NaN, pingsOkMs: NaN, pairsOk: 0 },
    clientRssMedian: NaN,
    clientRssMax: NaN,
    clientRssSum: NaN,
    hubRss: NaN,
    hubKeepaliveS,
  };
  try {
    await Deno.mkdir(dir, { recursive: true });
    o.say(`formation N=${n}: building ${n} clients (${natted} behind NATs)`);
    const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:1::/64");
    const hubNs = await lab.namespace("hub");
    await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24", "fd00:0:1::1/64"]);
    const topo: DemoTopology = {
      internet,
      hub: { ns: hubNs, address: "198.18.0.1", address6: "fd00:0:1::1" },
      clients: {},
    };
    const sites: ClientSite[] = [];
    for (let i = 0; i < n - natted; i++) {
      sites.push(await addPublicClient(lab, topo, `p${i}`, 11 + i));
    }
    for (let k = 1; k <= natted; k++) sites.push(await addNatSite(lab, topo, k));
    const hubArgs = {
      addresses: ["198.18.0.1"],
      extraArgs: ["--keepalive", String(hubKeepaliveS)],
    };
    let hub = await startHub(lab, hubNs, hubArgs);
    const psk = newPsk();
    // (writeClientConfig gives every client its own control socket.)
    const copts = (_site: ClientSite) => ({ dir, psk, hubs: ["198.18.0.1:3731"] });
    const edgeTimeout = (o.quick ? 60_000 : 120_000) + n * 2_000;
    o.say(`formation N=${n}: starting ${n} clients at once`);
    const t0 = performance.now();
    let nodes = await Promise.all(sites.map((s) => startClient(lab, s, copts(s))));
    const names = nodes.map((c) => c.name);
    await Promise.all(
      nodes.map((c) =>
        waitForEdges(c, names.filter((x) => x !== c.name), { timeoutMs: edgeTimeout })
      ),
    );
    res.edgesUpMs = performance.now() - t0;
    o.say(`formation N=${n}: all edges up after ${(res.edgesUpMs / 1000).toFixed(1)} s; pinging`);
    const pairs: [ClientNode, ClientNode][] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([nodes[i]!, nodes[j]!]);
    res.pairsOk = await pingAll(lab, pairs);
    res.pingsOkMs = performance.now() - t0;
    const rss = nodes.map((c) => rssBytes(c.proc.pid));
    res.clientRssMedian = median(rss);
    res.clientRssMax = Math.max(...rss);
    res.clientRssSum = rss.reduce((a, b) => a + b, 0);
    res.hubRss = rssBytes(hub.pid);

    // Hub gone, one NATed client restarts.
    o.say(`formation N=${n}: killing the hub, restarting one NATed client`);
    await hub.stop();
    const vi = nodes.length - 1;
    const victim = nodes[vi]!;
    await victim.proc.stop();
    const restarted = await startClient(lab, victim.site, copts(victim.site));
    nodes = nodes.map((c, i) => (i === vi ? restarted : c));
    const waitMs = o.quick ? 3_000 : 10_000;
    await sleep(waitMs);
    res.restartWithoutHub = {
      edges: restarted.proc.lines.filter((l) => /edge up: /.test(l.text)).length,
      waitedMs: waitMs,
    };
    o.say(`formation N=${n}: ${res.restartWithoutHub.edges} edges without a hub; hub back`);
    const tHub = performance.now();
    hub = await startHub(lab, hubNs, hubArgs);
    await waitForEdges(restarted, names.filter((x) => x !== restarted.name), {
      timeoutMs: edgeTimeout + hubKeepaliveS * 3_000,
    });
    res.restartWithHub.allEdgesMs = performance.now() - tHub;
    res.restartWithHub.pairsOk = await pingAll(
      lab,
      nodes.filter((c) => c !== restarted).map((c) => [restarted, c]),
    );
    res.restartWithHub.pingsOkMs = performance.now() - tHub;
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    o.say(`formation N=${n} failed: ${res.error.split("\n")[0]}`);
  }
  return res;
}
