/**
 * meshub command line: `meshub genkey | hub | client | pubkey`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { reportAndExit, UserError } from "./util/cli_error.ts";
import { encodeBase64, encodeBase64Url } from "./util/base64.ts";
import { type MeshubLogLevel, setupLogging } from "./util/log.ts";

/** meshub's version, from deno.json. */
export const VERSION: string = denoJson.version;

const USAGE = `meshub ${VERSION} — a lightweight full-mesh VPN

Usage:
  meshub genkey                       print a new network PSK (base64url)
  meshub hub [-a ADDR]... [-p PORT]   run a hub (no privileges needed)
  sudo meshub client CONFIG           run a client: TUN device + direct edges to every member
  sudo meshub status [--json] [CONFIG]  edges, paths, RTTs and drops of the running client
  sudo meshub ping PEER [CONFIG]      in-protocol ping over the edge to PEER: path and RTT
  meshub hub --status --control PATH  counters of a running hub
  meshub pubkey CONFIG                print this node's WireGuard public key (creates the key)
  meshub ca init|revoke ...           CA mode: create the network CA, revoke certificates
  meshub cert sign|show ...           CA mode: issue a node certificate, show one

Options:
  -h, --help       help for meshub or a command (meshub hub --help)
  -V, --version    print the version

See README.md for the configuration file.`;

const HUB_USAGE =
  `Usage: meshub hub [-a ADDR]... [-p PORT] [--control PATH] [--metrics ADDR] [-v|-q]
       meshub hub --status [--json] --control PATH

Runs a hub: it tells members of a network where the others are, so they can punch direct
edges. It never sees the PSK, traffic, names or VPN addresses; when it is down, existing edges
keep working.

Options:
  -a, --address ADDR   IP address to listen on; repeat for several (IPv4 and IPv6).
                       Default: :: (all addresses, dual stack). Each request is answered
                       from the address it arrived on.
  -p, --port PORT      UDP port (default 3731)
      --keepalive S    registration interval told to clients, seconds (default 20)
      --control PATH   serve a control socket at PATH (0600) for meshub hub --status
      --metrics ADDR   serve Prometheus metrics on a loopback ADDR, e.g. 127.0.0.1:9732
      --status         ask the hub at --control PATH for its counters and exit
      --json           with --status: print JSON
      --log-format F   text (default) or json (one object per line)
  -v, --verbose        log debug messages
  -q, --quiet          log warnings and errors only
  -h, --help           this help`;

const CLIENT_USAGE = `Usage: sudo meshub client CONFIG [-v|-q]

Runs a client: creates the TUN device from CONFIG, registers with the hub(s) and keeps a
direct WireGuard edge to every other member. Stop it with Ctrl-C or SIGTERM; the device,
its addresses and routes disappear with it.

Options:
  -v, --verbose       log debug messages (overrides log.level)
  -q, --quiet         log warnings and errors only
      --log-format F  text or json (overrides log.format)
  -h, --help          this help`;

const STATUS_USAGE = `Usage: sudo meshub status [--json] [--socket PATH | CONFIG]

Asks the running client for its state over its control socket: this node, its hubs, and one
row per member with the edge's state (connecting, up, stale, punching, unreachable), path
(LAN, public IPv4, IPv6, static), endpoint, RTT, last handshake, traffic and drops, then every
candidate endpoint tried and what it did. The socket is control.socket from CONFIG (default
/run/meshub/<tun.interface>.sock); without CONFIG, /run/meshub/meshub0.sock.
Exit code 3 when no client is running.

Options:
      --json          stable JSON (documented in README.md)
      --socket PATH   the control socket to ask
  -h, --help          this help`;

const PING_USAGE = `Usage: sudo meshub ping [-c COUNT] [-W SECONDS] [--socket PATH] PEER [CONFIG]

Sends an in-protocol probe to PEER (a member name, VPN address or public key prefix) over the
direct edge and reports the path and round-trip time, like tailscale ping. The probe is an
ICMPv6 echo from this node's VPN address; the answer is taken off before it reaches the TUN.
Without an answer it says which state the edge is in and what each candidate endpoint did.
Exit code 0 when at least one probe was answered, 1 when none was, 3 when no client runs.

Options:
  -c, --count N       probes to send, one a second (default 3)
  -W, --timeout S     seconds to wait for each answer (default 2)
      --socket PATH   the control socket to ask (default from CONFIG, see meshub status)
  -h, --help          this help`;

const GENKEY_USAGE = `Usage: meshub genkey

Prints a new network PSK: 32 random bytes, base64url. Put it in [encryption] psk of every
member's configuration file; keep it secret (it is the key to the network).`;

const PUBKEY_USAGE = `Usage: meshub pubkey CONFIG

Prints this node's WireGuard public key (standard base64, as wg(8) shows keys), creating the
node key in node.state_file if it does not exist yet.`;

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
      console.error(USAGE);
      return 2;
    case "-h":
    case "--help":
    case "help":
      console.log(USAGE);
      return 0;
    case "-V":
    case "--version":
    case "version":
      console.log(`meshub ${VERSION}`);
      return 0;
    case "genkey":
      return genkey(rest);
    case "hub":
      return await hub(rest);
    case "client":
      return await client(rest);
    case "pubkey":
      return await pubkey(rest);
    case "ca":
    case "cert": {
      const { caCommand } = await import("./cli/ca_commands.ts");
      return await caCommand(command, rest);
    }
    case "status":
      return await status(rest);
    case "ping":
      return await ping(rest);
    default:
      throw new UserError(`unknown command "${command}" (try meshub --help)`);
  }
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

function parse(
  command: string,
  args: string[],
  options: Options,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    return parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const raw = err instanceof Error ? err.message : String(err);
    const unknown = /Unknown option '([^']+)'/.exec(raw);
    const message = unknown ? `unknown option ${unknown[1]}` : raw;
    throw new UserError(`${command}: ${message} (try meshub ${command} --help)`);
  }
}

function verbosity(values: Record<string, unknown>, fallback: MeshubLogLevel): MeshubLogLevel {
  if (values.verbose) return "debug";
  if (values.quiet) return "warning";
  return fallback;
}

function genkey(args: string[]): number {
  const { values, positionals } = parse("genkey", args, {});
  if (values.help) {
    console.log(GENKEY_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UserError("genkey: takes no arguments");
  console.log(encodeBase64Url(crypto.getRandomValues(new Uint8Array(32))));
  return 0;
}

async function hub(args: string[]): Promise<number> {
  const { values, positionals } = parse("hub", args, {
    address: { type: "string", short: "a", multiple: true },
    port: { type: "string", short: "p" },
    keepalive: { type: "string" },
    control: { type: "string" },
    metrics: { type: "string" },
    status: { type: "boolean" },
    json: { type: "boolean" },
    "log-format": { type: "string" },
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
  });
  if (values.help) {
    console.log(HUB_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UserError(`hub: unexpected argument "${positionals[0]}"`);
  const control = values.control as string | undefined;
  if (values.status) {
    if (control === undefined) {
      throw new UserError("hub: --status needs --control PATH (the running hub's control socket)");
    }
    const { controlRequest } = await import("./util/control_socket.ts");
    const { formatHubStatus } = await import("./hub/control.ts");
    const result = await askControl(
      () => controlRequest(control, { cmd: "status" }, { what: "meshub hub" }),
    );
    console.log(
      values.json
        ? JSON.stringify(result, null, 2)
        : formatHubStatus(result as Parameters<typeof formatHubStatus>[0]),
    );
    return 0;
  }
  const logFormat = parseLogFormat("hub", values["log-format"]);
  let metrics: { hostname: string; port: number } | undefined;
  if (values.metrics !== undefined) {
    const { parseMetricsListen } = await import("./util/prometheus.ts");
    const parsed = parseMetricsListen(values.metrics as string);
    if (typeof parsed === "string") throw new UserError(`hub: --metrics: ${parsed}`);
    metrics = parsed;
  }
  const port = parseInteger("hub: --port", values.port as string | undefined, 3731, 1, 65535);
  const keepaliveS = parseInteger(
    "hub: --keepalive",
    values.keepalive as string | undefined,
    20,
    1,
    3600,
  );
  await setupLogging(verbosity(values, "info"), logFormat);
  const { startHub } = await import("./hub/server.ts");
  const handle = await startHub({
    addresses: (values.address as string[] | undefined) ?? ["::"],
    port,
    keepaliveS,
  });
  const { HubDiagnostics } = await import("./hub/control.ts");
  let diagnostics;
  try {
    diagnostics = await HubDiagnostics.open(handle, { control, ...(metrics ? { metrics } : {}) });
  } catch (err) {
    await handle.close();
    throw err;
  }
  const done = Promise.withResolvers<void>();
  const stop = () => done.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await done.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await diagnostics.close();
  await handle.close();
  return 0;
}

function parseLogFormat(command: string, value: unknown): "text" | "json" | undefined {
  if (value === undefined) return undefined;
  if (value === "text" || value === "json") return value;
  throw new UserError(`${command}: --log-format must be text or json, got "${String(value)}"`);
}

/** Runs a control request; an error answer becomes a one-line user error (exit code 1). */
async function askControl<T>(request: () => Promise<T>): Promise<T> {
  const { ControlCommandError } = await import("./util/control_socket.ts");
  try {
    return await request();
  } catch (err) {
    if (err instanceof ControlCommandError) throw new UserError(err.message, { exitCode: 1 });
    throw err;
  }
}

/** The control socket `status`/`ping` talk to: --socket, else from CONFIG, else the default. */
async function controlSocketFor(
  command: string,
  socket: string | undefined,
  configPath: string | undefined,
): Promise<string> {
  if (socket !== undefined) return socket;
  const { CONTROL_SOCKET_DIR, DEFAULT_TUN_INTERFACE, loadClientConfig } = await import(
    "./client/config.ts"
  );
  if (configPath === undefined) return `${CONTROL_SOCKET_DIR}/${DEFAULT_TUN_INTERFACE}.sock`;
  const config = await loadClientConfig(configPath);
  if (config.control.socket === "") {
    throw new UserError(`${command}: control.socket is disabled ("") in ${configPath}`);
  }
  return config.control.socket;
}

async function status(args: string[]): Promise<number> {
  const { values, positionals } = parse("status", args, {
    json: { type: "boolean" },
    socket: { type: "string" },
  });
  if (values.help) {
    console.log(STATUS_USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UserError("status: expects at most one CONFIG argument");
  const path = await controlSocketFor(
    "status",
    values.socket as string | undefined,
    positionals[0],
  );
  const { controlRequest } = await import("./util/control_socket.ts");
  const { formatStatus } = await import("./client/control.ts");
  const result = await askControl(() =>
    controlRequest(path, { cmd: "status" }, { what: "meshub client" })
  );
  console.log(
    values.json
      ? JSON.stringify(result, null, 2)
      : formatStatus(result as Parameters<typeof formatStatus>[0]),
  );
  return 0;
}

async function ping(args: string[]): Promise<number> {
  const { values, positionals } = parse("ping", args, {
    count: { type: "string", short: "c" },
    timeout: { type: "string", short: "W" },
    socket: { type: "string" },
  });
  if (values.help) {
    console.log(PING_USAGE);
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UserError("ping: expects PEER and optionally CONFIG");
  }
  const count = parseInteger("ping: --count", values.count as string | undefined, 3, 1, 1000);
  const timeoutS = parseInteger("ping: --timeout", values.timeout as string | undefined, 2, 1, 30);
  const path = await controlSocketFor("ping", values.socket as string | undefined, positionals[1]);
  const { controlRequest } = await import("./util/control_socket.ts");
  const { formatPing } = await import("./client/control.ts");
  type Reply = Parameters<typeof formatPing>[0];
  let answered = 0;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const reply = await askControl(() =>
      controlRequest(
        path,
        { cmd: "ping", peer: positionals[0]!, timeoutMs: timeoutS * 1000 },
        { what: "meshub client", timeoutMs: timeoutS * 1000 + 5_000 },
      )
    ) as Reply;
    console.log(formatPing(reply));
    if (reply.reply) answered++;
    const waitMs = 1_000 - (performance.now() - started);
    if (i + 1 < count && waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  }
  return answered > 0 ? 0 : 1;
}

async function client(args: string[]): Promise<number> {
  const { values, positionals } = parse("client", args, {
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
    "log-format": { type: "string" },
  });
  if (values.help) {
    console.log(CLIENT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError("client: expects one CONFIG file argument");
  const { loadClientConfig } = await import("./client/config.ts");
  const config = await loadClientConfig(positionals[0]!);
  const level = verbosity(values, config.log.level as MeshubLogLevel);
  await setupLogging(level, parseLogFormat("client", values["log-format"]) ?? config.log.format);
  const { runClient } = await import("./client/client.ts");
  await runClient(config);
  return 0;
}

async function pubkey(args: string[]): Promise<number> {
  const { values, positionals } = parse("pubkey", args, {});
  if (values.help) {
    console.log(PUBKEY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError("pubkey: expects one CONFIG file argument");
  const { loadClientConfig } = await import("./client/config.ts");
  const config = await loadClientConfig(positionals[0]!);
  const { loadOrCreateState } = await import("./client/state_file.ts");
  const state = await loadOrCreateState(config.node.stateFile);
  console.log(encodeBase64(state.publicKey));
  return 0;
}

function parseInteger(
  what: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new UserError(`${what}: expected an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    reportAndExit(err);
  }
}
