/**
 * The demo topology used by the end-to-end tests, the demo and the benchmark:
 *
 * ```
 *                 "internet" 198.18.0.0/24, fd00:0:1::/64 (bridge in namespace inet)
 *     ┌──────────────┬──────────────────┬───────────────────┐
 *    hub            c1                 r2 (NAT)            r3 (NAT)
 *  198.18.0.1     198.18.0.11        wan 198.18.0.2      wan 198.18.0.3
 *  fd00:0:1::1    fd00:0:1::11       lan 198.19.2.1      lan 198.19.3.1
 *                                        │                   │
 *                                       c2 198.19.2.10      c3 198.19.3.10
 * ```
 *
 * Clients behind NAT have one route, to the internet prefix via their router; nobody has a
 * default route, and the NAT LANs cannot reach each other except through their NATs.
 *
 * @module
 */

import { type Lab, type NatRouter, type Segment } from "./netns.ts";

/** One client of the topology. */
export interface ClientSite {
  /** Short name, e.g. "c2". */
  name: string;
  /** Namespace of the client. */
  ns: string;
  /** Underlay IPv4 address of the client itself (a LAN address behind a NAT). */
  address: string;
  /** Underlay IPv6 address, when the client has one. */
  address6?: string;
  /** The address the hub sees the client's traffic from (the NAT's WAN address, or `address`). */
  publicAddress: string;
  /** The client's NAT router, if it is behind one. */
  router?: NatRouter;
}

/** What {@linkcode buildDemoTopology} built; tests and the demo read addresses from here. */
export interface DemoTopology {
  /** The shared "internet" segment. */
  internet: Segment;
  /** The hub's namespace and addresses. */
  hub: { ns: string; address: string; address6: string };
  /** Clients by short name: c1 (public), c2 and c3 (each behind its own NAT), and any added. */
  clients: Record<string, ClientSite>;
}

/** Options for {@linkcode addNatClient}. */
export interface NatClientOptions {
  /** Symmetric NAT (`--random-fully`). Default false: endpoint-independent mapping. */
  randomFully?: boolean;
  /**
   * Site number n: router WAN 198.18.0.n, LAN 198.19.n.0/24, client 198.19.n.10. Default: one
   * more than the highest in use (at least 2).
   */
  site?: number;
}

function nextSite(topo: DemoTopology): number {
  let max = 1;
  for (const c of Object.values(topo.clients)) {
    const m = c.router ? /\.(\d+)$/.exec(c.router.wanAddress) : null;
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/** Adds client `name` behind its own NAT router (namespace `r<n>`) to `topo` and returns it. */
export async function addNatClient(
  lab: Lab,
  topo: DemoTopology,
  name: string,
  options: NatClientOptions = {},
): Promise<ClientSite> {
  if (topo.clients[name]) throw new Error(`client ${name} already exists`);
  const n = options.site ?? nextSite(topo);
  if (!Number.isInteger(n) || n < 2 || n > 10 || n === 1) {
    // .11 and up on the internet segment are for public clients.
    throw new RangeError(`NAT site number ${n} must be 2-10`);
  }
  const router = await lab.natRouter({
    name: `r${n}`,
    internet: topo.internet,
    wanAddress: `198.18.0.${n}/24`,
    client: name,
    routerLanAddress: `198.19.${n}.1/24`,
    clientAddress: `198.19.${n}.10/24`,
    randomFully: options.randomFully ?? false,
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

/** Adds client `name` directly on the internet at 198.18.0.`host` (and fd00:0:1::`host`). */
export async function addPublicClient(
  lab: Lab,
  topo: DemoTopology,
  name: string,
  host: number,
): Promise<ClientSite> {
  if (topo.clients[name]) throw new Error(`client ${name} already exists`);
  if (!Number.isInteger(host) || host < 11 || host > 254) {
    throw new RangeError(`public client host number ${host} must be 11-254`);
  }
  const ns = await lab.namespace(name);
  const address = `198.18.0.${host}`;
  const address6 = `fd00:0:1::${host}`;
  await lab.attach(topo.internet, ns, "eth0", [`${address}/24`, `${address6}/64`]);
  const site: ClientSite = { name, ns, address, address6, publicAddress: address };
  topo.clients[name] = site;
  return site;
}

/** Builds the demo topology (see the module doc) in `lab`. */
export async function buildDemoTopology(
  lab: Lab,
  options: { c3RandomFully?: boolean } = {},
): Promise<DemoTopology> {
  const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:1::/64");
  const hubNs = await lab.namespace("hub");
  await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24", "fd00:0:1::1/64"]);
  const topo: DemoTopology = {
    internet,
    hub: { ns: hubNs, address: "198.18.0.1", address6: "fd00:0:1::1" },
    clients: {},
  };
  await addPublicClient(lab, topo, "c1", 11);
  await addNatClient(lab, topo, "c2", { site: 2 });
  await addNatClient(lab, topo, "c3", { site: 3, randomFully: options.c3RandomFully ?? false });
  return topo;
}
