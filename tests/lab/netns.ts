/**
 * A small library to build real network labs from Linux network namespaces, veth pairs, bridges
 * and iptables-nft NAT, for end-to-end tests, the demo and the benchmark. Needs root.
 *
 * A {@linkcode Lab} owns everything it creates: its namespaces (named `<prefix>-<name>`, with a
 * random per-run prefix) and the processes it starts. `close()` removes all of it, also after
 * failures and on SIGINT/SIGTERM. Every interface, bridge and iptables rule lives inside one of
 * the lab's namespaces, so deleting the namespaces removes them; nothing is added to the host's
 * own namespace.
 *
 * Network rules enforced here: IPv4 addresses only from 198.18.0.0/15, IPv6 only from fd00::/8,
 * no default routes.
 *
 * ```ts
 * await using lab = new Lab();
 * const hub = await lab.namespace("hub");
 * const c1 = await lab.namespace("c1");
 * await lab.link(hub, "eth0", "198.18.0.1/24", c1, "eth0", "198.18.0.11/24");
 * const ping = await lab.ping(c1, "198.18.0.1");
 * ```
 *
 * @module
 */

/** Longest Linux interface or namespace name we create. */
export const NAME_MAX_LEN = 15;
/** Default bound on {@linkcode Lab.exec}. */
export const EXEC_TIMEOUT_MS = 15_000;
/** Default bound on {@linkcode LabProcess.waitForLine}. */
export const WAIT_LINE_TIMEOUT_MS = 10_000;
/** How long a process gets between SIGTERM and SIGKILL when the lab stops it. */
export const STOP_GRACE_MS = 2_000;
/** Lines of output a {@linkcode LabProcess} keeps in memory. */
export const MAX_KEPT_LINES = 20_000;

/** Result of a command run by {@linkcode Lab.exec}. */
export interface ExecResult {
  /** Exit code (128 + signal number when killed). */
  code: number;
  /** True when the exit code was 0. */
  success: boolean;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
  /** True when the command was killed for running past its timeout. */
  timedOut: boolean;
}

/** Options for {@linkcode Lab.exec}. */
export interface ExecOptions {
  /** Kill the command after this long. Default {@linkcode EXEC_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Throw a {@linkcode LabCommandError} when the command fails or times out. Default false. */
  check?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** A lab command failed (with `check: true`), or lab setup failed. */
export class LabCommandError extends Error {
  /** The command, program first, including the `ip netns exec NS` prefix if any. */
  readonly command: readonly string[];
  /** What the command returned. */
  readonly result: ExecResult;

  /** Builds a one-line message from the command and its stderr. */
  constructor(command: readonly string[], result: ExecResult) {
    const why = result.timedOut ? "timed out" : `exited with ${result.code}`;
    const err = (result.stderr || result.stdout).trim().replace(/\s*\n\s*/g, "; ");
    super(`lab command \`${command.join(" ")}\` ${why}${err ? `: ${err}` : ""}`);
    this.name = "LabCommandError";
    this.command = command;
    this.result = result;
  }
}

/** Options for {@linkcode Lab.spawn}. */
export interface SpawnOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Also append every output line (stdout and stderr) to this file. */
  stdoutFile?: string;
  /** Working directory. */
  cwd?: string;
}

/** One line of a {@linkcode LabProcess}'s output. */
export interface OutputLine {
  /** Which stream it came from. */
  stream: "stdout" | "stderr";
  /** The line, without its newline. */
  text: string;
}

/** Result of {@linkcode LabProcess.waitForLine}. */
export interface LineMatch {
  /** The matching line. */
  line: string;
  /** The regex match. */
  match: RegExpMatchArray;
  /** Index of the line in the process's output; pass `index + 1` as `since` to wait for the next one. */
  index: number;
}

interface LineWaiter {
  re: RegExp;
  since: number;
  resolve: (m: LineMatch) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A process started by {@linkcode Lab.spawn} in a lab namespace. */
export class LabProcess {
  /** Short description for messages, e.g. `hub: deno run ...`. */
  readonly label: string;
  /** Process id (of the command itself: `ip netns exec` replaces itself with it). */
  readonly pid: number;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #lines: OutputLine[] = [];
  #dropped = 0;
  #waiters = new Set<LineWaiter>();
  #exited = false;
  #pumps: Promise<void>;
  #file: Deno.FsFile | undefined;
  #rawStatus: Promise<Deno.CommandStatus>;

  /** Wraps a spawned child. Use {@linkcode Lab.spawn}. */
  constructor(label: string, child: Deno.ChildProcess, stdoutFile?: string) {
    this.label = label;
    this.#child = child;
    this.pid = child.pid;
    this.#rawStatus = child.status;
    if (stdoutFile !== undefined) {
      this.#file = Deno.openSync(stdoutFile, { append: true, create: true });
    }
    this.#pumps = Promise.all([
      this.#pump(child.stdout, "stdout"),
      this.#pump(child.stderr, "stderr"),
    ]).then(() => {});
    this.status = child.status.then(async (s) => {
      // Let the pumps see end of stream, so waiters get every line before the exit verdict.
      await this.#pumps;
      this.#exited = true;
      this.#file?.close();
      this.#file = undefined;
      for (const w of this.#waiters) {
        clearTimeout(w.timer);
        w.reject(
          new Error(
            `${this.label} exited (code ${s.code}${
              s.signal ? `, ${s.signal}` : ""
            }) before printing a line matching ${w.re}; last output:\n${this.tail(15)}`,
          ),
        );
      }
      this.#waiters.clear();
      return s;
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr"): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    try {
      for await (const chunk of stream) {
        partial += decoder.decode(chunk, { stream: true });
        const parts = partial.split("\n");
        partial = parts.pop()!;
        for (const p of parts) this.#addLine(name, p);
      }
    } catch {
      // The stream errors when the process is killed mid-write; the lines so far are kept.
    }
    partial += decoder.decode();
    if (partial !== "") this.#addLine(name, partial);
  }

  #addLine(stream: "stdout" | "stderr", text: string): void {
    const index = this.#dropped + this.#lines.length;
    this.#lines.push({ stream, text });
    if (this.#lines.length > MAX_KEPT_LINES) {
      this.#lines.shift();
      this.#dropped++;
    }
    this.#file?.writeSync(new TextEncoder().encode(text + "\n"));
    for (const w of this.#waiters) {
      if (index < w.since) continue;
      const m = text.match(w.re);
      if (m) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve({ line: text, match: m, index });
      }
    }
  }

  /** Number of output lines so far; pass it as `since` to wait only for later lines. */
  get lineCount(): number {
    return this.#dropped + this.#lines.length;
  }

  /** The output lines kept so far (stdout and stderr interleaved as they arrived). */
  get lines(): readonly OutputLine[] {
    return this.#lines;
  }

  /** The last `n` output lines as one string, for error messages. */
  tail(n = 20): string {
    return this.#lines.slice(-n).map((l) => l.text).join("\n");
  }

  /** True once the process has exited and its output is fully read. */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * Waits for an output line (stdout or stderr) matching `re`, at index `since` or later
   * (default 0: lines already printed count). Rejects after `timeoutMs` or when the process exits
   * first, with the last lines of output in the message.
   */
  waitForLine(
    re: RegExp,
    options: { timeoutMs?: number; since?: number } = {},
  ): Promise<LineMatch> {
    const since = options.since ?? 0;
    const timeoutMs = options.timeoutMs ?? WAIT_LINE_TIMEOUT_MS;
    for (let i = Math.max(0, since - this.#dropped); i < this.#lines.length; i++) {
      const text = this.#lines[i]!.text;
      const m = text.match(re);
      if (m) return Promise.resolve({ line: text, match: m, index: this.#dropped + i });
    }
    if (this.#exited) {
      return Promise.reject(
        new Error(`${this.label} has exited without a line matching ${re}:\n${this.tail(15)}`),
      );
    }
    return new Promise((resolve, reject) => {
      const w: LineWaiter = {
        re,
        since,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(
            new Error(
              `no line matching ${re} from ${this.label} within ${timeoutMs} ms; last output:\n${
                this.tail(15)
              }`,
            ),
          );
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  /** Sends `signal` (default SIGTERM). Does nothing if the process has already exited. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    // (After the exit but before the end of output, kill() throws and is ignored below.)
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited between the check and the kill.
    }
  }

  /**
   * Sends SIGTERM, then SIGKILL after `graceMs`, and waits for the exit. Bounded: if a
   * descendant still holds the output pipes open, returns the exit status without waiting for
   * the end of output (`Lab.close()` kills such descendants).
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    if (!(await settlesWithin(this.#rawStatus, graceMs))) this.kill("SIGKILL");
    const raw = await this.#rawStatus;
    return (await settlesWithin(this.status, graceMs)) ? await this.status : raw;
  }
}

/** True when `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Parsed `ping` output. */
export interface PingResult {
  /** Echo requests sent. */
  transmitted: number;
  /** Echo replies received. */
  received: number;
  /** Loss in percent, 100 when nothing was sent (e.g. no route). */
  lossPercent: number;
  /** Round-trip time of each reply, in milliseconds. */
  rttsMs: number[];
  /** Mean of {@linkcode PingResult.rttsMs}, or undefined without replies. */
  avgRttMs: number | undefined;
  /** The raw output (stdout then stderr), for messages. */
  output: string;
}

/** Options for {@linkcode Lab.ping}. */
export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Seconds to wait for each reply (`-W`). Default 2. */
  timeoutS?: number;
  /** Seconds between requests (`-i`). Default 0.2. */
  intervalS?: number;
  /** Force IPv6 (default: when the address contains a colon). */
  v6?: boolean;
}

/** Parses iputils `ping` output. */
export function parsePing(output: string): PingResult {
  const rttsMs = [...output.matchAll(/time[=<]([\d.]+) ms/g)].map((m) => Number(m[1]));
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  const transmitted = summary ? Number(summary[1]) : 0;
  const received = summary ? Number(summary[2]) : 0;
  const lossPercent = transmitted === 0 ? 100 : (100 * (transmitted - received)) / transmitted;
  const avgRttMs = rttsMs.length === 0
    ? undefined
    : rttsMs.reduce((a, b) => a + b, 0) / rttsMs.length;
  return { transmitted, received, lossPercent, rttsMs, avgRttMs, output };
}

/** Throws a `RangeError` unless `cidr` ("198.18.0.1/24", "fd00::1/64" or bare) obeys the lab rules. */
export function assertLabAddress(cidr: string): void {
  const [addr, len, extra] = cidr.split("/");
  if (addr === undefined || extra !== undefined) throw new RangeError(`bad address "${cidr}"`);
  if (len !== undefined && !/^\d{1,3}$/.test(len)) throw new RangeError(`bad prefix in "${cidr}"`);
  if (addr.includes(":")) {
    // fd00::/8: the first 16-bit group is fdXX, written with all four digits.
    if (!/^fd[0-9a-f]{2}(:|$)/i.test(addr) || Number(len ?? 128) > 128) {
      throw new RangeError(`lab IPv6 addresses must be in fd00::/8, got "${cidr}"`);
    }
    return;
  }
  const m = /^198\.(18|19)\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (!m || Number(m[2]) > 255 || Number(m[3]) > 255 || Number(len ?? 32) > 32) {
    throw new RangeError(`lab IPv4 addresses must be in 198.18.0.0/15, got "${cidr}"`);
  }
  if (len !== undefined && Number(len) < 15) {
    throw new RangeError(`lab IPv4 prefix "${cidr}" is wider than 198.18.0.0/15`);
  }
}

/** The network prefix of an IPv4 CIDR, e.g. "198.18.0.0/24" for "198.18.0.7/24". */
export function ipv4Network(cidr: string): string {
  const [addr, lenText] = cidr.split("/");
  const len = Number(lenText ?? 32);
  const n = addr!.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join(".")}/${len}`;
}

/** The address part of a CIDR. */
export function hostOf(cidr: string): string {
  return cidr.split("/")[0]!;
}

/** An "internet" segment: a bridge inside its own namespace, with members attached by veth. */
export interface Segment {
  /** Namespace holding the bridge. */
  ns: string;
  /** Bridge device name in that namespace. */
  bridge: string;
  /** IPv4 prefix of the segment, e.g. "198.18.0.0/24". */
  v4Prefix: string;
  /** IPv6 prefix of the segment, e.g. "fd00:0:1::/64", if any. */
  v6Prefix?: string;
}

/** Options for {@linkcode Lab.natRouter}. */
export interface NatRouterOptions {
  /** Short name of the router namespace, e.g. "r2". */
  name: string;
  /** The segment the WAN side joins. */
  internet: Segment;
  /** WAN address with prefix, on the segment, e.g. "198.18.0.2/24". */
  wanAddress: string;
  /** The LAN client's namespace (short or full name); created if it does not exist yet. */
  client: string;
  /** Router's LAN address with prefix, e.g. "198.19.2.1/24". */
  routerLanAddress: string;
  /** Client's address with prefix, e.g. "198.19.2.10/24". */
  clientAddress: string;
  /** MASQUERADE with `--random-fully`: a new random port per destination (symmetric NAT). */
  randomFully?: boolean;
  /** Client interface name. Default "eth0". */
  clientIf?: string;
}

/** A NAT router built by {@linkcode Lab.natRouter}. */
export interface NatRouter {
  /** Router namespace. */
  ns: string;
  /** Client namespace. */
  clientNs: string;
  /** WAN (public) address without prefix, the address peers see, e.g. "198.18.0.2". */
  wanAddress: string;
  /** Router's LAN address without prefix. */
  lanAddress: string;
  /** Client's address without prefix. */
  clientAddress: string;
  /** Whether the NAT is symmetric (`--random-fully`). */
  randomFully: boolean;
}

/** Options for {@linkcode Lab}. */
export interface LabOptions {
  /** Namespace prefix; default "mh" + 4 random hex digits. At most 9 characters. */
  prefix?: string;
  /** Install SIGINT/SIGTERM handlers that clean up and exit. Default true. */
  handleSignals?: boolean;
}

/**
 * A random prefix for one run: "mh" (or `MESHUB_LAB_PREFIX`, so a parent test can tell its child
 * process's namespaces from those of other labs on the machine) + 4 hex digits.
 */
export function randomLabPrefix(base = labPrefixBase()): string {
  const b = crypto.getRandomValues(new Uint8Array(2));
  return base + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function labPrefixBase(): string {
  try {
    return Deno.env.get("MESHUB_LAB_PREFIX") ?? "mh";
  } catch {
    return "mh"; // no --allow-env
  }
}

/** A lab of network namespaces that cleans up after itself. Needs root. */
export class Lab implements AsyncDisposable {
  /** Prefix of every namespace name of this lab. */
  readonly prefix: string;
  #namespaces: string[] = [];
  #processes = new Set<LabProcess>();
  #running = new Set<Deno.ChildProcess>();
  #closed = false;
  #closing: Promise<void> | undefined;
  #portCounter = 0;
  #signalHandlers: [Deno.Signal, () => void][] = [];

  /** Creates an empty lab; nothing is created on the system until the first method call. */
  constructor(options: LabOptions = {}) {
    const prefix = options.prefix ?? randomLabPrefix();
    if (!/^[a-z][a-z0-9]{1,8}$/.test(prefix)) {
      throw new RangeError(`lab prefix "${prefix}" must be 2-9 lowercase letters and digits`);
    }
    this.prefix = prefix;
    if (options.handleSignals ?? true) {
      for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
        const handler = () => {
          console.error(`lab ${this.prefix}: ${sig}, cleaning up`);
          this.close().catch((e) => console.error(e)).finally(() => Deno.exit(code));
        };
        Deno.addSignalListener(sig, handler);
        this.#signalHandlers.push([sig, handler]);
      }
    }
  }

  /** Full names of the namespaces created so far. */
  get namespaces(): readonly string[] {
    return this.#namespaces;
  }

  /** The full namespace name for a short name (`hub` → `mh1a2b-hub`), whether or not it exists. */
  nsName(name: string): string {
    return name.startsWith(this.prefix + "-") ? name : `${this.prefix}-${name}`;
  }

  #ns(name: string): string {
    const full = this.nsName(name);
    if (!this.#namespaces.includes(full)) {
      throw new Error(`namespace ${full} was not created by lab ${this.prefix}`);
    }
    return full;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`lab ${this.prefix} is closed`);
  }

  /** True when namespace `name` (short or full) was created by this lab. */
  has(name: string): boolean {
    return this.#namespaces.includes(this.nsName(name));
  }

  /**
   * Creates namespace `<prefix>-<name>` with `lo` up and returns its full name. Returns the
   * existing one if this lab already created it.
   */
  async namespace(name: string): Promise<string> {
    this.#assertOpen();
    const full = this.nsName(name);
    if (this.#namespaces.includes(full)) return full;
    if (full.length > NAME_MAX_LEN || !/^[a-z0-9-]+$/.test(full)) {
      throw new RangeError(`namespace name "${full}" must be ≤ ${NAME_MAX_LEN} of [a-z0-9-]`);
    }
    await this.#host(["ip", "netns", "add", full]);
    this.#namespaces.push(full);
    await this.exec(full, ["ip", "link", "set", "lo", "up"], { check: true });
    return full;
  }

  /** Runs a command on the host (only `ip netns`/`ip link` calls that target lab namespaces). */
  async #host(cmd: string[]): Promise<ExecResult> {
    const r = await this.#run(cmd, {});
    if (!r.success) throw new LabCommandError(cmd, r);
    return r;
  }

  async #run(cmd: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const [program, ...args] = cmd as [string, ...string[]];
    const timeoutMs = options.timeoutMs ?? EXEC_TIMEOUT_MS;
    const child = new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(options.env ? { env: options.env } : {}),
    }).spawn();
    this.#running.add(child);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, timeoutMs);
    try {
      const out = await child.output();
      const dec = new TextDecoder();
      return {
        code: out.code,
        success: out.success && !timedOut,
        stdout: dec.decode(out.stdout),
        stderr: dec.decode(out.stderr),
        timedOut,
      };
    } finally {
      clearTimeout(timer);
      this.#running.delete(child);
    }
  }

  /**
   * Runs `cmd` inside namespace `ns` (short or full name) and returns its exit code and output.
   * Bounded by `timeoutMs`; with `check: true` throws {@linkcode LabCommandError} on failure.
   */
  async exec(ns: string, cmd: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    this.#assertOpen();
    const full = ["ip", "netns", "exec", this.#ns(ns), ...cmd];
    const r = await this.#run(full, options);
    if (options.check && !r.success) throw new LabCommandError(full, r);
    return r;
  }

  /**
   * Starts `cmd` inside namespace `ns`; its output is collected line by line (see
   * {@linkcode LabProcess.waitForLine}). The lab stops it on close.
   */
  spawn(ns: string, cmd: readonly string[], options: SpawnOptions = {}): LabProcess {
    this.#assertOpen();
    const full = this.#ns(ns);
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", full, ...cmd],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
    }).spawn();
    const short = full.slice(this.prefix.length + 1);
    const proc = new LabProcess(
      `${short}: ${cmd.join(" ").slice(0, 80)}`,
      child,
      options.stdoutFile,
    );
    this.#processes.add(proc);
    return proc;
  }

  /** Sends echo requests from `ns` to `address` and parses the result. Never throws for loss. */
  async ping(ns: string, address: string, options: PingOptions = {}): Promise<PingResult> {
    const count = options.count ?? 3;
    const timeoutS = options.timeoutS ?? 2;
    const intervalS = options.intervalS ?? 0.2;
    const v6 = options.v6 ?? address.includes(":");
    const r = await this.exec(ns, [
      "ping",
      v6 ? "-6" : "-4",
      "-n",
      "-c",
      String(count),
      "-W",
      String(timeoutS),
      "-i",
      String(intervalS),
      address,
    ], { timeoutMs: Math.ceil((count * intervalS + timeoutS + 5) * 1000) });
    return parsePing(r.stdout + r.stderr);
  }

  async #addAddresses(ns: string, ifName: string, addrs: readonly string[]): Promise<void> {
    for (const a of addrs) {
      if (a.includes(":")) {
        // nodad: usable at once, no 1-2 s wait for duplicate address detection.
        await this.exec(ns, ["ip", "-6", "addr", "add", a, "dev", ifName, "nodad"], {
          check: true,
        });
      } else {
        await this.exec(ns, ["ip", "-4", "addr", "add", a, "dev", ifName], { check: true });
      }
    }
  }

  /**
   * Connects two lab namespaces with a veth pair and brings both ends up. Addresses are CIDRs
   * ("198.18.0.1/24", "fd00:0:1::1/64"); pass several as an array, none as `[]`.
   */
  async link(
    nsA: string,
    ifA: string,
    addrA: string | readonly string[],
    nsB: string,
    ifB: string,
    addrB: string | readonly string[],
  ): Promise<void> {
    this.#assertOpen();
    const a = this.#ns(nsA);
    const b = this.#ns(nsB);
    const listA = typeof addrA === "string" ? [addrA] : addrA;
    const listB = typeof addrB === "string" ? [addrB] : addrB;
    for (const x of [...listA, ...listB]) assertLabAddress(x);
    for (const n of [ifA, ifB]) {
      if (n.length > NAME_MAX_LEN || !/^[a-zA-Z0-9_.-]+$/.test(n)) {
        throw new RangeError(`interface name "${n}" must be ≤ ${NAME_MAX_LEN} plain characters`);
      }
    }
    // Both ends are created directly inside their namespaces: nothing touches the host's.
    await this.#host([
      "ip",
      "link",
      "add",
      ifA,
      "netns",
      a,
      "type",
      "veth",
      "peer",
      "name",
      ifB,
      "netns",
      b,
    ]);
    await this.#addAddresses(a, ifA, listA);
    await this.#addAddresses(b, ifB, listB);
    await this.exec(a, ["ip", "link", "set", ifA, "up"], { check: true });
    await this.exec(b, ["ip", "link", "set", ifB, "up"], { check: true });
  }

  /**
   * Creates a segment: namespace `name` holding bridge `br0`, to which {@linkcode Lab.attach}
   * connects members. Models a shared "internet" LAN.
   */
  async segment(name: string, v4Prefix: string, v6Prefix?: string): Promise<Segment> {
    assertLabAddress(v4Prefix);
    if (v6Prefix !== undefined) assertLabAddress(v6Prefix);
    const ns = await this.namespace(name);
    await this.exec(ns, ["ip", "link", "add", "br0", "type", "bridge"], { check: true });
    await this.exec(ns, ["ip", "link", "set", "br0", "up"], { check: true });
    return { ns, bridge: "br0", v4Prefix, ...(v6Prefix === undefined ? {} : { v6Prefix }) };
  }

  /** Connects namespace `ns` to `segment` with interface `ifName` carrying `addrs`. */
  async attach(
    segment: Segment,
    ns: string,
    ifName: string,
    addrs: string | readonly string[],
  ): Promise<void> {
    const port = `port${++this.#portCounter}`;
    await this.link(segment.ns, port, [], ns, ifName, addrs);
    await this.exec(segment.ns, ["ip", "link", "set", port, "master", segment.bridge], {
      check: true,
    });
  }

  /**
   * Builds a NAT router: namespace `name` with `wan` on `internet` and `lan` toward the client
   * namespace, IPv4 forwarding on, MASQUERADE on `wan` (`--random-fully` for a symmetric NAT),
   * a stateful firewall that drops unsolicited inbound forwards, and in the client one route to
   * the internet segment's prefix via the router (no default route).
   */
  async natRouter(options: NatRouterOptions): Promise<NatRouter> {
    const { internet, randomFully = false } = options;
    for (const a of [options.wanAddress, options.routerLanAddress, options.clientAddress]) {
      assertLabAddress(a);
    }
    const ns = await this.namespace(options.name);
    const clientNs = await this.namespace(options.client);
    await this.attach(internet, ns, "wan", options.wanAddress);
    await this.link(
      ns,
      "lan",
      options.routerLanAddress,
      clientNs,
      options.clientIf ?? "eth0",
      options.clientAddress,
    );
    await this.exec(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], { check: true });
    const ipt = (args: string[]) =>
      this.exec(ns, ["iptables", "-w", "5", ...args], { check: true });
    await ipt([
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "wan",
      "-j",
      "MASQUERADE",
      ...(randomFully ? ["--random-fully"] : []),
    ]);
    await ipt([
      "-A",
      "FORWARD",
      "-i",
      "wan",
      "-o",
      "lan",
      "-m",
      "conntrack",
      "--ctstate",
      "ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    ]);
    await ipt(["-A", "FORWARD", "-i", "wan", "-o", "lan", "-j", "DROP"]);
    // Like every home router, drop unsolicited packets to the router itself. This matters for
    // hole punching, not only for realism: a packet that reaches local delivery gets a
    // confirmed conntrack entry, and that entry makes MASQUERADE pick a different source port
    // for the client's own later packet to the same peer (a tuple clash), so two NATs that both
    // saw the other's first probe would never meet. A dropped packet's entry is never confirmed.
    await ipt([
      "-A",
      "INPUT",
      "-i",
      "wan",
      "-m",
      "conntrack",
      "--ctstate",
      "ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    ]);
    await ipt(["-A", "INPUT", "-i", "wan", "-j", "DROP"]);
    await this.exec(clientNs, [
      "ip",
      "route",
      "add",
      ipv4Network(internet.v4Prefix),
      "via",
      hostOf(options.routerLanAddress),
    ], { check: true });
    return {
      ns,
      clientNs,
      wanAddress: hostOf(options.wanAddress),
      lanAddress: hostOf(options.routerLanAddress),
      clientAddress: hostOf(options.clientAddress),
      randomFully,
    };
  }

  /**
   * Stops every process the lab started (SIGTERM, then SIGKILL), kills anything left inside the
   * lab's namespaces, and deletes the namespaces. Idempotent; safe after failures. Throws at the
   * end if some cleanup step failed, naming them.
   */
  close(): Promise<void> {
    this.#closing ??= this.#cleanup();
    return this.#closing;
  }

  async #cleanup(): Promise<void> {
    this.#closed = true;
    for (const [sig, handler] of this.#signalHandlers) {
      try {
        Deno.removeSignalListener(sig, handler);
      } catch {
        // Already removed.
      }
    }
    this.#signalHandlers = [];
    const problems: string[] = [];
    const procs = [...this.#processes];
    this.#processes.clear();
    // Ask politely first: our processes and anything they started inside lab namespaces.
    for (const p of procs) p.kill("SIGTERM");
    for (const ns of this.#namespaces) await this.#signalNamespace(ns, "SIGTERM");
    await Promise.all(procs.map((p) => p.stop().catch(() => {})));
    for (const child of this.#running) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    // Whatever still runs in a lab namespace was started by this lab (directly or by a child).
    for (const ns of this.#namespaces) await this.#signalNamespace(ns, "SIGKILL");
    // With every writer gone the output pipes close; bounded all the same.
    await settlesWithin(Promise.all(procs.map((p) => p.status)), STOP_GRACE_MS);
    for (const ns of [...this.#namespaces].reverse()) {
      const del = await this.#run(["ip", "netns", "del", ns], { timeoutMs: 5000 });
      if (!del.success) problems.push(`ip netns del ${ns}: ${del.stderr.trim()}`);
    }
    this.#namespaces = [];
    if (problems.length > 0) {
      throw new Error(`lab ${this.prefix} cleanup incomplete: ${problems.join("; ")}`);
    }
  }

  async #signalNamespace(ns: string, signal: Deno.Signal): Promise<void> {
    const pids = await this.#run(["ip", "netns", "pids", ns], { timeoutMs: 5000 });
    for (const pid of pids.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
      try {
        Deno.kill(Number(pid), signal);
      } catch {
        // Gone already.
      }
    }
  }

  /** Same as {@linkcode Lab.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Names of the host's network namespaces that start with `prefix` (to check cleanup). */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(prefix));
}

/** The names in `tools` that are not on the PATH (as files), for skip messages. */
export function missingTools(tools: readonly string[]): string[] {
  const dirs = (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  return tools.filter((tool) =>
    !dirs.some((dir) => {
      try {
        return Deno.statSync(`${dir}/${tool}`).isFile;
      } catch {
        return false;
      }
    })
  );
}
