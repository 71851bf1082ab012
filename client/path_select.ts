/**
 * Choosing among several paths to one member (IPv4 and IPv6, LAN and public): measure each,
 * send data on the best, keep the others warm, and move when the best dies or gets clearly worse.
 *
 * A path is a candidate endpoint of the member. Once an edge is up, every candidate gets small
 * **path probes**: an ICMPv6 echo request from our VPN address to the member's, inside the
 * WireGuard session (so authenticated and encrypted like any data; no new unauthenticated
 * surface), with a payload of {@linkcode PATH_PROBE_MAGIC} and a token. The member's mesh answers
 * it itself, to the address it came from, so the reply measures that one path both ways; the
 * kernel never sees either. The active path is probed every {@linkcode ACTIVE_PROBE_MS}, the
 * others every {@linkcode BACKUP_PROBE_MS}; a candidate that never answered backs off to
 * {@linkcode IDLE_PROBE_MS} after {@linkcode GIVE_UP_AFTER} probes.
 *
 * Per path: smoothed RTT (RFC 6298's 1/8 gain) and the loss of its last {@linkcode LOSS_WINDOW}
 * probes (an unanswered probe counts as lost when the next one goes out). Score = SRTT + (loss −
 * {@linkcode LOSS_FLOOR}) × {@linkcode LOSS_PENALTY_MS}, so a stray lost probe changes nothing
 * but a steadily lossy path loses. Switch when the active path is dead (nothing heard for {@linkcode
 * DEAD_AFTER_MS}), or when another live path scores clearly better (below {@linkcode
 * SWITCH_RATIO} of the active one's score and at least {@linkcode SWITCH_MIN_GAIN_MS} lower),
 * and not sooner than {@linkcode MIN_DWELL_MS} after the last switch (hysteresis).
 *
 * Roaming still works as before (an authenticated packet from an endpoint never heard before
 * moves the edge there), but a packet from a known, measured path does not move the edge while
 * the active path lives: the member's own choice of path for its sending direction must not
 * override ours (both sides measure the same round trips, so they normally agree).
 *
 * Only members that advertise the NAT-info TLV (this version on) get probes: an older member
 * would hand them to its kernel, answer over its own current path, and move its edge to whichever
 * path the probe came in on.
 *
 * @module
 */
import { icmp6Checksum, Icmp6Type, IPV6_HEADER_LEN, PROTO_ICMPV6 } from "./icmp.ts";
import type { UdpEndpoint } from "./udp.ts";

/** Probe interval of the active path. */
export const ACTIVE_PROBE_MS = 1_000;
/** Probe interval of the other live paths (kept warm). */
export const BACKUP_PROBE_MS = 2_000;
/** Probe interval of a candidate that never answered, after {@linkcode GIVE_UP_AFTER} tries. */
export const IDLE_PROBE_MS = 15_000;
/** Unanswered probes before a never-heard candidate backs off. */
export const GIVE_UP_AFTER = 5;
/** A path with nothing heard for this long (while probed) is dead. */
export const DEAD_AFTER_MS = 3_000;
/** Probes the loss rate is taken over. */
export const LOSS_WINDOW = 16;
/** Loss up to this rate costs nothing (one probe in ten)... */
export const LOSS_FLOOR = 0.1;
/** ...and beyond it, this many ms of score per unit of loss rate (30% loss costs 40 ms). */
export const LOSS_PENALTY_MS = 200;
/** Another path must score below this fraction of the active one... */
export const SWITCH_RATIO = 0.75;
/** ...and this much lower in absolute terms. */
export const SWITCH_MIN_GAIN_MS = 2;
/** Samples a path needs before it can win on score. */
export const MIN_SAMPLES = 3;
/** No switch on score sooner than this after the last switch. */
export const MIN_DWELL_MS = 5_000;
/** Most paths measured per member. */
export const MAX_PATHS = 6;
/** Payload marker of path probes (8 bytes; `meshub ping` uses "meshub-p"). */
export const PATH_PROBE_MAGIC: Uint8Array = new TextEncoder().encode("meshub-q");
const PAYLOAD_LEN = 16;
const PROBE_LEN = IPV6_HEADER_LEN + 8 + PAYLOAD_LEN;

/** One measured path, as status shows it. */
export interface PathStatus {
  /** The member's endpoint (`host:port`). */
  endpoint: string;
  /** `LAN`, `public IPv4`, `IPv6` or `static`, as for the edge. */
  path: string;
  /** `active` (data goes here), `backup` (live), `dead` (answered once, silent now), `untried`. */
  state: "active" | "backup" | "dead" | "untried";
  /** Smoothed round-trip time, ms; null before the first answer. */
  srttMs: number | null;
  /** Estimated probe loss, percent. */
  lossPct: number;
  /** Probes sent and answered. */
  sent: number;
  answered: number;
  lastHeardAgoMs: number | null;
}

interface Path {
  key: string;
  endpoint: UdpEndpoint;
  srttMs: number;
  /** Outcomes of the last LOSS_WINDOW probes, newest in bit 0 (1 = lost), and how many. */
  outcomes: number;
  outcomeCount: number;
  samples: number;
  sent: number;
  answered: number;
  /** Probes sent since the last answer. */
  unanswered: number;
  lastSentMs: number;
  lastHeardMs: number;
  /** The probe awaiting its answer (token), 0 = none. */
  pendingToken: number;
  pendingSentMs: number;
}

/** A probe to send: the packet goes through the member's session to `endpoint`. */
export interface DueProbe {
  endpoint: UdpEndpoint;
  token: number;
}

/** The paths to one member and the choice among them. */
export class PathSet {
  readonly #paths = new Map<string, Path>();
  #lastSwitchMs = Number.NEGATIVE_INFINITY;
  /** The last authenticated packet on the active path (set per packet: no map lookup). */
  #heardKey = "";
  #heardMs = Number.NEGATIVE_INFINITY;
  #nextToken = 1 + Math.floor(Math.random() * 0x7fff_0000);

  #updatedMs = Number.NEGATIVE_INFINITY;

  /** Whether the candidate list is due for {@linkcode update} (once a second is plenty). */
  updateDue(now: number): boolean {
    if (now - this.#updatedMs < 1_000) return false;
    this.#updatedMs = now;
    return true;
  }

  /** Number of paths known. */
  get size(): number {
    return this.#paths.size;
  }

  /**
   * Makes the paths the member's candidates (in order of preference for the {@linkcode MAX_PATHS}
   * limit); a path that stays keeps its measurements.
   */
  update(candidates: readonly { key: string; endpoint: UdpEndpoint }[]): void {
    const keep = new Set(candidates.slice(0, MAX_PATHS).map((c) => c.key));
    for (const key of [...this.#paths.keys()]) if (!keep.has(key)) this.#paths.delete(key);
    for (const c of candidates.slice(0, MAX_PATHS)) {
      if (this.#paths.has(c.key)) continue;
      this.#paths.set(c.key, {
        key: c.key,
        endpoint: c.endpoint,
        srttMs: 0,
        outcomes: 0,
        outcomeCount: 0,
        samples: 0,
        sent: 0,
        answered: 0,
        unanswered: 0,
        lastSentMs: Number.NEGATIVE_INFINITY,
        lastHeardMs: Number.NEGATIVE_INFINITY,
        pendingToken: 0,
        pendingSentMs: 0,
      });
    }
  }

  /** The probes due at `now`, `activeKey` being the path data uses. */
  due(now: number, activeKey: string): DueProbe[] {
    const out: DueProbe[] = [];
    // The active path needs measuring only when there is another live path to compare it with;
    // alone, its death is the stale-edge logic's business.
    let alternative = false;
    for (const p of this.#paths.values()) {
      if (p.key !== activeKey && p.answered > 0) alternative = true;
    }
    for (const p of this.#paths.values()) {
      if (p.key === activeKey && !alternative) continue;
      const interval = p.key === activeKey
        ? ACTIVE_PROBE_MS
        : p.answered === 0 && p.unanswered >= GIVE_UP_AFTER
        ? IDLE_PROBE_MS
        : BACKUP_PROBE_MS;
      if (now - p.lastSentMs < interval) continue;
      if (p.pendingToken !== 0) this.#lost(p);
      const token = this.#nextToken = (this.#nextToken % 0x7fff_ffff) + 1;
      p.pendingToken = token;
      p.pendingSentMs = now;
      p.lastSentMs = now;
      p.sent++;
      p.unanswered++;
      out.push({ endpoint: p.endpoint, token });
    }
    return out;
  }

  /**
   * A probe answer with `token` arrived: the path's key and smoothed RTT (null: not ours, or
   * late).
   */
  answered(token: number, now: number): { key: string; srttMs: number } | null {
    for (const p of this.#paths.values()) {
      if (p.pendingToken !== token || token === 0) continue;
      const rtt = Math.max(0, now - p.pendingSentMs);
      p.srttMs = p.samples === 0 ? rtt : p.srttMs + (rtt - p.srttMs) / 8;
      record(p, false);
      p.samples++;
      p.answered++;
      p.unanswered = 0;
      p.pendingToken = 0;
      p.lastHeardMs = now;
      return { key: p.key, srttMs: p.srttMs };
    }
    return null;
  }

  /** Any authenticated packet from path `key` shows it alive. */
  heard(key: string, now: number): void {
    const p = this.#paths.get(key);
    if (p !== undefined) p.lastHeardMs = now;
  }

  /** An authenticated packet on the active path `key` (hot path: two stores, no lookup). */
  heardActive(key: string, now: number): void {
    this.#heardKey = key;
    this.#heardMs = now;
  }

  /**
   * Whether an authenticated packet from `fromKey` should move the edge there (roaming): yes
   * for an endpoint we never heard from on a probe, or when the active path is dead.
   */
  shouldFollow(fromKey: string, activeKey: string, now: number): boolean {
    const from = this.#paths.get(fromKey);
    if (from === undefined || from.answered === 0) return true;
    return !this.#alive(this.#paths.get(activeKey), now);
  }

  /** The path to move data to now, or null to stay on `activeKey`. */
  choose(activeKey: string, now: number): UdpEndpoint | null {
    const active = this.#paths.get(activeKey);
    let best: Path | null = null;
    for (const p of this.#paths.values()) {
      if (p.key === activeKey || !this.#alive(p, now) || p.samples === 0) continue;
      if (best === null || score(p) < score(best)) best = p;
    }
    if (best === null) return null;
    if (active === undefined || (active.sent >= 2 && !this.#alive(active, now))) {
      this.#lastSwitchMs = now;
      return best.endpoint;
    }
    if (active.samples === 0 || best.samples < MIN_SAMPLES) return null;
    if (now - this.#lastSwitchMs < MIN_DWELL_MS) return null;
    const a = score(active);
    const b = score(best);
    if (b < a * SWITCH_RATIO && a - b >= SWITCH_MIN_GAIN_MS) {
      this.#lastSwitchMs = now;
      return best.endpoint;
    }
    return null;
  }

  /** Measurements for status, `format` turning an endpoint into text and `label` into a path. */
  snapshot(
    now: number,
    activeKey: string,
    format: (e: UdpEndpoint) => string,
    label: (e: UdpEndpoint) => string,
  ): PathStatus[] {
    return [...this.#paths.values()].map((p) => ({
      endpoint: format(p.endpoint),
      path: label(p.endpoint),
      state: p.key === activeKey
        ? "active"
        : this.#alive(p, now)
        ? "backup"
        : p.answered > 0
        ? "dead"
        : "untried",
      srttMs: p.samples === 0 ? null : Math.round(p.srttMs * 100) / 100,
      lossPct: Math.round(lossRate(p) * 1000) / 10,
      sent: p.sent,
      answered: p.answered,
      lastHeardAgoMs: Number.isFinite(p.lastHeardMs) ? Math.round(now - p.lastHeardMs) : null,
    }));
  }

  #alive(p: Path | undefined, now: number): boolean {
    if (p === undefined) return false;
    const heard = p.key === this.#heardKey ? Math.max(p.lastHeardMs, this.#heardMs) : p.lastHeardMs;
    return now - heard < DEAD_AFTER_MS;
  }

  #lost(p: Path): void {
    record(p, true);
    p.pendingToken = 0;
  }
}

function record(p: Path, lost: boolean): void {
  p.outcomes = ((p.outcomes << 1) | (lost ? 1 : 0)) & ((1 << LOSS_WINDOW) - 1);
  p.outcomeCount = Math.min(LOSS_WINDOW, p.outcomeCount + 1);
}

function lossRate(p: Path): number {
  if (p.outcomeCount === 0) return 0;
  let lost = 0;
  for (let bits = p.outcomes; bits !== 0; bits &= bits - 1) lost++;
  return lost / p.outcomeCount;
}

function score(p: Path): number {
  return p.srttMs + Math.max(0, lossRate(p) - LOSS_FLOOR) * LOSS_PENALTY_MS;
}

/** A path probe (ICMPv6 echo request with our marker) from `source` to `destination`. */
export function buildPathProbe(
  source: Uint8Array,
  destination: Uint8Array,
  token: number,
): Uint8Array {
  const p = new Uint8Array(PROBE_LEN);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, 8 + PAYLOAD_LEN);
  p[6] = PROTO_ICMPV6;
  p[7] = 64;
  p.set(source, 8);
  p.set(destination, 24);
  p[40] = Icmp6Type.ECHO_REQUEST;
  v.setUint16(44, token >>> 16);
  v.setUint16(46, token & 0xffff);
  p.set(PATH_PROBE_MAGIC, 48);
  v.setUint32(56, token);
  v.setUint16(42, icmp6Checksum(p));
  return p;
}

/**
 * If `packet` is a path probe (`request`) or a probe answer (`reply`) addressed to `ourAddress`,
 * returns which and its token; null otherwise. The first checks are single bytes (hot path).
 */
export function parsePathProbe(
  packet: Uint8Array,
  ourAddress: Uint8Array,
): { kind: "request" | "reply"; token: number } | null {
  if (packet.length !== PROBE_LEN || packet[0]! >> 4 !== 6 || packet[6] !== PROTO_ICMPV6) {
    return null;
  }
  const type = packet[40];
  if (type !== Icmp6Type.ECHO_REQUEST && type !== Icmp6Type.ECHO_REPLY) return null;
  for (let i = 0; i < PATH_PROBE_MAGIC.length; i++) {
    if (packet[48 + i] !== PATH_PROBE_MAGIC[i]) return null;
  }
  for (let i = 0; i < 16; i++) if (packet[24 + i] !== ourAddress[i]) return null;
  if (icmp6Checksum(packet) !== ((packet[42]! << 8) | packet[43]!)) return null;
  const token = new DataView(packet.buffer, packet.byteOffset).getUint32(56);
  return { kind: type === Icmp6Type.ECHO_REQUEST ? "request" : "reply", token };
}

/** The answer to path probe `request` (addresses swapped, type echo reply). */
export function buildPathProbeReply(request: Uint8Array): Uint8Array {
  const p = request.slice();
  p.set(request.subarray(24, 40), 8);
  p.set(request.subarray(8, 24), 24);
  p[40] = Icmp6Type.ECHO_REPLY;
  p[42] = 0;
  p[43] = 0;
  new DataView(p.buffer).setUint16(42, icmp6Checksum(p));
  return p;
}
