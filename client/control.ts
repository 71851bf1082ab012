/**
 * The client's diagnostics: its control socket (`meshub status`, `meshub ping`), the stable
 * status JSON, the status table, and the optional metrics endpoint. The driver (`client.ts`)
 * claims the socket before it creates the TUN (so a second client on the same path is refused
 * before it touches anything), then attaches the mesh once it exists.
 *
 * Control commands (protocol in `util/control_socket.ts`):
 * - `{"v":1,"cmd":"status"}` → {@linkcode ClientStatus}
 * - `{"v":1,"cmd":"ping","peer":"c2","timeoutMs":2000}` → {@linkcode PingReply}
 *
 * @module
 */
import type { EdgeState, Mesh, MeshEvent } from "./mesh.ts";
import type { ClientConfig } from "./config.ts";
import { encodeBase64 } from "../util/base64.ts";
import { ControlCommandError, ControlServer } from "../util/control_socket.ts";
import { type MetricsServer, serveMetrics } from "../util/prometheus.ts";
import { renderClientMetrics } from "./metrics.ts";
import type { CandidateStatus } from "./mesh.ts";
import type { NatKind } from "./nat_kind.ts";
import type { PortAllocation } from "./port_prediction.ts";
import type { PathStatus } from "./path_select.ts";

/** Version of the status JSON; bumped only on incompatible changes. */
export const STATUS_VERSION = 1;
/** Longest wait for one probe answer a caller may ask for. */
export const MAX_PING_TIMEOUT_MS = 30_000;

/** `meshub status --json`: documented in README.md ("Status JSON"). */
export interface ClientStatus {
  version: number;
  node: {
    name: string;
    /** VPN addresses with prefix length. */
    addresses: string[];
    /** WireGuard public key, standard base64 (as `meshub pubkey` prints it). */
    publicKey: string;
    /** The first 10 characters of the public key. */
    fingerprint: string;
    port: number;
    interface: string;
    mtu: number;
    /**
     * What kind of NAT this node seems to be behind, from the hubs' observations: `none`,
     * `endpoint-independent`, `symmetric`, `nat` (one hub: mapping unknown) or `unknown`.
     */
    natKind: NatKind;
  };
  hubs: {
    endpoint: string;
    /** `connecting`, `registered` or `lost`. */
    state: string;
    /** Our public endpoint as this hub sees it, or null. */
    observedAs: string | null;
    lastContactAgoMs: number | null;
  }[];
  members: MemberStatus[];
  /** Everything this client dropped, by reason. */
  drops: Record<string, number>;
}

/** One member row of {@linkcode ClientStatus}. */
export interface MemberStatus {
  name: string;
  publicKey: string;
  addresses: string[];
  state: EdgeState;
  /** `LAN`, `public IPv4`, `IPv6` or `static`; null without an edge endpoint. */
  path: string | null;
  endpoint: string | null;
  rttMs: number | null;
  lastHandshakeAgoMs: number | null;
  lastHeardAgoMs: number | null;
  tx: { bytes: number; packets: number };
  rx: { bytes: number; packets: number };
  handshakes: number;
  drops: Record<string, number>;
  candidates: CandidateStatus[];
  /** What kind of NAT the member seems to be behind (its advert's word, else the hubs'). */
  natKind: NatKind;
  /** Its NAT's port allocation when symmetric: `sequential`, `random` or `unknown`. */
  portAllocation: PortAllocation;
  /** Our port spray toward it (`mode` `predict` or `scan`), or null. */
  spray: { mode: string; host: string; ports: number; sent: number } | null;
  /** Every measured path with its smoothed RTT and loss; the `active` one carries data. */
  paths: PathStatus[];
}

/** The answer to a `ping` command. */
export type PingReply =
  | { reply: true; name: string; seq: number; rttMs: number; path: string; endpoint: string }
  | {
    reply: false;
    name: string;
    /** The edge state when the probe left. */
    state: EdgeState;
    timeoutMs: number;
    candidates: CandidateStatus[];
  };

/** What the driver tells the diagnostics besides the mesh. */
export interface ClientInfo {
  /** TUN interface name. */
  interface: string;
  /** TUN MTU. */
  mtu: number;
  /** Drops outside the mesh (the UDP socket's full buffers, refusals), by reason. */
  socketDrops?: () => Record<string, number>;
}

/** Builds the status JSON from a mesh snapshot. */
export function clientStatus(mesh: Mesh, info: ClientInfo): ClientStatus {
  const s = mesh.status();
  const publicKey = encodeBase64(s.publicKey);
  return {
    version: STATUS_VERSION,
    node: {
      name: s.name,
      addresses: s.addresses,
      publicKey,
      fingerprint: publicKey.slice(0, 10),
      port: s.port,
      interface: info.interface,
      mtu: info.mtu,
      natKind: s.natKind,
    },
    hubs: s.hubs.map((h) => ({
      endpoint: h.endpoint,
      state: h.state,
      observedAs: h.observed === "" ? null : h.observed,
      lastContactAgoMs: h.lastHeardAgoMs === null ? null : Math.round(h.lastHeardAgoMs),
    })),
    members: s.members.map((m) => ({
      name: m.name,
      publicKey: encodeBase64(m.publicKey),
      addresses: m.addresses,
      state: m.state,
      path: m.path,
      endpoint: m.endpoint,
      rttMs: m.rttMs,
      lastHandshakeAgoMs: m.lastHandshakeAgoMs === null ? null : Math.round(m.lastHandshakeAgoMs),
      lastHeardAgoMs: m.lastHeardAgoMs,
      tx: { bytes: m.txBytes, packets: m.txPackets },
      rx: { bytes: m.rxBytes, packets: m.rxPackets },
      handshakes: m.handshakes,
      drops: m.memberDrops,
      candidates: m.tried,
      natKind: m.natKind,
      portAllocation: m.portAllocation,
      spray: m.spray,
      paths: m.paths,
    })),
    drops: { ...s.drops, ...info.socketDrops?.() },
  };
}

/** The control socket and metrics endpoint of a running client. */
export class ClientDiagnostics {
  readonly #control: ControlServer | null;
  readonly #config: ClientConfig;
  #metrics: MetricsServer | null = null;
  #mesh: Mesh | null = null;
  #info: ClientInfo = { interface: "", mtu: 0 };
  readonly #pongs = new Map<number, (e: Extract<MeshEvent, { kind: "pong" }>) => void>();

  private constructor(config: ClientConfig, control: ControlServer | null) {
    this.#config = config;
    this.#control = control;
  }

  /** Claims the control socket (throws UserError if another client owns it). */
  static async open(config: ClientConfig): Promise<ClientDiagnostics> {
    const control = config.control.socket === ""
      ? null
      : await ControlServer.open(config.control.socket);
    return new ClientDiagnostics(config, control);
  }

  /** The mesh's event observer: wakes `ping` callers. */
  readonly onEvent = (event: MeshEvent): void => {
    if (event.kind !== "pong") return;
    const waiter = this.#pongs.get(event.seq);
    if (waiter !== undefined) {
      this.#pongs.delete(event.seq);
      waiter(event);
    }
  };

  /** Starts answering for `mesh`, and serves metrics if configured. */
  attach(mesh: Mesh, info: ClientInfo): void {
    this.#mesh = mesh;
    this.#info = info;
    this.#control?.setHandler((r) => this.#handle(r));
    const listen = this.#config.metrics.listen;
    if (listen !== null) {
      this.#metrics = serveMetrics(listen, () => renderClientMetrics(this.status()));
    }
  }

  /** The current status (after {@linkcode attach}). */
  status(): ClientStatus {
    if (this.#mesh === null) throw new ControlCommandError("starting up, try again");
    return clientStatus(this.#mesh, this.#info);
  }

  async #handle(request: { cmd: string; [k: string]: unknown }): Promise<unknown> {
    switch (request.cmd) {
      case "status":
        return this.status();
      case "ping": {
        if (typeof request.peer !== "string" || request.peer === "") {
          throw new ControlCommandError("ping needs a peer");
        }
        const timeoutMs = typeof request.timeoutMs === "number"
          ? Math.max(1, Math.min(MAX_PING_TIMEOUT_MS, request.timeoutMs))
          : 2_000;
        return await this.#ping(request.peer, timeoutMs);
      }
      default:
        throw new ControlCommandError(`unknown command "${request.cmd}"`);
    }
  }

  async #ping(peer: string, timeoutMs: number): Promise<PingReply> {
    const mesh = this.#mesh!;
    const start = mesh.sendProbe(peer);
    if (!start.ok) throw new ControlCommandError(start.error);
    const pong = await new Promise<Extract<MeshEvent, { kind: "pong" }> | null>((resolve) => {
      const timer = setTimeout(() => {
        this.#pongs.delete(start.seq);
        resolve(null);
      }, timeoutMs);
      this.#pongs.set(start.seq, (e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
    if (pong !== null) {
      return {
        reply: true,
        name: pong.name,
        seq: pong.seq,
        rttMs: Math.round(pong.rttMs * 100) / 100,
        path: pong.path,
        endpoint: pong.endpoint,
      };
    }
    const row = this.status().members.find((m) => m.name === start.name);
    return {
      reply: false,
      name: start.name,
      state: start.state,
      timeoutMs,
      candidates: row?.candidates ?? [],
    };
  }

  /** Closes the control socket (removing it) and the metrics endpoint. */
  async close(): Promise<void> {
    this.#pongs.clear();
    await this.#control?.close();
    await this.#metrics?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Human-readable output

/** `1.2 s`, `3 min`, `2 h`, or `never`. */
export function formatAge(ms: number | null): string {
  if (ms === null) return "never";
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

/** `512 B`, `12.3 KiB`, `4.0 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

function formatRtt(ms: number | null): string {
  if (ms === null) return "-";
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;
}

function formatDrops(drops: Record<string, number>): string {
  const entries = Object.entries(drops).filter(([, n]) => n > 0);
  return entries.length === 0 ? "-" : entries.map(([k, n]) => `${k} ${n}`).join(", ");
}

/** Formats a table: columns padded to their widest cell, two spaces apart. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join("  "))
    .join("\n");
}

/** One line per candidate: where, from whom, and what trying it did. */
export function describeCandidates(candidates: CandidateStatus[], indent = "    "): string[] {
  return candidates.map((c) => {
    const detail = [`${c.sent} sent`, `${c.received} received`];
    if (c.lastHeardAgoMs !== null) detail.push(`last heard ${formatAge(c.lastHeardAgoMs)} ago`);
    return `${indent}${c.endpoint} (${c.source}): ${c.result} (${detail.join(", ")})`;
  });
}

/** The `meshub status` table. */
export function formatStatus(s: ClientStatus): string {
  const out: string[] = [];
  const n = s.node;
  out.push(
    `${n.name}  ${n.addresses.join(" ")}  key ${n.fingerprint}…  udp ${n.port}  ` +
      `${n.interface} mtu ${n.mtu}  NAT ${n.natKind}`,
  );
  if (s.hubs.length === 0) out.push("hubs: none configured");
  for (const h of s.hubs) {
    const seen = h.observedAs === null ? "" : `  sees us as ${h.observedAs}`;
    const contact = h.lastContactAgoMs === null
      ? "never heard from"
      : `last contact ${formatAge(h.lastContactAgoMs)} ago`;
    out.push(`hub ${h.endpoint}  ${h.state}${seen}  ${contact}`);
  }
  out.push("");
  if (s.members.length === 0) {
    out.push("no members known yet");
  } else {
    const rows = [[
      "MEMBER",
      "ADDRESS",
      "STATE",
      "PATH",
      "ENDPOINT",
      "RTT",
      "NAT",
      "HANDSHAKE",
      "TX",
      "RX",
      "DROPS",
    ]];
    for (const m of s.members) {
      rows.push([
        m.name,
        (m.addresses[0] ?? "-").replace(/\/\d+$/, ""),
        m.state,
        m.path ?? "-",
        m.endpoint ?? "-",
        formatRtt(m.rttMs),
        m.natKind + (m.portAllocation === "unknown" ? "" : ` (${m.portAllocation})`),
        m.lastHandshakeAgoMs === null ? "never" : `${formatAge(m.lastHandshakeAgoMs)} ago`,
        `${formatBytes(m.tx.bytes)}/${m.tx.packets}p`,
        `${formatBytes(m.rx.bytes)}/${m.rx.packets}p`,
        formatDrops(m.drops),
      ]);
    }
    out.push(table(rows));
    out.push("");
    out.push("candidates tried:");
    for (const m of s.members) {
      out.push(`  ${m.name}:`);
      out.push(...describeCandidates(m.candidates));
      if (m.candidates.length === 0) out.push("    none known (no hub has told us where it is)");
      if (m.spray !== null) {
        out.push(
          `    spray (${m.spray.mode}): ${m.spray.sent}/${m.spray.ports} ports of ${m.spray.host}`,
        );
      }
    }
    const measured = s.members.filter((m) => m.paths.some((p) => p.srttMs !== null));
    if (measured.length > 0) {
      out.push("");
      out.push("paths:");
      for (const m of measured) {
        out.push(`  ${m.name}:`);
        for (const p of m.paths) {
          out.push(
            `    ${p.endpoint} (${p.path}): ${p.state}, rtt ${formatRtt(p.srttMs)}, ` +
              `loss ${p.lossPct}% (${p.answered}/${p.sent} probes answered)`,
          );
        }
      }
    }
  }
  out.push("");
  out.push(`drops: ${formatDrops(s.drops)}`);
  return out.join("\n");
}

/** The `meshub ping` line(s) for one answer. */
export function formatPing(p: PingReply): string {
  if (p.reply) {
    return `pong from ${p.name} via ${p.endpoint} (${p.path}) in ${formatRtt(p.rttMs)}`;
  }
  const why = p.state === "connecting"
    ? "the first handshake is still under way"
    : p.state === "up" || p.state === "stale"
    ? `the edge is ${p.state} but the probe was not answered`
    : "no direct path exists";
  const lines = [
    `no reply from ${p.name} within ${formatAge(p.timeoutMs)}: ${why} (state ${p.state})`,
  ];
  if (p.candidates.length === 0) {
    lines.push("  no candidates known (no hub has told us where it is)");
  } else lines.push("  tried:", ...describeCandidates(p.candidates));
  return lines.join("\n");
}
