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
  meshub pubkey CONFIG                print this node's WireGuard public key (creates the key)

Options:
  -h, --help       help for meshub or a command (meshub hub --help)
  meshub ca init|revoke ...           CA mode: create the network CA, revoke certificates
  meshub cert sign|show ...           CA mode: issue a node certificate, show one
  -V, --version    print the version

See README.md for the configuration file.`;

const HUB_USAGE = `Usage: meshub hub [-a ADDR]... [-p PORT] [-v|-q]

Runs a hub: it tells members of a network where the others are, so they can punch direct
edges. It never sees the PSK, traffic, names or VPN addresses; when it is down, existing edges
keep working.

Options:
  -a, --address ADDR   IP address to listen on; repeat for several (IPv4 and IPv6).
                       Default: :: (all addresses, dual stack). Each request is answered
                       from the address it arrived on.
  -p, --port PORT      UDP port (default 3731)
      --keepalive S    registration interval told to clients, seconds (default 20)
  -v, --verbose        log debug messages
  -q, --quiet          log warnings and errors only
  -h, --help           this help`;

const CLIENT_USAGE = `Usage: sudo meshub client CONFIG [-v|-q]

Runs a client: creates the TUN device from CONFIG, registers with the hub(s) and keeps a
direct WireGuard edge to every other member. Stop it with Ctrl-C or SIGTERM; the device,
its addresses and routes disappear with it.

Options:
  -v, --verbose   log debug messages (overrides log.level)
  -q, --quiet     log warnings and errors only
  -h, --help      this help`;

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
    case "ca":
    case "cert": {
      const { caCommand } = await import("./cli/ca_commands.ts");
      return await caCommand(command, rest);
    }
    case "status":
      return await status(rest);
    case "ping":
      return await ping(rest);
  if (positionals.length > 0) throw new UserError("genkey: takes no arguments");
  console.log(encodeBase64Url(crypto.getRandomValues(new Uint8Array(32))));
  return 0;
}

async function hub(args: string[]): Promise<number> {
  const { values, positionals } = parse("hub", args, {
    address: { type: "string", short: "a", multiple: true },
    port: { type: "string", short: "p" },
    keepalive: { type: "string" },
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
  });
  if (values.help) {
    console.log(HUB_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UserError(`hub: unexpected argument "${positionals[0]}"`);
  const port = parseInteger("hub: --port", values.port as string | undefined, 3731, 1, 65535);
  const keepaliveS = parseInteger(
    "hub: --keepalive",
    values.keepalive as string | undefined,
    20,
    1,
    3600,
  );
  await setupLogging(verbosity(values, "info"));
  const { startHub } = await import("./hub/server.ts");
  const handle = await startHub({
    addresses: (values.address as string[] | undefined) ?? ["::"],
    port,
    keepaliveS,
  });
  const done = Promise.withResolvers<void>();
  const stop = () => done.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await done.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await handle.close();
  return 0;
}

async function client(args: string[]): Promise<number> {
  const { values, positionals } = parse("client", args, {
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
  });
  if (values.help) {
    console.log(CLIENT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError("client: expects one CONFIG file argument");
  const { loadClientConfig } = await import("./client/config.ts");
  const config = await loadClientConfig(positionals[0]!);
  const level = verbosity(values, config.log.level as MeshubLogLevel);
  await setupLogging(level, config.log.format);
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
