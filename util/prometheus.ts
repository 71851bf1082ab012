/**
 * A tiny Prometheus text-format (0.0.4) writer and an HTTP endpoint for it that only listens on
 * loopback addresses: metrics tell who the members are and how they talk, which is nobody's
 * business outside this host.
 *
 * @module
 */
import { parseIP } from "../protocol/ip_address.ts";
import { UserError } from "./cli_error.ts";
import { log } from "./log.ts";

/** One sample: labels and value. */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

/** Builds a metrics page; metric names are written as given (use `meshub_` prefixes). */
export class MetricsWriter {
  #out: string[] = [];

  /** Adds one metric family with `# HELP` and `# TYPE` lines. Families without samples are kept. */
  add(name: string, type: "gauge" | "counter", help: string, samples: Sample[]): this {
    this.#out.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.#out.push(`# TYPE ${name} ${type}`);
    for (const s of samples) {
      const labels = Object.entries(s.labels ?? {});
      const text = labels.length === 0
        ? ""
        : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
      this.#out.push(`${name}${text} ${formatValue(s.value)}`);
    }
    return this;
  }

  /** The page. */
  toString(): string {
    return this.#out.join("\n") + "\n";
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** True for 127.0.0.0/8 and ::1 (also ::ffff:127.x.y.z). */
export function isLoopback(address: string): boolean {
  const parsed = parseIP(address);
  if (parsed === null) return false;
  const ip = parsed.bytes;
  if (ip.length === 4) return ip[0] === 127;
  const zeros = ip.subarray(0, 15).every((b) => b === 0);
  if (zeros && ip[15] === 1) return true;
  const mapped = ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff;
  return mapped && ip[12] === 127;
}

/**
 * Parses `IP:port` / `[IPv6]:port` for a metrics endpoint. Returns an error detail string when it
 * is malformed or not a loopback address.
 */
export function parseMetricsListen(text: string): { hostname: string; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return `must be "127.0.0.1:PORT" or "[::1]:PORT", got ${JSON.stringify(text)}`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port must be between 1 and 65535, got ${m[2]}`;
  if (parseIP(m[1]!) === null) return `not an IP address: ${JSON.stringify(m[1])}`;
  if (!isLoopback(m[1]!)) {
    return `only loopback addresses are allowed (127.0.0.1 or ::1), got ${m[1]}`;
  }
  return { hostname: m[1]!, port };
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The bound port. */
  readonly port: number;
  /** Stops serving. */
  close(): Promise<void>;
}

/** Serves `render()` at `/metrics` on a loopback address. Throws UserError when it cannot. */
export function serveMetrics(
  listen: { hostname: string; port: number },
  render: () => string,
): MetricsServer {
  if (!isLoopback(listen.hostname)) {
    throw new UserError(`metrics: only loopback addresses are allowed, got ${listen.hostname}`);
  }
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      onListen: () => {},
    }, (req) => {
      const url = new URL(req.url);
      if (url.pathname !== "/metrics" && url.pathname !== "/") {
        return new Response("not found\n", { status: 404 });
      }
      return new Response(render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    });
  } catch (err) {
    const why = err instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : err instanceof Error
      ? err.message
      : String(err);
    throw new UserError(`metrics: cannot listen on ${listen.hostname}:${listen.port}: ${why}`, {
      cause: err,
    });
  }
  log("metrics").info("metrics on http://{host}:{port}/metrics", {
    host: listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname,
    port: server.addr.port,
  });
  return {
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}
