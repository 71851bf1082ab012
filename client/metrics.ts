/**
 * The client's Prometheus metrics, rendered from the status snapshot (`metrics.listen`).
 *
 * @module
 */
import type { ClientStatus } from "./control.ts";
import { MetricsWriter, type Sample } from "../util/prometheus.ts";

const EDGE_STATES = ["connecting", "up", "stale", "punching", "unreachable"] as const;

/** Renders the metrics page of a client. */
export function renderClientMetrics(s: ClientStatus): string {
  const w = new MetricsWriter();
  const per = (f: (m: ClientStatus["members"][number]) => number | null): Sample[] =>
    s.members.flatMap((m) => {
      const v = f(m);
      return v === null ? [] : [{ labels: { member: m.name }, value: v }];
    });
  w.add("meshub_members", "gauge", "Members known to this client.", [{ value: s.members.length }]);
  w.add(
    "meshub_edge_state",
    "gauge",
    "1 for the state each member's edge is in.",
    s.members.flatMap((m) =>
      EDGE_STATES.map((state) => ({
        labels: { member: m.name, state },
        value: m.state === state ? 1 : 0,
      }))
    ),
  );
  w.add(
    "meshub_edge_rtt_seconds",
    "gauge",
    "Latest round-trip time of the edge (handshake or probe).",
    per((m) => m.rttMs === null ? null : m.rttMs / 1000),
  );
  w.add(
    "meshub_edge_handshake_age_seconds",
    "gauge",
    "Time since the last completed handshake.",
    per((m) => m.lastHandshakeAgoMs === null ? null : m.lastHandshakeAgoMs / 1000),
  );
  w.add(
    "meshub_edge_sent_bytes_total",
    "counter",
    "Transport bytes sent on the edge.",
    per((m) => m.tx.bytes),
  );
  w.add(
    "meshub_edge_received_bytes_total",
    "counter",
    "Transport bytes received on the edge.",
    per((m) => m.rx.bytes),
  );
  w.add(
    "meshub_edge_sent_packets_total",
    "counter",
    "Transport packets sent on the edge.",
    per((m) => m.tx.packets),
  );
  w.add(
    "meshub_edge_received_packets_total",
    "counter",
    "Transport packets received on the edge.",
    per((m) => m.rx.packets),
  );
  w.add(
    "meshub_edge_dropped_packets_total",
    "counter",
    "Packets concerning this member that were dropped, by reason.",
    s.members.flatMap((m) =>
      Object.entries(m.drops).map(([reason, value]) => ({
        labels: { member: m.name, reason },
        value,
      }))
    ),
  );
  w.add(
    "meshub_dropped_packets_total",
    "counter",
    "Everything this client dropped, by reason.",
    Object.entries(s.drops).map(([reason, value]) => ({ labels: { reason }, value })),
  );
  w.add(
    "meshub_hub_registered",
    "gauge",
    "1 while registered with the hub.",
    s.hubs.map((h) => ({ labels: { hub: h.endpoint }, value: h.state === "registered" ? 1 : 0 })),
  );
  w.add(
    "meshub_hub_last_contact_seconds",
    "gauge",
    "Time since the hub was last heard from.",
    s.hubs.flatMap((h) =>
      h.lastContactAgoMs === null
        ? []
        : [{ labels: { hub: h.endpoint }, value: h.lastContactAgoMs / 1000 }]
    ),
  );
  return w.toString();
}
