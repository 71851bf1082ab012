/**
 * `deno task bench` (root): meshub side by side with wireguard-go, Nebula and tinc, in network
 * namespaces it builds and tears down; prints tables and writes a JSON file.
 *
 * ```
 * deno task bench [--quick] [--runs N] [--json FILE] [--only datapath,formation,hub,client]
 *                 [--n 10,30] [--hub-members 1000,5000,10000] [--client-peers 200]
 *                 [--tunnels raw,meshub,wireguard-go,nebula,tinc] [--profile DIR]
 *                 [--tcp-cc cubic]
 * ```
 *
 * Scenarios: `datapath` (veth and NAT: iperf3 TCP/UDP, ping, CPU, RSS), `formation` (N clients,
 * half behind NATs, one hub), `hub` (one hub, simulated members), `client` (one client, simulated
 * static WireGuard peers). `--quick` is a smoke test of the harness (a few seconds per scenario).
 * `--profile DIR`: `perf record -g` of meshub client `a` (V8 `--perf-basic-prof`) during each veth
 * IPv4 TCP run, into DIR/perf-<run>.data (`perf report -i ...`). `--tcp-cc NAME`: every tunnel's
 * TCP runs use that congestion control (iperf3 `-C`) instead of the host's default
 * (`net.ipv4.tcp_congestion_control`, named in the output): a single flow's rate through a tunnel
 * depends on it (BBR paces and caps what is in flight; CUBIC fills the tunnel's queues).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Lab, missingTools } from "../tests/lab/netns.ts";
import {
  runDatapath,
  type ScenarioResult,
  TUNNEL_TOOLS,
  type TunnelName,
  TUNNELS,
} from "./datapath.ts";
import { type FormationResult, runFormation } from "./formation.ts";
import { type HubScaleResult, runHubScale } from "./hub_scale.ts";
import { type ClientScaleResult, runClientScale } from "./client_scale.ts";
import {
  fmt,
  hostRun,
  mib,
  ratio,
  readSysctl,
  renderTable,
  UDP_SOCKET_BUFFER_BYTES,
  udpSocketBufferBytes,
} from "./lib.ts";

/** Scenario names for `--only`. */
export const SCENARIOS = ["datapath", "formation", "hub", "client"] as const;
type Scenario = typeof SCENARIOS[number];

/** Debian package of each tool the bench uses. */
const PACKAGES: Record<string, string> = {
  ip: "iproute2",
  iptables: "iptables",
  ping: "iputils-ping",
  iperf3: "iperf3",
  timeout: "coreutils",
  "wireguard-go": "wireguard-go",
  wg: "wireguard-tools",
  nebula: "nebula",
  "nebula-cert": "nebula",
  tincd: "tinc",
};

/** Settings, from the command line. */
export interface BenchSettings {
  quick: boolean;
  runs: number;
  json: string;
  only: Scenario[];
  n: number[];
  hubMembers: number[];
  clientPeers: number;
  profileDir?: string;
  tunnels: TunnelName[];
  /** `--tcp-cc`: congestion control of the TCP runs; unset: the host's default. */
  tcpCc?: string;
}

const say = (line: string) => console.error(`bench: ${line}`);

function usage(): string {
  return "usage: deno task bench [--quick] [--runs N] [--json FILE] " +
    "[--only datapath,formation,hub,client] [--n 10,30] [--hub-members 1000,5000,10000] " +
    "[--client-peers 200] [--tunnels raw,meshub,wireguard-go,nebula,tinc] [--profile DIR] " +
    "[--tcp-cc cubic]";
}

function intList(s: string, what: string, min: number, max: number): number[] {
  const v = s.split(",").map((x) => Number(x.trim()));
  if (v.length === 0 || v.some((x) => !Number.isInteger(x) || x < min || x > max)) {
    throw new Error(`${what}: expected integers ${min}..${max} separated by commas, got "${s}"`);
  }
  return v;
}

/** Parses the command line. Throws on mistakes. */
export function parseSettings(args: string[]): BenchSettings {
  const { values: a, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      runs: { type: "string" },
      json: { type: "string" },
      only: { type: "string" },
      n: { type: "string" },
      "hub-members": { type: "string" },
      "client-peers": { type: "string" },
      profile: { type: "string" },
      tunnels: { type: "string" },
      "tcp-cc": { type: "string" },
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}; ${usage()}`);
  if (a.help) {
    console.log(usage());
    Deno.exit(0);
  }
  const quick = a.quick === true;
  const only = a.only === undefined ? [...SCENARIOS] : a.only.split(",").map((s) => s.trim());
  for (const s of only) {
    if (!(SCENARIOS as readonly string[]).includes(s)) {
      throw new Error(`--only: unknown scenario "${s}" (known: ${SCENARIOS.join(", ")})`);
    }
  }
  const tcpCc = a["tcp-cc"]?.trim();
  if (tcpCc !== undefined && !/^[a-z][a-z0-9_]{0,14}$/.test(tcpCc)) {
    throw new Error(`--tcp-cc: expected a congestion control name such as cubic, got "${tcpCc}"`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const results = new URL("./results/", import.meta.url).pathname;
  return {
    quick,
    runs: a.runs === undefined ? (quick ? 1 : 3) : intList(a.runs, "--runs", 1, 20)[0]!,
    json: a.json ?? `${results}${stamp}.json`,
    only: only as Scenario[],
    n: a.n === undefined ? (quick ? [4] : [10, 30]) : intList(a.n, "--n", 2, 60),
    hubMembers: a["hub-members"] === undefined
      ? (quick ? [200] : [1000, 5000, 10000])
      : intList(a["hub-members"], "--hub-members", 2, 10000),
    clientPeers: a["client-peers"] === undefined
      ? (quick ? 20 : 200)
      : intList(a["client-peers"], "--client-peers", 1, 1000)[0]!,
    ...(a.profile ? { profileDir: a.profile } : {}),
    tunnels: a.tunnels === undefined ? [...TUNNELS] : a.tunnels.split(",").map((t) => {
      if (!(TUNNELS as readonly string[]).includes(t.trim())) {
        throw new Error(`--tunnels: unknown tunnel "${t}" (known: ${TUNNELS.join(", ")})`);
      }
      return t.trim() as TunnelName;
    }),
    tcpCc,
  };
}

/** Installs the Debian packages of missing tools with apt-get; returns tools still missing. */
async function installMissing(tools: string[]): Promise<string[]> {
  const missing = missingTools(tools);
  if (missing.length === 0) return [];
  const pkgs = [...new Set(missing.map((t) => PACKAGES[t] ?? t))];
  if (missingTools(["apt-get"]).length > 0) {
    say(`missing ${missing.join(", ")} and no apt-get to install ${pkgs.join(" ")}`);
    return missing;
  }
  say(`missing ${missing.join(", ")}: installing ${pkgs.join(" ")} with apt-get (once)...`);
  const apt = async (args: string[]) => {
    const child = new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    const out = await child.output().finally(() => clearTimeout(timer));
    if (!out.success) {
      say(`apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return out.success;
  };
  if (await apt(["update", "-qq"])) await apt(["install", "-y", "-qq", ...pkgs]);
  const still = missingTools(tools);
  if (still.length > 0) say(`still missing after apt-get: ${still.join(", ")}`);
  return still;
}

/** Machine and package facts for the JSON. */
async function machineInfo(): Promise<Record<string, unknown>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const versions: Record<string, string> = {};
  for (const p of ["wireguard-go", "wireguard-tools", "nebula", "tinc", "iperf3", "iproute2"]) {
    versions[p] = (await hostRun(["dpkg-query", "-W", "-f", "${Version}", p]).catch(() => ""))
      .trim() || "not installed";
  }
  const mem = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  return {
    cpuModel: model,
    cores: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    memTotalKiB: Number(/^MemTotal:\s+(\d+)/m.exec(mem)?.[1] ?? NaN),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    packages: versions,
    tcpCongestionControl: hostTcpCongestionControl(),
    loadavgAtStart: (await Deno.readTextFile("/proc/loadavg").catch(() => "")).trim(),
  };
}

/** The host's default TCP congestion control (what namespaces inherit), or "unknown". */
function hostTcpCongestionControl(): string {
  return readSysctl("net.ipv4.tcp_congestion_control") || "unknown";
}

/** Throws a one-line error when the kernel does not offer congestion control `name`. */
function checkTcpCc(name: string): void {
  const available = readSysctl("net.ipv4.tcp_available_congestion_control").split(/\s+/);
  if (!available.includes(name)) {
    throw new Error(
      `--tcp-cc: this kernel offers ${available.join(", ") || "none"}, not ${name} ` +
        `(modprobe tcp_${name} may add it)`,
    );
  }
}

// --- tables --------------------------------------------------------------------------------------

/** Text table of one data path scenario: each tunnel's medians and meshub's ratios. */
export function datapathTable(r: ScenarioResult, runs: number): string {
  const by = new Map(r.tunnels.map((t) => [t.tunnel, t]));
  const cols = TUNNELS.filter((t) => by.has(t));
  const peers = cols.filter((t) => t !== "meshub" && t !== "raw");
  const rows: string[][] = [[
    `${r.scenario} (median of ${runs})`,
    ...cols,
    ...(by.has("meshub") ? ["meshub/raw", ...peers.map((p) => `meshub/${p}`)] : []),
  ]];
  const line = (label: string, key: string, scale = 1, digits = 3) => {
    const v = (t: TunnelName) => {
      const x = (by.get(t)?.median as Record<string, number> | undefined)?.[key];
      return x === undefined ? undefined : x * scale;
    };
    const m = v("meshub");
    rows.push([
      label,
      ...cols.map((t) => by.get(t)!.skipped ? "skipped" : fmt(v(t), digits)),
      ...(by.has("meshub") ? [ratio(m, v("raw")), ...peers.map((p) => ratio(m, v(p)))] : []),
    ]);
  };
  line("TCP IPv6 Mbit/s", "tcp6Mbps");
  line("TCP IPv4 Mbit/s", "tcp4Mbps");
  line("UDP 1300 B delivered kpps", "udpPps", 1e-3);
  line("UDP loss % (full offered load)", "udpLossPercent");
  line("UDP offered its max (median) kpps", "udpAtMaxOfferedPps", 1e-3);
  line("  loss % at it", "udpAtMaxLossPercent");
  line("    of it: sender TUN drops %", "udpAtMaxTunDropPercent");
  line("    of it: receiver socket drops %", "udpAtMaxRcvbufPercent");
  line("      at the VPN's own socket %", "udpAtMaxVpnRcvbufPercent");
  line("    of it: dropped by the VPN (its count) %", "udpAtMaxVpnOwnDropPercent");
  line("    of it: lost between the VPN's ends (its counts) %", "udpAtMaxBetweenEndsPercent");
  line("ping median ms (fresh tunnel)", "pingMedianMs");
  line("ping p99 ms (fresh tunnel)", "pingP99Ms");
  line("ping median ms (idle after load)", "pingWarmMedianMs");
  line("ping p99 ms (idle after load)", "pingWarmP99Ms");
  line("ping loss %", "pingLossPercent");
  line("ping ms right after UDP flood", "pingAfterUdpMs");
  line("ping median ms under TCP load", "pingLoadMedianMs");
  line("ping p99 ms under TCP load", "pingLoadP99Ms");
  line("CPU s in TCPv4 run (2 ends)", "cpuSeconds");
  line("CPU s per GB (TCPv4)", "cpuSecondsPerGB");
  line("machine idle cores (TCPv4 run)", "idleCoresTcp");
  line("machine idle cores (UDP at max)", "idleCoresUdpAtMax");
  line("RSS MiB per process", "rssBytes", 1 / (1024 * 1024));
  line("peak RSS MiB after UDP flood", "rssPeakAfterUdpBytes", 1 / (1024 * 1024));
  const notes = r.tunnels.filter((t) => t.skipped).map((t) =>
    `  ${t.tunnel} skipped: ${t.skipped!.split("\n")[0]}`
  );
  return renderTable(rows) + (notes.length ? "\n" + notes.join("\n") : "");
}

function formationTable(rs: FormationResult[]): string {
  const rows = [[
    "formation",
    "N",
    "NATed",
    "edges up s",
    "pings ok s",
    "pairs ok",
    "no-hub restart edges",
    "hub back → all edges s",
    "client RSS MiB med/max",
    "hub RSS MiB",
  ]];
  for (const r of rs) {
    rows.push([
      r.error ? `error: ${r.error.split("\n")[0]!.slice(0, 60)}` : "",
      String(r.n),
      String(r.natted),
      fmt(r.edgesUpMs / 1000),
      fmt(r.pingsOkMs / 1000),
      `${r.pairsOk}/${r.pairs}`,
      `${r.restartWithoutHub.edges}/${r.n - 1}`,
      fmt(r.restartWithHub.allEdgesMs / 1000),
      `${fmt(mib(r.clientRssMedian))}/${fmt(mib(r.clientRssMax))}`,
      fmt(mib(r.hubRss)),
    ]);
  }
  return renderTable(rows);
}

function hubTable(rs: HubScaleResult[]): string {
  const rows = [[
    "hub scale",
    "members",
    "networks",
    "joined",
    "join s",
    "RSS MiB",
    "CPU µs/registration",
    "CPU µs/keepalive",
    "join→all told ms p50/p99/max",
  ]];
  for (const r of rs) {
    rows.push([
      r.error ? `error: ${r.error.split("\n")[0]!.slice(0, 60)}` : "",
      String(r.members),
      String(r.networks),
      String(r.joined),
      fmt(r.joinSeconds),
      fmt(mib(r.hubRssBytes)),
      fmt(r.cpuPerRegistrationUs),
      fmt(r.cpuPerKeepaliveUs),
      `${fmt(r.toldMs.p50)}/${fmt(r.toldMs.p99)}/${fmt(r.toldMs.max)}`,
    ]);
  }
  return renderTable(rows);
}

function clientTable(r: ClientScaleResult): string {
  return renderTable([
    ["client scale", "peers", "edges up", "up after s", "RSS MiB", "idle CPU s/min", "per peer"],
    [
      r.error ? `error: ${r.error.split("\n")[0]!.slice(0, 60)}` : "",
      String(r.peers),
      String(r.edgesUp),
      fmt(r.allUpMs / 1000),
      fmt(mib(r.rssBytes)),
      fmt(r.idleCpuSecondsPerMinute),
      `${fmt(r.idleCpuMsPerPeerPerMinute)} ms/min`,
    ],
  ]);
}

// --- main ----------------------------------------------------------------------------------------

/** Runs the benchmark with `args`; returns the JSON object written. */
export async function main(args: string[]): Promise<Record<string, unknown>> {
  const s = parseSettings(args);
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) {
    throw new Error("the benchmark needs root on Linux (network namespaces, TUN devices)");
  }
  const base = ["ip", "iptables", "ping", "timeout"];
  const wantsDatapath = s.only.includes("datapath");
  const peerTools = wantsDatapath ? ["iperf3", ...Object.values(TUNNEL_TOOLS).flat()] : [];
  const stillMissing = await installMissing([...base, ...peerTools]);
  const baseMissing = stillMissing.filter((t) => base.includes(t) || t === "iperf3");
  if (baseMissing.length > 0) {
    throw new Error(`cannot run without ${baseMissing.join(", ")}`);
  }
  const tunnels = s.tunnels.filter((t) => {
    const lacking = TUNNEL_TOOLS[t].filter((tool) => stillMissing.includes(tool));
    if (lacking.length > 0) say(`skipping ${t}: ${lacking.join(", ")} not installed`);
    return lacking.length === 0;
  });
  if (s.tcpCc) checkTcpCc(s.tcpCc);
  const machine = await machineInfo();
  say(`machine: ${machine.cpuModel}, ${machine.cores} cores, kernel ${machine.kernel}`);
  const tcpCcNote = s.tcpCc
    ? `TCP runs: congestion control ${s.tcpCc} (--tcp-cc; host default ` +
      `${machine.tcpCongestionControl})`
    : `TCP runs: congestion control ${machine.tcpCongestionControl} (the host's default)`;
  const out: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    settings: s,
    machine,
  };
  const dir = await Deno.makeTempDir({ prefix: "meshub-bench-" });
  const tables: string[] = [];
  const started = performance.now();
  try {
    if (s.only.includes("datapath")) {
      const udpBuffer = udpSocketBufferBytes();
      if (udpBuffer < UDP_SOCKET_BUFFER_BYTES) {
        say(
          `note: iperf3's UDP sockets get ${udpBuffer || "the default"} bytes ` +
            "(net.core.rmem_max/wmem_max), not 4 MiB: the receiving iperf3 may drop bursts itself; " +
            "sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 to avoid that",
        );
      }
      const dp: ScenarioResult[] = [];
      for (const scenario of ["veth", "nat"] as const) {
        await using lab = new Lab({ prefix: undefined });
        const r = await runDatapath(lab, scenario, `${dir}/${scenario}`, {
          runs: s.runs,
          tcpSeconds: s.quick ? 2 : 10,
          udpSeconds: s.quick ? 2 : 5,
          pings: s.quick ? 20 : 200,
          tunnels,
          tcpCongestionControl: s.tcpCc,
          say,
          ...(s.profileDir && scenario === "veth"
            ? { profileArgs: ["--v8-flags=--perf-basic-prof"], profileDir: s.profileDir }
            : {}),
        }).catch((e) => ({ scenario, tunnels: [], error: String(e?.stack ?? e) }));
        dp.push(r as ScenarioResult);
        if ("error" in r) say(`data path (${scenario}) failed: ${r.error}`);
        else tables.push(datapathTable(r, s.runs));
      }
      out.datapath = dp;
      tables.push(tcpCcNote);
    }
    if (s.only.includes("formation")) {
      const fr: FormationResult[] = [];
      for (const n of s.n) {
        await using lab = new Lab();
        fr.push(await runFormation(lab, n, `${dir}/formation-${n}`, { quick: s.quick, say }));
      }
      out.formation = fr;
      tables.push(formationTable(fr));
    }
    if (s.only.includes("hub")) {
      const hr: HubScaleResult[] = [];
      for (const m of s.hubMembers) {
        await using lab = new Lab();
        hr.push(await runHubScale(lab, m, { quick: s.quick, say }));
      }
      out.hubScale = hr;
      tables.push(hubTable(hr));
    }
    if (s.only.includes("client")) {
      await using lab = new Lab();
      const cr = await runClientScale(lab, s.clientPeers, `${dir}/client`, {
        quick: s.quick,
        say,
      });
      out.clientScale = cr;
      tables.push(clientTable(cr));
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  out.elapsedSeconds = (performance.now() - started) / 1000;
  out.tables = tables;
  const jsonDir = s.json.slice(0, s.json.lastIndexOf("/") + 1);
  if (jsonDir) await Deno.mkdir(jsonDir, { recursive: true });
  await Deno.writeTextFile(s.json, JSON.stringify(out, null, 2) + "\n");
  console.log(
    `meshub bench (${s.quick ? "quick, smoke test only" : "full"}) on ${machine.cpuModel}, ` +
      `${machine.cores} cores, kernel ${machine.kernel}, Deno ${machine.deno}`,
  );
  for (const t of tables) console.log("\n" + t);
  console.log(`\nJSON: ${s.json}`);
  return out;
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
