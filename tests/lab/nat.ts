/**
 * NAT sites for the lab beyond {@linkcode Lab.natRouter}'s one-client routers: a router with a
 * LAN segment shared by several clients (same-LAN members behind one NAT, no hairpinning), and
 * the NAT behaviours of the matrix test:
 *
 * | kind              | mapping                                | inbound filtering                        |
 * | ----------------- | -------------------------------------- | ---------------------------------------- |
 * | `masquerade`      | endpoint-independent (MASQUERADE)      | conntrack only; no firewall rules        |
 * | `port-restricted` | endpoint-independent (MASQUERADE)      | drops unsolicited forwards and input     |
 * | `symmetric`       | per destination (`--random-fully`)     | drops unsolicited forwards and input     |
 * | `forgetful`       | as port-restricted, but idle UDP mappings are forgotten after 30 s |  |
 *
 * @module
 */
import { hostOf, ipv4Network, type Lab, type Segment } from "./netns.ts";
import type { ClientSite } from "./topology.ts";

/** NAT behaviours (see the module doc). */
export type NatKind = "masquerade" | "port-restricted" | "symmetric" | "forgetful";

/** Options for {@linkcode natLan}. */
export interface NatLanOptions {
  /** Router namespace short name, e.g. "r7". */
  name: string;
  /** The internet segment. */
  internet: Segment;
  /** Router WAN address with prefix, e.g. "198.18.0.7/24". */
  wanAddress: string;
  /** LAN prefix base: router .1, clients .11, .12, ...; e.g. "198.19.7" (a /24). */
  lanBase: string;
  /** Short names of the client namespaces to create on the LAN. */
  clients: string[];
  /** NAT behaviour. Default "port-restricted". */
  kind?: NatKind;
  /** Idle timeout of UDP mappings for "forgetful", seconds. Default 30. */
  forgetAfterS?: number;
}

/** Sets up NAT of kind `kind` on router namespace `ns` whose WAN interface is `wan`. */
export async function configureNat(
  lab: Lab,
  ns: string,
  kind: NatKind,
  forgetAfterS = 30,
): Promise<void> {
  const ipt = (args: string[]) => lab.exec(ns, ["iptables", "-w", "5", ...args], { check: true });
  await lab.exec(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], { check: true });
  await ipt([
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-o",
    "wan",
    "-j",
    "MASQUERADE",
    ...(kind === "symmetric" ? ["--random-fully"] : []),
  ]);
  if (kind !== "masquerade") {
    const established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"];
    await ipt(["-A", "FORWARD", "-i", "wan", ...established]);
    await ipt(["-A", "FORWARD", "-i", "wan", "-j", "DROP"]);
    // See Lab.natRouter: an unconfirmed (dropped) packet never clashes with a later mapping.
    await ipt(["-A", "INPUT", "-i", "wan", ...established]);
    await ipt(["-A", "INPUT", "-i", "wan", "-j", "DROP"]);
  }
  if (kind === "forgetful") {
    for (const key of ["nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"]) {
      await lab.exec(ns, ["sysctl", "-qw", `net.netfilter.${key}=${forgetAfterS}`], {
        check: true,
      });
    }
  }
}

/**
 * A NAT router whose LAN is a segment with several clients on it (`<lanBase>.11`, `.12`, ...),
 * each with one route to the internet prefix via the router. Returns the client sites.
 */
export async function natLan(lab: Lab, options: NatLanOptions): Promise<ClientSite[]> {
  const ns = await lab.namespace(options.name);
  await lab.attach(options.internet, ns, "wan", options.wanAddress);
  const lan = await lab.segment(`${options.name}lan`, `${options.lanBase}.0/24`);
  await lab.attach(lan, ns, "lan", `${options.lanBase}.1/24`);
  await configureNat(lab, ns, options.kind ?? "port-restricted", options.forgetAfterS);
  const sites: ClientSite[] = [];
  for (const [i, name] of options.clients.entries()) {
    const clientNs = await lab.namespace(name);
    const address = `${options.lanBase}.${11 + i}`;
    await lab.attach(lan, clientNs, "eth0", `${address}/24`);
    await lab.exec(clientNs, [
      "ip",
      "route",
      "add",
      ipv4Network(options.internet.v4Prefix),
      "via",
      `${options.lanBase}.1`,
    ], { check: true });
    sites.push({ name, ns: clientNs, address, publicAddress: hostOf(options.wanAddress) });
  }
  return sites;
}
