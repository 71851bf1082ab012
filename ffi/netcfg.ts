/**
 * Interface configuration after a TUN device is open: MTU, up, addresses, routes; and the host's
 * own addresses as hole-punching candidates.
 *
 * Linux uses `ip(8)`, macOS `ifconfig(8)` and `route(8)`, run with `Deno.Command` (no shell).
 * Nothing needs undoing: the kernel removes the interface's addresses and routes when the TUN fd
 * closes, on both systems.
 *
 * @module
 */

/** An address with its prefix length, e.g. `{ address: "fd00:99::1", prefixLength: 64 }`. */
export interface InterfaceAddress {
  /** The address, without prefix. */
  address: string;
  /** Prefix length: 0-128 for IPv6, 0-32 for IPv4. The prefix is routed into the interface. */
  prefixLength: number;
}

/** What {@linkcode configureInterface} sets up. */
export interface InterfaceConfig {
  /** Interface name, as returned by the TUN device (`TunDevice.name`). */
  name: string;
  /** MTU in bytes (at least 1280 when IPv6 is configured, 576 otherwise). */
  mtu: number;
  /** Linux: transmit queue length in packets (`txqueuelen`); the kernel's default when absent. */
  queueLength?: number | undefined;
  /** The interface's IPv6 address (added without duplicate address detection). */
  ipv6?: InterfaceAddress | undefined;
  /** The interface's IPv4 address. */
  ipv4?: InterfaceAddress | undefined;
  /** More prefixes (CIDR, e.g. `fd12::/48`) to route into the interface. */
  routes?: readonly string[] | undefined;
}

/** A configuration command failed; the message holds the command line and its stderr. */
export class InterfaceConfigError extends Error {
  /** The interface being configured. */
  readonly interfaceName: string;
  /** The command that failed, program first. */
  readonly command: readonly string[];
  /** Its exit code, or undefined when it could not be started. */
  readonly exitCode: number | undefined;
  /** Its standard error, trimmed. */
  readonly stderr: string;

  /** Builds the one-line message from the parts. */
  constructor(
    interfaceName: string,
    command: readonly string[],
    exitCode: number | undefined,
    stderr: string,
    options?: ErrorOptions,
  ) {
    const oneLine = stderr.trim().replace(/\s*\n\s*/g, "; ");
    const what = exitCode === undefined ? "could not be started" : `exited with ${exitCode}`;
    super(
      `configuring ${interfaceName} failed: \`${command.join(" ")}\` ${what}` +
        (oneLine ? `: ${oneLine}` : ""),
      options,
    );
    this.name = "InterfaceConfigError";
    this.interfaceName = interfaceName;
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr.trim();
  }
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True when `s` looks like an IPv4 dotted quad. */
export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** True when `s` is a syntactically valid IPv6 address (no zone, no prefix). */
export function isIPv6(s: string): boolean {
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(s) || !s.includes(":")) return false;
  let head = s;
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!isIPv4(tail)) return false;
    head = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return false;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const all = halves.flatMap(groups);
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  // "::" stands for at least one zero group, so explicit groups are fewer than 8 with it.
  return halves.length === 2 ? all.length < 8 : all.length === 8;
}

function checkAddress(a: InterfaceAddress, family: 4 | 6, what: string): void {
  const ok = family === 6 ? isIPv6(a.address) : isIPv4(a.address);
  if (!ok) throw new TypeError(`${what} "${a.address}" is not an IPv${family} address`);
  const max = family === 6 ? 128 : 32;
  if (!Number.isInteger(a.prefixLength) || a.prefixLength < 0 || a.prefixLength > max) {
    throw new RangeError(`${what} prefix length ${a.prefixLength} is outside 0-${max}`);
  }
}

function checkCidr(cidr: string): 4 | 6 {
  const [addr, len, extra] = cidr.split("/");
  const n = Number(len);
  if (addr !== undefined && extra === undefined && len !== undefined && Number.isInteger(n)) {
    if (isIPv6(addr) && n >= 0 && n <= 128) return 6;
    if (isIPv4(addr) && n >= 0 && n <= 32) return 4;
  }
  throw new TypeError(`route "${cidr}" is not an IPv4 or IPv6 prefix like fd12::/48`);
}

/** Throws a `TypeError` or `RangeError` describing the first problem in `config`. */
export function validateInterfaceConfig(config: InterfaceConfig): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(config.name)) {
    throw new TypeError(`interface name "${config.name}" is not a valid interface name`);
  }
  const minMtu = config.ipv6 ? 1280 : 576;
  if (!Number.isInteger(config.mtu) || config.mtu < minMtu || config.mtu > 65535) {
    throw new RangeError(`MTU ${config.mtu} is outside ${minMtu}-65535`);
  }
  const q = config.queueLength;
  if (q !== undefined && (!Number.isInteger(q) || q < 1 || q > 2 ** 31 - 1)) {
    throw new RangeError(`transmit queue length ${q} is not a positive integer`);
  }
  if (config.ipv6) checkAddress(config.ipv6, 6, "IPv6 address");
  if (config.ipv4) checkAddress(config.ipv4, 4, "IPv4 address");
  for (const r of config.routes ?? []) checkCidr(r);
}

/**
 * The commands that {@linkcode configureInterface} runs on `os`, in order, program first.
 * Exposed so tests can check them without root.
 */
export function interfaceCommands(
  config: InterfaceConfig,
  os: typeof Deno.build.os = Deno.build.os,
): string[][] {
  validateInterfaceConfig(config);
  const { name, mtu, ipv6, ipv4 } = config;
  const routes = config.routes ?? [];
  if (os === "linux") {
    const queue = config.queueLength === undefined
      ? []
      : ["txqueuelen", String(config.queueLength)];
    const cmds = [["ip", "link", "set", "dev", name, "mtu", String(mtu), ...queue, "up"]];
    // nodad: the address is usable at once; nobody else can be on a TUN link to collide with.
    if (ipv6) {
      cmds.push([
        "ip",
        "-6",
        "addr",
        "add",
        `${ipv6.address}/${ipv6.prefixLength}`,
        "dev",
        name,
        "nodad",
      ]);
    }
    if (ipv4) {
      cmds.push(["ip", "-4", "addr", "add", `${ipv4.address}/${ipv4.prefixLength}`, "dev", name]);
    }
    for (const r of routes) cmds.push(["ip", `-${checkCidr(r)}`, "route", "add", r, "dev", name]);
    return cmds;
  }
  if (os === "darwin") {
    // utun is point-to-point: mirror wg-quick, give each address as its own peer and add the
    // prefix routes explicitly.
    const cmds = [["ifconfig", name, "mtu", String(mtu), "up"]];
    if (ipv6) {
      cmds.push(["ifconfig", name, "inet6", `${ipv6.address}/${ipv6.prefixLength}`, "alias"]);
      cmds.push(
        [
          "route",
          "-q",
          "-n",
          "add",
          "-inet6",
          `${ipv6.address}/${ipv6.prefixLength}`,
          "-interface",
          name,
        ],
      );
    }
    if (ipv4) {
      cmds.push([
        "ifconfig",
        name,
        "inet",
        `${ipv4.address}/${ipv4.prefixLength}`,
        ipv4.address,
        "alias",
      ]);
      cmds.push(
        [
          "route",
          "-q",
          "-n",
          "add",
          "-inet",
          `${ipv4.address}/${ipv4.prefixLength}`,
          "-interface",
          name,
        ],
      );
    }
    for (const r of routes) {
      cmds.push([
        "route",
        "-q",
        "-n",
        "add",
        checkCidr(r) === 6 ? "-inet6" : "-inet",
        r,
        "-interface",
        name,
      ]);
    }
    return cmds;
  }
  throw new Error(`configuring interfaces is not supported on ${os}`);
}

/** Longest a single configuration command may run. */
export const CONFIG_COMMAND_TIMEOUT_MS = 10_000;

/**
 * Sets MTU, brings the interface up, adds its addresses (their prefixes get routed into it) and
 * extra routes. Needs root or CAP_NET_ADMIN and `--allow-run`.
 *
 * @throws {InterfaceConfigError} naming the command that failed and its stderr.
 */
export async function configureInterface(config: InterfaceConfig): Promise<void> {
  for (const cmd of interfaceCommands(config)) {
    const [program, ...args] = cmd as [string, ...string[]];
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(program, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CONFIG_COMMAND_TIMEOUT_MS),
      }).output();
    } catch (cause) {
      const why = cause instanceof Deno.errors.NotFound
        ? `${program} not found${program === "ip" ? " (install iproute2)" : ""}`
        : cause instanceof Error
        ? cause.message
        : String(cause);
      throw new InterfaceConfigError(config.name, cmd, undefined, why, { cause });
    }
    if (!out.success) {
      const stderr = new TextDecoder().decode(out.stderr) || new TextDecoder().decode(out.stdout);
      const code = out.signal ? 128 : out.code;
      throw new InterfaceConfigError(
        config.name,
        cmd,
        code,
        out.signal ? `killed by ${out.signal} after ${CONFIG_COMMAND_TIMEOUT_MS} ms` : stderr,
      );
    }
  }
}

/** A local interface address usable as a hole-punching candidate. */
export interface LocalAddress {
  /** The address, without zone or prefix. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** True for addresses a peer can never reach us on: loopback, link-local, unspecified. */
function isUnusable(address: string, family: 4 | 6): boolean {
  if (family === 4) {
    return address.startsWith("127.") || address.startsWith("169.254.") || address === "0.0.0.0";
  }
  const a = address.toLowerCase();
  // fe80::/10 covers fe80 through febf.
  return a === "::1" || a === "::" || /^fe[89ab][0-9a-f]?:/.test(a);
}

/** What `Deno.networkInterfaces()` gives as `mac` for an interface without a link-layer address. */
const NO_LINK_ADDRESS = "00:00:00:00:00:00";

/**
 * The host's interface addresses that peers might reach, for hole-punching candidates: from
 * `Deno.networkInterfaces()` (needs `--allow-sys`; `interfaces` replaces it in tests), without
 * loopback, link-local (fe80::/10, 169.254/16), interfaces named in `exclude` (such as our own
 * TUN), and interfaces without a link-layer address. Each address once.
 *
 * Those last are layer-3 tunnels: other VPNs (WireGuard, Tailscale, Nebula, tinc, OpenVPN; `utun`
 * on macOS), GRE/IPIP. A peer reaches an address there only through that tunnel, so an edge over
 * it would run meshub inside another VPN: slower, and gone when that VPN goes. (It happened: with
 * wireguard-go, Nebula and tinc up beside it, a loaded edge moved onto their addresses.) A PPP or
 * raw-IP modem link has no link-layer address either; its address is public or carrier NAT, and
 * the hub-observed endpoint covers it.
 */
export function localAddresses(
  options: {
    exclude?: readonly string[];
    interfaces?: readonly Pick<Deno.NetworkInterfaceInfo, "name" | "family" | "address" | "mac">[];
  } = {},
): LocalAddress[] {
  const exclude = new Set(options.exclude ?? []);
  const seen = new Set<string>();
  const out: LocalAddress[] = [];
  for (const ni of options.interfaces ?? Deno.networkInterfaces()) {
    if (exclude.has(ni.name) || ni.mac === NO_LINK_ADDRESS) continue;
    const family = ni.family === "IPv6" ? 6 : 4;
    const address = ni.address.split("%")[0]!;
    if (isUnusable(address, family) || seen.has(address)) continue;
    seen.add(address);
    out.push({ address, family });
  }
  return out;
}
