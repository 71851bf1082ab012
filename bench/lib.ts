/**
 * Small helpers shared by the benchmark scenarios: process and machine CPU and process memory
 * from /proc, statistics, iperf3 JSON parsing, bounded waiting, and table formatting.
 *
 * @module
 */
import type { Lab } from "../tests/lab/netns.ts";

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`, 100 on Linux). */
export const CLK_TCK = 100;

/** CPU seconds (user + system, all threads) used so far by process `pid`, or NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces: split after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Sum of {@linkcode cpuSeconds} over `pids`. */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((s, p) => s + cpuSeconds(p), 0);
}

/** The whole machine's CPU time so far, from /proc/stat, in clock ticks. */
export interface MachineCpu {
  /** Idle and I/O-wait ticks of all CPUs. */
  idle: number;
  /** All ticks of all CPUs (user, nice, system, idle, iowait, irq, softirq, steal). */
  total: number;
  /** Number of CPUs (the `cpuN` lines). */
  cpus: number;
}

/** Parses /proc/stat (`text`, read from the file when omitted); NaN fields if it does not parse. */
export function machineCpu(text?: string): MachineCpu {
  try {
    const lines = (text ?? Deno.readTextFileSync("/proc/stat")).split("\n");
    const all = lines.find((l) => /^cpu\s/.test(l));
    // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
    const f = all!.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 5 || f.some((x) => !Number.isFinite(x))) throw new Error("bad cpu line");
    return {
      idle: f[3]! + f[4]!,
      total: f.reduce((s, x) => s + x, 0),
      cpus: lines.filter((l) => /^cpu\d+\s/.test(l)).length,
    };
  } catch {
    return { idle: NaN, total: NaN, cpus: NaN };
  }
}

/** How many cores stood idle on average between two {@linkcode machineCpu} readings. */
export function idleCores(before: MachineCpu, after: MachineCpu): number {
  const total = after.total - before.total;
  return total > 0 ? (after.idle - before.idle) / total * after.cpus : NaN;
}

/** Resident set size of `pid` in bytes (VmRSS), or NaN if it is gone. `field` may be VmHWM. */
export function rssBytes(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The median of the finite values, or NaN when there are none. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Quantile `q` (0..1, linear interpolation) of the finite values, or NaN when there are none. */
export function quantile(values: readonly number[], q: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo]! + (v[hi]! - v[lo]!) * (pos - lo);
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Calls `probe` every `intervalMs` until it returns a non-undefined value or `timeoutMs` passes
 * (then returns undefined). Bounded in time and in count.
 */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  const maxTries = Math.ceil(timeoutMs / intervalMs) + 1;
  for (let i = 0; i < maxTries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() >= deadline) break;
    await sleep(intervalMs);
  }
  return undefined;
}

/** The outcome of one iperf3 client run. */
export interface IperfResult {
  /** Receiver-side throughput in bits/s (TCP), or NaN. */
  bitsPerSecond: number;
  /** UDP: datagrams the receiver got per second, or NaN. */
  packetsPerSecond: number;
  /** UDP: receiver-side loss in percent, or NaN. */
  lossPercent: number;
  /** Bytes the receiver got. */
  bytes: number;
  /** Why the run failed, if it did. */
  error?: string;
}

/** Parses `iperf3 -J` client output (TCP or UDP), receiver side. */
export function parseIperf(json: string): IperfResult {
  const failed = (error: string): IperfResult => ({
    bitsPerSecond: NaN,
    packetsPerSecond: NaN,
    lossPercent: NaN,
    bytes: 0,
    error,
  });
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json);
  } catch {
    return failed(`no JSON from iperf3: ${json.trim().slice(0, 200)}`);
  }
  if (typeof o.error === "string") return failed(o.error);
  const end = o.end as Record<string, Record<string, number>> | undefined;
  if (!end) return failed("iperf3 JSON without end");
  const r = end.sum_received;
  if (!r) return failed("iperf3 JSON without end.sum_received");
  if (r.jitter_ms === undefined) {
    return {
      bitsPerSecond: r.bits_per_second ?? NaN,
      packetsPerSecond: NaN,
      lossPercent: NaN,
      bytes: r.bytes ?? 0,
    };
  }
  // UDP (iperf3 3.12): the receiver's bytes (1300 per datagram) and its loss count.
  return {
    bitsPerSecond: r.bits_per_second ?? NaN,
    packetsPerSecond: r.seconds > 0 ? (r.bytes ?? 0) / UDP_PAYLOAD_BYTES / r.seconds : NaN,
    lossPercent: r.lost_percent ?? NaN,
    bytes: r.bytes ?? 0,
  };
}

/** Payload bytes of every UDP datagram iperf3 sends in the bench (`-l`). */
export const UDP_PAYLOAD_BYTES = 1300;

/** Options of {@linkcode runIperf}. */
export interface IperfOptions {
  /** Namespace of the server. */
  serverNs: string;
  /** Namespace of the client. */
  clientNs: string;
  /** Address the client connects to. */
  address: string;
  /** Seconds of traffic. */
  seconds: number;
  /** UDP with 1300-byte payloads, at full offered load unless `bitsPerSecond` is given. */
  udp?: boolean;
  /** Offered UDP payload rate (iperf3 `-b`), bits per second. */
  bitsPerSecond?: number;
  /** Paced UDP: datagrams iperf3 sends per pacing step (`-b RATE/BURST`); unset: one. */
  burst?: number;
  /** Port (default 5201). */
  port?: number;
  /** TCP runs: the sender's congestion control (iperf3 `-C`); unset: the host's default. */
  congestionControl?: string;
  /** Called once the server listens, just before the client starts (CPU sampling). */
  onStart?: () => void;
  /** Called right after the client exits. */
  onEnd?: () => void;
}

/**
 * The value of sysctl `key` (e.g. `net.core.rmem_max`), trimmed; "" where it cannot be read
 * (Deno reads /proc/sys only with `--allow-all`, which `deno task bench` has).
 */
export function readSysctl(key: string): string {
  try {
    return Deno.readTextFileSync(`/proc/sys/${key.replaceAll(".", "/")}`).trim();
  } catch {
    return "";
  }
}

/** The socket buffer iperf3's UDP runs ask for, where the kernel allows it. */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Socket buffer for iperf3's UDP runs: {@linkcode UDP_SOCKET_BUFFER_BYTES}, or what the kernel
 * allows (0: leave it).
 */
export function udpSocketBufferBytes(): number {
  const read = (name: string) => Number(readSysctl(`net.core.${name}`));
  // iperf3 fails when it gets less than it asked for, so never ask for more than the maximum.
  const max = Math.min(read("rmem_max"), read("wmem_max"));
  return Number.isFinite(max) && max > 0 ? Math.min(UDP_SOCKET_BUFFER_BYTES, max) : 0;
}

/**
 * The iperf3 client's command line for `o`. UDP runs ask for `udpBufferBytes` socket buffers
 * (`-w`, which iperf3 also sends to the server for its receiving socket); 0 leaves the default.
 */
export function iperfClientArgs(
  o: Pick<
    IperfOptions,
    "address" | "port" | "seconds" | "udp" | "bitsPerSecond" | "burst" | "congestionControl"
  >,
  udpBufferBytes: number,
): string[] {
  const args = ["iperf3", "-c", o.address, "-p", String(o.port ?? 5201), "-J"];
  args.push("-t", String(o.seconds), "--connect-timeout", "5000");
  if (o.udp) {
    const rate = o.bitsPerSecond === undefined
      ? "0"
      : String(Math.max(1, Math.round(o.bitsPerSecond))) + (o.burst ? `/${o.burst}` : "");
    args.push("-u", "-b", rate, "-l", String(UDP_PAYLOAD_BYTES));
    if (udpBufferBytes > 0) args.push("-w", String(udpBufferBytes));
  } else if (o.congestionControl) {
    args.push("-C", o.congestionControl);
  }
  return args;
}

/**
 * One iperf3 test: a one-off server (`-s -1`) in `serverNs`, the client in `clientNs`, both
 * bounded by `timeout` (iperf3 3.12 spins forever if the path vanishes mid-test).
 */
export async function runIperf(lab: Lab, o: IperfOptions): Promise<IperfResult> {
  const port = String(o.port ?? 5201);
  const bound = o.seconds + 20;
  const server = lab.spawn(o.serverNs, [
    "timeout",
    String(bound + 5),
    "iperf3",
    "-s",
    "-1",
    "--forceflush",
    "-p",
    port,
  ]);
  try {
    await server.waitForLine(/Server listening/, { timeoutMs: 10_000 });
    const args = ["timeout", String(bound), ...iperfClientArgs(o, udpSocketBufferBytes())];
    o.onStart?.();
    const r = await lab.exec(o.clientNs, args, { timeoutMs: (bound + 5) * 1000 });
    o.onEnd?.();
    const res = parseIperf(r.stdout);
    if (r.timedOut || r.code === 124) res.error = `iperf3 timed out (${res.error ?? ""})`;
    return res;
  } finally {
    await server.stop(1000);
  }
}

/** Formats a number for the table: 3 significant digits, "-" for NaN/undefined. */
export function fmt(x: number | undefined, digits = 3): string {
  if (x === undefined || !Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 10 ** digits) return Math.round(x).toString();
  return Number(x.toPrecision(digits)).toString();
}

/** A ratio a/b formatted "1.23x", or "-" when either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return "-";
  }
  return `${(a / b).toFixed(2)}x`;
}

/** Renders rows of cells as an aligned text table (first row is the header). */
export function renderTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
      .trimEnd();
  const out = [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join("\n");
}

/** Runs a host command (not in a lab namespace), bounded; returns stdout or throws. */
export async function hostRun(cmd: string[], timeoutMs = 30_000): Promise<string> {
  const [program, ...args] = cmd as [string, ...string[]];
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(`\`${cmd.join(" ")}\` failed: ${dec.decode(out.stderr).trim()}`);
    }
    return dec.decode(out.stdout);
  } finally {
    clearTimeout(timer);
  }
}

/** Bytes → MiB. */
export function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}
