/**
 * The hub's diagnostics: an optional control socket (`meshub hub --control PATH`, queried with
 * `meshub hub --status --control PATH`) and an optional Prometheus endpoint
 * (`meshub hub --metrics 127.0.0.1:9732`). The hub knows no names or addresses of members, so it
 * shows counts only: members per network (short network ids, as in its logs), registrations per
 * second, drops by reason.
 *
 * @module
 */
import type { HubHandle, HubStats } from "./server.ts";
import { formatEndpoint } from "../protocol/endpoint.ts";
import { ControlCommandError, ControlServer } from "../util/control_socket.ts";
import { type MetricsServer, MetricsWriter, serveMetrics } from "../util/prometheus.ts";

/** Version of the hub status JSON. */
export const HUB_STATUS_VERSION = 1;
/** Registrations per second are averaged over this window. */
export const RATE_WINDOW_S = 10;

/** `meshub hub --status --json`. */
export interface HubStatus {
  version: number;
  endpoints: string[];
  uptimeS: number;
  networks: number;
  members: number;
  /** Members per network (short network id), largest first. */
  perNetwork: { network: string; members: number }[];
  /** Accepted registrations per second over the last {@linkcode RATE_WINDOW_S} seconds. */
  registrationsPerS: number;
  counters: {
    received: number;
    registrations: number;
    challenges: number;
    joins: number;
    leaves: number;
    expiries: number;
    sent: number;
    sendErrors: number;
  };
  drops: Record<string, number>;
}

/** Builds {@linkcode HubStatus} from a stats snapshot. */
export function hubStatus(
  stats: HubStats,
  endpoints: string[],
  uptimeS: number,
  registrationsPerS: number,
): HubStatus {
  return {
    version: HUB_STATUS_VERSION,
    endpoints,
    uptimeS: Math.round(uptimeS),
    networks: stats.networks,
    members: stats.members,
    perNetwork: stats.perNetwork,
    registrationsPerS: Math.round(registrationsPerS * 100) / 100,
    counters: {
      received: stats.received,
      registrations: stats.registrations,
      challenges: stats.challenges,
      joins: stats.joins,
      leaves: stats.leaves,
      expiries: stats.expiries,
      sent: stats.sent,
      sendErrors: stats.sendErrors,
    },
    drops: stats.drops,
  };
}

/** The hub's control socket and metrics endpoint. */
export class HubDiagnostics {
  readonly #hub: HubHandle;
  readonly #startedMs = performance.now();
  /** Registration counts sampled once a second, newest last. */
  readonly #samples: number[] = [];
  readonly #timer: ReturnType<typeof setInterval>;
  #control: ControlServer | null = null;
  #metrics: MetricsServer | null = null;

  private constructor(hub: HubHandle) {
    this.#hub = hub;
    this.#samples.push(hub.stats.registrations);
    this.#timer = setInterval(() => {
      this.#samples.push(this.#hub.stats.registrations);
      if (this.#samples.length > RATE_WINDOW_S + 1) this.#samples.shift();
    }, 1_000);
    Deno.unrefTimer(this.#timer);
  }

  /** Starts whatever is asked for; throws UserError when the socket or port cannot be had. */
  static async open(
    hub: HubHandle,
    options: { control?: string | undefined; metrics?: { hostname: string; port: number } },
  ): Promise<HubDiagnostics> {
    const d = new HubDiagnostics(hub);
    try {
      if (options.control !== undefined) {
        d.#control = await ControlServer.open(options.control);
        d.#control.setHandler((r) => {
          if (r.cmd === "status") return d.status();
          throw new ControlCommandError(`unknown command "${r.cmd}"`);
        });
      }
      if (options.metrics !== undefined) {
        d.#metrics = serveMetrics(options.metrics, () => renderHubMetrics(d.status()));
      }
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  /** The current status. */
  status(): HubStatus {
    const first = this.#samples[0]!;
    const now = this.#hub.stats;
    const seconds = Math.max(1, this.#samples.length - 1);
    const rate = this.#samples.length > 1
      ? (this.#samples.at(-1)! - first) / seconds
      : now.registrations / Math.max(1, (performance.now() - this.#startedMs) / 1000);
    return hubStatus(
      now,
      this.#hub.endpoints.map(formatEndpoint),
      (performance.now() - this.#startedMs) / 1000,
      rate,
    );
  }

  /** Stops everything; removes the socket file. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#control?.close();
    await this.#metrics?.close();
  }
}

/** The hub's metrics page. */
export function renderHubMetrics(s: HubStatus): string {
  const w = new MetricsWriter();
  w.add("meshub_hub_networks", "gauge", "Networks with members.", [{ value: s.networks }]);
  w.add("meshub_hub_members", "gauge", "Members over all networks.", [{ value: s.members }]);
  w.add(
    "meshub_hub_network_members",
    "gauge",
    "Members per network (short network id).",
    s.perNetwork.map((n) => ({ labels: { network: n.network }, value: n.members })),
  );
  w.add("meshub_hub_registrations_per_second", "gauge", "Accepted registrations per second.", [
    { value: s.registrationsPerS },
  ]);
  for (
    const [key, help] of [
      ["received", "Datagrams received."],
      ["registrations", "Registrations accepted."],
      ["challenges", "Challenges sent."],
      ["joins", "Members that joined."],
      ["leaves", "Members that left."],
      ["expiries", "Members that expired."],
      ["sent", "Datagrams sent."],
      ["sendErrors", "Sends the OS refused."],
    ] as const
  ) {
    const name = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    w.add(`meshub_hub_${name}_total`, "counter", help, [{ value: s.counters[key] }]);
  }
  w.add(
    "meshub_hub_dropped_total",
    "counter",
    "Datagrams dropped, by reason.",
    Object.entries(s.drops).map(([reason, value]) => ({ labels: { reason }, value })),
  );
  return w.toString();
}

/** The `meshub hub --status` text. */
export function formatHubStatus(s: HubStatus): string {
  const lines = [
    `hub on ${s.endpoints.join(", ")}, up ${s.uptimeS} s`,
    `${s.members} members in ${s.networks} networks, ${s.registrationsPerS} registrations/s`,
  ];
  if (s.perNetwork.length > 0) {
    lines.push("", "NETWORK   MEMBERS");
    for (const n of s.perNetwork) lines.push(`${n.network}  ${n.members}`);
  }
  const c = s.counters;
  lines.push(
    "",
    `received ${c.received}, registrations ${c.registrations}, challenges ${c.challenges}, ` +
      `joins ${c.joins}, leaves ${c.leaves}, expiries ${c.expiries}, sent ${c.sent}, ` +
      `send errors ${c.sendErrors}`,
  );
  const drops = Object.entries(s.drops);
  lines.push(
    `drops: ${drops.length === 0 ? "-" : drops.map(([k, n]) => `${k} ${n}`).join(", ")}`,
  );
  return lines.join("\n");
}
