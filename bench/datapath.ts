/**
 * Data path benchmark: two hosts `a` and `b` in network namespaces, one tunnel each for raw
 * (no VPN), meshub, wireguard-go, nebula and tinc, all up at once on distinct ports and inner
 * addresses; measurements are interleaved run by run (A B C A B C) so drift hits all alike.
 *
 * Scenarios:
 * - `veth`: a 198.18.90.1 ── veth ── b 198.18.90.2 (also fd00:90::1/2).
 * - `nat`: a and b each behind its own NAT router (MASQUERADE, endpoint-independent) on an
 *   "internet" segment 198.18.0.0/24. meshub meets through a hub on the segment (hole punching);
 *   wireguard-go, nebula and tinc have no NAT traversal of their own for two NATed hosts without
 *   a relay, so b's router forwards their ports (UDP 51820, 4242, 655, TCP 655) to b, as an
 *   operator would configure it. iperf3 (TCP/UDP 5201) and ICMP are forwarded for the raw figures.
 *
 * Inner addresses (IPv4 198.19.20x.0/24, IPv6 fd00:a{1,2,4}::/64; nebula 1.6 is IPv4 only); every
 * tunnel has meshub's default MTU (1408).
 *
 * Each run, per tunnel: pings on the fresh tunnel; TCP over IPv4 (pings alongside) and IPv6;
 * UDP with 1300-byte payloads at full offered load; pings once the tunnel is idle again. After
 * all runs, each tunnel is offered its maximum as the table reports it (the median rate its
 * full-load runs delivered) once per run, interleaved again: the loss shows whether that maximum
 * is real. iperf3 paces that offer in bursts of {@linkcode AT_MAX_BURST}, see there.
 * The UDP runs give iperf3 4 MiB socket buffers (or the kernel's maximum): with the default
 * 208 KiB the receiving iperf3 itself drops bursts, with or without a tunnel.
 *
 * @module
 */
import type { Lab, LabProcess } from "../tests/lab/netns.ts";
import { addNatClient, type DemoTopology } from "../tests/lab/topology.ts";
import { meshubCommand, newPsk, startHub } from "../tests/lab/meshub.ts";
import { decodeBase64Url, encodeBase64 } from "../util/base64.ts";
import { DEFAULT_TUN_MTU } from "../client/config.ts";
import {
  cpuSecondsOf,
  hostRun,
  idleCores,
  type MachineCpu,
  machineCpu,
  median,
  pollUntil,
  quantile,
  rssBytes,
  runIperf,
  UDP_PAYLOAD_BYTES,
} from "./lib.ts";

/** The tunnels, in table order. */
export const TUNNELS = ["raw", "meshub", "wireguard-go", "nebula", "tinc"] as const;
/** One tunnel kind. */
export type TunnelName = typeof TUNNELS[number];

/** Tools each tunnel needs. */
export const TUNNEL_TOOLS: Record<TunnelName, string[]> = {
  raw: [],
  meshub: [],
  "wireguard-go": ["wireguard-go", "wg"],
  nebula: ["nebula", "nebula-cert"],
  tinc: ["tincd"],
};

/** Settings of one data path scenario. */
export interface DatapathOptions {
  /** Runs per tunnel (figures are medians). */
  runs: number;
  /** Seconds of each iperf3 TCP run. */
  tcpSeconds: number;
  /** Seconds of each iperf3 UDP run. */
  udpSeconds: number;
  /** Pings per run (0.01 s apart). */
  pings: number;
  /** The TCP runs' congestion control (iperf3 `-C`, every tunnel alike); unset: the host's. */
  tcpCongestionControl?: string;
  /** Tunnels to measure (raw is always included). */
  tunnels: readonly TunnelName[];
  /** Progress output. */
  say: (line: string) => void;
  /** Extra arguments for meshub client `a`'s `deno run` (e.g. `--v8-flags=--perf-basic-prof`). */
  profileArgs?: string[];
  /** Record `perf record -g` of meshub client `a` during each IPv4 TCP run into this directory. */
  profileDir?: string;
}

/** One run's figures for one tunnel. */
export interface RunFigures {
  tcp6Mbps?: number;
  tcp4Mbps: number;
  udpPps: number;
  udpLossPercent: number;
  /**
   * Loss when UDP is offered at exactly `udpAtMaxOfferedPps`, the tunnel's maximum as reported
   * (the median of its runs' `udpPps`): a tunnel that only delivers that rate by dropping the
   * rest, or only in its luckiest runs, shows it here.
   */
  udpAtMaxLossPercent: number;
  /** The rate offered in that run, datagrams per second. */
  udpAtMaxOfferedPps: number;
  /** Packets per second delivered in that run. */
  udpAtMaxPps: number;
  /**
   * Where that run's loss happened, as % of the datagrams offered: dropped by the sender's TUN
   * (its queue was full: the VPN did not read fast enough), and by full UDP receive buffers at
   * the receiving host (the VPN's own socket or iperf3's; NaN where not measured).
   */
  udpAtMaxTunDropPercent: number;
  udpAtMaxRcvbufPercent: number;
  /** The part of `udpAtMaxRcvbufPercent` dropped at the receiving VPN's own sockets. */
  udpAtMaxVpnRcvbufPercent: number;
  /**
   * Dropped by the VPN itself, both ends, by its own count (meshub: the `drops` of
   * `meshub status --json`, e.g. a full socket send buffer; NaN where the VPN has no such count).
   */
  udpAtMaxVpnOwnDropPercent: number;
  /**
   * Sent by a's VPN toward b but never received by b's VPN, by the VPN's own packet counters
   * (meshub's members' `tx`/`rx`; NaN for the others): lost on the underlay or at the receiving
   * VPN's socket, counted in datagrams. `udpAtMaxVpnRcvbufPercent` counts what the kernel
   * dropped there, and a UDP GRO buffer it drops is ~25 datagrams but one count.
   */
  udpAtMaxBetweenEndsPercent: number;
  pingMedianMs: number;
  pingP99Ms: number;
  pingLossPercent: number;
  /** Median and 99th percentile RTT of pings during the IPv4 TCP run (0.02 s apart). */
  pingLoadMedianMs: number;
  pingLoadP99Ms: number;
  /**
   * Median and 99th percentile RTT of the same pings as `pingMedianMs`, once the tunnel has
   * carried the TCP and UDP runs and is idle again: a JIT-compiled data path (meshub) is warm
   * by then, an ahead-of-time compiled one (wireguard-go) was from the start.
   */
  pingWarmMedianMs: number;
  pingWarmP99Ms: number;
  /** Median RTT of 20 pings right after the full-load UDP flood (queues left behind). */
  pingAfterUdpMs: number;
  /** CPU seconds of the VPN processes (both ends) during the IPv4 TCP run. */
  cpuSeconds: number;
  /** CPU seconds per GB received during the IPv4 TCP run. */
  cpuSecondsPerGB: number;
  /**
   * Cores the whole machine left idle (idle and I/O wait, from /proc/stat) during the IPv4 TCP
   * run and the UDP run offered the tunnel's maximum: near 0, the tunnel, its load and the rest
   * of the machine shared out every core, and the tunnel's figures are its share of them.
   */
  idleCoresTcp: number;
  idleCoresUdpAtMax: number;
  /** Mean VmRSS per VPN process after the TCP run. */
  rssBytes: number;
  /**
   * Largest peak RSS (VmHWM) of the VPN processes after the full-load UDP flood: shows unbounded
   * queues.
   */
  rssPeakAfterUdpBytes: number;
  errors: string[];
}

/** Figures of one tunnel in one scenario: every run, and the medians. */
export interface TunnelResult {
  tunnel: TunnelName;
  /** Why it was not measured, if so. */
  skipped?: string;
  runs: RunFigures[];
  median: Partial<Record<keyof Omit<RunFigures, "errors">, number>>;
}

/** A scenario's results. */
export interface ScenarioResult {
  scenario: "veth" | "nat";
  tunnels: TunnelResult[];
}

interface Hosts {
  a: string;
  b: string;
  /** b's underlay address as a reaches it (b's own, or its router's WAN). */
  bFromA: string;
  /** b's underlay IPv6 address, when a can reach it directly. */
  bFromA6?: string;
  /** The hub's endpoint, for meshub in the NAT scenario. */
  hubEndpoint?: string;
}

/** A running tunnel. */
interface Tunnel {
  name: TunnelName;
  /** b's inner IPv4 address. */
  v4: string;
  /** b's inner IPv6 address, if the tunnel carries IPv6. */
  v6?: string;
  /** PIDs of the VPN processes at both ends. */
  pids: number[];
  /** The sending end's (a's) TUN interface, for its drop counter; none for raw. */
  ifName?: string;
  /** The VPN's own counters so far (meshub only). */
  ownCounters?: () => Promise<VpnCounters>;
}

/** Counters a VPN keeps itself (meshub's `status --json`), read at both ends. */
interface VpnCounters {
  /** Packets it dropped, both ends. */
  drops: number;
  /** Packets a's end sent toward b. */
  sent: number;
  /** Packets b's end received (authenticated) from a. */
  received: number;
}

/** The sum of the members' `tx` or `rx` packets in `meshub status --json` output, or NaN. */
export function sumMemberPackets(json: string, direction: "tx" | "rx"): number {
  try {
    const members = JSON.parse(json).members as { [k: string]: { packets?: unknown } }[];
    if (!Array.isArray(members)) return NaN;
    return members.reduce((s, m) => {
      const n = m[direction]?.packets;
      return s + (typeof n === "number" ? n : NaN);
    }, 0);
  } catch {
    return NaN;
  }
}

/**
 * The sum of the `drops` by reason in `meshub status --json` output (NaN when it is not that).
 * The client's total counts each drop once; the members' `drops` are a breakdown of the same.
 */
export function sumStatusDrops(json: string): number {
  try {
    const drops = JSON.parse(json).drops as Record<string, unknown>;
    if (typeof drops !== "object" || drops === null) return NaN;
    return Object.values(drops).reduce<number>((s, n) => s + (typeof n === "number" ? n : 0), 0);
  } catch {
    return NaN;
  }
}

/** The TX dropped counter of `ifName` in `ns` (a TUN drops what does not fit its queue). */
async function tunTxDropped(lab: Lab, ns: string, ifName: string): Promise<number> {
  const r = await lab.exec(ns, ["ip", "-s", "-j", "link", "show", "dev", ifName], {
    timeoutMs: 5_000,
  });
  try {
    return Number(JSON.parse(r.stdout)[0].stats64.tx.dropped);
  } catch {
    return NaN;
  }
}

/** UDP datagrams dropped for full receive buffers in `ns`, IPv4 and IPv6 sockets together. */
async function udpRcvbufErrors(lab: Lab, ns: string): Promise<number> {
  const r = await lab.exec(ns, ["cat", "/proc/net/snmp", "/proc/net/snmp6"], { timeoutMs: 5_000 });
  return parseRcvbufErrors(r.stdout);
}

/** Datagrams dropped at the UDP sockets of processes `pids` in `ns` (NaN without pids). */
async function socketDrops(lab: Lab, ns: string, pids: number[]): Promise<number> {
  if (pids.length === 0) return NaN;
  const r = await lab.exec(ns, ["ss", "-uamp"], { timeoutMs: 5_000 });
  return parseSocketDrops(r.stdout, pids);
}

/**
 * The sum of the `skmem:(...,dN)` drop counts of the sockets in `ss -uamp` output whose
 * `users:` list one of `pids`.
 */
export function parseSocketDrops(text: string, pids: number[]): number {
  let total = 0;
  let owned = false;
  for (const line of text.split("\n")) {
    const users = line.match(/users:\((.*)\)\s*$/);
    if (users) {
      owned = [...users[1]!.matchAll(/pid=(\d+)/g)].some((m) => pids.includes(Number(m[1])));
      continue;
    }
    const drops = line.match(/skmem:\(.*\bd(\d+)\)/);
    if (drops && owned) total += Number(drops[1]);
    if (drops) owned = false;
  }
  return total;
}

/**
 * The sum of `Udp: ... RcvbufErrors` (`/proc/net/snmp`, a header line then a value line) and
 * `Udp6RcvbufErrors` (`/proc/net/snmp6`, name and value per line); NaN when neither is there.
 */
export function parseRcvbufErrors(text: string): number {
  let total = NaN;
  const add = (n: number) => (total = (Number.isNaN(total) ? 0 : total) + n);
  const lines = text.split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    const head = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    if (head[0] === "Udp:" && values[0] === "Udp:" && head[1] !== values[1]) {
      const at = head.indexOf("RcvbufErrors");
      if (at > 0 && values[at] !== undefined) add(Number(values[at]));
    }
  }
  for (const line of lines) {
    const [name, value] = line.trim().split(/\s+/);
    if (name === "Udp6RcvbufErrors" && value !== undefined) add(Number(value));
  }
  return total;
}

const TCP_PORTS_FORWARDED = "655,5201";
const UDP_PORTS_FORWARDED = "51820,4242,655,5201";
/**
 * Every tunnel's MTU: the same for all (like for like), meshub's default. wireguard-go moved the
 * same at 1408 as at 1420 here (TCP, 6 runs each: medians 517 and 503 Mbit/s).
 */
const MTU = DEFAULT_TUN_MTU;

/** Builds the scenario's namespaces and returns the hosts. */
async function buildScenario(lab: Lab, scenario: "veth" | "nat"): Promise<Hosts> {
  if (scenario === "veth") {
    const a = await lab.namespace("a");
    const b = await lab.namespace("b");
    await lab.link(a, "eth0", ["198.18.90.1/24", "fd00:90::1/64"], b, "eth0", [
      "198.18.90.2/24",
      "fd00:90::2/64",
    ]);
    return { a, b, bFromA: "198.18.90.2", bFromA6: "fd00:90::2" };
  }
  const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:1::/64");
  const hubNs = await lab.namespace("hub");
  await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24", "fd00:0:1::1/64"]);
  const topo: DemoTopology = {
    internet,
    hub: { ns: hubNs, address: "198.18.0.1", address6: "fd00:0:1::1" },
    clients: {},
  };
  const sa = await addNatClient(lab, topo, "a", { site: 2 });
  const sb = await addNatClient(lab, topo, "b", { site: 3 });
  const r = sb.router!;
  const ipt = (args: string[]) => lab.exec(r.ns, ["iptables", "-w", "5", ...args], { check: true });
  for (const [proto, ports] of [["udp", UDP_PORTS_FORWARDED], ["tcp", TCP_PORTS_FORWARDED]]) {
    await ipt([
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      "-i",
      "wan",
      "-p",
      proto!,
      "-m",
      "multiport",
      "--dports",
      ports!,
      "-j",
      "DNAT",
      "--to-destination",
      r.clientAddress,
    ]);
  }
  await ipt([
    "-t",
    "nat",
    "-A",
    "PREROUTING",
    "-i",
    "wan",
    "-p",
    "icmp",
    "--icmp-type",
    "echo-request",
    "-j",
    "DNAT",
    "--to-destination",
    r.clientAddress,
  ]);
  await ipt(["-I", "FORWARD", "1", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "DNAT"]
    .concat(["-j", "ACCEPT"]));
  return {
    a: sa.ns,
    b: sb.ns,
    bFromA: r.wanAddress,
    hubEndpoint: `${topo.hub.address}:3731`,
  };
}

// --- tunnels -------------------------------------------------------------------------------------

async function startMeshub(
  lab: Lab,
  h: Hosts,
  dir: string,
  hubNs: string | undefined,
  profileArgs: string[] | undefined,
): Promise<Tunnel> {
  const psk = newPsk();
  const port = 51830;
  const controlSocket = (name: string) => `${dir}/meshub-${name}.sock`;
  const conf = (name: string, v6: string, v4: string, extra: string[]) =>
    [
      "[encryption]",
      `psk = "${psk}"`,
      "[hub]",
      `addresses = [${h.hubEndpoint ? `"${h.hubEndpoint}"` : ""}]`,
      "[node]",
      `name = "${name}"`,
      `state_file = "${dir}/meshub-${name}.key"`,
      `port = ${port}`,
      "[tun]",
      `interface = "meshub0"`,
      `mtu = ${MTU}`,
      `ipv6 = "${v6}/64"`,
      `ipv4 = "${v4}/24"`,
      "[control]",
      `socket = "${controlSocket(name)}"`,
      ...extra,
    ].join("\n") + "\n";
  const ends = [
    { name: "a", ns: h.a, v6: "fd00:a1::1", v4: "198.19.201.1" },
    { name: "b", ns: h.b, v6: "fd00:a1::2", v4: "198.19.201.2" },
  ];
  const pubs: string[] = [];
  for (const e of ends) {
    const path = `${dir}/meshub-${e.name}.toml`;
    await Deno.writeTextFile(path, conf(e.name, e.v6, e.v4, []));
    const out = await lab.exec(e.ns, meshubCommand("pubkey", path), {
      check: true,
      timeoutMs: 60_000,
    });
    pubs.push(out.stdout.trim().split("\n").at(-1)!.trim());
  }
  if (!h.hubEndpoint) {
    // Static peers, no hub: the data path is the same as with a hub.
    for (const [i, e] of ends.entries()) {
      const o = ends[1 - i]!;
      const endpoint = o.name === "b" ? h.bFromA : "198.18.90.1";
      await Deno.writeTextFile(
        `${dir}/meshub-${e.name}.toml`,
        conf(e.name, e.v6, e.v4, [
          "[[peer]]",
          `name = "${o.name}"`,
          `public_key = "${pubs[1 - i]}"`,
          `endpoint = "${endpoint}:${port}"`,
          `ipv6 = "${o.v6}/128"`,
          `ipv4 = "${o.v4}/32"`,
        ]),
      );
    }
  } else if (hubNs) {
    await startHub(lab, hubNs, { addresses: ["198.18.0.1"] });
  }
  const procs: LabProcess[] = [];
  for (const e of ends) {
    let cmd = meshubCommand("client", `${dir}/meshub-${e.name}.toml`);
    if (e.name === "a" && profileArgs) cmd = [cmd[0]!, cmd[1]!, ...profileArgs, ...cmd.slice(2)];
    const p = lab.spawn(e.ns, cmd);
    procs.push(p);
    await p.waitForLine(/node \S+: \S+, udp port \d+/, { timeoutMs: 60_000 });
  }
  await procs[0]!.waitForLine(/edge up: b /, { timeoutMs: 30_000 });
  return {
    name: "meshub",
    v4: "198.19.201.2",
    v6: "fd00:a1::2",
    pids: procs.map((p) => p.pid),
    ifName: "meshub0",
    ownCounters: async () => {
      const c: VpnCounters = { drops: 0, sent: NaN, received: NaN };
      for (const e of ends) {
        const status = meshubCommand("status", "--json", "--socket", controlSocket(e.name));
        const r = await lab.exec(e.ns, status, { timeoutMs: 30_000 });
        c.drops += sumStatusDrops(r.stdout);
        if (e.name === "a") c.sent = sumMemberPackets(r.stdout, "tx");
        else c.received = sumMemberPackets(r.stdout, "rx");
      }
      return c;
    },
  };
}

async function startWireguardGo(lab: Lab, h: Hosts, dir: string): Promise<Tunnel> {
  const psk = decodeBase64Url(newPsk())!;
  const pskFile = `${dir}/wg.psk`;
  await Deno.writeTextFile(pskFile, encodeBase64(psk) + "\n", { mode: 0o600 });
  // Interface names are host-wide for wireguard-go's UAPI socket: keep them unique per run.
  const tag = lab.prefix.slice(2);
  const ends = [
    { name: "a", ns: h.a, ifName: `wgb${tag}a`, v6: "fd00:a2::1", v4: "198.19.202.1" },
    { name: "b", ns: h.b, ifName: `wgb${tag}b`, v6: "fd00:a2::2", v4: "198.19.202.2" },
  ];
  const keys: { priv: string; pub: string }[] = [];
  for (const e of ends) {
    const priv = `${dir}/wg-${e.name}.key`;
    await Deno.writeTextFile(priv, await hostRun(["wg", "genkey"]), { mode: 0o600 });
    const pub = (await lab.exec(e.ns, ["sh", "-c", `wg pubkey < '${priv}'`], { check: true }))
      .stdout.trim();
    keys.push({ priv, pub });
  }
  const procs: LabProcess[] = [];
  for (const [i, e] of ends.entries()) {
    const p = lab.spawn(e.ns, ["wireguard-go", "-f", e.ifName], {
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "verbose" },
    });
    procs.push(p);
    await p.waitForLine(/UAPI listener started/, { timeoutMs: 10_000 });
    const o = ends[1 - i]!;
    const args = ["wg", "set", e.ifName, "private-key", keys[i]!.priv, "listen-port", "51820"];
    args.push("peer", keys[1 - i]!.pub, "preshared-key", pskFile);
    args.push("allowed-ips", `${o.v6}/128,${o.v4}/32`);
    if (e.name === "a") args.push("endpoint", `${h.bFromA}:51820`);
    await lab.exec(e.ns, args, { check: true });
    await lab.exec(e.ns, ["ip", "-6", "addr", "add", `${e.v6}/64`, "dev", e.ifName, "nodad"], {
      check: true,
    });
    await lab.exec(e.ns, ["ip", "addr", "add", `${e.v4}/24`, "dev", e.ifName], { check: true });
    await lab.exec(e.ns, ["ip", "link", "set", e.ifName, "mtu", String(MTU), "up"], {
      check: true,
    });
  }
  return {
    name: "wireguard-go",
    v4: "198.19.202.2",
    v6: "fd00:a2::2",
    pids: procs.map((p) => p.pid),
    ifName: ends[0]!.ifName,
  };
}

async function startNebula(lab: Lab, h: Hosts, dir: string): Promise<Tunnel> {
  const d = `${dir}/nebula`;
  await Deno.mkdir(d, { recursive: true });
  await hostRun(["nebula-cert", "ca", "-name", "meshub-bench", "-out-crt", `${d}/ca.crt`]
    .concat(["-out-key", `${d}/ca.key`]));
  const ends = [
    { name: "a", ns: h.a, v4: "198.19.203.1", lighthouse: false },
    { name: "b", ns: h.b, v4: "198.19.203.2", lighthouse: true },
  ];
  const procs: LabProcess[] = [];
  for (const e of ends) {
    await hostRun([
      "nebula-cert",
      "sign",
      "-ca-crt",
      `${d}/ca.crt`,
      "-ca-key",
      `${d}/ca.key`,
      "-name",
      e.name,
      "-ip",
      `${e.v4}/24`,
      "-out-crt",
      `${d}/${e.name}.crt`,
      "-out-key",
      `${d}/${e.name}.key`,
    ]);
    const yaml = [
      "pki:",
      `  ca: ${d}/ca.crt`,
      `  cert: ${d}/${e.name}.crt`,
      `  key: ${d}/${e.name}.key`,
      "static_host_map:",
      `  "198.19.203.2": ["${h.bFromA}:4242"]`,
      "lighthouse:",
      `  am_lighthouse: ${e.lighthouse}`,
      "  interval: 60",
      e.lighthouse ? "  hosts: []" : `  hosts: ["198.19.203.2"]`,
      "listen:",
      "  host: 0.0.0.0",
      `  port: ${e.lighthouse ? 4242 : 0}`,
      "punchy:",
      "  punch: true",
      "tun:",
      "  disabled: false",
      "  dev: nebula1",
      `  mtu: ${MTU}`,
      "logging:",
      "  level: info",
      "  format: text",
      "firewall:",
      "  outbound:",
      "    - port: any",
      "      proto: any",
      "      host: any",
      "  inbound:",
      "    - port: any",
      "      proto: any",
      "      host: any",
    ].join("\n") + "\n";
    await Deno.writeTextFile(`${d}/${e.name}.yml`, yaml);
    const p = lab.spawn(e.ns, ["nebula", "-config", `${d}/${e.name}.yml`]);
    procs.push(p);
    await p.waitForLine(/Nebula interface is active/, { timeoutMs: 15_000 });
  }
  return { name: "nebula", v4: "198.19.203.2", pids: procs.map((p) => p.pid), ifName: "nebula1" };
}

async function startTinc(lab: Lab, h: Hosts, dir: string): Promise<Tunnel> {
  const ends = [
    { name: "a", ns: h.a, v6: "fd00:a4::1", v4: "198.19.204.1" },
    { name: "b", ns: h.b, v6: "fd00:a4::2", v4: "198.19.204.2" },
  ];
  const hostFiles: string[] = [];
  for (const e of ends) {
    const d = `${dir}/tinc-${e.name}`;
    await Deno.mkdir(`${d}/hosts`, { recursive: true });
    await Deno.writeTextFile(
      `${d}/tinc.conf`,
      [
        `Name = ${e.name}`,
        "Mode = router",
        "DeviceType = tun",
        "Interface = tinc0",
        "Port = 655",
        "AddressFamily = ipv4",
        ...(e.name === "a" ? ["ConnectTo = b"] : []),
      ].join("\n") + "\n",
    );
    await Deno.writeTextFile(
      `${d}/hosts/${e.name}`,
      [
        ...(e.name === "b" ? [`Address = ${h.bFromA} 655`] : []),
        `Subnet = ${e.v6}/128`,
        `Subnet = ${e.v4}/32`,
      ].join("\n") + "\n",
    );
    // Appends the RSA public key to hosts/<name>; stdin is not a terminal, so no questions.
    await lab.exec(e.ns, ["tincd", "-c", d, "-K", "2048"], { check: true, timeoutMs: 30_000 });
    hostFiles.push(await Deno.readTextFile(`${d}/hosts/${e.name}`));
  }
  for (const [i, e] of ends.entries()) {
    const o = ends[1 - i]!;
    await Deno.writeTextFile(`${dir}/tinc-${e.name}/hosts/${o.name}`, hostFiles[1 - i]!);
  }
  const procs: LabProcess[] = [];
  for (const e of ends) {
    const d = `${dir}/tinc-${e.name}`;
    const p = lab.spawn(e.ns, ["tincd", "-c", d, "-D", "-d", "1", "--pidfile", `${d}/pid`]);
    procs.push(p);
    const up = await pollUntil(
      async () => {
        const r = await lab.exec(e.ns, ["ip", "link", "show", "tinc0"]);
        return r.success ? true : undefined;
      },
      10_000,
      100,
    );
    if (!up) throw new Error(`tinc interface did not appear:\n${p.tail(10)}`);
    await lab.exec(e.ns, ["ip", "-6", "addr", "add", `${e.v6}/64`, "dev", "tinc0", "nodad"], {
      check: true,
    });
    await lab.exec(e.ns, ["ip", "addr", "add", `${e.v4}/24`, "dev", "tinc0"], { check: true });
    await lab.exec(e.ns, ["ip", "link", "set", "tinc0", "mtu", String(MTU), "up"], {
      check: true,
    });
  }
  return {
    name: "tinc",
    v4: "198.19.204.2",
    v6: "fd00:a4::2",
    pids: procs.map((p) => p.pid),
    ifName: "tinc0",
  };
}

/** Waits until `addr` answers pings from `ns` (handshakes happen on demand for some VPNs). */
async function waitReachable(lab: Lab, ns: string, addr: string, timeoutMs: number) {
  const ok = await pollUntil(
    async () => {
      const r = await lab.ping(ns, addr, { count: 1, timeoutS: 1, intervalS: 0.2 });
      return r.received > 0 ? true : undefined;
    },
    timeoutMs,
    200,
  );
  if (!ok) throw new Error(`${addr} unreachable from ${ns} within ${timeoutMs} ms`);
}

// --- measuring -----------------------------------------------------------------------------------

/**
 * Datagrams iperf3 sends per pacing step when offered a rate (`-b RATE/10`). Unpaced, iperf3
 * 3.12 sends 10 per loop (its `multisend`). Paced without a burst it sends one per `select` loop
 * and reads the clock for each, which here cost it about twice the CPU per datagram: its share
 * of the 2-core machine was 30% pacing 132k datagrams/s one at a time, 20% in bursts of 10, and
 * 31% sending 240k/s unpaced. Paced one at a time, the offer takes from the tunnel CPU it had
 * while its maximum was measured; in steps of 10 the generator costs what it cost then.
 */
export const AT_MAX_BURST = 10;

/** One iperf3 run through `t`, with its CPU seconds and the machine's idle cores meanwhile. */
async function tunnelIperf(
  lab: Lab,
  h: Hosts,
  t: Tunnel,
  o: DatapathOptions,
  errors: string[],
  address: string,
  udp: boolean,
  paced?: { bitsPerSecond: number; burst: number },
) {
  let cpuBefore = NaN;
  let machineBefore: MachineCpu | undefined;
  let cpuSeconds = NaN;
  let idle = NaN;
  const r = await runIperf(lab, {
    serverNs: h.b,
    clientNs: h.a,
    address,
    seconds: udp ? o.udpSeconds : o.tcpSeconds,
    udp,
    ...(paced ?? {}),
    congestionControl: o.tcpCongestionControl,
    onStart: () => {
      cpuBefore = cpuSecondsOf(t.pids);
      machineBefore = machineCpu();
    },
    onEnd: () => {
      cpuSeconds = cpuSecondsOf(t.pids) - cpuBefore;
      idle = idleCores(machineBefore!, machineCpu());
    },
  });
  if (r.error) errors.push(`${udp ? "udp" : "tcp"} ${address}: ${r.error}`);
  return { ...r, cpuSeconds, idleCores: idle };
}

/** The at-max figures of a run before (or without) its at-max measurement. */
const NO_AT_MAX = {
  udpAtMaxLossPercent: NaN,
  udpAtMaxOfferedPps: NaN,
  udpAtMaxPps: NaN,
  udpAtMaxTunDropPercent: NaN,
  udpAtMaxRcvbufPercent: NaN,
  udpAtMaxVpnRcvbufPercent: NaN,
  udpAtMaxVpnOwnDropPercent: NaN,
  udpAtMaxBetweenEndsPercent: NaN,
  idleCoresUdpAtMax: NaN,
} satisfies Partial<RunFigures>;

/** One run of everything but the at-max offer ({@linkcode measureAtMax}). */
async function measure(
  lab: Lab,
  h: Hosts,
  t: Tunnel,
  o: DatapathOptions,
): Promise<RunFigures> {
  const errors: string[] = [];
  const iperf = (address: string, udp: boolean) => tunnelIperf(lab, h, t, o, errors, address, udp);
  // Idle tunnel first: ping, then the TCP runs, then the UDP flood.
  const ping = await lab.ping(h.a, t.v4, { count: o.pings, intervalS: 0.01, timeoutS: 2 });
  let perf: Deno.ChildProcess | undefined;
  if (o.profileDir && t.name === "meshub") {
    await Deno.mkdir(o.profileDir, { recursive: true });
    perf = new Deno.Command("perf", {
      args: ["record", "-F", "499", "-g", "-p", String(t.pids[0]), "-o"]
        .concat([`${o.profileDir}/perf-${Date.now()}.data`]),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }
  // RTT under a full TCP load: pings alongside the IPv4 run, ending before it does.
  const loaded = lab.ping(h.a, t.v4, {
    count: Math.max(1, Math.floor(o.tcpSeconds * 40)),
    intervalS: 0.02,
    timeoutS: 2,
  });
  const tcp4 = await iperf(t.v4, false);
  const pingLoad = await loaded;
  if (perf) {
    perf.kill("SIGINT");
    const timer = setTimeout(() => perf.kill("SIGKILL"), 20_000);
    await perf.status.finally(() => clearTimeout(timer));
  }
  const rss = t.pids.length > 0 ? t.pids.reduce((s, p) => s + rssBytes(p), 0) / t.pids.length : NaN;
  const tcp6 = t.v6 ? await iperf(t.v6, false) : undefined;
  const udp = await iperf(t.v4, true);
  const rssPeak = t.pids.length > 0 ? Math.max(...t.pids.map((p) => rssBytes(p, "VmHWM"))) : NaN;
  // Queues left behind by the flood show up as delay: 20 pings right after it.
  const after = await lab.ping(h.a, t.v4, { count: 20, intervalS: 0.01, timeoutS: 3 });
  await pollUntil(
    async () => {
      const r = await lab.ping(h.a, t.v4, { count: 1, intervalS: 0.2, timeoutS: 1 });
      return r.received > 0 && (r.rttsMs[0] ?? 1e9) < 5 ? true : undefined;
    },
    15_000,
    500,
  );
  // Idle again (the queues drained above): the first ping series once more.
  const warm = await lab.ping(h.a, t.v4, { count: o.pings, intervalS: 0.01, timeoutS: 2 });
  const cpuSeconds = t.pids.length > 0 ? tcp4.cpuSeconds : NaN;
  return {
    tcp6Mbps: tcp6 ? tcp6.bitsPerSecond / 1e6 : undefined,
    tcp4Mbps: tcp4.bitsPerSecond / 1e6,
    udpPps: udp.packetsPerSecond,
    udpLossPercent: udp.lossPercent,
    ...NO_AT_MAX,
    pingMedianMs: median(ping.rttsMs),
    pingP99Ms: quantile(ping.rttsMs, 0.99),
    pingLossPercent: ping.lossPercent,
    pingAfterUdpMs: median(after.rttsMs),
    pingWarmMedianMs: median(warm.rttsMs),
    pingWarmP99Ms: quantile(warm.rttsMs, 0.99),
    pingLoadMedianMs: median(pingLoad.rttsMs),
    pingLoadP99Ms: quantile(pingLoad.rttsMs, 0.99),
    cpuSeconds,
    cpuSecondsPerGB: tcp4.bytes > 0 ? cpuSeconds / (tcp4.bytes / 1e9) : NaN,
    idleCoresTcp: tcp4.idleCores,
    rssBytes: rss,
    rssPeakAfterUdpBytes: rssPeak,
    errors,
  };
}

/**
 * UDP offered at `pps` datagrams per second (the tunnel's reported maximum), paced in bursts of
 * {@linkcode AT_MAX_BURST}: its loss, and where the loss happened, from the same counters read
 * before and after.
 */
async function measureAtMax(
  lab: Lab,
  h: Hosts,
  t: Tunnel,
  o: DatapathOptions,
  pps: number,
  errors: string[],
): Promise<typeof NO_AT_MAX> {
  const drops = async () => {
    const own = t.ownCounters ? await t.ownCounters() : { drops: NaN, sent: NaN, received: NaN };
    return {
      tun: t.ifName ? await tunTxDropped(lab, h.a, t.ifName) : NaN,
      rcvbuf: await udpRcvbufErrors(lab, h.b),
      vpn: await socketDrops(lab, h.b, t.pids),
      own: own.drops,
      between: own.sent - own.received,
    };
  };
  const before = await drops();
  const r = await tunnelIperf(lab, h, t, o, errors, t.v4, true, {
    bitsPerSecond: pps * UDP_PAYLOAD_BYTES * 8,
    burst: AT_MAX_BURST,
  });
  const after = await drops();
  const offered = pps * o.udpSeconds;
  const dropPercent = (k: keyof typeof before) => 100 * (after[k] - before[k]) / offered;
  return {
    udpAtMaxLossPercent: r.lossPercent,
    udpAtMaxOfferedPps: pps,
    udpAtMaxPps: r.packetsPerSecond,
    udpAtMaxTunDropPercent: dropPercent("tun"),
    udpAtMaxRcvbufPercent: dropPercent("rcvbuf"),
    udpAtMaxVpnRcvbufPercent: dropPercent("vpn"),
    udpAtMaxVpnOwnDropPercent: dropPercent("own"),
    udpAtMaxBetweenEndsPercent: dropPercent("between"),
    idleCoresUdpAtMax: r.idleCores,
  };
}

const FIGURES = [
  "tcp6Mbps",
  "tcp4Mbps",
  "udpPps",
  "udpLossPercent",
  "udpAtMaxLossPercent",
  "udpAtMaxOfferedPps",
  "udpAtMaxPps",
  "udpAtMaxTunDropPercent",
  "udpAtMaxRcvbufPercent",
  "udpAtMaxVpnRcvbufPercent",
  "udpAtMaxVpnOwnDropPercent",
  "udpAtMaxBetweenEndsPercent",
  "pingMedianMs",
  "pingP99Ms",
  "pingLossPercent",
  "pingAfterUdpMs",
  "pingWarmMedianMs",
  "pingWarmP99Ms",
  "pingLoadMedianMs",
  "pingLoadP99Ms",
  "cpuSeconds",
  "cpuSecondsPerGB",
  "idleCoresTcp",
  "idleCoresUdpAtMax",
  "rssBytes",
  "rssPeakAfterUdpBytes",
] as const;

/** Runs one scenario: builds it in `lab`, starts every tunnel, measures interleaved. */
export async function runDatapath(
  lab: Lab,
  scenario: "veth" | "nat",
  dir: string,
  o: DatapathOptions,
): Promise<ScenarioResult> {
  o.say(`data path (${scenario}): building namespaces`);
  await Deno.mkdir(dir, { recursive: true });
  const h = await buildScenario(lab, scenario);
  const results = new Map<TunnelName, TunnelResult>();
  const up: Tunnel[] = [];
  const raw: Tunnel = {
    name: "raw",
    v4: h.bFromA,
    ...(h.bFromA6 ? { v6: h.bFromA6 } : {}),
    pids: [],
  };
  up.push(raw);
  results.set("raw", { tunnel: "raw", runs: [], median: {} });
  const hubNs = scenario === "nat" ? lab.nsName("hub") : undefined;
  for (const name of o.tunnels) {
    if (name === "raw") continue;
    results.set(name, { tunnel: name, runs: [], median: {} });
    try {
      o.say(`data path (${scenario}): starting ${name}`);
      const t = name === "meshub"
        ? await startMeshub(lab, h, dir, hubNs, o.profileArgs)
        : name === "wireguard-go"
        ? await startWireguardGo(lab, h, dir)
        : name === "nebula"
        ? await startNebula(lab, h, dir)
        : await startTinc(lab, h, dir);
      await waitReachable(lab, h.a, t.v4, 20_000);
      if (t.v6) await waitReachable(lab, h.a, t.v6, 10_000);
      up.push(t);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      o.say(`data path (${scenario}): ${name} skipped: ${why.split("\n")[0]}`);
      results.get(name)!.skipped = why;
    }
  }
  for (let run = 1; run <= o.runs; run++) {
    for (const t of up) {
      o.say(`data path (${scenario}): run ${run}/${o.runs} ${t.name}`);
      const f = await measure(lab, h, t, o);
      for (const e of f.errors) o.say(`  ${t.name}: ${e}`);
      results.get(t.name)!.runs.push(f);
    }
  }
  // The maximum each tunnel reports is the median of its full-load runs; offer exactly that.
  const maxPps = new Map(
    up.map((t) => [t, median(results.get(t.name)!.runs.map((f) => f.udpPps))]),
  );
  for (let run = 1; run <= o.runs; run++) {
    for (const t of up) {
      const pps = maxPps.get(t)!;
      if (!Number.isFinite(pps) || pps <= 0) continue;
      o.say(`data path (${scenario}): at max ${run}/${o.runs} ${t.name} (${Math.round(pps)}/s)`);
      const f = results.get(t.name)!.runs[run - 1]!;
      const errors: string[] = [];
      Object.assign(f, await measureAtMax(lab, h, t, o, pps, errors));
      for (const e of errors) o.say(`  ${t.name}: ${e}`);
      f.errors.push(...errors);
    }
  }
  for (const r of results.values()) {
    for (const k of FIGURES) {
      const vals = r.runs.map((f) => f[k]).filter((x): x is number => x !== undefined);
      if (vals.length > 0) r.median[k] = median(vals);
    }
  }
  return { scenario, tunnels: [...results.values()] };
}
