/**
 * NAT sites for the lab beyond {@linkcode Lab.natRouter}'s one-client routers: a router with a
 * LAN segment shared by several clients (same-LAN members behind one NAT, no hairpinning), and
 * the NAT behaviours of the matrix test:
 *
 * | kind              | mapping                                | inbound filtering                        |
 * | ----------------- | -------------------------------------- | ---------------------------------------- |
 * | `masquerade`      | endpoint-independent (MASQUERADE)      | conntrack only; no firewall rules        |
 * | `port-restricted` | endpoint-independent (MASQUERADE)      | drops unsolicited forwards and input     |
 * | `symmetric`       | per destination, random port (below)   | drops unsolicited forwards and input     |
 * | `sequential`      | per destination, next port (below)     | drops unsolicited forwards and input     |
 * | `forgetful`       | as port-restricted, but idle UDP mappings are forgotten after 30 s |  |
 *
 * `symmetric`: UDP is `MASQUERADE --to-ports 40000-40255 --random-fully`: every new mapping gets
 * a uniformly random port from those 256 (a narrowed range, so that a bounded spray has a real
 * chance, as with the small pools of many CGNATs; other protocols `--random-fully` over the
 * default range). `sequential`: UDP new mappings take the ports 40000..40255 in turn, wrapping
 * (256 `SNAT --to-source wan:port` rules, rule i matching `statistic --mode nth --every 256-i`:
 * a round robin over new conntrack entries), like the sequential allocators of many home routers.
 *
 * @module
 */
import { hostOf, ipv4Network, type Lab, type Segment } from "./netns.ts";
import type { ClientSite } from "./topology.ts";

/** NAT behaviours (see the module doc). */
export type NatKind = "masquerade" | "port-restricted" | "symmetric" | "sequential" | "forgetful";

/** The public UDP port range of the `symmetric` and `sequential` kinds. */
export const NAT_PORT_RANGE: readonly [number, number] = [40000, 40255];

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
  const [lo, hi] = NAT_PORT_RANGE;
  if (kind === "symmetric") {
    await ipt([
      ..."-t nat -A POSTROUTING -o wan -p udp -j MASQUERADE --random-fully".split(" "),
      "--to-ports",
      `${lo}-${hi}`,
    ]);
  } else if (kind === "sequential") {
    // One exec for the 256 rules (iptables-restore --noflush appends to the live table).
    const wan = await lab.exec(ns, ["ip", "-4", "-o", "addr", "show", "dev", "wan"], {
      check: true,
    });
    const wanAddress = /inet (\d+\.\d+\.\d+\.\d+)/.exec(wan.stdout)?.[1];
    if (wanAddress === undefined) throw new Error(`no IPv4 address on ${ns}/wan`);
    const n = hi - lo + 1;
    const rules = ["*nat"];
    for (let i = 0; i < n; i++) {
      rules.push(
        `-A POSTROUTING -o wan -p udp -m statistic --mode nth --every ${n - i} --packet 0 ` +
          `-j SNAT --to-source ${wanAddress}:${lo + i}`,
      );
    }
    rules.push("COMMIT", "");
    const file = await Deno.makeTempFile({ prefix: "meshub-seqnat-" });
    try {
      await Deno.writeTextFile(file, rules.join("\n"));
      await lab.exec(ns, ["iptables-restore", "-w", "5", "--noflush", file], { check: true });
    } finally {
      await Deno.remove(file).catch(() => {});
    }
  }
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
