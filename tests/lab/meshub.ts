/**
 * Real meshub processes in a lab: config files, hub and client processes, and waiting for their
 * events (log lines) instead of sleeping. Used by the end-to-end tests, the demo and the bench.
 *
 * @module
 */
import { encodeBase64Url } from "../../util/base64.ts";
import type { Lab, LabProcess, PingResult } from "./netns.ts";
import type { ClientSite } from "./topology.ts";
import { DEFAULT_TUN_MTU } from "../../client/config.ts";

const REPO = new URL("../../", import.meta.url).pathname;
/** The CLI entry point. */
export const MAIN_TS: string = `${REPO}main.ts`;
const CONFIG: string = `${REPO}deno.json`;

/** The permissions `deno task meshub` grants (kept in step with deno.json). */
export const MESHUB_PERMISSIONS = [
  "--unstable-net",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-ffi",
  "--allow-run=ip,ifconfig,route",
  "--allow-sys=networkInterfaces",
];

/** The command line that runs `meshub ARGS` from source (works from any working directory). */
export function meshubCommand(...args: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--config",
    CONFIG,
    ...MESHUB_PERMISSIONS,
    MAIN_TS,
    ...args,
  ];
}

/** A fresh network PSK, as `meshub genkey` prints it. */
export function newPsk(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Options for {@linkcode startHub}. */
export interface HubOptions {
  /** Addresses to listen on (`-a`). */
  addresses: string[];
  /** UDP port. */
  port?: number;
  /** Extra CLI arguments (e.g. `--keepalive 2`). */
  extraArgs?: string[];
}

/** Starts a hub in `ns` and waits until it listens. */
export async function startHub(lab: Lab, ns: string, options: HubOptions): Promise<LabProcess> {
  const args = ["hub", "-p", String(options.port ?? 3731)];
  for (const a of options.addresses) args.push("-a", a);
  const proc = lab.spawn(ns, meshubCommand(...args, ...(options.extraArgs ?? [])));
  await proc.waitForLine(/listening on/i, { timeoutMs: 60_000 });
  return proc;
}

/** A client started by {@linkcode startClient}. */
export interface ClientNode {
  /** Node name (also the key in the topology). */
  name: string;
  /** Where it runs. */
  site: ClientSite;
  /** Its process. */
  proc: LabProcess;
  /** Its VPN IPv6 address (without prefix length), from its start-up log. */
  address6: string;
  /** Its UDP port. */
  port: number;
  /** Path of its config file. */
  configPath: string;
  /** `performance.now()` just before its process was spawned. */
  startedAt: number;
}

/** Options for {@linkcode startClient}. */
export interface ClientOptions {
  /** Directory for the config and state files. */
  dir: string;
  /** The network PSK. */
  psk: string;
  /** Hub endpoints, e.g. `198.18.0.1:3731`. */
  hubs: string[];
  /** Extra TOML appended to the config (e.g. a `[testing]` section). */
  extraToml?: string;
  /** Extra lines inside the `[node]` table (e.g. `user = "nobody"`). */
  nodeToml?: string;
  /** Extra CLI arguments (e.g. `-v`). */
  extraArgs?: string[];
  /** `tun.mtu` (default: meshub's default). */
  mtu?: number;
}

/** The control socket of lab client `name` whose files are in `dir`. */
export function controlSocketPath(dir: string, name: string): string {
  return `${dir}/${name}.sock`;
}

/** Writes a client config for `site` and returns its path. */
export async function writeClientConfig(site: ClientSite, options: ClientOptions): Promise<string> {
  const path = `${options.dir}/${site.name}.toml`;
  const toml = [
    "[encryption]",
    `psk = "${options.psk}"`,
    "[hub]",
    `addresses = [${options.hubs.map((h) => `"${h}"`).join(", ")}]`,
    "[node]",
    `name = "${site.name}"`,
    `state_file = "${options.dir}/${site.name}.key"`,
    "port = 0",
    options.nodeToml ?? "",
    // Every lab client has its own control socket (they share one file system).
    "[control]",
    `socket = "${controlSocketPath(options.dir, site.name)}"`,
    "[tun]",
    `interface = "meshub0"`,
    `mtu = ${options.mtu ?? DEFAULT_TUN_MTU}`,
    options.extraToml ?? "",
  ].join("\n");
  await Deno.writeTextFile(path, toml + "\n");
  return path;
}

/** Starts a client at `site` and waits until its TUN and socket are up. */
export async function startClient(
  lab: Lab,
  site: ClientSite,
  options: ClientOptions,
): Promise<ClientNode> {
  const configPath = await writeClientConfig(site, options);
  const startedAt = performance.now();
  const proc = lab.spawn(
    site.ns,
    meshubCommand("client", configPath, ...(options.extraArgs ?? [])),
  );
  const { match } = await proc.waitForLine(/node \S+: ([0-9a-f:]+)\/\d+, udp port (\d+)/, {
    timeoutMs: 60_000,
  });
  return {
    name: site.name,
    site,
    proc,
    address6: match[1]!,
    port: Number(match[2]),
    configPath,
    startedAt,
  };
}

/** An edge reported up by a client. */
export interface EdgeUp {
  /** The member at the other end. */
  peer: string;
  /** The endpoint the edge uses. */
  endpoint: string;
  /** LAN, public IPv4, IPv6 or static. */
  path: string;
  /** Milliseconds from discovering the member to the edge being up. */
  afterMs: number;
}

/** Waits until `node` reports an edge to each of `peers` (in any order). */
export async function waitForEdges(
  node: ClientNode,
  peers: string[],
  options: { timeoutMs?: number; since?: number } = {},
): Promise<EdgeUp[]> {
  return await Promise.all(peers.map(async (peer) => {
    const { match } = await node.proc.waitForLine(
      new RegExp(`edge up: ${peer} via (\\S+) \\(([^)]+)\\), (\\d+) ms`),
      { timeoutMs: options.timeoutMs ?? 30_000, since: options.since ?? 0 },
    );
    return { peer, endpoint: match[1]!, path: match[2]!, afterMs: Number(match[3]) };
  }));
}

/** One directed ping between two clients over their VPN IPv6 addresses. */
export interface PairPing {
  /** Who pinged. */
  from: ClientNode;
  /** Who was pinged. */
  to: ClientNode;
  /** What ping reported. */
  result: PingResult;
}

/** Pings (3 echo requests, 0.2 s apart) from every node in `from` to every other in `to`. */
export async function pingPairs(
  lab: Lab,
  from: readonly ClientNode[],
  to: readonly ClientNode[],
): Promise<PairPing[]> {
  const out: PairPing[] = [];
  for (const a of from) {
    for (const b of to) {
      if (a === b) continue;
      const result = await lab.ping(a.site.ns, b.address6, {
        count: 3,
        timeoutS: 2,
        intervalS: 0.2,
        v6: true,
      });
      out.push({ from: a, to: b, result });
    }
  }
  return out;
}

/** The pairs that did not get all their replies, e.g. `c1→c2: 1/3` (empty when all did). */
export async function failedPairs(
  lab: Lab,
  from: readonly ClientNode[],
  to: readonly ClientNode[],
): Promise<string[]> {
  const failed: string[] = [];
  for (const p of await pingPairs(lab, from, to)) {
    if (p.result.received === p.result.transmitted) continue;
    // One lost echo on a loaded 2-core machine is not a broken edge; a second lossy round is.
    const [again] = await pingPairs(lab, [p.from], [p.to]);
    if (again!.result.received !== again!.result.transmitted) {
      failed.push(
        `${p.from.name}→${p.to.name}: ${p.result.received}/${p.result.transmitted}, ` +
          `then ${again!.result.received}/${again!.result.transmitted}`,
      );
    }
  }
  return failed;
}

/** Where a {@linkcode startTcpTransfer} runs: namespaces, the sink's address and port. */
export interface TcpTransferSpec {
  /** Namespace of the sending side. */
  fromNs: string;
  /** Namespace of the receiving side (it listens). */
  toNs: string;
  /** Address the sink listens on and the source connects to (a VPN address, say). */
  address: string;
  /** Bytes of pseudo-random content to send. */
  bytes: number;
  /** TCP port; default 5201. */
  port?: number;
  /** Bound on each side's whole run (also enforced with timeout(1)); default 60 s. */
  timeoutMs?: number;
}

/**
 * Starts a TCP transfer through `tests/fixtures/tcp_transfer.ts`: the sink listens first, then
 * the source sends. `done` resolves to both sides' "sha256 HEX bytes N" lines, to compare.
 */
export async function startTcpTransfer(
  lab: Lab,
  spec: TcpTransferSpec,
): Promise<{ done: Promise<{ sent: string; received: string }> }> {
  const timeoutMs = spec.timeoutMs ?? 60_000;
  const port = String(spec.port ?? 5201);
  const script = (mode: string, ...args: string[]) => [
    "timeout",
    String(Math.ceil(timeoutMs / 1000) + 5),
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-net",
    new URL("../fixtures/tcp_transfer.ts", import.meta.url).pathname,
    mode,
    ...args,
  ];
  const sink = lab.spawn(spec.toNs, script("sink", spec.address, port));
  await sink.waitForLine(/listening/, { timeoutMs: 30_000 });
  const source = lab.spawn(spec.fromNs, script("source", spec.address, port, String(spec.bytes)));
  // The source may be done long before the sink (its data waits in the socket buffer).
  const done = Promise.all([
    source.waitForLine(/^sha256 /, { timeoutMs }),
    sink.waitForLine(/^sha256 /, { timeoutMs }),
  ]).then(([sent, received]) => ({ sent: sent.line, received: received.line }));
  return { done };
}
