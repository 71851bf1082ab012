/**
 * The client's configuration file: TOML in, a checked {@linkcode ClientConfig} out.
 *
 * Every mistake becomes a {@linkcode ConfigError} whose message is one line naming the file, the
 * line (when it can be found) and the dotted key, e.g.
 * `client.toml:7: tun.mtu: must be between 1280 and 9000, got 100`.
 *
 * smol-toml reports positions only for syntax errors, so for everything else the line is found by
 * scanning the source for table headers and `key =` lines (`KeyLocator` below); that is
 * best effort and the line is left out when the key cannot be found (inline tables, for example).
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { dirname, isAbsolute, join } from "node:path";
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../protocol/ip_address.ts";
import { decodeBase64, decodeBase64Url } from "../util/base64.ts";
import { UserError } from "../util/cli_error.ts";
import { LOG_LEVELS, type MeshubLogLevel } from "../util/log.ts";
import { parseMetricsListen } from "../util/prometheus.ts";

/** UDP port of a hub when `hub.addresses` gives none. */
export const DEFAULT_HUB_PORT = 3731;
/** Most hubs one client may register with. */
export const MAX_HUBS = 8;
/** TUN interface name when `tun.interface` is not set. */
export const DEFAULT_TUN_INTERFACE = "meshub0";
/**
 * TUN MTU when `tun.mtu` is not set. 1500 minus the outer IPv6, UDP and WireGuard overhead would
 * be 1420 (WireGuard's usual value); 1408 leaves 12 bytes of that (a full-size datagram over IPv6
 * is 1488 bytes: it also fits PPPoE's 1492) and is a multiple of 64, ChaCha20's block, so a
 * full-size packet is encrypted in whole blocks. OpenSSL spends ~100-200 ns more on a plaintext
 * that ends in a partial block (its keystream is an extra call); in a veth lab one TCP flow
 * moved ~15% more at 1408 than at 1420, at ~10% less CPU per byte.
 */
export const DEFAULT_TUN_MTU = 1408;
/** Smallest `tun.mtu`: IPv6 requires links to carry 1280-byte packets (RFC 8200 §5). */
export const MIN_TUN_MTU = 1280;
/** Largest `tun.mtu`: jumbo frames. */
export const MAX_TUN_MTU = 9000;
/**
 * Linux TUN transmit queue (`txqueuelen`) when `tun.queue_length` is not set: the packets the
 * kernel holds for meshub to read. The kernel's 500 overflows whenever the client is off the CPU
 * for ~5 ms at 100k packets/s, and a TUN drops what does not fit (it never pushes back).
 */
export const DEFAULT_TUN_QUEUE_LENGTH = 4096;
/** Smallest `tun.queue_length`. */
export const MIN_TUN_QUEUE_LENGTH = 16;
/** Largest `tun.queue_length`. */
export const MAX_TUN_QUEUE_LENGTH = 65536;
/** Length in bytes of the network pre-shared key and of X25519 keys. */
export const KEY_LEN = 32;
/** Values of `log.format`. */
export const LOG_FORMATS = ["text", "json"] as const;
/** One of {@linkcode LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Defaults of the `[testing]` knobs; the timer values are WireGuard's (whitepaper §6.1). */
export const DEFAULT_TESTING: Readonly<TestingConfig> = Object.freeze({
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
});

/** Largest value accepted for a `[testing]` knob: one day. */
const MAX_TESTING_MS = 86_400_000;

/** A UDP endpoint: an IP literal and a port. */
export interface HostPort {
  /**
   * IP literal as `Deno.listenDatagram` and `send` accept it: dotted IPv4, or IPv6 in the
   * canonical RFC 5952 form (lowercase, zeros compressed) without brackets.
   */
  hostname: string;
  /** UDP port, 1..65535. */
  port: number;
}

/** An IP address with a prefix length, e.g. `fd12:3456:789a::1/48`. */
export interface IpPrefix {
  /** The address: 16 bytes for IPv6, 4 bytes for IPv4. */
  address: Uint8Array;
  /** Prefix length in bits: 0..128 for IPv6, 0..32 for IPv4. */
  prefixLength: number;
}

/** `[node]`: who this node is. */
export interface NodeConfig {
  /** Node name, 1..63 characters of `[A-Za-z0-9._-]`. */
  name: string;
  /** Path of the node state file (holds the private key); relative paths are already resolved. */
  stateFile: string;
  /** Local UDP port, 0..65535; 0 lets the OS choose. */
  port: number;
  /** Unprivileged user to switch to once the TUN and socket exist (name or uid). */
  user?: string;
  /** Group to switch to (name or gid); default the user's primary group. */
  group?: string;
  /** Peer cache file (resolved); default `<stateFile>.peers`; `""` disables the cache. */
  peerCache: string;
}

/** `[[bootstrap]]`: a member to contact at start, for joining without a hub. */
export interface BootstrapConfig {
  /** Where the member listens (its UDP port must be fixed: `node.port`). */
  endpoint: HostPort;
  /** Its X25519 public key, 32 bytes (`meshub pubkey` on that member). */
  publicKey: Uint8Array;
}

/** `[tun]`: the virtual interface. */
export interface TunConfig {
  /** Interface name, 1..15 characters, no `/` or whitespace. */
  interface: string;
  /** MTU, {@linkcode MIN_TUN_MTU}..{@linkcode MAX_TUN_MTU}. */
  mtu: number;
  /** Ask the kernel for TUN offloads (Linux: virtio headers, TSO/USO); default true. */
  offload: boolean;
  /** Linux: the TUN's transmit queue in packets ({@linkcode DEFAULT_TUN_QUEUE_LENGTH}). */
  queueLength: number;
  /** IPv6 address of the interface; absent means "derive it from the network and the node key". */
  ipv6?: IpPrefix;
  /** IPv4 address of the interface; absent means no IPv4 on the mesh. */
  ipv4?: IpPrefix;
}

/** `[log]`: logging. */
export interface LogConfig {
  /** Lowest level logged. */
  level: MeshubLogLevel;
  /** `text` for humans, `json` for one JSON object per line. */
  format: LogFormat;
}

/** `[control]`: the local control socket (`meshub status`, `meshub ping`). */
export interface ControlConfig {
  /** Unix socket path; default `/run/meshub/<tun.interface>.sock`; `""` disables it. */
  socket: string;
}

/** `[metrics]`: the optional Prometheus endpoint. */
export interface MetricsConfig {
  /** Loopback address and port to serve `/metrics` on, or null (the default: off). */
  listen: HostPort | null;
}

/** Directory of the default control sockets. */
export const CONTROL_SOCKET_DIR = "/run/meshub";

/** `[[peer]]`: a static plain-WireGuard peer that does not use a hub. */
export interface StaticPeerConfig {
  /** The peer's X25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Where to send its packets. */
  endpoint: HostPort;
  /** IPv6 prefixes routed to the peer (host bits are zero). */
  ipv6: IpPrefix[];
  /** IPv4 prefixes routed to the peer (host bits are zero). */
  ipv4: IpPrefix[];
  /** Label for logs. */
  name?: string;
}

/** `[testing]`: timers shortened by tests; all in milliseconds, defaults filled in. */
export interface TestingConfig {
  /** Start a new handshake when a session is this old (WireGuard `Rekey-After-Time`). */
  rekeyAfterMs: number;
  /** Drop a session this old (WireGuard `Reject-After-Time`); greater than `rekeyAfterMs`. */
  rejectAfterMs: number;
  /** Persistent keepalive on edges, so NAT mappings stay open. */
  keepaliveMs: number;
  /** How often to register with the hubs again. */
  hubKeepaliveMs: number;
}

/**
 * The checked client configuration.
 *
 * The file is TOML with these sections and keys; anything else is an error.
 *
 * | Key                        | Type            | Default       | Meaning |
 * |----------------------------|-----------------|---------------|---------|
 * | `encryption.psk`           | string          | required      | Network pre-shared key, 32 bytes in base64url (from `meshub genkey`); padding optional, standard base64 accepted too. Keep it secret. |
 * | `hub.addresses`            | array of string | `[]`          | Up to 8 hubs as `IP:port`, `[IPv6]:port`, or a bare IP (port 3731). Host names are not resolved. |
 * | `node.name`                | string          | required      | This node's name, 1..63 characters of `A-Z a-z 0-9 . _ -`. |
 * | `node.state_file`          | string          | required      | File holding the node's private key; created on first start. Relative to the config file's directory. |
 * | `node.port`                | integer         | `0`           | Local UDP port, 0..65535; 0 picks a random port. |
 * | `node.user`                | string          | none          | Unprivileged user (name or uid) to switch to once the TUN and socket exist. |
 * | `node.group`               | string          | user's group  | Group (name or gid) to switch to with `node.user`. |
 * | `node.peer_cache`          | string          | `<state_file>.peers` | Peer cache file (members to reconnect to without a hub); `""` disables it. |
 * | `[[bootstrap]]`            | array of tables | none          | Members to contact at start (joining without a hub). |
 * | `bootstrap.endpoint`       | string          | required      | `IP:port` or `[IPv6]:port` of the member. |
 * | `bootstrap.public_key`     | string          | required      | Its public key (`meshub pubkey` there). |
 * | `tun.interface`            | string          | `"meshub0"`   | TUN interface name, 1..15 characters, no `/` or whitespace. |
 * | `tun.mtu`                  | integer         | `1408`        | TUN MTU, 1280..9000. |
 * | `tun.offload`              | boolean         | `true`        | Linux: TUN offloads (TSO/USO super-packets, coalesced writes); `false` for one packet per read/write. |
 * | `tun.queue_length`         | integer         | `4096`        | Linux: packets the kernel queues for meshub to read (`txqueuelen`), 16..65536. |
 * | `tun.ipv6`                 | string          | derived       | IPv6 address with prefix, e.g. `"fd12:3456:789a::1/48"`; by default derived from the network and the node key. |
 * | `tun.ipv4`                 | string          | none          | IPv4 address with prefix, e.g. `"100.64.0.1/24"`. |
 * | `log.level`                | string          | `"info"`      | `trace`, `debug`, `info`, `warning`, `error` or `fatal`. |
 * | `log.format`               | string          | `"text"`      | `text` or `json` (one object per line). |
 * | `control.socket`           | string          | `"/run/meshub/<interface>.sock"` | Control socket for `meshub status`/`ping`; `""` disables it. |
 * | `metrics.listen`           | string          | none          | Loopback `IP:port` for a Prometheus `/metrics` endpoint, e.g. `"127.0.0.1:9731"`. |
 * | `[[peer]]`                 | array of tables | none          | Static plain-WireGuard peers that do not use a hub (e.g. for interop). |
 * | `peer.public_key`          | string          | required      | The peer's public key, standard base64 as `wg(8)` prints it. |
 * | `peer.endpoint`            | string          | required      | `IP:port` or `[IPv6]:port` of the peer. |
 * | `peer.ipv6`                | string or array | `[]`          | IPv6 prefixes routed to the peer; a bare address means /128. |
 * | `peer.ipv4`                | string or array | `[]`          | IPv4 prefixes routed to the peer; a bare address means /32. At least one of `ipv6`/`ipv4`. |
 * | `peer.name`                | string          | none          | Label for logs, same characters as `node.name`. |
 * | `testing.rekey_after_ms`   | integer         | `120000`      | Test only: rekey after this many milliseconds. |
 * | `testing.reject_after_ms`  | integer         | `180000`      | Test only: drop sessions older than this; must exceed `rekey_after_ms`. |
 * | `testing.keepalive_ms`     | integer         | `25000`       | Test only: persistent keepalive on edges (keeps NAT mappings). |
 * | `testing.hub_keepalive_ms` | integer         | `20000`       | Test only: interval of hub re-registration. |
 */
export interface ClientConfig {
  /** Path of the file this configuration was read from, as given. */
  path: string;
  /** Network pre-shared key, 32 bytes; null only in CA mode without a PSK. */
  psk: Uint8Array | null;
  /** CA mode (`[ca]` and `node.certificate`), if configured. */
  ca?: CaConfig;
  /** Hubs to register with, 0..{@linkcode MAX_HUBS}, in file order. */
  hubs: HostPort[];
  /** `[node]`. */
  node: NodeConfig;
  /** `[tun]`. */
  tun: TunConfig;
  /** `[log]`. */
  log: LogConfig;
  /** `[control]`, default filled in. */
  control: ControlConfig;
  /** `[metrics]`. */
  metrics: MetricsConfig;
  /** `[[peer]]` entries, in file order. */
  peers: StaticPeerConfig[];
  /** `[[bootstrap]]` entries, in file order. */
  bootstrap: BootstrapConfig[];
  /** `[testing]`, defaults filled in. */
  testing: TestingConfig;
}

/** CA mode: `[ca]` and `node.certificate` (files are read when the client starts). */
export interface CaConfig {
  /** `ca.certificate`: path of the network CA's certificate (resolved). */
  certificate: string;
  /** `node.certificate`: path of this node's certificate (resolved). */
  nodeCertificate: string;
  /** `ca.revoked`: fingerprints (16 bytes each) of revoked certificates. */
  revoked: Uint8Array[];
  /** `ca.revocation_list`: path of a CA-signed revocation list (resolved), if any. */
  revocationList?: string;
}

/** Options of {@linkcode ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /** 1-based line of the mistake, when known. */
  line?: number | undefined;
}

/**
 * A mistake in the configuration file. The message is one line:
 * `<path>[:<line>]: [<key>: ]<detail>`.
 */
export class ConfigError extends UserError {
  /** The configuration file. */
  readonly path: string;
  /** Dotted key, e.g. `tun.mtu`, `hub.addresses[1]`, `peer[0].endpoint`; empty for file-level errors. */
  readonly key: string;
  /** 1-based line number, when known. */
  readonly line?: number;
  /** What is wrong, without the location prefix. */
  readonly detail: string;

  /** Creates the error; the message is built from the parts. */
  constructor(path: string, key: string, detail: string, options: ConfigErrorOptions = {}) {
    const where = options.line === undefined ? path : `${path}:${options.line}`;
    super(`${where}: ${key ? `${key}: ` : ""}${detail}`, options);
    this.name = "ConfigError";
    this.path = path;
    this.key = key;
    if (options.line !== undefined) this.line = options.line;
    this.detail = detail;
  }
}

/** Reads and checks the configuration file at `path`; throws {@linkcode ConfigError}. */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new ConfigError(path, "", `cannot read the configuration file: ${describeIoError(err)}`, {
      cause: err,
    });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new ConfigError(path, "", "the configuration file is not valid UTF-8", { cause: err });
  }
  return parseClientConfig(text, path);
}

function describeIoError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "it is a directory";
  // Deno's messages end with the syscall and path, which the prefix already names.
  return err instanceof Error ? err.message.replace(/:\s*\w+ '.*'$/, "") : String(err);
}

/**
 * Checks configuration `text`; `path` names the file in errors and anchors a relative
 * `node.state_file`. Throws {@linkcode ConfigError}.
 */
export function parseClientConfig(text: string, path: string): ClientConfig {
  let root: Record<string, unknown>;
  try {
    root = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split("\n")[0]!.replace(/^Invalid TOML document:\s*/, "");
      throw new ConfigError(path, "", `TOML syntax error: ${reason}`, {
        line: err.line,
        cause: err,
      });
    }
    throw err;
  }
  return new Checker(text, path).check(root);
}

// ---------------------------------------------------------------------------------------------
// Schema and checking

/** Known keys of each section; `peer` is the only array of tables. */
const SCHEMA: Record<string, readonly string[]> = {
  encryption: ["psk"],
  ca: ["certificate", "revoked", "revocation_list"],
  hub: ["addresses"],
  node: ["name", "state_file", "port", "user", "group", "certificate", "peer_cache"],
  tun: ["interface", "mtu", "offload", "queue_length", "ipv6", "ipv4"],
  log: ["level", "format"],
  control: ["socket"],
  metrics: ["listen"],
  peer: ["public_key", "endpoint", "ipv6", "ipv4", "name"],
  bootstrap: ["endpoint", "public_key"],
  testing: ["rekey_after_ms", "reject_after_ms", "keepalive_ms", "hub_keepalive_ms"],
};
const ARRAY_SECTIONS = new Set(["peer", "bootstrap"]);

const NAME_RE = /^[A-Za-z0-9._-]{1,63}$/;

/** A key path: section, array index, key, array index... */
type Segment = string | number;
type Table = Record<string, unknown>;

function formatKey(path: readonly Segment[]): string {
  let out = "";
  for (const s of path) out += typeof s === "number" ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/** Walks the parsed document, turning each value into its typed form or a {@linkcode ConfigError}. */
class Checker {
  readonly #path: string;
  readonly #locator: KeyLocator;

  constructor(text: string, path: string) {
    this.#path = path;
    this.#locator = new KeyLocator(text);
  }

  fail(key: readonly Segment[], detail: string, needle?: string): never {
    throw new ConfigError(this.#path, formatKey(key), detail, {
      line: this.#locator.find(key, needle),
    });
  }

  check(root: Table): ClientConfig {
    for (const [name, value] of Object.entries(root)) {
      if (!(name in SCHEMA)) {
        const isTable = isPlainTable(value) || Array.isArray(value);
        this.fail([name], `unknown ${isTable ? "section" : "key"}${suggestSection(name)}`);
      }
      if (ARRAY_SECTIONS.has(name)) {
        if (!Array.isArray(value) || !value.every(isPlainTable)) {
          this.fail(
            [name],
            `must be an array of tables (write \`[[${name}]]\`), got ${describe(value)}`,
          );
        }
      } else if (!isPlainTable(value)) {
        const hint = Array.isArray(value) ? ` (write \`[${name}]\`, not \`[[${name}]]\`)` : "";
        this.fail([name], `must be a table${hint}, got ${describe(value)}`);
      }
    }
    const section = (name: string): Table => {
      const table = (root[name] ?? {}) as Table;
      this.checkKeys([name], table, name);
      return table;
    };

    const encryption = section("encryption");
    const caTable = section("ca");
    const hub = section("hub");
    const node = section("node");
    const tun = section("tun");
    const log = section("log");
    const testing = section("testing");
    const control = section("control");
    const metrics = section("metrics");
    const peers = (root.peer ?? []) as Table[];
    peers.forEach((p, i) => this.checkKeys(["peer", i], p, "peer"));
    const bootstrap = (root.bootstrap ?? []) as Table[];
    bootstrap.forEach((b, i) => this.checkKeys(["bootstrap", i], b, "bootstrap"));
    if (bootstrap.length > MAX_HUBS) {
      this.fail(["bootstrap"], `at most ${MAX_HUBS} entries, got ${bootstrap.length}`);
    }

    const config: ClientConfig = {
      path: this.#path,
      psk: this.psk(encryption, root.ca !== undefined),
      hubs: this.hubs(hub),
      node: this.node(node),
      tun: this.tun(tun),
      log: {
        level: this.oneOf(["log", "level"], log.level, LOG_LEVELS, "info"),
        format: this.oneOf(["log", "format"], log.format, LOG_FORMATS, "text"),
      },
      control: { socket: "" },
      metrics: this.metrics(metrics),
      peers: [],
      bootstrap: bootstrap.map((b, i) => this.bootstrap(["bootstrap", i], b)),
      testing: this.testing(testing),
    };
    if (root.ca !== undefined) config.ca = this.ca(caTable, node);
    else if (node.certificate !== undefined) {
      this.fail(["node", "certificate"], "needs the [ca] section (ca.certificate)");
    }
    config.control = this.control(control, config.tun.interface);
    const seen = new Map<string, number>();
    peers.forEach((p, i) => {
      const peer = this.peer(["peer", i], p);
      const id = Array.from(peer.publicKey).join(",");
      const first = seen.get(id);
      if (first !== undefined) {
        this.fail(["peer", i, "public_key"], `same public key as peer[${first}]`);
      }
      seen.set(id, i);
      config.peers.push(peer);
    });
    return config;
  }

  checkKeys(at: Segment[], table: Table, section: string): void {
    const known = SCHEMA[section]!;
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue;
      if (key in SCHEMA) this.fail([...at, key], `unknown key, did you mean the [${key}] section?`);
      const close = closest(key, known);
      const elsewhere = Object.entries(SCHEMA).find(([, keys]) => keys.includes(key))?.[0];
      const hint = close !== undefined
        ? `, did you mean \`${close}\`?`
        : elsewhere !== undefined
        ? `, did you mean \`${elsewhere}.${key}\` (in the [${elsewhere}] section)?`
        : ` (known keys: ${known.join(", ")})`;
      this.fail([...at, key], `unknown key${hint}`);
    }
  }

  psk(table: Table, optional = false): Uint8Array | null {
    const key = ["encryption", "psk"];
    const text = this.string(key, table.psk);
    if (text === undefined && optional) return null;
    if (text === undefined) {
      this.fail(key, "required (generate one with `meshub genkey`)");
    }
    // Never echo the value: it is the network's secret.
    const bytes = decodeBase64Url(text) ?? decodeBase64(text);
    if (bytes === null) {
      this.fail(key, "not valid base64url or base64 (generate one with `meshub genkey`)");
    }
    if (bytes.length !== KEY_LEN) {
      this.fail(key, `must be ${KEY_LEN} bytes, got ${bytes.length} bytes`);
    }
    return bytes;
  }

  ca(table: Table, node: Table): CaConfig {
    const path = (key: Segment[], value: unknown, example: string): string => {
      const text = this.string(key, value);
      if (text === undefined) this.fail(key, `required in CA mode (e.g. "${example}")`);
      if (text === "") this.fail(key, "must not be empty");
      return isAbsolute(text) ? text : join(dirname(this.#path), text);
    };
    const ca: CaConfig = {
      certificate: path(["ca", "certificate"], table.certificate, "/etc/meshub/ca.crt"),
      nodeCertificate: path(["node", "certificate"], node.certificate, "/etc/meshub/node.crt"),
      revoked: (this.stringArray(["ca", "revoked"], table.revoked) ?? []).map((text, i) => {
        const clean = text.replaceAll(":", "");
        if (!/^[0-9a-fA-F]{32}$/.test(clean)) {
          this.fail(
            ["ca", "revoked", i],
            `must be a certificate fingerprint of 32 hex digits (meshub cert show), got ${
              quote(text)
            }`,
            text,
          );
        }
        return Uint8Array.from(clean.match(/../g)!, (h) => parseInt(h, 16));
      }),
    };
    if (table.revocation_list !== undefined) {
      ca.revocationList = path(["ca", "revocation_list"], table.revocation_list, "/etc/meshub/crl");
    }
    return ca;
  }

  hubs(table: Table): HostPort[] {
    const key = ["hub", "addresses"];
    const list = this.stringArray(key, table.addresses) ?? [];
    if (list.length > MAX_HUBS) {
      this.fail(key, `at most ${MAX_HUBS} hubs, got ${list.length}`);
    }
    const seen = new Set<string>();
    return list.map((text, i) => {
      const result = parseHostPort(text, DEFAULT_HUB_PORT);
      if (typeof result === "string") this.fail([...key, i], result, text);
      const id = `${result.hostname} ${result.port}`;
      if (seen.has(id)) this.fail([...key, i], `duplicate hub address ${quote(text)}`, text);
      seen.add(id);
      return result;
    });
  }

  node(table: Table): NodeConfig {
    const name = this.string(["node", "name"], table.name);
    if (name === undefined) this.fail(["node", "name"], "required");
    this.checkName(["node", "name"], name);
    const stateFile = this.string(["node", "state_file"], table.state_file);
    if (stateFile === undefined) {
      this.fail(["node", "state_file"], 'required (e.g. "/var/lib/meshub/node.key")');
    }
    if (stateFile === "") this.fail(["node", "state_file"], "must not be empty");
    // Relative to the config file, not to wherever the daemon happens to be started from.
    const resolved = isAbsolute(stateFile) ? stateFile : join(dirname(this.#path), stateFile);
    const port = this.integer(["node", "port"], table.port, 0, 65535) ?? 0;
    const cache = this.string(["node", "peer_cache"], table.peer_cache);
    const peerCache = cache === undefined
      ? `${resolved}.peers`
      : cache === "" || isAbsolute(cache)
      ? cache
      : join(dirname(this.#path), cache);
    const node: NodeConfig = { name, stateFile: resolved, port, peerCache };
    const user = this.string(["node", "user"], table.user);
    const group = this.string(["node", "group"], table.group);
    if (group !== undefined && user === undefined) {
      this.fail(["node", "group"], "needs node.user (the user to switch to)");
    }
    for (const [key, value] of [["user", user], ["group", group]] as const) {
      if (value !== undefined && !/^[A-Za-z0-9._-]{1,32}$/.test(value)) {
        this.fail(["node", key], `must be a ${key} name or number, got ${quote(value)}`);
      }
    }
    if (user !== undefined) node.user = user;
    if (group !== undefined) node.group = group;
    return node;
  }

  tun(table: Table): TunConfig {
    const name = this.string(["tun", "interface"], table.interface) ?? DEFAULT_TUN_INTERFACE;
    if (name.length < 1 || name.length > 15) {
      this.fail(["tun", "interface"], `must be 1 to 15 characters, got ${name.length}`);
    }
    if (/[\s/]/.test(name)) {
      this.fail(["tun", "interface"], `must not contain '/' or whitespace, got ${quote(name)}`);
    }
    const tun: TunConfig = {
      interface: name,
      mtu: this.integer(["tun", "mtu"], table.mtu, MIN_TUN_MTU, MAX_TUN_MTU) ?? DEFAULT_TUN_MTU,
      offload: this.boolean(["tun", "offload"], table.offload) ?? true,
      queueLength: this.integer(
        ["tun", "queue_length"],
        table.queue_length,
        MIN_TUN_QUEUE_LENGTH,
        MAX_TUN_QUEUE_LENGTH,
      ) ?? DEFAULT_TUN_QUEUE_LENGTH,
    };
    const ipv6 = this.string(["tun", "ipv6"], table.ipv6);
    if (ipv6 !== undefined) tun.ipv6 = this.prefix(["tun", "ipv6"], ipv6, 6, "interface");
    const ipv4 = this.string(["tun", "ipv4"], table.ipv4);
    if (ipv4 !== undefined) tun.ipv4 = this.prefix(["tun", "ipv4"], ipv4, 4, "interface");
    return tun;
  }

  control(table: Table, tunInterface: string): ControlConfig {
    const socket = this.string(["control", "socket"], table.socket);
    if (socket === undefined) return { socket: `${CONTROL_SOCKET_DIR}/${tunInterface}.sock` };
    if (socket === "") return { socket };
    // Relative to the config file, like node.state_file.
    return { socket: isAbsolute(socket) ? socket : join(dirname(this.#path), socket) };
  }

  metrics(table: Table): MetricsConfig {
    const text = this.string(["metrics", "listen"], table.listen);
    if (text === undefined) return { listen: null };
    const parsed = parseMetricsListen(text);
    if (typeof parsed === "string") this.fail(["metrics", "listen"], parsed, text);
    return { listen: parsed };
  }

  testing(table: Table): TestingConfig {
    const knob = (name: string, fallback: number) =>
      this.integer(["testing", name], table[name], 1, MAX_TESTING_MS) ?? fallback;
    const testing: TestingConfig = {
      rekeyAfterMs: knob("rekey_after_ms", DEFAULT_TESTING.rekeyAfterMs),
      rejectAfterMs: knob("reject_after_ms", DEFAULT_TESTING.rejectAfterMs),
      keepaliveMs: knob("keepalive_ms", DEFAULT_TESTING.keepaliveMs),
      hubKeepaliveMs: knob("hub_keepalive_ms", DEFAULT_TESTING.hubKeepaliveMs),
    };
    if (testing.rejectAfterMs <= testing.rekeyAfterMs) {
      const key = table.reject_after_ms === undefined ? "rekey_after_ms" : "reject_after_ms";
      this.fail(
        ["testing", key],
        `reject_after_ms (${testing.rejectAfterMs}) must be greater than rekey_after_ms (${testing.rekeyAfterMs})`,
      );
    }
    return testing;
  }

  /** `public_key` and `endpoint` of a `[[peer]]` or `[[bootstrap]]` table, both required. */
  keyAndEndpoint(
    at: Segment[],
    table: Table,
    missingKey: string,
  ): { publicKey: Uint8Array; endpoint: HostPort } {
    const keyText = this.string([...at, "public_key"], table.public_key);
    if (keyText === undefined) this.fail([...at, "public_key"], missingKey);
    const publicKey = decodeBase64(keyText) ?? decodeBase64Url(keyText);
    if (publicKey === null) this.fail([...at, "public_key"], "not valid base64");
    if (publicKey.length !== KEY_LEN) {
      this.fail([...at, "public_key"], `must be ${KEY_LEN} bytes, got ${publicKey.length} bytes`);
    }
    const endpointText = this.string([...at, "endpoint"], table.endpoint);
    if (endpointText === undefined) this.fail([...at, "endpoint"], "required");
    const endpoint = parseHostPort(endpointText, undefined);
    if (typeof endpoint === "string") this.fail([...at, "endpoint"], endpoint);
    return { publicKey, endpoint };
  }

  peer(at: Segment[], table: Table): StaticPeerConfig {
    const { publicKey, endpoint } = this.keyAndEndpoint(at, table, "required");
    const routes = (family: 4 | 6): IpPrefix[] => {
      const key = [...at, `ipv${family}`];
      const value = table[`ipv${family}`];
      const list = typeof value === "string" ? [value] : this.stringArray(key, value) ?? [];
      return list.map((text, i) =>
        this.prefix(typeof value === "string" ? key : [...key, i], text, family, "route")
      );
    };
    const peer: StaticPeerConfig = { publicKey, endpoint, ipv6: routes(6), ipv4: routes(4) };
    if (peer.ipv6.length + peer.ipv4.length === 0) {
      this.fail(at, "needs at least one of `ipv6` or `ipv4` (the addresses routed to this peer)");
    }
    const name = this.string([...at, "name"], table.name);
    if (name !== undefined) {
      this.checkName([...at, "name"], name);
      peer.name = name;
    }
    return peer;
  }

  bootstrap(at: Segment[], table: Table): BootstrapConfig {
    return this.keyAndEndpoint(
      at,
      table,
      "required (`meshub pubkey` on that member prints it)",
    );
  }

  /** Parses an address with prefix; tun addresses need the prefix, routes default to one host. */
  prefix(key: Segment[], text: string, family: 4 | 6, use: "interface" | "route"): IpPrefix {
    const example = family === 6 ? "fd12:3456:789a::1/48" : "100.64.0.1/24";
    const slash = text.indexOf("/");
    const addressText = slash < 0 ? text : text.slice(0, slash);
    const address = family === 6 ? parseIPv6(addressText) : parseIPv4(addressText);
    if (address === null) {
      const other = family === 6 ? parseIPv4(addressText) : parseIPv6(addressText);
      const why = other !== null ? `an IPv${family === 6 ? 4 : 6} address` : quote(text);
      this.fail(
        key,
        `must be an IPv${family} address with a prefix length like "${example}", got ${why}`,
        text,
      );
    }
    const max = family === 6 ? 128 : 32;
    let prefixLength = max;
    if (slash < 0) {
      if (use === "interface") {
        this.fail(key, `needs a prefix length, e.g. "${example}", got ${quote(text)}`, text);
      }
    } else {
      const digits = text.slice(slash + 1);
      prefixLength = /^\d{1,3}$/.test(digits) ? Number(digits) : NaN;
      if (!(prefixLength <= max)) {
        this.fail(key, `prefix length must be between 0 and ${max}, got ${quote(digits)}`, text);
      }
    }
    if (use === "route" && hasHostBits(address, prefixLength)) {
      const net = maskAddress(address, prefixLength);
      const shown = family === 6 ? formatIPv6(net) : formatIPv4(net);
      this.fail(key, `has host bits set; did you mean "${shown}/${prefixLength}"?`, text);
    }
    return { address, prefixLength };
  }

  checkName(key: Segment[], name: string): void {
    if (!NAME_RE.test(name)) {
      this.fail(key, `must be 1 to 63 characters of A-Z a-z 0-9 . _ -, got ${quote(name)}`);
    }
  }

  string(key: Segment[], value: unknown): string | undefined {
    if (value === undefined || typeof value === "string") return value;
    this.fail(key, `must be a string, got ${describe(value)}`);
  }

  stringArray(key: Segment[], value: unknown): string[] | undefined {
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) {
      this.fail(key, `must be an array of strings, got ${describe(value)}`);
    }
    value.forEach((item, i) => {
      if (typeof item !== "string") {
        this.fail([...key, i], `must be a string, got ${describe(item)}`);
      }
    });
    return value as string[];
  }

  integer(key: Segment[], value: unknown, min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value)) {
      this.fail(key, `must be an integer, got ${describe(value)}`);
    }
    if (value < min || value > max) {
      this.fail(key, `must be between ${min} and ${max}, got ${value}`);
    }
    return value;
  }

  boolean(key: Segment[], value: unknown): boolean | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "boolean") this.fail(key, `must be true or false, got ${describe(value)}`);
    return value;
  }

  oneOf<T extends string>(key: Segment[], value: unknown, allowed: readonly T[], fallback: T): T {
    const text = this.string(key, value);
    if (text === undefined) return fallback;
    if ((allowed as readonly string[]).includes(text)) return text as T;
    const close = closest(text, allowed);
    const hint = close === undefined ? "" : `; did you mean "${close}"?`;
    this.fail(key, `must be one of ${allowed.join(", ")}, got ${quote(text)}${hint}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Line numbers

/**
 * Maps dotted key paths to source lines by scanning for `[table]`, `[[array]]` and `key =` lines.
 * It does not understand multi-line strings or inline tables; a miss only costs the line number.
 */
class KeyLocator {
  readonly #lines = new Map<string, number>();
  readonly #text: string[];
  /** Lines with a table header, to stop searches for array values at the next section. */
  readonly #headers: number[] = [];

  constructor(text: string) {
    this.#text = text.split(/\r?\n/);
    const counts = new Map<string, number>();
    let prefix = "";
    const keyRe =
      /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/;
    this.#text.forEach((raw, i) => {
      const line = raw.trim();
      const arrayHeader = line.match(/^\[\[\s*([^\]]+?)\s*\]\]/);
      const header = arrayHeader ?? line.match(/^\[\s*([^\]]+?)\s*\]/);
      if (header) {
        const name = splitDotted(header[1]!).join(".");
        if (arrayHeader) {
          const n = counts.get(name) ?? 0;
          counts.set(name, n + 1);
          this.#add(name, i + 1); // the array as a whole starts at its first element
          prefix = `${name}[${n}]`;
        } else {
          prefix = name;
        }
        this.#headers.push(i + 1);
        this.#add(prefix, i + 1);
        return;
      }
      const key = line.match(keyRe);
      if (key) {
        // `a.b.c = 1` also defines tables `a` and `a.b` on this line.
        const parts = splitDotted(key[1]!);
        for (let n = 1; n <= parts.length; n++) {
          const dotted = parts.slice(0, n).join(".");
          this.#add(prefix ? `${prefix}.${dotted}` : dotted, i + 1);
        }
      }
    });
  }

  #add(path: string, line: number): void {
    if (!this.#lines.has(path)) this.#lines.set(path, line);
  }

  /**
   * Returns the line of `path`, or of its closest enclosing key or section. With `needle`, the
   * line of an array element: the first line from the key's line on that contains it.
   */
  find(path: readonly Segment[], needle?: string): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const line = this.#lines.get(formatKey(path.slice(0, n)));
      if (line === undefined) continue;
      if (needle !== undefined) {
        const end = this.#headers.find((h) => h > line) ?? this.#text.length + 1;
        for (let l = line; l < end; l++) {
          if (this.#text[l - 1]!.includes(needle)) return l;
        }
      }
      return line;
    }
    return undefined;
  }
}

function splitDotted(key: string): string[] {
  const parts = key.match(/"[^"]*"|'[^']*'|[^.\s]+/g) ?? [];
  return parts.map((p) => p.replace(/^["']|["']$/g, ""));
}

// ---------------------------------------------------------------------------------------------
// Addresses

/**
 * Parses `IPv4[:port]`, `[IPv6][:port]` or a bare IPv6; returns an error detail string on
 * failure. Without `defaultPort` the port is required.
 */
function parseHostPort(text: string, defaultPort: number | undefined): HostPort | string {
  const example = defaultPort === undefined ? "198.18.0.5:51820" : `198.18.0.1:${defaultPort}`;
  const bad = `must be an IP address and port like "${example}" or "[fd00::1]:${
    defaultPort ?? 51820
  }", got ${quote(text)}`;
  let host: string;
  let portText: string | undefined;
  let address: Uint8Array | null;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return bad;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return bad;
    portText = rest === "" ? undefined : rest.slice(1);
    address = parseIPv6(host);
  } else {
    const colons = text.split(":").length - 1;
    if (colons >= 2) {
      host = text;
      address = parseIPv6(host);
    } else {
      [host, portText] = text.split(":") as [string, string | undefined];
      address = parseIPv4(host);
    }
  }
  if (address === null) {
    if (host.includes("%")) return `IPv6 zone indexes are not supported, got ${quote(text)}`;
    if (/[g-z]/i.test(host)) return `${bad} (host names are not resolved)`;
    return bad;
  }
  let port = defaultPort;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      return `port must be between 1 and 65535, got ${quote(portText)}`;
    }
  }
  if (port === undefined) return `${bad} (the port is required)`;
  return { hostname: address.length === 4 ? formatIPv4(address) : formatIPv6(address), port };
}

function maskAddress(address: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(address);
  for (let bit = prefixLength; bit < out.length * 8; bit++) {
    out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return out;
}

function hasHostBits(address: Uint8Array, prefixLength: number): boolean {
  const masked = maskAddress(address, prefixLength);
  return masked.some((b, i) => b !== address[i]);
}

// ---------------------------------------------------------------------------------------------
// Messages

function isPlainTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

/** Describes a TOML value for "got ..." in messages. */
function describe(value: unknown): string {
  if (typeof value === "string") return `string ${quote(value)}`;
  if (typeof value === "number") {
    return Number.isInteger(value) ? `integer ${value}` : `float ${value}`;
  }
  if (typeof value === "bigint") return `integer ${value}`;
  if (typeof value === "boolean") return `boolean ${value}`;
  if (value instanceof Date) return "a date";
  if (Array.isArray(value)) return "an array";
  return "a table";
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

function suggestSection(name: string): string {
  const close = closest(name, Object.keys(SCHEMA));
  if (close !== undefined) return `, did you mean \`${close}\`?`;
  const owner = Object.entries(SCHEMA).find(([, keys]) => keys.includes(name))?.[0];
  if (owner !== undefined) {
    return `, did you mean \`${owner}.${name}\` (in the [${owner}] section)?`;
  }
  return ` (known sections: ${Object.keys(SCHEMA).join(", ")})`;
}

/** The candidate nearest to `word` by edit distance, if it is near enough to be a typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  if (bestDistance <= limit) return best;
  // Longer or shorter spellings of the same word ("logging" for "log", "warn" for "warning").
  const lower = word.toLowerCase();
  return candidates.find((c) =>
    Math.min(c.length, lower.length) >= 3 && (c.startsWith(lower) || lower.startsWith(c))
  );
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = row;
  }
  return prev[b.length]!;
}
