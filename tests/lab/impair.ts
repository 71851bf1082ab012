/**
 * A lossy, slow "internet" for the lab (this kernel has no `netem` qdisc): instead of a bridge,
 * a core router namespace with one point-to-point veth per member. Every packet between two
 * members crosses the core once, and on the way
 *
 * - iptables drops it with probability `lossPercent` (`-m statistic --mode random`), and
 * - policy routing (`ip rule iif <port> lookup 100`, table 100 → TUN `imp0`) hands it to a
 *   small Deno program (`impair_tun.ts`) that holds it for `delayMs ± jitterMs` (uniform; a
 *   bounded queue, drops counted) and writes it back into the TUN; the kernel then forwards it
 *   by the main table (`<member>/32 dev <port>`) to its destination.
 *
 * ```
 *   member ns                       core ns
 *   eth0 198.18.0.11/24 ─── veth ─── pN ─┐ ip rule iif pN → table 100 → imp0 ─▶ impair_tun.ts
 *                                        │                                        │ (delay)
 *                                        └◀── main: 198.18.0.11/32 dev pN ◀── imp0 ◀┘
 * ```
 *
 * Members keep their usual /24 and think they share a LAN: the core answers ARP for the others
 * (proxy ARP, without the default 0.8 s proxy delay). So a round trip between two members is
 * delayed twice (median ≈ 2 × `delayMs`) and lost with probability 1 − (1 − loss)². IPv4 only.
 *
 * @module
 */
import { hostOf, ipv4Network, type Lab, type LabProcess } from "./netns.ts";
import { configureNat, type NatKind } from "./nat.ts";
import type { ClientSite } from "./topology.ts";

const IMPAIR_TUN_TS = new URL("./impair_tun.ts", import.meta.url).pathname;
/** The policy routing table that leads into the delay TUN. */
const IMPAIR_TABLE = "100";
/** The core's own address, on `lo`: the source of its ARP requests. */
const CORE_ADDRESS = "198.18.0.254";

/** How bad the links are. */
export interface ImpairmentOptions {
  /** Packets dropped at the core, percent. Default 10. */
  lossPercent?: number;
  /** Mean one-way delay through the core, ms. Default 100. */
  delayMs?: number;
  /** The delay is uniform in `delayMs ± jitterMs`. Default 50. */
  jitterMs?: number;
  /** Most packets the delay line holds. Default 4096. */
  maxQueuePackets?: number;
  /** Most bytes the delay line holds. Default 8 MiB. */
  maxQueueBytes?: number;
}

/** What the core counted. */
export interface ImpairmentCounters {
  /** Packets the core was asked to forward into the delay line (before the loss rule). */
  offered: number;
  /** Packets the loss rule dropped. */
  lost: number;
}

/** A lossy, slow internet built by {@linkcode impairedInternet}. */
export class ImpairedInternet {
  /** The core router's namespace. */
  readonly ns: string;
  /** The members' IPv4 prefix, e.g. "198.18.0.0/24". */
  readonly v4Prefix: string;
  /** The delay program. */
  readonly delay: LabProcess;
  readonly #lab: Lab;
  #ports = 0;

  /** Use {@linkcode impairedInternet}. */
  constructor(lab: Lab, ns: string, v4Prefix: string, delay: LabProcess) {
    this.#lab = lab;
    this.ns = ns;
    this.v4Prefix = v4Prefix;
    this.delay = delay;
  }

  /** Connects namespace `ns` with interface `ifName` and address `cidr` (e.g. "198.18.0.11/24"). */
  async attach(ns: string, ifName: string, cidr: string): Promise<void> {
    const lab = this.#lab;
    const port = `p${++this.#ports}`;
    await lab.link(this.ns, port, [], ns, ifName, cidr);
    const core = (cmd: string[]) => lab.exec(this.ns, cmd, { check: true });
    await core(["sysctl", "-qw", `net.ipv4.conf.${port}.proxy_arp=1`]);
    await core(["sysctl", "-qw", `net.ipv4.conf.${port}.rp_filter=0`]);
    await core(["sysctl", "-qw", `net.ipv4.neigh.${port}.proxy_delay=0`]);
    await core(["ip", "route", "add", `${hostOf(cidr)}/32`, "dev", port]);
    await core(["ip", "rule", "add", "iif", port, "lookup", IMPAIR_TABLE, "pref", "100"]);
  }

  /**
   * Adds client `name` behind its own NAT router `r<n>` (WAN 198.18.0.n on this internet, LAN
   * 198.19.n.0/24, client 198.19.n.10), like `addNatClient` on the bridged internet.
   */
  async natClient(name: string, n: number, kind: NatKind = "port-restricted"): Promise<ClientSite> {
    const lab = this.#lab;
    const router = await lab.namespace(`r${n}`);
    const client = await lab.namespace(name);
    await this.attach(router, "wan", `198.18.0.${n}/24`);
    await lab.link(router, "lan", `198.19.${n}.1/24`, client, "eth0", `198.19.${n}.10/24`);
    await configureNat(lab, router, kind);
    await lab.exec(client, ["ip", "route", "add", this.v4Prefix, "via", `198.19.${n}.1`], {
      check: true,
    });
    return { name, ns: client, address: `198.19.${n}.10`, publicAddress: `198.18.0.${n}` };
  }

  /** Adds client `name` directly on this internet at 198.18.0.`host`. */
  async publicClient(name: string, host: number): Promise<ClientSite> {
    const ns = await this.#lab.namespace(name);
    await this.attach(ns, "eth0", `198.18.0.${host}/24`);
    const address = `198.18.0.${host}`;
    return { name, ns, address, publicAddress: address };
  }

  /** The core's loss counters (from iptables). */
  async counters(): Promise<ImpairmentCounters> {
    const r = await this.#lab.exec(this.ns, ["iptables", "-w", "5", "-nvx", "-L", "FORWARD"], {
      check: true,
    });
    // The two rules (see impairedInternet): a counting ACCEPT-less rule, then the random drop.
    const rows = r.stdout.split("\n").filter((l) => /\bimp0\b/.test(l));
    const packets = rows.map((l) => Number(l.trim().split(/\s+/)[0]));
    return { offered: packets[0] ?? 0, lost: packets[1] ?? 0 };
  }
}

/**
 * Builds the core router namespace `name` with the loss rule and the delay program running, for
 * members in `v4Prefix` (a /24 inside 198.18.0.0/15; the core takes .254 of it).
 */
export async function impairedInternet(
  lab: Lab,
  options: ImpairmentOptions & { name?: string; v4Prefix?: string } = {},
): Promise<ImpairedInternet> {
  const v4Prefix = ipv4Network(options.v4Prefix ?? "198.18.0.0/24");
  const ns = await lab.namespace(options.name ?? "core");
  const core = (cmd: string[]) => lab.exec(ns, cmd, { check: true });
  for (
    const s of [
      "net.ipv4.ip_forward=1",
      // Packets come back from imp0 with sources that live behind the ports: no reverse-path
      // filtering in the core.
      "net.ipv4.conf.all.rp_filter=0",
      "net.ipv4.conf.default.rp_filter=0",
    ]
  ) await core(["sysctl", "-qw", s]);
  await core(["ip", "addr", "add", `${CORE_ADDRESS}/32`, "dev", "lo"]);
  const delay = lab.spawn(ns, [
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-ffi",
    "--allow-read",
    IMPAIR_TUN_TS,
    "imp0",
    String(options.delayMs ?? 100),
    String(options.jitterMs ?? 50),
    String(options.maxQueuePackets ?? 4096),
    String(options.maxQueueBytes ?? 8 << 20),
  ]);
  await delay.waitForLine(/^ready imp0$/, { timeoutMs: 60_000 });
  await core(["sysctl", "-qw", "net.ipv4.conf.imp0.rp_filter=0"]);
  await core(["ip", "link", "set", "imp0", "up"]);
  await core(["ip", "route", "add", v4Prefix, "dev", "imp0", "table", IMPAIR_TABLE]);
  const loss = (options.lossPercent ?? 10) / 100;
  const ipt = (args: string[]) => core(["iptables", "-w", "5", "-A", "FORWARD", ...args]);
  // A rule without a target only counts (offered); the second drops at random (lost).
  await ipt(["-o", "imp0"]);
  if (loss > 0) {
    await ipt([
      "-o",
      "imp0",
      "-m",
      "statistic",
      "--mode",
      "random",
      "--probability",
      String(loss),
      "-j",
      "DROP",
    ]);
  }
  return new ImpairedInternet(lab, ns, v4Prefix, delay);
}
