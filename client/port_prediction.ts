/**
 * Getting through a symmetric NAT: port prediction for sequential allocators and a bounded port
 * spray for random ones.
 *
 * A symmetric NAT gives each destination its own public port, so the port the hubs observed for
 * a member is not the one its packets to us will come from. If our own NAT keeps one mapping for
 * every destination (endpoint-independent, with or without port-restricted filtering), the member
 * can still reach us at the endpoint the hubs observed for us; what blocks it is our NAT's filter,
 * which only lets in packets from `address:port` pairs we sent to. So we send small PUNCH packets
 * from our one socket to many ports of the member's public address (a spray): each opens our
 * filter for that port, and when one of them is the port the member's NAT picked toward us, the
 * member's next handshake initiation gets in, and our response goes back through its mapping.
 *
 * Which ports:
 * - **sequential** allocator (the hubs saw ports a few apart): the member's mapping toward us
 *   was made after its hub mappings, so it is a little above the highest observed one; we punch a
 *   small window above it ({@linkcode SEQUENTIAL_WINDOW}) first. Two random ports can also land
 *   close together, so if no edge is up {@linkcode PREDICT_GRACE_MS} later, the spray goes on
 *   with the scan below (it stops as soon as the edge is up).
 * - **random** allocator: the port is anywhere in the NAT's range. We cannot know the range, but
 *   the observed ports lie in it; we spray up to {@linkcode SPRAY_BUDGET} ports around them,
 *   nearest first. With a NAT that allocates from a range of a few hundred ports this covers it;
 *   with a full 64 k range the chance per attempt is only budget / range.
 *
 * What cannot work with one socket per node: when both sides are symmetric, neither knows the
 * other's mapping toward itself, and a spray from either side creates new mappings on its own NAT
 * too; a hit needs two random choices to coincide. A true birthday attack (the symmetric side
 * opening many mappings toward the other's one endpoint) would need many sockets on the
 * symmetric side, which the single-socket design (the hub must observe the mapping the peers use)
 * rules out. Such pairs are not attempted.
 *
 * Who sprays: the side that is *not* behind a symmetric NAT, toward a member whose own sealed
 * advert says it is (TLV {@linkcode EXT_NAT_INFO}; a hub cannot forge that, so rewriting observed
 * endpoints alone never triggers a spray). A node without NAT does not need to: the member reaches
 * it directly. The address and ports sprayed still come from what the hubs observed, so every
 * node caps all its sprays together ({@linkcode SPRAY_GLOBAL_RATE_PER_S}): a hostile hub can make
 * a member send at most that many 9-byte PUNCH payloads a second to an address of its choosing.
 *
 * @module
 */
import type { AdvertExtension } from "../protocol/advert.ts";
import type { NatKind } from "./nat_kind.ts";

/** How a NAT picks public ports for new mappings, as far as the observed ports tell. */
export type PortAllocation = "sequential" | "random" | "unknown";

/** Observed ports at most this far apart (all of them) count as a sequential allocator. */
export const SEQUENTIAL_MAX_DELTA = 16;
/** Ports punched above the highest observed one for a sequential allocator. */
export const SEQUENTIAL_WINDOW = 48;
/** Most ports in one spray (one attempt). */
export const SPRAY_BUDGET = 1024;
/** How long a prediction window gets before the scan behind it starts. */
export const PREDICT_GRACE_MS = 3_000;
/** Spray pace: packets per second. */
export const SPRAY_RATE_PER_S = 500;
/**
 * A finished spray is repeated (while punching goes on) after this long: our NAT forgets the
 * unanswered mappings it opened after about 30 s (Linux: nf_conntrack_udp_timeout).
 */
export const SPRAY_REPEAT_MS = 25_000;
/**
 * All sprays of a node together: at most this many packets a second on average, with a burst of
 * {@linkcode SPRAY_GLOBAL_BURST}. The target address comes from the hubs, so this bounds what a
 * hostile hub could make a member send at an address of its choosing (see the module doc).
 */
export const SPRAY_GLOBAL_RATE_PER_S = 200;
/** Burst of {@linkcode SPRAY_GLOBAL_RATE_PER_S}: one full spray and a prediction window. */
export const SPRAY_GLOBAL_BURST = SPRAY_BUDGET + 2 * SEQUENTIAL_WINDOW;
/** Lowest port sprayed (below are privileged ports no NAT hands out for masquerading). */
const MIN_PORT = 1024;
const MAX_PORT = 65535;

/** Classifies a NAT's port allocation from the public ports several hubs observed. */
export function classifyAllocation(ports: readonly number[]): PortAllocation {
  const distinct = [...new Set(ports)];
  if (distinct.length < 2) return "unknown";
  const spread = Math.max(...distinct) - Math.min(...distinct);
  return spread <= SEQUENTIAL_MAX_DELTA * (distinct.length - 1) ? "sequential" : "random";
}

/** What we know about a member's NAT. */
export interface PeerNat {
  /** Its NAT kind (its advert's word, else ours from the hubs' observations). */
  kind: NatKind;
  /** Its allocator, if its advert says (it may know more hubs than we do). */
  allocation: PortAllocation;
  /** The endpoints the hubs observed for it. */
  observed: readonly { hostname: string; port: number }[];
}

/** A spray: PUNCH packets to these ports of one address. */
export interface SprayPlan {
  /** The member's public address (IPv4 or IPv6 text). */
  hostname: string;
  /** `predict` (sequential window) or `scan` (random allocator). */
  mode: "predict" | "scan";
  /** Ports in sending order; at most {@linkcode SPRAY_BUDGET}. */
  ports: number[];
  /** How many of `ports`, at the start, are the prediction window (0 for a plain scan). */
  predicted: number;
}

/**
 * The spray we should do toward a member, or null when none helps (see the module doc): only
 * when the member is behind a symmetric NAT and we are behind a NAT that is not.
 */
export function planSpray(self: NatKind, peer: PeerNat, budget = SPRAY_BUDGET): SprayPlan | null {
  if (peer.kind !== "symmetric") return null;
  if (self !== "endpoint-independent" && self !== "nat") return null;
  // The member's public address: the one most observations agree on.
  const counts = new Map<string, number>();
  for (const o of peer.observed) counts.set(o.hostname, (counts.get(o.hostname) ?? 0) + 1);
  let hostname = "";
  for (const [h, n] of counts) if (n > (counts.get(hostname) ?? 0)) hostname = h;
  if (hostname === "") return null;
  const ports = [
    ...new Set(peer.observed.filter((o) => o.hostname === hostname).map((o) => o.port)),
  ]
    .sort((a, b) => a - b);
  const seen = classifyAllocation(ports);
  const allocation = seen !== "unknown" ? seen : peer.allocation;
  const lo = ports[0]!;
  const hi = ports[ports.length - 1]!;
  const scan = around(lo, hi, budget);
  if (allocation === "sequential") {
    const window: number[] = [];
    for (
      let p = hi + 1;
      p <= MAX_PORT && window.length < Math.min(SEQUENTIAL_WINDOW, budget);
      p++
    ) {
      window.push(p);
    }
    const inWindow = new Set(window);
    const ports = [...window, ...scan.filter((p) => !inWindow.has(p))].slice(0, budget);
    return { hostname, mode: "predict", ports, predicted: window.length };
  }
  return { hostname, mode: "scan", ports: scan, predicted: 0 };
}

/**
 * Up to `budget` ports in [MIN_PORT, MAX_PORT] around [lo, hi]: the span itself first (middle
 * out), then alternately below and above it, nearest first.
 */
function around(lo: number, hi: number, budget: number): number[] {
  const out: number[] = [];
  const mid = Math.floor((lo + hi) / 2);
  const push = (p: number) => {
    if (p >= MIN_PORT && p <= MAX_PORT && out.length < budget) out.push(p);
  };
  push(mid);
  for (let d = 1; out.length < budget; d++) {
    const below = mid - d;
    const above = mid + d;
    if (below < MIN_PORT && above > MAX_PORT) break;
    push(below);
    push(above);
  }
  return out;
}

/** A spray in progress: paced, sent from the mesh's tick. */
export class Spray {
  /** What is being sprayed. */
  readonly plan: SprayPlan;
  /** When it started. */
  readonly startMs: number;
  #next = 0;

  constructor(plan: SprayPlan, startMs: number) {
    this.plan = plan;
    this.startMs = startMs;
  }

  /** Ports sent so far. */
  get sent(): number {
    return this.#next;
  }

  /** Whether every port has been sent to. */
  get done(): boolean {
    return this.#next >= this.plan.ports.length;
  }

  /**
   * The ports due by `now` at {@linkcode SPRAY_RATE_PER_S} (each returned once); the scan behind
   * a prediction window only from {@linkcode PREDICT_GRACE_MS} on.
   */
  due(now: number): number[] {
    const elapsed = now - this.startMs;
    const paced = (ms: number) => Math.floor((ms / 1000) * SPRAY_RATE_PER_S) + 1;
    const { predicted, ports } = this.plan;
    const target = predicted === 0
      ? Math.min(ports.length, paced(elapsed))
      : elapsed < PREDICT_GRACE_MS
      ? Math.min(predicted, paced(elapsed))
      : Math.min(ports.length, predicted + paced(elapsed - PREDICT_GRACE_MS));
    if (target <= this.#next) return [];
    const out = this.plan.ports.slice(this.#next, target);
    this.#next = target;
    return out;
  }

  /** Takes back the last `n` ports {@linkcode due} returned (not sent: over the global cap). */
  giveBack(n: number): void {
    this.#next = Math.max(0, this.#next - n);
  }

  /**
   * How a sprayed `port` of `hostname` was hit (the edge came from it): `predict` (in the window),
   * `scan`, or null when it was not sprayed.
   */
  hit(hostname: string, port: number): "predict" | "scan" | null {
    if (hostname !== this.plan.hostname) return null;
    const at = this.plan.ports.indexOf(port);
    if (at === -1 || at >= this.#next) return null;
    return at < this.plan.predicted ? "predict" : "scan";
  }
}

/**
 * Advert TLV type (optional range: older members ignore it) of a node's own view of its NAT:
 * value = kind u8 | allocation u8 (codes: the index in {@linkcode NAT_KIND_CODES} and
 * {@linkcode ALLOCATION_CODES}; unknown codes read as `unknown`).
 */
export const EXT_NAT_INFO = 0x03;
/** Wire codes of {@linkcode NatKind} in {@linkcode EXT_NAT_INFO}. */
export const NAT_KIND_CODES: readonly NatKind[] = [
  "unknown",
  "none",
  "nat",
  "endpoint-independent",
  "symmetric",
];
/** Wire codes of {@linkcode PortAllocation} in {@linkcode EXT_NAT_INFO}. */
export const ALLOCATION_CODES: readonly PortAllocation[] = ["unknown", "sequential", "random"];

/** A node's view of its own NAT, as advertised. */
export interface NatInfo {
  kind: NatKind;
  allocation: PortAllocation;
}

/** The advert TLV for our own NAT view. */
export function encodeNatInfo(info: NatInfo): AdvertExtension {
  return {
    type: EXT_NAT_INFO,
    value: Uint8Array.of(
      Math.max(0, NAT_KIND_CODES.indexOf(info.kind)),
      Math.max(0, ALLOCATION_CODES.indexOf(info.allocation)),
    ),
  };
}

/** The NAT view in an advert's TLVs, or null when it has none (an older member). */
export function decodeNatInfo(extensions: readonly AdvertExtension[] | undefined): NatInfo | null {
  const ext = extensions?.find((e) => e.type === EXT_NAT_INFO);
  if (ext === undefined || ext.value.length < 2) return null;
  return {
    kind: NAT_KIND_CODES[ext.value[0]!] ?? "unknown",
    allocation: ALLOCATION_CODES[ext.value[1]!] ?? "unknown",
  };
}
