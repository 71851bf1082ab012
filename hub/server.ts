/**
 * The hub's UDP server: one `Deno.listenDatagram` socket per listen address (needs
 * `--unstable-net`), a receive loop per socket feeding the {@linkcode Registry}, and an expiry
 * sweep timer.
 *
 * ```text
 * socket i ── receive ──▶ Registry.handle(bytes, from, i, now) ──▶ [{ to, socketIndex, bytes }]
 *                                                                      │
 * socket j ◀── send ◀──────────────────────────────────────────────────┘
 * timer ────▶ Registry.sweep(now) ──▶ GONE messages ──▶ send
 * ```
 *
 * Every datagram to a member leaves from the socket that member's packets arrive on, so members
 * always hear the hub from the address they sent to. The hub logs counts and short hex ids only:
 * never endpoints, tokens or adverts.
 *
 * @module
 */

import { type Endpoint, formatEndpoint, normalizeEndpoint } from "../protocol/endpoint.ts";
import { parseIP } from "../protocol/ip_address.ts";
import { log } from "../util/log.ts";
import { Registry, type RegistryCounters, type RegistryEvent, toHex } from "./registry.ts";

/** Default UDP port of the hub. */
export const HUB_PORT = 3731;
/** Default listen address: dual stack (falls back to `0.0.0.0` without IPv6). */
export const HUB_DEFAULT_ADDRESS = "::";
/** Longest gap between expiry sweeps. */
export const SWEEP_INTERVAL_MAX_MS = 5_000;
/** Receive buffer per socket; larger than any valid meshub message (1081 bytes). */
export const RECEIVE_BUFFER_LEN = 2048;

const logger = log("hub");

/** Options of {@linkcode startHub}. */
export interface HubOptions {
  /** IP literals to listen on, one socket each. Default `["::"]`. */
  addresses?: string[];
  /** UDP port for every address; 0 picks a free port per socket (tests). Default 3731. */
  port?: number;
  /** Keepalive interval told to members, in whole seconds. Default 20. */
  keepaliveS?: number;
  /** Silence after which a member is forgotten, in seconds. Default 3 × keepalive. */
  expireAfterS?: number;
}

/** Counters of a running hub (a snapshot). */
export interface HubStats extends RegistryCounters {
  /** Datagrams sent. */
  sent: number;
  /** Sends the OS refused (e.g. unreachable). */
  sendErrors: number;
  /** Receive errors other than the socket closing. */
  receiveErrors: number;
  /** Drops by reason. */
  drops: Record<string, number>;
  /** Networks with members now. */
  networks: number;
  /** Members now. */
  members: number;
  /** Members per network (short network id), largest first. */
  perNetwork: { network: string; members: number }[];
}

/** A running hub. */
export interface HubHandle {
  /** The bound endpoints, one per listen address, in the order given. */
  readonly endpoints: Endpoint[];
  /** A snapshot of the counters. */
  readonly stats: HubStats;
  /** Stops receiving, closes the sockets, and resolves when every loop has ended. Idempotent. */
  close(): Promise<void>;
  /** Same as {@linkcode HubHandle.close}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A hub start-up failure (an address that cannot be bound, bad options); `cause` is the OS error. */
export class HubError extends Error {
  /** Creates a HubError; `cause` is the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HubError";
  }
}

/** Monotonic milliseconds (not affected by wall-clock steps). */
function monotonicNowMs(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}

function shortId(id: Uint8Array): string {
  return toHex(id.subarray(0, 4));
}

function logEvent(event: RegistryEvent): void {
  switch (event.kind) {
    case "network-created":
      logger.info("network {network} has its first member", { network: shortId(event.networkId) });
      break;
    case "network-removed":
      logger.info("network {network} has no members left", { network: shortId(event.networkId) });
      break;
    case "joined":
    case "left":
    case "expired":
      logger.info("member {node} {event} network {network} ({members} members)", {
        node: shortId(event.nodeId),
        event: event.kind,
        network: shortId(event.networkId),
        members: event.members,
      });
      break;
    case "dropped":
      logger.debug("dropped a datagram: {reason}", { reason: event.reason });
      break;
  }
}

function bindError(hostname: string, port: number, cause: unknown): HubError {
  const where = formatEndpoint({ hostname, port });
  let why: string;
  if (cause instanceof Deno.errors.AddrInUse) why = "address already in use";
  else if (cause instanceof Deno.errors.AddrNotAvailable) {
    why = "address not available on this host";
  } else if (cause instanceof Deno.errors.PermissionDenied) why = "permission denied";
  else why = cause instanceof Error ? cause.message : String(cause);
  return new HubError(`cannot listen on ${where}: ${why}`, { cause });
}

function listen(hostname: string, port: number): Deno.DatagramConn {
  try {
    return Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (cause) {
    throw bindError(hostname, port, cause);
  }
}

function checkOptions(opts: HubOptions): { addresses: string[] | null; port: number } {
  const port = opts.port ?? HUB_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new HubError(`invalid port ${port}: expected 0..65535`);
  }
  if (opts.addresses !== undefined) {
    if (opts.addresses.length === 0) throw new HubError("no listen address given");
    for (const address of opts.addresses) {
      if (parseIP(address) === null) {
        throw new HubError(`invalid listen address "${address}": expected an IP address literal`);
      }
    }
  }
  return { addresses: opts.addresses ?? null, port };
}

/**
 * Starts a hub. Rejects with {@linkcode HubError} (one printable line, OS error as `cause`) when an
 * address cannot be bound or an option is invalid; no socket stays open then.
 */
export function startHub(opts: HubOptions = {}): Promise<HubHandle> {
  try {
    return Promise.resolve(start(opts));
  } catch (e) {
    return Promise.reject(e);
  }
}

function start(opts: HubOptions): HubHandle {
  const { addresses, port } = checkOptions(opts);
  let registry: Registry;
  try {
    registry = new Registry({
      ...(opts.keepaliveS === undefined ? {} : { keepaliveMs: opts.keepaliveS * 1000 }),
      ...(opts.expireAfterS === undefined ? {} : { expireAfterMs: opts.expireAfterS * 1000 }),
      onEvent: logEvent,
    });
  } catch (cause) {
    throw new HubError(`invalid hub options: ${(cause as Error).message}`, { cause });
  }

  const conns: Deno.DatagramConn[] = [];
  try {
    if (addresses === null) {
      try {
        conns.push(listen(HUB_DEFAULT_ADDRESS, port));
      } catch (e) {
        if ((e as HubError).cause instanceof Deno.errors.AddrInUse) throw e;
        logger.info("IPv6 is unavailable ({reason}); listening on IPv4 only", {
          reason: (e as Error).message,
        });
        conns.push(listen("0.0.0.0", port));
      }
    } else {
      for (const address of addresses) conns.push(listen(address, port));
    }
  } catch (e) {
    for (const conn of conns) conn.close();
    throw e;
  }

  const endpoints = conns.map((conn) => {
    const addr = conn.addr as Deno.NetAddr;
    return normalizeEndpoint(addr) ?? { hostname: addr.hostname, port: addr.port };
  });
  const io = { sent: 0, sendErrors: 0, receiveErrors: 0 };
  let closed = false;

  async function send(sends: ReturnType<Registry["handle"]>): Promise<void> {
    for (const { to, socketIndex, bytes } of sends) {
      const conn = conns[socketIndex];
      if (conn === undefined || closed) continue;
      try {
        await conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port });
        io.sent++;
      } catch (e) {
        io.sendErrors++;
        logger.debug("send failed: {error}", { error: (e as Error).name });
      }
    }
  }

  async function receiveLoop(socketIndex: number): Promise<void> {
    const conn = conns[socketIndex]!;
    const buf = new Uint8Array(RECEIVE_BUFFER_LEN);
    while (!closed) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await conn.receive(buf);
      } catch (e) {
        if (
          closed || e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted
        ) {
          break;
        }
        io.receiveErrors++;
        logger.debug("receive failed: {error}", { error: (e as Error).name });
        continue;
      }
      if (from.transport !== "udp") continue;
      let sends: ReturnType<Registry["handle"]>;
      try {
        sends = registry.handle(data, from, socketIndex, monotonicNowMs());
      } catch (e) {
        // A bug, not bad input: keep serving the other members.
        logger.error("registry failed on a datagram: {error}", { error: e });
        continue;
      }
      await send(sends);
    }
  }

  const loops = conns.map((_, i) => receiveLoop(i));
  let sweeping: Promise<void> = Promise.resolve();
  const sweepIntervalMs = Math.max(
    100,
    Math.min(SWEEP_INTERVAL_MAX_MS, Math.floor(registry.expireAfterMs / 4)),
  );
  const timer = setInterval(() => {
    sweeping = sweeping.then(() => send(registry.sweep(monotonicNowMs())));
  }, sweepIntervalMs);
  Deno.unrefTimer(timer);

  logger.info("listening on {endpoints}", {
    endpoints: endpoints.map(formatEndpoint).join(", "),
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      clearInterval(timer);
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(loops);
      await sweeping;
      logger.info("stopped");
    })();
    return closing;
  };

  return {
    endpoints,
    get stats(): HubStats {
      return {
        ...registry.counters,
        ...io,
        drops: { ...registry.drops },
        networks: registry.networkCount,
        members: registry.memberCount,
        perNetwork: registry.networkSizes(),
      };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
