/**
 * The mesh: everything a client does between its TUN device and its UDP socket, without doing
 * any I/O itself. The driver (`client.ts`, or a test with fakes) feeds it datagrams, TUN packets
 * and clock ticks; it answers through the `send` and `writeTun` callbacks it was given.
 *
 * Pipeline, inside → outside (TUN packet to the network):
 *   handleTunPacket → RouteTable.lookupDestination → WgPeer.encrypt → send(edge endpoint)
 *   (no session yet: the packet waits in the peer's queue and a handshake is sent at once)
 *
 * Pipeline, outside → inside (datagram from the network):
 *   handleDatagram → first byte: 1-4 WireGuard → WgDevice.receive → inner-source check → writeTun
 *                               0x11-0x16 hub messages (only from configured hubs) → members
 *                               0x17 punch → counted, nothing else
 *                               0x18 HELLO (a member introducing itself) → members
 *   (decrypted transport payloads starting 0x19/0x1a are PEERS/INTRO signalling, not for the TUN)
 *
 * Members come from sealed adverts relayed by the hub(s). A member's candidates are the endpoint
 * the hub observed plus the local addresses in its advert; while a member has no session we
 * "punch": send a PUNCH and a fresh handshake initiation to every candidate about once a second.
 * The first authenticated packet fixes the edge's endpoint; later authenticated packets from a
 * new address move it (roaming). The hub is never needed again once an edge is up.
 *
 * Without a hub (`protocol/signal.ts`): members also come from the peer cache (`peer_cache.ts`)
 * and from configured bootstrap members, and members tell each other about members over their
 * edges. When an edge comes up (or moves) to a member the hubs do not seem to know where it is,
 * we send it the members we have edges to, and send them an introduction of it: both ends of each
 * such pair then punch at the same time. Only sealed adverts and endpoints are passed on, never
 * data; every advert is opened and checked by its receiver as if a hub had sent it.
 *
 * @module
 */
import {
  sealedLength,
  WgDevice,
  type WgPeer,
  type WgReceiveResult,
} from "../protocol/wireguard/mod.ts";
import type { AeadProvider } from "../protocol/wireguard/aead.ts";
import { deriveNetworkKeys, type NetworkKeys, nodeIdFromKey } from "../protocol/keys.ts";
import {
  type Advert,
  ADVERT_PLAINTEXT_MAX_LEN,
  encodeAdvert,
  nextAdvertTimestamp,
  openAdvert,
  sealAdvert,
} from "../protocol/advert.ts";
import { type MemberPolicy, PSK_POLICY } from "./member_policy.ts";
import {
  decodeHubMessage,
  encodeHubMessage,
  HUB_TYPE_MAX,
  HUB_TYPE_MIN,
  type HubMessage,
  MessageType,
} from "../protocol/hub_messages.ts";
import { encodeEndpoint, endpointKey, formatEndpoint } from "../protocol/endpoint.ts";
import { formatIPv6 } from "../protocol/ip_address.ts";
import { type Prefix, RouteTable } from "./route_table.ts";
import type { UdpEndpoint } from "./udp.ts";
import { log } from "../util/log.ts";
import { encodeBase64 } from "../util/base64.ts";
import { classifyNat, type NatKind } from "./nat_kind.ts";
import {
  buildPathProbe,
  buildPathProbeReply,
  parsePathProbe,
  PathSet,
  type PathStatus,
} from "./path_select.ts";
import {
  classifyAllocation,
  decodeNatInfo,
  encodeNatInfo,
  type NatInfo,
  planSpray,
  type PortAllocation,
  PREDICT_GRACE_MS,
  Spray,
  SPRAY_GLOBAL_BURST,
  SPRAY_GLOBAL_RATE_PER_S,
  SPRAY_REPEAT_MS,
} from "./port_prediction.ts";
import {
  decodeHello,
  decodeIntro,
  decodePeers,
  encodeHello,
  encodeIntro,
  encodePeers,
  HELLO_TYPE,
  INTRO_TYPE,
  type PeerEntry,
  PEERS_TYPE,
} from "../protocol/signal.ts";
import type { CachedPeer } from "./peer_cache.ts";
import {
  buildEchoRequest6,
  buildTooBig,
  buildUnreachable,
  parseEchoReply6,
  TokenBucket,
  type UnreachableKind,
} from "./icmp.ts";

const hubLog = log("hub");
const punchLog = log("punch");
const edgeLog = log("edge");
const handshakeLog = log("handshake");

/** How often a member without a session is punched (PUNCH + initiation to every candidate). */
export const PUNCH_INTERVAL_MS = 1_000;
/** How long punching goes on after a member appears or changes, before WireGuard's own retries. */
export const PUNCH_DURATION_MS = 20_000;
/** Registration retry while a hub does not answer (it may be restarting). */
export const HUB_RETRY_MS = 2_000;
/** Extra silence, beyond one keepalive interval, before a quiet edge is probed. */
const PROBE_GRACE_MS = 5_000;
/** Interval between probes of a quiet edge (WireGuard's REKEY_TIMEOUT)... */
const PROBE_INTERVAL_MS = 5_000;
/**
 * ...or three round trips, at least this, once the edge's RTT is known. The silence before an
 * edge is declared down must hold several probes: on a lossy path (10% each way, 19% of probes
 * fail) three probes 5 s apart lost edges that were alive.
 */
const PROBE_INTERVAL_MIN_MS = 1_000;
/** How often members are re-checked by the policy (certificate expiry, revocation). */
const RECHECK_INTERVAL_MS = 1_000;
/** Most local addresses put in an advert (the advert format's limit). */
const MAX_LOCAL_CANDIDATES = 8;
/** ICMP errors written to the TUN: at most this many a second (RFC 4443 §2.4 (f))... */
const ICMP_RATE_PER_S = 10;
/** ...with this burst. */
const ICMP_BURST = 10;
/** Probes (`meshub ping`) awaiting their reply; older ones are forgotten. */
const MAX_PENDING_PROBES = 64;
/**
 * Roaming detection: data sent on an edge with nothing authenticated back for this long, or an
 * edge silent for two keepalive intervals plus this, makes us re-register with every hub at once
 * (our NAT may have given us a new public endpoint that only a hub can tell us about).
 */
export const UNANSWERED_MS = 1_500;
/** Most one such early re-registration per this interval. */
const SUSPECT_REGISTER_MS = 2_000;
/**
 * Least time between two full member lists asked of one hub outside the regular schedule: a bit
 * more than the hub's own limit (`FULL_LIST_MIN_INTERVAL_MS` in hub/registry.ts, 5 s).
 */
const FULL_LIST_RETRY_MS = 5_500;
/** Full lists asked in a row because a hub counts members we lack; then the regular ones only. */
const FULL_LIST_MAX_RETRIES = 3;
/**
 * A full list follows its REGISTERED back to back; this covers jitter on the path. Longer would
 * let a member that joined just after the count hide one we lack; shorter only costs a list.
 */
const FULL_LIST_ARRIVAL_MS = 300;
/** HELLOs whose advert must be opened: at most this many a second over all senders... */
const HELLO_RATE_PER_S = 20;
/** ...with this burst. */
const HELLO_BURST = 40;
/** PEERS messages accepted from one member: at most this many a second... */
const SIGNAL_RATE_PER_S = 10;
/** ...with this burst (a newcomer gets every member at once: 16 to a message). */
const SIGNAL_BURST = 40;
/** Most members whose report of a member's endpoint we keep (one endpoint each). */
const MAX_PEER_OBSERVED = 4;
/** First retry of a cached or bootstrap member that never answered; doubles each time... */
const RETRY_FIRST_MS = 15_000;
/** ...up to this. */
const RETRY_MAX_MS = 300_000;
/** The peer cache is rewritten at least this often while edges are up (fresh "last seen"). */
const CACHE_REFRESH_MS = 3_600_000;

/** Timer settings of the mesh, all in milliseconds. */
export interface MeshTimers {
  /** WireGuard REKEY_AFTER_TIME. */
  rekeyAfterMs: number;
  /** WireGuard REJECT_AFTER_TIME. */
  rejectAfterMs: number;
  /** Persistent keepalive on every edge, to hold NAT mappings open. */
  keepaliveMs: number;
  /** Re-registration interval with each hub. */
  hubKeepaliveMs: number;
}

/** A statically configured WireGuard peer (no hub involved). */
export interface StaticPeer {
  /** Label for logs and status. */
  name: string;
  /** The peer's WireGuard public key. */
  publicKey: Uint8Array;
  /** Where to reach it. */
  endpoint: UdpEndpoint;
  /** VPN addresses routed to it. */
  addresses: Prefix[];
}

/** Everything the mesh needs to know and to reach the outside world. */
export interface MeshOptions {
  /** Network PSK (32 bytes): WireGuard preshared key; root of the advert keys by default. */
  psk: Uint8Array;
  /** Root of the network keys (`keys.ts`) when it is not `psk` (CA mode: see `ca.ts`). */
  networkSecret?: Uint8Array;
  /** Who may be a member and with which addresses. Default {@linkcode PSK_POLICY}. */
  policy?: MemberPolicy;
  /** This node's static X25519 private key. */
  privateKey: Uint8Array;
  /** This node's name (in its advert). */
  name: string;
  /** This node's VPN IPv6 address and the prefix routed into the TUN. */
  ipv6: Prefix;
  /** Optional VPN IPv4 address. */
  ipv4?: Prefix | undefined;
  /** Hub endpoints to register with. */
  hubs: UdpEndpoint[];
  /** Static WireGuard peers. */
  staticPeers?: StaticPeer[];
  /** Timers. */
  timers: MeshTimers;
  /** The UDP port this node's socket is bound to. */
  port: number;
  /** This host's interface addresses (hole-punching candidates for LAN peers). */
  localAddresses: () => string[];
  /** Sends a datagram; must not throw. The buffer is handed over. */
  send: (data: Uint8Array, to: UdpEndpoint) => void;
  /**
   * Optional zero-copy sending for the data path: room for a datagram of `maxLen` bytes in the
   * socket's send batch (null: use `send`). Encrypted TUN packets are written there and queued
   * with `commitSend`, instead of one fresh buffer per packet.
   */
  reserveSend?: (maxLen: number) => Uint8Array | null;
  /** Queues the first `len` bytes of the last `reserveSend` room for `to`; must not throw. */
  commitSend?: (len: number, to: UdpEndpoint) => void;
  /** Writes an IP packet to the TUN device. */
  writeTun: (packet: Uint8Array) => void;
  /** Milliseconds, monotonic enough for timers. */
  now: () => number;
  /** Observer for tests and the status command. */
  onEvent?: (event: MeshEvent) => void;
  /** Transport AEAD (default: portable `node:crypto`; the client passes OpenSSL's when present). */
  aead?: AeadProvider | undefined;
  /**
   * Tunnel MTU: a larger packet from the TUN gets Packet Too Big, and padding stops at it.
   * Default: no check, no bound.
   */
  mtu?: number;
  /**
   * Prefixes routed into the TUN (the VPN prefixes): a packet to an address in them without a
   * member gets ICMP "no route". Default: every packet without a member does.
   */
  vpnPrefixes?: Prefix[];
  /** Answer undeliverable TUN packets with ICMP errors (rate-limited). Default true. */
  icmpErrors?: boolean;
  /**
   * Members from the peer cache (`peer_cache.ts`), unexpired: each advert is opened and checked
   * by the policy again, and the member is punched at its cached endpoints.
   */
  peerCache?: CachedPeer[];
  /** Members to contact at start without a hub (`[[bootstrap]]`): endpoint and public key. */
  bootstrap?: { endpoint: UdpEndpoint; publicKey: Uint8Array }[];
}

/** Things worth telling a test or an operator about. */
export type MeshEvent =
  | { kind: "hub-registered"; hub: string; observed: string; members: number }
  | { kind: "hub-lost"; hub: string }
  | { kind: "member"; name: string; address: string }
  | { kind: "edge-up"; name: string; endpoint: string; path: string; afterMs: number }
  | { kind: "edge-moved"; name: string; endpoint: string; path: string }
  | { kind: "edge-down"; name: string }
  | { kind: "member-removed"; name: string; reason: string }
  | { kind: "pong"; name: string; seq: number; rttMs: number; endpoint: string; path: string };

type CandidateSource = "hub" | "local" | "static" | "cache" | "peer" | "bootstrap";

/** Where news of a member came from. */
type MemberSource = { hub: string } | { peer: Member } | { hello: true } | { cache: true };

interface Candidate {
  endpoint: UdpEndpoint;
  source: CandidateSource;
  /** Punches + initiations sent to it. */
  sent: number;
  lastSentMs: number;
  /** Authenticated packets received from it. */
  received: number;
  lastHeardMs: number;
}

/** One other member of the network and our edge to it. */
interface Member {
  name: string;
  /** Hex node id (the hub's name for it); static peers use their public key. */
  id: string;
  publicKey: Uint8Array;
  addresses: Prefix[];
  advertTimestamp: number;
  /**
   * Every endpoint worth trying, rebuilt from the three sources below. Only ever replaced, never
   * changed in place: {@linkcode candidateAt}'s cache relies on that.
   */
  candidates: Map<string, Candidate>;
  /** {@linkcode candidateAt}'s cache: the map and key it looked up last, and what it found. */
  activeCandidateOf: Map<string, Candidate> | null;
  activeCandidateKey: string;
  activeCandidate: Candidate | undefined;
  /** The latest endpoint each hub observed for it (one per hub: bounded). */
  hubObserved: Map<string, UdpEndpoint>;
  /** Local addresses from its newest advert (at most 8). */
  localEndpoints: UdpEndpoint[];
  /** The configured endpoint of a static peer. */
  staticEndpoint: UdpEndpoint | null;
  /** The member's sealed advert as received (null: static peer, or bootstrap not yet heard). */
  sealed: Uint8Array | null;
  /** When a hub last told us about it; 0 = never. */
  lastHubReportMs: number;
  /** Where other members see it, by their id (at most {@linkcode MAX_PEER_OBSERVED}). */
  peerObserved: Map<string, UdpEndpoint>;
  /** When a member last told us about it; 0 = never. */
  introducedMs: number;
  /** Endpoints from the peer cache (until a hub reports it). */
  cachedEndpoints: UdpEndpoint[];
  /** Wall-clock ms of "last seen up" from the peer cache; 0 = not from the cache. */
  cachedLastSeenMs: number;
  /** The configured `[[bootstrap]]` endpoint. */
  bootstrapEndpoint: UdpEndpoint | null;
  /** Wall-clock ms when its edge was last seen up in this process; 0 = never. */
  lastUpWallMs: number;
  /** PEERS messages from this member. */
  signalBucket: TokenBucket;
  /** The edge came up or moved: tell it and the others about each other once it is confirmed. */
  signalPending: boolean;
  /** Next punch round for a cached or bootstrap member that never answered, and the backoff. */
  retryAtMs: number;
  retryIntervalMs: number;
  /** When to next ask a silent edge for a sign of life. */
  nextProbeMs: number;
  /** New endpoints the hub reported while the edge was up (the member moved): punched a while. */
  movedTargets: UdpEndpoint[];
  /** When we last answered a PUNCH from this member with a keepalive. */
  lastPunchReplyMs: number;
  endpoint: UdpEndpoint | null;
  endpointKey: string;
  lastAuthenticatedMs: number;
  firstSeenMs: number;
  punchUntilMs: number;
  nextPunchMs: number;
  up: boolean;
  /** The edge was up at least once. */
  everUp: boolean;
  /** When we last sent a handshake initiation (for the handshake RTT). */
  lastInitSentMs: number;
  /** Latest round-trip time measured (handshake or probe), ms; -1 = none yet. */
  rttMs: number;
  /** Drops that concern this member, by reason. */
  drops: DropCounters;
  /** The peer's tx counters at the last authenticated packet (roaming detection). */
  txMarkPackets: number;
  txMarkBytes: number;
  /** When we first noticed data sent since the last authenticated packet; 0 = none. */
  unansweredSinceMs: number;
  /** The policy's periodic check (CA mode: expiry, revocation); null for static peers. */
  recheck: (() => string | null) | null;
  /** The member's own view of its NAT, from its advert (null: an older member, or none yet). */
  natInfo: NatInfo | null;
  /** The port spray toward it, if its NAT is symmetric and ours is not (`port_prediction.ts`). */
  spray: Spray | null;
  /** Measured paths (candidates) once the edge is up, and the choice among them. */
  paths: PathSet;
  peer: WgPeer;
}

interface HubState {
  endpoint: UdpEndpoint;
  key: string;
  token: Uint8Array | null;
  registered: boolean;
  lastHeardMs: number;
  nextRegisterMs: number;
  registrations: number;
  observed: string;
  /** The interval the hub asks for (it expires members that miss a few); 0 until it says. */
  askedKeepaliveMs: number;
  /** When we last asked it for the full member list. */
  lastFullListMs: number;
  /** Ask for the full list at the next registration: we seem to have missed a member. */
  fullListWanted: boolean;
  /** Members of the network by the hub's last REGISTERED (us included). */
  hubMembers: number;
  /** Members first heard of until then are in that count (a list that follows included). */
  hubMembersUntilMs: number;
  /** Our latest registration asked for the full list. */
  askedFullList: boolean;
  /** When to compare that count with the members we know through the hub; Infinity: none. */
  countCheckMs: number;
  /** Full lists asked in a row because of a count mismatch. */
  countRetries: number;
}

/** Counters of everything the mesh dropped, by reason. */
export type DropCounters = Record<string, number>;

const EMPTY = new Uint8Array(0);

/** The client's mesh logic. */
export class Mesh {
  readonly #o: MeshOptions;
  readonly #device: WgDevice;
  readonly #keys: NetworkKeys;
  readonly #policy: MemberPolicy;
  #policyGeneration = -1;
  #nextRecheckMs = 0;
  readonly #networkId: Uint8Array;
  readonly #nodeId: Uint8Array;
  readonly #routes = new RouteTable<Member>();
  readonly #members = new Map<string, Member>();
  /** Members by the endpoint key of their edge, for answering punches. */
  readonly #byEndpoint = new Map<string, Member>();
  readonly #hubs: HubState[];
  #advert: Uint8Array | null = null;
  /** HELLO carrying `#advert`. */
  #hello: Uint8Array | null = null;
  readonly #helloBucket = new TokenBucket(HELLO_RATE_PER_S, HELLO_BURST);
  /** Bumped when what the peer cache would hold changes. */
  #cacheVersion = 0;
  #cacheBumpedMs = 0;
  #advertLocal = "";
  /** Our NAT view as last put in the advert (`kind/allocation`). */
  #advertNat = "";
  #advertTimestamp = 0;
  /** When an unanswered edge last made us re-register early. */
  #lastSuspectMs = Number.NEGATIVE_INFINITY;
  /** Our NAT kind as last logged. */
  #natKind: NatKind = "unknown";
  /** Dropped packets by reason. */
  readonly drops: DropCounters = {};
  readonly #icmpBucket = new TokenBucket(ICMP_RATE_PER_S, ICMP_BURST);
  /** All port sprays together (`port_prediction.ts`). */
  readonly #sprayBucket = new TokenBucket(SPRAY_GLOBAL_RATE_PER_S, SPRAY_GLOBAL_BURST);
  /** ICMPv6 identifier of our probes (random per process). */
  readonly #probeId = crypto.getRandomValues(new Uint16Array(1))[0]!;
  #probeSeq = 0;
  /** Probes in flight by sequence number. */
  readonly #probes = new Map<number, { member: Member; sentMs: number }>();

  constructor(options: MeshOptions) {
    this.#o = options;
    this.#device = new WgDevice({
      privateKey: options.privateKey,
      timers: {
        rekeyAfterMs: options.timers.rekeyAfterMs,
        rejectAfterMs: options.timers.rejectAfterMs,
        persistentKeepaliveMs: options.timers.keepaliveMs,
      },
      ...(options.aead ? { aead: options.aead } : {}),
      ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
    });
    this.#keys = deriveNetworkKeys(options.networkSecret ?? options.psk);
    this.#policy = options.policy ?? PSK_POLICY;
    this.#networkId = this.#keys.networkId;
    this.#nodeId = nodeIdFromKey(this.#keys.nodeIdKey, this.#device.publicKey);
    this.#hubs = options.hubs.map((endpoint) => ({
      endpoint,
      key: endpointKey(endpoint),
      token: null,
      registered: false,
      lastHeardMs: 0,
      nextRegisterMs: 0,
      registrations: 0,
      observed: "",
      askedKeepaliveMs: 0,
      lastFullListMs: Number.NEGATIVE_INFINITY,
      fullListWanted: false,
      hubMembers: 0,
      hubMembersUntilMs: 0,
      askedFullList: false,
      countCheckMs: Number.POSITIVE_INFINITY,
      countRetries: 0,
    }));
    const now = options.now();
    for (const s of options.staticPeers ?? []) {
      const member = this.#addMember(hex(s.publicKey), s.name, s.publicKey, s.addresses, now);
      member.staticEndpoint = s.endpoint;
      rebuildCandidates(member);
      this.#startPunching(member, now);
    }
    // Our advert (and HELLO) first, so the very first punches can introduce us.
    if ((options.peerCache?.length ?? 0) + (options.bootstrap?.length ?? 0) > 0) {
      this.#refreshAdvert(now);
    }
    this.#loadPeerCache(options.peerCache ?? [], now);
    for (const b of options.bootstrap ?? []) this.#addBootstrap(b.endpoint, b.publicKey, now);
  }

  /** Bumped whenever {@linkcode peerCacheEntries} would return something new. */
  get peerCacheVersion(): number {
    return this.#cacheVersion;
  }

  /**
   * What the peer cache should hold now: every member whose edge was up (in this process, or in
   * an earlier one according to the cache it was started with), with its sealed advert and the
   * endpoints that worked. Static peers and members never reached are left out.
   */
  peerCacheEntries(): CachedPeer[] {
    const wallNow = Date.now();
    const out: CachedPeer[] = [];
    for (const m of this.#members.values()) {
      if (m.sealed === null || m.staticEndpoint !== null) continue;
      const lastSeenMs = m.up ? wallNow : m.lastUpWallMs > 0 ? m.lastUpWallMs : m.cachedLastSeenMs;
      if (lastSeenMs === 0) continue;
      const endpoints = new Map<string, UdpEndpoint>();
      const add = (e: UdpEndpoint) => endpoints.set(endpointKey(e), e);
      if (m.endpoint !== null) add(m.endpoint);
      for (const e of m.hubObserved.values()) add(e);
      for (const e of m.peerObserved.values()) add(e);
      for (const e of m.cachedEndpoints) add(e);
      out.push({
        nodeId: unhex(m.id),
        advert: m.sealed,
        endpoints: [...endpoints.values()].slice(0, 4),
        lastSeenMs,
      });
    }
    return out;
  }

  /** This node's WireGuard public key. */
  get publicKey(): Uint8Array {
    return this.#device.publicKey;
  }

  /** Handles one IP packet read from the TUN device. */
  handleTunPacket(packet: Uint8Array): void {
    if (this.#o.mtu !== undefined && packet.length > this.#o.mtu) {
      this.#drop("tun-too-big");
      this.#icmpTooBig(packet);
      return;
    }
    const member = this.#routes.lookupDestination(packet);
    if (member === undefined) {
      this.#drop("tun-no-route");
      if (this.#insideVpn(packet)) this.#icmpUnreachable(packet, "no-route");
      return;
    }
    const now = this.#o.now();
    if (!member.up && this.#unreachable(member, now)) {
      // No live edge and no first attempt under way: say so at once instead of queueing, and
      // try again in the background.
      this.#drop("tun-member-unreachable");
      countDrop(member.drops, "unreachable");
      this.#icmpUnreachable(packet, "address-unreachable");
      if (member.punchUntilMs < now) this.#startPunching(member, now);
      return;
    }
    // Sealed straight into the socket's batch when it offers room (no buffer per packet).
    const room = this.#o.commitSend
      ? this.#o.reserveSend?.(sealedLength(packet.length, this.#o.mtu))
      : null;
    const datagram = room ? null : member.peer.encrypt(packet, now);
    const len = room ? member.peer.encryptInto(packet, now, room) : datagram?.length ?? 0;
    if (len === 0) {
      // Queued inside the peer until a session exists; make sure someone is trying.
      if (member.punchUntilMs < now) this.#startPunching(member, now);
      return;
    }
    if (member.endpoint === null) {
      this.#drop("tun-no-endpoint");
      countDrop(member.drops, "no-endpoint");
      return;
    }
    if (datagram) this.#o.send(datagram, member.endpoint);
    else this.#o.commitSend!(len, member.endpoint);
  }

  /** Handles one datagram received on the UDP socket. Never throws for any input. */
  handleDatagram(data: Uint8Array, from: UdpEndpoint): void {
    const type = data[0];
    if (type !== undefined && type >= 1 && type <= 4) {
      this.#handleWireGuard(data, from);
    } else if (type === MessageType.PUNCH) {
      this.#handlePunch(from);
    } else if (type === HELLO_TYPE) {
      this.#handleHello(data);
    } else if (type !== undefined && type >= HUB_TYPE_MIN && type <= HUB_TYPE_MAX) {
      this.#handleHub(data, from);
    } else {
      this.#drop("udp-unknown-type");
    }
  }

  /** Runs timers: hub registration, punching, WireGuard retries and keepalives. */
  tick(): void {
    const now = this.#o.now();
    this.#refreshAdvert(now);
    if (now >= this.#nextRecheckMs) this.#recheckMembers(now);
    for (const hub of this.#hubs) this.#tickHub(hub, now);
    for (const member of this.#members.values()) this.#tickMember(member, now);
    if (now - this.#cacheBumpedMs > CACHE_REFRESH_MS) this.#cacheChanged(now);
  }

  /** Tells the hubs we are leaving (best effort; they also expire us on their own). */
  leave(): void {
    for (const hub of this.#hubs) {
      if (hub.token === null) continue;
      this.#o.send(
        encodeHubMessage({
          kind: "leave",
          networkId: this.#networkId,
          nodeId: this.#nodeId,
          token: hub.token,
        }),
        hub.endpoint,
      );
    }
  }

  /** A snapshot for status output and tests. */
  status(): MeshStatus {
    const now = this.#o.now();
    const ago = (ms: number) => ms === 0 ? null : Math.round(now - ms);
    return {
      name: this.#o.name,
      addresses: [this.#o.ipv6, ...(this.#o.ipv4 ? [this.#o.ipv4] : [])].map(formatPrefix),
      port: this.#o.port,
      publicKey: this.#device.publicKey,
      natKind: this.#selfNatKind(),
      hubs: this.#hubs.map((h) => ({
        endpoint: formatEndpoint(h.endpoint),
        registered: h.registered,
        state: h.registered ? "registered" : h.lastHeardMs === 0 ? "connecting" : "lost",
        observed: h.observed,
        lastHeardAgoMs: h.lastHeardMs === 0 ? null : now - h.lastHeardMs,
      })),
      members: [...this.#members.values()].map((m) => ({
        name: m.name,
        publicKey: m.publicKey,
        addresses: m.addresses.map(formatPrefix),
        up: m.up,
        state: this.#stateOf(m, now),
        rttMs: m.rttMs < 0 ? null : Math.round(m.rttMs * 10) / 10,
        lastHeardAgoMs: ago(m.lastAuthenticatedMs),
        txPackets: m.peer.stats.txPackets,
        rxPackets: m.peer.stats.rxPackets,
        memberDrops: { ...m.drops },
        tried: [...m.candidates.values()].map((c) => ({
          endpoint: formatEndpoint(c.endpoint),
          source: c.source,
          sent: c.sent,
          received: c.received,
          lastSentAgoMs: ago(c.lastSentMs),
          lastHeardAgoMs: ago(c.lastHeardMs),
          result: endpointKey(c.endpoint) === m.endpointKey && m.up
            ? "in use"
            : c.received > 0
            ? "answered"
            : c.sent > 0
            ? "no answer"
            : "not tried",
        })),
        endpoint: m.endpoint === null ? null : formatEndpoint(m.endpoint),
        path: m.endpoint === null ? null : this.#pathOf(m, m.endpoint),
        candidates: [...m.candidates.values()].map((c) =>
          `${formatEndpoint(c.endpoint)} (${c.source})`
        ),
        lastHandshakeAgoMs: m.peer.stats.lastHandshakeMs === 0
          ? null
          : now - m.peer.stats.lastHandshakeMs,
        txBytes: m.peer.stats.txBytes,
        rxBytes: m.peer.stats.rxBytes,
        handshakes: m.peer.stats.handshakesCompleted,
        natKind: this.#memberNat(m).kind,
        portAllocation: this.#memberNat(m).allocation,
        spray: m.spray === null ? null : {
          mode: m.spray.plan.mode,
          host: m.spray.plan.hostname,
          ports: m.spray.plan.ports.length,
          sent: m.spray.sent,
        },
        paths: m.paths.snapshot(
          now,
          m.endpointKey,
          formatEndpoint,
          (e) => this.#pathOf(m, e),
        ),
      })),
      drops: { ...this.drops, ...prefixed("wg-", this.#device.drops) },
    };
  }

  /**
   * Sends an in-protocol probe to the member `target` (name, VPN address or public key prefix):
   * an ICMPv6 echo request from our VPN address through the edge. The answer comes back as a
   * `pong` event (the reply never reaches the TUN). A member without an edge gets the probe
   * queued and punching started, like any packet.
   */
  sendProbe(target: string): ProbeStart {
    const member = this.#findMember(target);
    if (member === undefined) return { ok: false, error: `no member "${target}"` };
    const to = member.addresses.find((a) => a.address.length === 16);
    if (to === undefined) return { ok: false, error: `member ${member.name} has no IPv6 address` };
    const now = this.#o.now();
    const seq = this.#probeSeq = (this.#probeSeq + 1) & 0xffff;
    if (this.#probes.size >= MAX_PENDING_PROBES) {
      this.#probes.delete(this.#probes.keys().next().value!);
    }
    this.#probes.set(seq, { member, sentMs: now });
    const state = this.#stateOf(member, now);
    const packet = buildEchoRequest6(this.#o.ipv6.address, to.address, this.#probeId, seq);
    const datagram = member.peer.encrypt(packet, now);
    if (datagram === null) {
      if (member.punchUntilMs < now) this.#startPunching(member, now);
    } else if (member.endpoint !== null) {
      this.#o.send(datagram, member.endpoint);
    }
    return { ok: true, seq, name: member.name, state };
  }

  /** The member called `target`: by name, VPN address, or hex/base64 public key prefix. */
  #findMember(target: string): Member | undefined {
    const members = [...this.#members.values()];
    const exact = members.find((m) =>
      m.name === target || m.addresses.some((a) => formatPrefix(a).split("/")[0] === target)
    );
    if (exact !== undefined) return exact;
    const lower = target.toLowerCase();
    if (lower.length < 4) return undefined;
    const byKey = members.filter((m) =>
      hex(m.publicKey).startsWith(lower) ||
      encodeBase64(m.publicKey).startsWith(target)
    );
    return byKey.length === 1 ? byKey[0] : undefined;
  }

  #probeReply(packet: Uint8Array): boolean {
    const seq = parseEchoReply6(packet, this.#o.ipv6.address, this.#probeId);
    if (seq === null) return false;
    const probe = this.#probes.get(seq);
    if (probe === undefined) return true; // ours, but late: still not for the TUN
    this.#probes.delete(seq);
    const { member } = probe;
    const now = this.#o.now();
    member.rttMs = now - probe.sentMs;
    const endpoint = member.endpoint;
    this.#o.onEvent?.({
      kind: "pong",
      name: member.name,
      seq,
      rttMs: member.rttMs,
      endpoint: endpoint === null ? "" : formatEndpoint(endpoint),
      path: endpoint === null ? "" : this.#pathOf(member, endpoint),
    });
    return true;
  }

  #stateOf(member: Member, now: number): EdgeState {
    if (member.up) {
      const silentMs = now - member.lastAuthenticatedMs;
      return silentMs > this.#o.timers.keepaliveMs + PROBE_GRACE_MS ? "stale" : "up";
    }
    if (!member.everUp && now < member.firstSeenMs + PUNCH_DURATION_MS) return "connecting";
    return member.punchUntilMs > now ? "punching" : "unreachable";
  }

  /** No live edge, and not the first attempt either: packets to it get ICMP at once. */
  #unreachable(member: Member, now: number): boolean {
    return member.everUp || now >= member.firstSeenMs + PUNCH_DURATION_MS;
  }

  /** True when the packet's destination is inside the prefixes routed into the TUN. */
  #insideVpn(packet: Uint8Array): boolean {
    const prefixes = this.#o.vpnPrefixes;
    if (prefixes === undefined) return true;
    const v6 = packet[0]! >> 4 === 6;
    const at = v6 ? 24 : 16;
    if (packet.length < at + (v6 ? 16 : 4)) return false;
    return prefixes.some((p) => (p.address.length === 16) === v6 && prefixContains(p, packet, at));
  }

  #icmpUnreachable(packet: Uint8Array, kind: UnreachableKind): void {
    if (this.#o.icmpErrors === false || !this.#icmpBucket.take(this.#o.now())) return;
    const reply = buildUnreachable(
      packet,
      kind,
      this.#o.ipv6.address,
      this.#o.ipv4?.address ?? null,
    );
    if (reply !== null) this.#o.writeTun(reply);
  }

  #icmpTooBig(packet: Uint8Array): void {
    if (this.#o.icmpErrors === false || !this.#icmpBucket.take(this.#o.now())) return;
    const reply = buildTooBig(
      packet,
      this.#o.mtu!,
      this.#o.ipv6.address,
      this.#o.ipv4?.address ?? null,
    );
    if (reply !== null) this.#o.writeTun(reply);
  }

  // --- WireGuard edges -------------------------------------------------------------------------

  #handleWireGuard(data: Uint8Array, from: UdpEndpoint): void {
    const now = this.#o.now();
    // Only handshake messages need the source for cookie binding; transport skips the encoding.
    const source = data[0] === 4 ? EMPTY : encodeEndpoint(from);
    let result: WgReceiveResult;
    try {
      result = this.#device.receive(data, source, now);
    } catch {
      // The device promises not to throw; if it does anyway, a remote must not be able to
      // take the client down with it.
      this.#drop("wg-internal-error");
      return;
    }
    switch (result.kind) {
      case "drop":
        this.#drop(`wg-${result.reason}`);
        // A valid initiation (mac1 needs our public key) from a key we do not know: most likely
        // a member whose MEMBER message we lost. Without this we would only learn of it at the
        // next regular full list, up to three hub keepalives (a minute) later.
        if (result.reason === "unknown_peer") {
          for (const hub of this.#hubs) {
            this.#wantFullList(hub, now, "a handshake from an unknown key");
          }
        }
        return;
      case "none":
        return;
      case "reply": {
        this.#o.send(result.packet, from);
        if (result.authenticated && result.peer) {
          const member = result.peer.context as Member;
          handshakeLog.debug("handshake with {name} answered", { name: member.name });
          this.#authenticated(member, from, now, false);
        }
        return;
      }
      case "established": {
        const member = result.peer.context as Member;
        // We initiated: initiation → response is one round trip (plus the peer's DH work).
        if (member.lastInitSentMs > 0) member.rttMs = now - member.lastInitSentMs;
        handshakeLog.debug("handshake with {name} done", { name: member.name });
        this.#authenticated(member, from, now, true);
        this.#sendEach(result.packets, from);
        return;
      }
      case "keepalive": {
        this.#authenticated(result.peer.context as Member, from, now, true);
        this.#sendEach(result.outgoing, from);
        return;
      }
      case "data": {
        const member = result.peer.context as Member;
        if (result.packet[0] === PEERS_TYPE || result.packet[0] === INTRO_TYPE) {
          this.#authenticated(member, from, now, true);
          this.#handleSignal(member, result.packet, now);
          this.#sendEach(result.outgoing, from);
          return;
        }
        if (this.#routes.lookupSource(result.packet) !== member) {
          this.#drop("inner-source-not-allowed");
          countDrop(member.drops, "inner-source-not-allowed");
          return;
        }
        // Path probes (path_select.ts) are answered here and never move the edge.
        const type = result.packet[40];
        const pathProbe = type === 128 || type === 129
          ? parsePathProbe(result.packet, this.#o.ipv6.address)
          : null;
        this.#authenticated(member, from, now, true, pathProbe === null);
        if (pathProbe !== null) {
          this.#pathProbe(member, pathProbe, result.packet, from, now);
          this.#sendEach(result.outgoing, from);
          return;
        }
        // Answers to our own probes (`meshub ping`) end here; the rest goes to the TUN.
        if (this.#probes.size > 0 && result.packet[40] === 129 && this.#probeReply(result.packet)) {
          this.#sendEach(result.outgoing, from);
          return;
        }
        this.#o.writeTun(result.packet);
        // Packets queued while we were the responder wait for the first transport packet.
        this.#sendEach(result.outgoing, from);
        return;
      }
    }
  }

  /** Sends each datagram to `to`; an index loop, as `for...of` costs an iterator per packet. */
  #sendEach(datagrams: readonly Uint8Array[], to: UdpEndpoint): void {
    for (let i = 0; i < datagrams.length; i++) this.#o.send(datagrams[i]!, to);
  }

  /**
   * An authenticated packet from `member` arrived from `from`: the edge lives there now, unless
   * `from` is a measured path and the chosen one is alive (`path_select.ts`), or `follow` is
   * false (path probes).
   */
  #authenticated(
    member: Member,
    from: UdpEndpoint,
    now: number,
    sessionUp: boolean,
    follow = true,
  ): void {
    member.lastAuthenticatedMs = now;
    member.txMarkPackets = member.peer.stats.txPackets;
    member.txMarkBytes = member.peer.stats.txBytes;
    member.unansweredSinceMs = 0;
    // The FFI socket hands over one endpoint object per sender: on the edge's own path (nearly
    // every packet) the key is already known and no string is built. An edge pointed at an equal
    // endpoint from elsewhere (an advert, a path probe) takes the socket's object over here, or
    // every packet would build the string again.
    let key: string;
    if (from === member.endpoint) key = member.endpointKey;
    else {
      key = endpointKey(from);
      if (key === member.endpointKey) member.endpoint = from;
    }
    const candidate = candidateAt(member, key);
    if (candidate !== undefined) {
      candidate.received++;
      candidate.lastHeardMs = now;
    }
    // Guarded: a closure per packet would be an allocation per packet.
    if (member.movedTargets.length > 0 && member.movedTargets.some((t) => endpointKey(t) === key)) {
      member.movedTargets = [];
    }
    if (member.endpointKey !== key) {
      member.paths.heard(key, now);
      if (
        member.endpoint === null || !member.up ||
        (follow && member.paths.shouldFollow(key, member.endpointKey, now))
      ) this.#moveEdge(member, from, key, "", now);
    } else member.paths.heardActive(key, now);
    if (sessionUp && !member.up) {
      member.up = true;
      member.everUp = true;
      member.punchUntilMs = 0;
      member.signalPending = true;
      member.lastUpWallMs = Date.now();
      this.#cacheChanged(now);
      const event = {
        kind: "edge-up" as const,
        name: member.name,
        endpoint: formatEndpoint(from),
        path: this.#pathOf(member, from),
        afterMs: Math.round(now - member.firstSeenMs),
      };
      edgeLog.info("edge up: {name} via {endpoint} ({path}), {afterMs} ms after discovery", event);
      const hit = member.spray?.hit(from.hostname, from.port) ?? null;
      if (hit !== null) {
        punchLog.info("edge to {name} came through the port spray ({mode}): port {port}", {
          name: member.name,
          mode: hit,
          port: from.port,
        });
      }
      this.#o.onEvent?.(event);
    }
    // Only on a confirmed session: a responder's new session cannot carry data before that.
    if (sessionUp && member.signalPending && member.up) {
      member.signalPending = false;
      if (member.staticEndpoint === null) this.#signalEdgeUp(member, now);
    }
  }

  /** Points the edge at `to` (roaming, or a better path: `why`). */
  #moveEdge(member: Member, to: UdpEndpoint, key: string, why: string, now: number): void {
    const moved = member.endpoint !== null;
    if (this.#byEndpoint.get(member.endpointKey) === member) {
      this.#byEndpoint.delete(member.endpointKey);
    }
    this.#byEndpoint.set(key, member);
    member.endpoint = to;
    member.endpointKey = key;
    if (moved && member.up) {
      const event = {
        kind: "edge-moved" as const,
        name: member.name,
        endpoint: formatEndpoint(to),
        path: this.#pathOf(member, to),
      };
      edgeLog.info(`edge to {name} moved to {endpoint} ({path})${why}`, event);
      this.#o.onEvent?.(event);
      // A restarted or roamed member: the others may only learn its new endpoint from us.
      member.signalPending = true;
      this.#cacheChanged(now);
    }
  }

  /**
   * Path measurement and choice on an up edge to a member that answers path probes (it sends the
   * NAT-info TLV: this version on): probes due on each candidate, then a switch if one is due.
   */
  #tickPaths(member: Member, now: number): void {
    if (member.natInfo === null || member.endpoint === null || member.candidates.size < 2) return;
    const active = member.endpointKey;
    if (member.paths.updateDue(now)) this.#updatePaths(member);
    const to = member.addresses.find((a) => a.address.length === 16)?.address;
    if (to === undefined) return;
    for (const probe of member.paths.due(now, active)) {
      const datagram = member.peer.encryptControl(
        buildPathProbe(this.#o.ipv6.address, to, probe.token),
        now,
      );
      if (datagram !== null) this.#o.send(datagram, probe.endpoint);
    }
    const better = member.paths.choose(active, now);
    if (better === null) return;
    const why = member.paths.snapshot(now, active, formatEndpoint, (e) => this.#pathOf(member, e))
      .map((p) => `${p.path} ${p.srttMs ?? "-"} ms ${p.lossPct}% ${p.state}`).join(", ");
    this.#moveEdge(member, better, endpointKey(better), ` (paths: ${why})`, now);
  }

  /** Gives the member's path set the candidates that may be measured, preferred first. */
  #updatePaths(member: Member): void {
    const active = member.endpointKey;
    // Preference for the MAX_PATHS limit: the active path, then what hubs saw, then the LAN.
    const order = (c: Candidate) =>
      endpointKey(c.endpoint) === active ? 0 : c.source === "local" ? 2 : 1;
    // Data (even encrypted probes) goes only where the member itself said it is (its sealed
    // advert, our config) or where it has answered from: never to an endpoint a hub alone named.
    const advertised = new Set(member.localEndpoints.map(endpointKey));
    const trusted = [...member.candidates.values()].filter((c) =>
      c.source !== "hub" || c.received > 0 || advertised.has(endpointKey(c.endpoint))
    );
    member.paths.update(
      trusted.sort((a, b) => order(a) - order(b)).map((c) => ({
        key: endpointKey(c.endpoint),
        endpoint: c.endpoint,
      })),
    );
  }

  /** A path probe or its answer arrived from `member` over `from`. */
  #pathProbe(
    member: Member,
    probe: { kind: "request" | "reply"; token: number },
    packet: Uint8Array,
    from: UdpEndpoint,
    now: number,
  ): void {
    if (probe.kind === "request") {
      // Answered over the path it came in on: that is the path being measured.
      const reply = member.peer.encryptControl(buildPathProbeReply(packet), now);
      if (reply !== null) this.#o.send(reply, from);
      return;
    }
    const answer = member.paths.answered(probe.token, now);
    if (answer !== null && answer.key === member.endpointKey) member.rttMs = answer.srttMs;
  }

  #pathOf(member: Member, endpoint: UdpEndpoint): string {
    const c = member.candidates.get(endpointKey(endpoint));
    if (c?.source === "local") return "LAN";
    if (c?.source === "static") return "static";
    return endpoint.hostname.includes(":") ? "IPv6" : "public IPv4";
  }

  #tickMember(member: Member, now: number): void {
    let packets: Uint8Array[];
    try {
      packets = member.peer.tick(now);
    } catch {
      this.#drop("wg-internal-error");
      packets = [];
    }
    const silentMs = now - member.lastAuthenticatedMs;
    if (member.up) this.#checkAnswered(member, silentMs, now);
    if (member.up) this.#tickPaths(member, now);
    if (
      member.up && member.endpoint !== null &&
      silentMs > this.#o.timers.keepaliveMs + PROBE_GRACE_MS &&
      now >= member.nextProbeMs
    ) {
      // WireGuard keepalives are one-sided (a received packet resets the peer's timer), so a
      // quiet edge is asked for an answer: a handshake initiation always gets a response.
      member.nextProbeMs = now +
        (member.rttMs > 0
          ? Math.min(PROBE_INTERVAL_MS, Math.max(PROBE_INTERVAL_MIN_MS, 3 * member.rttMs))
          : PROBE_INTERVAL_MS);
      member.lastInitSentMs = now;
      this.#o.send(member.peer.createInitiation(now), member.endpoint);
      edgeLog.debug("edge to {name} is stale (quiet for {seconds} s), probing", {
        name: member.name,
        seconds: Math.round(silentMs / 1000),
      });
    }
    const staleAfterMs = this.#o.timers.keepaliveMs * 2 + 15_000;
    if (member.up && silentMs > staleAfterMs) {
      member.up = false;
      const event = { kind: "edge-down" as const, name: member.name };
      edgeLog.warn("edge down: {name} (nothing heard for {seconds} s), punching again", {
        ...event,
        seconds: Math.round((now - member.lastAuthenticatedMs) / 1000),
      });
      this.#o.onEvent?.(event);
      this.#startPunching(member, now);
    }
    if (member.punchUntilMs > now && !member.up) {
      // While punching, our own once-a-second initiations replace WireGuard's slower retries.
      if (now >= member.nextPunchMs) this.#punch(member, now);
      this.#spray(member, now);
      return;
    }
    if (
      !member.up && now >= member.retryAtMs &&
      (member.bootstrapEndpoint !== null ||
        (member.lastUpWallMs === 0 &&
          (member.cachedEndpoints.length > 0 || member.peerObserved.size > 0)))
    ) {
      // No hub may ever tell us about these: keep trying now and then, backing off. A member
      // we were introduced to is asked to introduce us again (the first introduction may have
      // been lost, or come before the other side could punch).
      member.retryAtMs = now + member.retryIntervalMs;
      member.retryIntervalMs = Math.min(member.retryIntervalMs * 2, RETRY_MAX_MS);
      // A cached member nobody introduced: any member we have an edge to may know it.
      const introducers = member.peerObserved.size > 0
        ? [...member.peerObserved.keys()].map((id) => this.#members.get(id))
        : [...this.#members.values()];
      let asked = 0;
      for (const introducer of introducers) {
        if (asked >= 2) break;
        if (
          introducer === undefined || introducer === member || !introducer.up ||
          introducer.staticEndpoint !== null
        ) continue;
        this.#sendSignal(introducer, encodeIntro([unhex(member.id)]), now);
        asked++;
      }
      this.#startPunching(member, now);
      return;
    }
    if (member.movedTargets.length > 0 && member.punchUntilMs > now && now >= member.nextPunchMs) {
      this.#punchMoved(member, now);
    }
    if (packets.length === 0) return;
    if (packets.some((p) => p[0] === 1)) member.lastInitSentMs = now;
    if (member.endpoint !== null && member.up) {
      for (const p of packets) this.#o.send(p, member.endpoint);
    } else {
      // No confirmed path: every candidate gets the retry, any of them may be the one.
      for (const c of member.candidates.values()) {
        for (const p of packets) this.#o.send(p, c.endpoint);
      }
    }
  }

  /**
   * Roaming detection on an up edge: data we sent that nothing answered for
   * {@linkcode UNANSWERED_MS}, or silence beyond two keepalive intervals, may mean our NAT
   * mapping changed under us. Only a hub can tell: re-register with all of them now instead of
   * at the next keepalive; a REGISTERED with a new observed endpoint re-punches every member, and
   * the hub pushes our new endpoint to them.
   */
  /** What kind of NAT we seem to be behind, from what the hubs observed (`nat_kind.ts`). */
  #selfNatKind(): NatKind {
    return classifyNat(
      this.#hubs.filter((h) => h.observed !== "").map((h) => parseFormatted(h.observed)),
      this.#advertLocal.split(","),
    );
  }

  /** Our NAT kind and, when symmetric, how it allocates ports (for our advert). */
  #selfNatInfo(local: string[]): NatInfo {
    const observed = this.#hubs.filter((h) => h.observed !== "").map((h) =>
      parseFormatted(h.observed)
    );
    const kind = classifyNat(observed, local);
    const v4 = observed.filter((o) => !o.hostname.includes(":")).map((o) => o.port);
    return { kind, allocation: kind === "symmetric" ? classifyAllocation(v4) : "unknown" };
  }

  /** What we know about a member's NAT: its advert's word, else the hubs' observations of it. */
  #memberNat(member: Member): NatInfo {
    const own = member.natInfo ?? { kind: "unknown", allocation: "unknown" };
    const seen = classifyNat(
      [...member.hubObserved.values()],
      member.localEndpoints.map((e) => e.hostname),
    );
    // Its own view covers all its hubs; ours only the hubs we share. Take the more telling one.
    const vague = (k: NatKind) => k === "unknown" || k === "nat";
    if (vague(own.kind) && (!vague(seen) || own.kind === "unknown")) {
      return { kind: seen, allocation: "unknown" };
    }
    return own;
  }

  /**
   * While punching a member behind a symmetric NAT from behind a NAT that is not: sends the due
   * part of a paced PUNCH spray to the ports its NAT may have picked toward us
   * (`port_prediction.ts`). Bounded: one plan of at most SPRAY_BUDGET ports, repeated at most
   * every SPRAY_REPEAT_MS (our NAT forgets unanswered mappings after about that long).
   */
  #spray(member: Member, now: number): void {
    let spray = member.spray;
    // Only on the member's own word (its sealed advert): never on what a hub alone says.
    const own = member.natInfo;
    if (own === null || own.kind !== "symmetric") return;
    if (spray === null || (spray.done && now - spray.startMs >= SPRAY_REPEAT_MS)) {
      const plan = planSpray(this.#selfNatKind(), {
        ...own,
        observed: [...member.hubObserved.values()],
      });
      if (plan === null) return;
      spray = member.spray = new Spray(plan, now);
      const { ports, predicted } = plan;
      const scanned = ports.slice(predicted);
      const scan = scanned.length === 0
        ? ""
        : `scan ${Math.min(...scanned)}..${Math.max(...scanned)}`;
      const detail = predicted === 0 ? scan : `predict ${ports[0]}..${ports[predicted - 1]}` +
        (scan === "" ? "" : `, then ${scan} from ${PREDICT_GRACE_MS / 1000} s on`);
      punchLog.info(
        "{name} is behind a symmetric NAT: spraying up to {count} ports of {host} ({detail})",
        { name: member.name, count: ports.length, host: plan.hostname, detail },
      );
    }
    if (spray.done) return;
    const ports = spray.due(now);
    if (ports.length === 0) return;
    const punch = encodePunch();
    let sent = 0;
    for (const port of ports) {
      if (!this.#sprayBucket.take(now)) break;
      this.#o.send(punch, { hostname: spray.plan.hostname, port });
      sent++;
    }
    spray.giveBack(ports.length - sent);
  }

  #checkAnswered(member: Member, silentMs: number, now: number): void {
    const stats = member.peer.stats;
    const packets = stats.txPackets - member.txMarkPackets;
    // A keepalive is 32 bytes on the wire; anything more is data that deserves an answer.
    const dataSent = stats.txBytes - member.txMarkBytes > packets * 32;
    if (dataSent && member.unansweredSinceMs === 0) member.unansweredSinceMs = now;
    const unanswered = member.unansweredSinceMs > 0 &&
      now - member.unansweredSinceMs > UNANSWERED_MS;
    // Both ends send a keepalive at least every interval, but only counting from their own last
    // send: allow two intervals of silence before suspecting anything.
    const silent = silentMs > 2 * this.#o.timers.keepaliveMs + UNANSWERED_MS;
    if (!unanswered && !silent) return;
    if (now - this.#lastSuspectMs < SUSPECT_REGISTER_MS) return;
    this.#lastSuspectMs = now;
    member.unansweredSinceMs = now;
    hubLog.debug("edge to {name} unanswered; re-registering early to check our endpoint", {
      name: member.name,
    });
    for (const hub of this.#hubs) hub.nextRegisterMs = Math.min(hub.nextRegisterMs, now);
  }

  #startPunching(member: Member, now: number): void {
    member.punchUntilMs = now + PUNCH_DURATION_MS;
    this.#punch(member, now);
  }

  /**
   * Opens our NAT toward a member that moved while its edge was up: a PUNCH from us to its new
   * endpoint. The member answers a punch from our (unchanged) endpoint with an authenticated
   * keepalive from its new one, which moves our edge there; no new handshake, so nothing in
   * flight on the current session is lost.
   */
  #punchMoved(member: Member, now: number): void {
    member.nextPunchMs = now + PUNCH_INTERVAL_MS;
    for (const endpoint of member.movedTargets) this.#o.send(encodePunch(), endpoint);
  }

  /** A PUNCH arrived: if it is from a member's edge endpoint, show it where we are now. */
  #handlePunch(from: UdpEndpoint): void {
    this.#drop("punch-received");
    const member = this.#byEndpoint.get(endpointKey(from));
    if (member === undefined || !member.up) return;
    const now = this.#o.now();
    // At most one answer a second: a spoofed punch can only make us send a keepalive to the
    // member itself, at that rate, and the keepalive goes nowhere else.
    if (now - member.lastPunchReplyMs < PUNCH_INTERVAL_MS) return;
    member.lastPunchReplyMs = now;
    const keepalive = member.peer.encrypt(EMPTY, now);
    if (keepalive !== null) this.#o.send(keepalive, from);
  }

  /** Sends a PUNCH and a fresh handshake initiation to `targets` (default: every candidate). */
  #punch(member: Member, now: number, targets?: UdpEndpoint[]): void {
    member.nextPunchMs = now + PUNCH_INTERVAL_MS;
    const to = targets ?? [...member.candidates.values()].map((c) => c.endpoint);
    if (to.length === 0) return;
    const punch = encodePunch();
    const init = member.peer.createInitiation(now);
    member.lastInitSentMs = now;
    // A member no hub told us about may not know us either: our advert first, so that our
    // initiation is not from an unknown key.
    const hello = member.staticEndpoint === null && this.#hubBlind(member, now)
      ? this.#hello
      : null;
    for (const endpoint of to) {
      if (hello !== null) this.#o.send(hello, endpoint);
      this.#o.send(punch, endpoint);
      this.#o.send(init, endpoint);
      const c = member.candidates.get(endpointKey(endpoint));
      if (c !== undefined) {
        c.sent += 2;
        c.lastSentMs = now;
      }
    }
    punchLog.debug("punching {name}: {count} candidates", { name: member.name, count: to.length });
  }

  #addMember(
    id: string,
    name: string,
    publicKey: Uint8Array,
    addresses: Prefix[],
    now: number,
  ): Member {
    const peer = this.#device.addPeer(publicKey, this.#o.psk);
    // Both ends keep their own NAT mapping fresh, and silence from the other end means trouble.
    peer.keepaliveFromOwnSendsOnly = true;
    const member: Member = {
      name,
      id,
      publicKey,
      addresses,
      advertTimestamp: 0,
      candidates: new Map(),
      activeCandidateOf: null,
      activeCandidateKey: "",
      activeCandidate: undefined,
      hubObserved: new Map(),
      localEndpoints: [],
      staticEndpoint: null,
      sealed: null,
      lastHubReportMs: 0,
      peerObserved: new Map(),
      introducedMs: 0,
      cachedEndpoints: [],
      cachedLastSeenMs: 0,
      bootstrapEndpoint: null,
      lastUpWallMs: 0,
      signalBucket: new TokenBucket(SIGNAL_RATE_PER_S, SIGNAL_BURST),
      signalPending: false,
      retryAtMs: now + PUNCH_DURATION_MS,
      retryIntervalMs: RETRY_FIRST_MS,
      nextProbeMs: 0,
      movedTargets: [],
      lastPunchReplyMs: Number.NEGATIVE_INFINITY,
      endpoint: null,
      endpointKey: "",
      lastAuthenticatedMs: 0,
      firstSeenMs: now,
      punchUntilMs: 0,
      nextPunchMs: 0,
      up: false,
      everUp: false,
      lastInitSentMs: 0,
      rttMs: -1,
      drops: {},
      txMarkPackets: 0,
      txMarkBytes: 0,
      unansweredSinceMs: 0,
      recheck: null,
      natInfo: null,
      spray: null,
      paths: new PathSet(),
      peer,
    };
    peer.context = member;
    this.#members.set(id, member);
    this.#setRoutes(member, addresses);
    return member;
  }

  #setRoutes(member: Member, addresses: Prefix[]): void {
    this.#routes.removeValue(member);
    for (const a of addresses) {
      if (samePrefix(a, this.#o.ipv6) || (this.#o.ipv4 && samePrefix(a, this.#o.ipv4))) {
        edgeLog.warn("member {name} claims our own address {address}; ignored", {
          name: member.name,
          address: formatPrefix(a),
        });
        continue;
      }
      this.#routes.add(a, member);
    }
    member.addresses = addresses;
  }

  // --- hubs ------------------------------------------------------------------------------------

  #refreshAdvert(now: number): void {
    const local = this.#o.localAddresses().slice(0, MAX_LOCAL_CANDIDATES);
    const localKey = local.join(",");
    const generation = this.#policy.generation;
    const natInfo = this.#selfNatInfo(local);
    const natKey = `${natInfo.kind}/${natInfo.allocation}`;
    if (
      this.#advert !== null && localKey === this.#advertLocal &&
      generation === this.#policyGeneration && natKey === this.#advertNat
    ) return;
    this.#advertLocal = localKey;
    this.#advertNat = natKey;
    this.#policyGeneration = generation;
    // Monotonic even if the wall clock steps back, so members never mistake it for a replay.
    this.#advertTimestamp = nextAdvertTimestamp(Date.now(), this.#advertTimestamp);
    const { ipv6, ipv4 } = this.#o;
    let advert: Advert = {
      timestampMs: this.#advertTimestamp,
      publicKey: this.#device.publicKey,
      name: this.#o.name,
      ipv6: { address: ipv6.address, prefixLen: ipv6.prefixLength },
      ipv4: ipv4 ? { address: ipv4.address, prefixLen: ipv4.prefixLength } : null,
      udpPort: this.#o.port,
      localEndpoints: local.map((hostname) => ({ hostname, port: this.#o.port })),
    };
    // Our NAT view first (4 bytes): the policy's TLVs (CA mode: certificate, CRL) fill the rest.
    const nat = encodeNatInfo(natInfo);
    const spare = ADVERT_PLAINTEXT_MAX_LEN - encodeAdvert(advert).length - 2 - nat.value.length;
    advert = { ...advert, extensions: [nat, ...this.#policy.advertExtensions(spare)] };
    this.#advert = sealAdvert(this.#keys, this.#networkId, advert);
    this.#hello = encodeHello({
      networkId: this.#networkId,
      nodeId: this.#nodeId,
      advert: this.#advert,
    });
    // A changed advert goes out at once so members learn our new candidates.
    for (const hub of this.#hubs) hub.nextRegisterMs = now;
  }

  #tickHub(hub: HubState, now: number): void {
    if (hub.registered && now - hub.lastHeardMs > this.#hubInterval(hub) * 2 + 5_000) {
      hub.registered = false;
      hubLog.warn("hub {hub} stopped answering; existing edges are unaffected, retrying", {
        hub: hub.key,
      });
      this.#o.onEvent?.({ kind: "hub-lost", hub: hub.key });
    }
    if (now >= hub.countCheckMs) this.#checkMemberCount(hub, now);
    if (now < hub.nextRegisterMs || this.#advert === null) return;
    hub.nextRegisterMs = now + (hub.registered ? this.#hubInterval(hub) : HUB_RETRY_MS);
    this.#register(hub, hub.registrations % 3 === 0 || hub.fullListWanted);
  }

  /** Asks `hub`, if registered, for the full member list soon (at most every 5.5 s). */
  #wantFullList(hub: HubState, now: number, why: string): void {
    if (!hub.registered || hub.fullListWanted) return;
    hub.fullListWanted = true;
    hubLog.debug("asking hub {hub} for the member list: {why}", { hub: hub.key, why });
    hub.nextRegisterMs = Math.min(
      hub.nextRegisterMs,
      Math.max(now, hub.lastFullListMs + FULL_LIST_RETRY_MS),
    );
  }

  /**
   * The hub counts us too. Knowing fewer members through it than it has means a MEMBER message
   * was lost (UDP): ask for the full list now, not at the regular one (every third registration,
   * up to a minute away). A few times in a row at most: a member we refuse stays uncounted.
   */
  #checkMemberCount(hub: HubState, now: number): void {
    hub.countCheckMs = Number.POSITIVE_INFINITY;
    let known = 0;
    // Members that joined since the count are not in it: they must not hide one we lack.
    for (const m of this.#members.values()) {
      if (m.hubObserved.has(hub.key) && m.firstSeenMs <= hub.hubMembersUntilMs) known++;
    }
    if (hub.hubMembers - 1 <= known) {
      hub.countRetries = 0;
      return;
    }
    if (hub.countRetries >= FULL_LIST_MAX_RETRIES) return;
    hub.countRetries++;
    this.#wantFullList(hub, now, `it counts ${hub.hubMembers - 1} other members, we know ${known}`);
  }

  /** Our re-registration interval with `hub`: ours, or shorter if the hub asks for it. */
  #hubInterval(hub: HubState): number {
    const own = this.#o.timers.hubKeepaliveMs;
    return hub.askedKeepaliveMs > 0 ? Math.min(own, hub.askedKeepaliveMs) : own;
  }

  #register(hub: HubState, fullList: boolean): void {
    if (this.#advert === null) return;
    hub.registrations++;
    hub.askedFullList = fullList || !hub.registered;
    if (hub.askedFullList) {
      hub.lastFullListMs = this.#o.now();
      hub.fullListWanted = false;
    }
    this.#o.send(
      encodeHubMessage({
        kind: "register",
        networkId: this.#networkId,
        nodeId: this.#nodeId,
        token: hub.token ?? new Uint8Array(16),
        fullList: fullList || !hub.registered,
        advert: this.#advert,
      }),
      hub.endpoint,
    );
  }

  #handleHub(data: Uint8Array, from: UdpEndpoint): void {
    const key = endpointKey(from);
    const hub = this.#hubs.find((h) => h.key === key);
    if (hub === undefined) {
      this.#drop("hub-msg-not-from-hub");
      return;
    }
    const msg = decodeHubMessage(data);
    if (msg.kind === "invalid") {
      this.#drop(`hub-${msg.reason}`);
      return;
    }
    if (!("networkId" in msg) || !bytesEqual(msg.networkId, this.#networkId)) {
      this.#drop("hub-wrong-network");
      return;
    }
    const now = this.#o.now();
    this.#handleHubMessage(hub, msg, now);
  }

  #handleHubMessage(hub: HubState, msg: HubMessage, now: number): void {
    switch (msg.kind) {
      case "challenge":
        if (!bytesEqual(msg.nodeId, this.#nodeId)) return this.#drop("hub-wrong-node");
        hub.token = msg.token;
        hub.lastHeardMs = now;
        this.#register(hub, true);
        return;
      case "registered": {
        if (!bytesEqual(msg.nodeId, this.#nodeId)) return this.#drop("hub-wrong-node");
        hub.lastHeardMs = now;
        const observed = formatEndpoint(msg.endpoint);
        if (hub.observed !== "" && observed !== hub.observed) {
          // Our NAT gave us a new public endpoint (it rebooted, or we moved): peers' NATs only
          // know the old one, so reach out to every member from the new one at once.
          hubLog.info("our public endpoint changed from {old} to {observed}; re-punching", {
            old: hub.observed,
            observed,
          });
          for (const member of this.#members.values()) {
            // An authenticated keepalive from the new endpoint moves the edge at the other end;
            // a handshake here would race the one the member starts when the hub tells it.
            const keepalive = member.up ? member.peer.encrypt(EMPTY, now) : null;
            if (keepalive !== null && member.endpoint !== null) {
              this.#o.send(encodePunch(), member.endpoint);
              this.#o.send(keepalive, member.endpoint);
            } else this.#startPunching(member, now);
          }
        }
        if (!hub.registered || observed !== hub.observed) {
          const event = {
            kind: "hub-registered" as const,
            hub: hub.key,
            observed,
            members: msg.members,
          };
          hubLog.info("registered with hub {hub}: seen as {observed}, {members} members", event);
          this.#o.onEvent?.(event);
        }
        hub.registered = true;
        hub.observed = observed;
        const natKind = this.#selfNatKind();
        if (natKind !== this.#natKind) {
          this.#natKind = natKind;
          hubLog.info("our NAT seems {natKind} (from {count} hub observations)", {
            natKind,
            count: this.#hubs.filter((h) => h.observed !== "").length,
          });
        }
        hub.askedKeepaliveMs = msg.keepaliveS * 1000;
        // Compared once a full list we just asked for has had time to arrive.
        hub.hubMembers = msg.members;
        hub.hubMembersUntilMs = now + (hub.askedFullList ? FULL_LIST_ARRIVAL_MS : 0);
        hub.countCheckMs = Math.max(now, hub.lastFullListMs + FULL_LIST_RETRY_MS);
        return;
      }
      case "member":
        hub.lastHeardMs = now;
        this.#handleMember({ hub: hub.key }, msg.nodeId, msg.endpoint, msg.advert, now);
        return;
      case "gone": {
        const member = this.#members.get(hex(msg.nodeId));
        if (member && !member.up) this.#removeMember(member);
        return;
      }
      default:
        this.#drop("hub-unexpected-message");
    }
  }

  #handleMember(
    via: MemberSource,
    id: Uint8Array,
    observed: UdpEndpoint | null,
    sealed: Uint8Array,
    now: number,
  ): void {
    if (bytesEqual(id, this.#nodeId)) return;
    const idHex = hex(id);
    let member = this.#members.get(idHex);
    let changed = false;
    // The same sealed bytes as before (hubs repeat them, members pass them on): nothing to open.
    if (member?.sealed == null || !bytesEqual(member.sealed, sealed)) {
      const opened = openAdvert(this.#keys, this.#networkId, id, sealed);
      if ("error" in opened) {
        this.#drop(`advert-${opened.error}`);
        return;
      }
      const advert = opened.advert;
      if (member !== undefined && advert.timestampMs < member.advertTimestamp) {
        // A replayed (older) advert: it must never roll a member back.
        this.#drop("advert-replayed");
        return;
      }
      // The policy decides who the sender is (PSK mode: what it says; CA mode: its certificate).
      // A refused advert changes nothing, not even for a known member: it may be a forgery.
      const verdict = this.#policy.verify(advert);
      if (!verdict.ok) {
        this.#drop(`member-${verdict.reason}`);
        return;
      }
      const addresses = verdict.addresses;
      if (member === undefined) {
        member = this.#addMember(idHex, verdict.name, advert.publicKey, addresses, now);
        const event = {
          kind: "member" as const,
          name: verdict.name,
          address: formatIPv6(advert.ipv6.address),
        };
        const how = "hub" in via
          ? ""
          : "cache" in via
          ? " from the peer cache"
          : "peer" in via
          ? ` through ${via.peer.name}`
          : " (it said hello)";
        punchLog.info("member {name} ({address}) discovered{how}, punching", { ...event, how });
        this.#o.onEvent?.(event);
        changed = true;
      } else if (advert.timestampMs > member.advertTimestamp) {
        if (member.advertTimestamp === 0) {
          punchLog.info("bootstrap member {endpoint} is {name}", {
            endpoint: member.name,
            name: verdict.name,
          });
        }
        member.name = verdict.name;
        this.#setRoutes(member, addresses);
        if (member.everUp) this.#cacheChanged(now);
      }
      member.recheck = verdict.recheck ?? null;
      member.advertTimestamp = advert.timestampMs;
      member.localEndpoints = advert.localEndpoints.slice(0, MAX_LOCAL_CANDIDATES);
      member.sealed = sealed.slice();
      member.natInfo = decodeNatInfo(advert.extensions);
    }
    if ("hub" in via) {
      // One observed endpoint per hub: a hub (honest after a NAT change, or hostile) can replace
      // it but never grow the list.
      member.hubObserved.set(via.hub, observed!);
      member.lastHubReportMs = now;
      // A hub's news is fresher than anything the cache remembers.
      member.cachedEndpoints = [];
    } else if ("peer" in via && observed !== null) {
      // Likewise one endpoint per reporting member, and only a few members.
      const peers = member.peerObserved;
      if (!peers.has(via.peer.id) && peers.size >= MAX_PEER_OBSERVED) {
        peers.delete(peers.keys().next().value!);
      }
      peers.set(via.peer.id, observed);
    }
    if ("peer" in via) member.introducedMs = now;
    const added = rebuildCandidates(member);
    if (!member.up) {
      if (changed || added.length > 0) this.#startPunching(member, now);
    } else if (added.some((e) => endpointKey(e) !== member.endpointKey)) {
      // The member moved (its NAT rebooted, say) while our edge still points at the old place;
      // our own NAT may only let its packets in once we have sent to the new endpoint.
      member.movedTargets = added.filter((e) => endpointKey(e) !== member.endpointKey);
      member.punchUntilMs = now + PUNCH_DURATION_MS;
      this.#punchMoved(member, now);
    }
  }

  // --- without a hub: peer cache, bootstrap, member-to-member signalling -----------------------

  #loadPeerCache(entries: CachedPeer[], now: number): void {
    for (const e of entries) {
      if (e.nodeId.length !== 16) continue;
      const before = this.#members.get(hex(e.nodeId));
      // Opened and checked like any advert: a cache from another network, a revoked or expired
      // certificate, or a tampered entry is dropped here.
      this.#handleMember({ cache: true }, e.nodeId, null, e.advert, now);
      const member = this.#members.get(hex(e.nodeId));
      if (member === undefined || member === before || member.staticEndpoint !== null) continue;
      member.cachedEndpoints = e.endpoints.slice(0, 4);
      member.cachedLastSeenMs = e.lastSeenMs;
      rebuildCandidates(member);
      this.#startPunching(member, now);
    }
  }

  #addBootstrap(endpoint: UdpEndpoint, publicKey: Uint8Array, now: number): void {
    if (bytesEqual(publicKey, this.#device.publicKey)) return;
    const id = hex(nodeIdFromKey(this.#keys.nodeIdKey, publicKey));
    // Until its advert arrives over the edge it has no name and no addresses: nothing is routed
    // to it and nothing from it reaches the TUN, but it can tell us about the others.
    const member = this.#members.get(id) ??
      this.#addMember(id, `bootstrap@${formatEndpoint(endpoint)}`, publicKey, [], now);
    member.bootstrapEndpoint = endpoint;
    rebuildCandidates(member);
    this.#startPunching(member, now);
  }

  /** A HELLO: a member we may not know yet is about to start a handshake. Never answered. */
  #handleHello(data: Uint8Array): void {
    const hello = decodeHello(data);
    if (hello === null) return this.#drop("hello-malformed");
    if (!bytesEqual(hello.networkId, this.#networkId)) return this.#drop("hello-wrong-network");
    const member = this.#members.get(hex(hello.nodeId));
    if (member?.sealed != null && bytesEqual(member.sealed, hello.advert)) return;
    const now = this.#o.now();
    if (!this.#helloBucket.take(now)) return this.#drop("hello-rate");
    // No candidate from the sender's address (it may be spoofed): its initiation follows, and
    // the WireGuard response goes back to where that came from.
    this.#handleMember({ hello: true }, hello.nodeId, null, hello.advert, now);
  }

  /**
   * Signalling from a member over our edge: PEERS (members it knows, and where it sees them) or
   * INTRO (introduce me to these members again).
   */
  #handleSignal(sender: Member, packet: Uint8Array, now: number): void {
    if (sender.staticEndpoint !== null) return this.#drop("signal-from-static-peer");
    if (!sender.signalBucket.take(now)) return this.#drop("signal-rate");
    if (packet[0] === INTRO_TYPE) return this.#handleIntro(sender, packet, now);
    const entries = decodePeers(packet);
    if (entries === null) return this.#drop("signal-malformed");
    for (const e of entries) {
      this.#handleMember({ peer: sender }, e.nodeId, e.endpoint, e.advert, now);
    }
  }

  #handleIntro(sender: Member, packet: Uint8Array, now: number): void {
    const ids = decodeIntro(packet);
    if (ids === null) return this.#drop("signal-malformed");
    if (sender.sealed === null) return;
    const back: PeerEntry[] = [];
    for (const id of ids) {
      const x = this.#members.get(hex(id));
      if (x === undefined || x === sender || !x.up || x.sealed === null) continue;
      if (x.staticEndpoint !== null) continue;
      this.#sendSignal(x, encodePeers([this.#entryOf(sender)])[0]!, now);
      back.push(this.#entryOf(x));
    }
    for (const msg of encodePeers(back)) this.#sendSignal(sender, msg, now);
  }

  /**
   * True when no hub seems to know where `member` is: no recent report from a hub, or our edge
   * goes to an endpoint no hub reported (it restarted or moved since, or it is not registered).
   * A LAN endpoint is ours to know, not the hub's.
   */
  #hubBlind(member: Member, now: number): boolean {
    const freshMs = 4 * this.#o.timers.hubKeepaliveMs + 5_000;
    if (member.lastHubReportMs === 0 || now - member.lastHubReportMs > freshMs) return true;
    if (member.endpoint === null) return false;
    if (member.candidates.get(member.endpointKey)?.source === "local") return false;
    for (const e of member.hubObserved.values()) {
      if (endpointKey(e) === member.endpointKey) return false;
    }
    return true;
  }

  /** What we tell others about `member`: its advert and where we see it (not a LAN address). */
  #entryOf(member: Member): PeerEntry {
    let endpoint = member.endpoint;
    if (endpoint !== null && member.candidates.get(member.endpointKey)?.source === "local") {
      endpoint = member.hubObserved.values().next().value ?? null;
    }
    return { nodeId: unhex(member.id), endpoint, advert: member.sealed! };
  }

  /**
   * The edge to `member` came up or moved: if the hubs may not know it (or the others), send it
   * the members we have edges to, and introduce it to them. Harmless duplication when a hub did.
   */
  #signalEdgeUp(member: Member, now: number): void {
    // Just introduced to each other by a member: it has told both sides about the rest already
    // (without this, a newcomer's arrival would cost O(n²) messages instead of O(n)).
    if (member.introducedMs > 0 && now - member.introducedMs < PUNCH_DURATION_MS) return;
    const blind = this.#hubBlind(member, now);
    const others = [...this.#members.values()].filter((x) =>
      x !== member && x.up && x.sealed !== null && x.staticEndpoint === null &&
      (blind || this.#hubBlind(x, now))
    );
    const toMember: PeerEntry[] = others.map((x) => this.#entryOf(x));
    if (blind && this.#advert !== null) {
      toMember.unshift({ nodeId: this.#nodeId, endpoint: null, advert: this.#advert });
    }
    for (const msg of encodePeers(toMember)) this.#sendSignal(member, msg, now);
    if (member.sealed === null || others.length === 0) return;
    const [intro] = encodePeers([this.#entryOf(member)]);
    for (const x of others) this.#sendSignal(x, intro!, now);
    punchLog.debug("introduced {name} and {count} members to each other", {
      name: member.name,
      count: others.length,
    });
  }

  #sendSignal(member: Member, msg: Uint8Array, now: number): void {
    const datagram = member.peer.encryptControl(msg, now);
    if (datagram !== null && member.endpoint !== null) this.#o.send(datagram, member.endpoint);
  }

  #cacheChanged(now: number): void {
    this.#cacheVersion++;
    this.#cacheBumpedMs = now;
  }

  /** Drops members the policy no longer accepts (CA mode: expired or revoked), once a second. */
  #recheckMembers(now: number): void {
    this.#nextRecheckMs = now + RECHECK_INTERVAL_MS;
    for (const member of [...this.#members.values()]) {
      const reason = member.recheck?.() ?? null;
      if (reason === null) continue;
      const event = { kind: "member-removed" as const, name: member.name, reason };
      edgeLog.warn("member {name} dropped: {reason}", event);
      this.#removeMember(member);
      this.#o.onEvent?.(event);
    }
  }

  #removeMember(member: Member): void {
    if (this.#byEndpoint.get(member.endpointKey) === member) {
      this.#byEndpoint.delete(member.endpointKey);
    }
    this.#routes.removeValue(member);
    this.#device.removePeer(member.peer);
    this.#members.delete(member.id);
    if (member.everUp) this.#cacheChanged(this.#o.now());
  }

  #drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}

/**
 * A member's edge: `connecting` (never up, first attempt under way: packets wait), `up`,
 * `stale` (up, but silent beyond the keepalive: being probed), `punching` (no edge, trying
 * again), `unreachable` (no edge, not trying until traffic asks). Packets to a member that is
 * `punching` or `unreachable` get ICMP destination unreachable.
 */
export type EdgeState = "connecting" | "up" | "stale" | "punching" | "unreachable";

/** One candidate endpoint of a member and what trying it did. */
export interface CandidateStatus {
  endpoint: string;
  /** `hub` (observed by a hub), `local` (in the member's advert) or `static` (config). */
  source: string;
  /** Punches and handshake initiations sent to it. */
  sent: number;
  /** Authenticated packets received from it. */
  received: number;
  lastSentAgoMs: number | null;
  lastHeardAgoMs: number | null;
  /** `in use`, `answered`, `no answer` or `not tried`. */
  result: string;
}

/** The answer of {@linkcode Mesh.sendProbe}. */
export type ProbeStart =
  | { ok: true; seq: number; name: string; state: EdgeState }
  | { ok: false; error: string };

/** What `Mesh.status()` returns. */
export interface MeshStatus {
  /** This node's name. */
  name: string;
  /** This node's VPN addresses (`addr/len`). */
  addresses: string[];
  /** The UDP port. */
  port: number;
  /** This node's public key. */
  publicKey: Uint8Array;
  /**
   * What kind of NAT this node seems to be behind, from the endpoints the hubs observed
   * (`client/nat_kind.ts`): `none`, `endpoint-independent`, `symmetric`, `nat` (one hub only:
   * mapping unknown) or `unknown` (no hub yet).
   */
  natKind: NatKind;
  /** One entry per configured hub. */
  hubs: {
    endpoint: string;
    registered: boolean;
    /** `connecting` (never heard), `registered` or `lost`. */
    state: string;
    observed: string;
    lastHeardAgoMs: number | null;
  }[];
  /** One entry per known member. */
  members: {
    name: string;
    publicKey: Uint8Array;
    addresses: string[];
    up: boolean;
    state: EdgeState;
    /** Latest round-trip time (handshake or probe), ms. */
    rttMs: number | null;
    lastHeardAgoMs: number | null;
    txPackets: number;
    rxPackets: number;
    /** Drops that concern this member, by reason. */
    memberDrops: Record<string, number>;
    /** Candidates and what trying each did. */
    tried: CandidateStatus[];
    endpoint: string | null;
    path: string | null;
    candidates: string[];
    lastHandshakeAgoMs: number | null;
    txBytes: number;
    rxBytes: number;
    handshakes: number;
    /**
     * What kind of NAT the member seems to be behind: its own view from its advert when it sends
     * one, else ours from what the hubs observed for it.
     */
    natKind: NatKind;
    /** How its NAT allocates ports when symmetric (its advert's word): `port_prediction.ts`. */
    portAllocation: PortAllocation;
    /** Our port spray toward it (it is behind a symmetric NAT, we are not), if any. */
    spray: { mode: string; host: string; ports: number; sent: number } | null;
    /** Measured paths (`path_select.ts`); empty while there is nothing to choose from. */
    paths: PathStatus[];
  }[];
  /** Drop counters by reason. */
  drops: Record<string, number>;
}

/**
 * Recomputes a member's candidates from its static endpoint, the local addresses in its advert
 * and what each hub observed (a hub-observed address is labelled public even when the member
 * also lists it as local). Returns the endpoints that were not candidates before.
 */
function rebuildCandidates(member: Member): UdpEndpoint[] {
  const next = new Map<string, Candidate>();
  // A candidate that stays keeps its counters (what trying it did so far).
  const add = (endpoint: UdpEndpoint, source: CandidateSource) => {
    const key = endpointKey(endpoint);
    const old = member.candidates.get(key);
    next.set(
      key,
      old ? { ...old, endpoint, source } : {
        endpoint,
        source,
        sent: 0,
        lastSentMs: 0,
        received: 0,
        lastHeardMs: 0,
      },
    );
  };
  for (const endpoint of member.localEndpoints) add(endpoint, "local");
  for (const endpoint of member.cachedEndpoints) add(endpoint, "cache");
  for (const endpoint of member.peerObserved.values()) add(endpoint, "peer");
  for (const endpoint of member.hubObserved.values()) add(endpoint, "hub");
  if (member.bootstrapEndpoint !== null) add(member.bootstrapEndpoint, "bootstrap");
  if (member.staticEndpoint !== null) add(member.staticEndpoint, "static");
  const added: UdpEndpoint[] = [];
  for (const [key, c] of next) if (!member.candidates.has(key)) added.push(c.endpoint);
  member.candidates = next;
  return added;
}

/**
 * The member's candidate at `key`. The active path's (nearly every authenticated packet) comes
 * from a cache kept while the candidate map and the key stay the same: no string-keyed lookup
 * per packet.
 */
function candidateAt(member: Member, key: string): Candidate | undefined {
  if (key !== member.endpointKey) return member.candidates.get(key);
  if (member.activeCandidateOf !== member.candidates || member.activeCandidateKey !== key) {
    member.activeCandidateOf = member.candidates;
    member.activeCandidateKey = key;
    member.activeCandidate = member.candidates.get(key);
  }
  return member.activeCandidate;
}

/** The endpoint of `formatEndpoint`'s `host:port` / `[v6]:port`. */
function parseFormatted(text: string): { hostname: string; port: number } {
  const colon = text.lastIndexOf(":");
  return {
    hostname: text.slice(0, colon).replace(/^\[|\]$/g, ""),
    port: Number(text.slice(colon + 1)),
  };
}

function countDrop(drops: DropCounters, reason: string): void {
  drops[reason] = (drops[reason] ?? 0) + 1;
}

function prefixContains(p: Prefix, address: Uint8Array, at: number): boolean {
  let bits = p.prefixLength;
  for (let i = 0; i < p.address.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((address[at + i] ?? 0) & mask) !== (p.address[i]! & mask)) return false;
  }
  return true;
}

function encodePunch(): Uint8Array {
  return encodeHubMessage({ kind: "punch", nonce: crypto.getRandomValues(new Uint8Array(8)) });
}

function prefixed(prefix: string, counters: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters)) if (v > 0) out[prefix + k] = v;
  return out;
}

function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function samePrefix(a: Prefix, b: Prefix): boolean {
  return a.address.length === b.address.length && bytesEqual(a.address, b.address);
}

/** Formats an address prefix as `addr/len`. */
export function formatPrefix(p: Prefix): string {
  if (p.address.length === 16) return `${formatIPv6(p.address)}/${p.prefixLength}`;
  return `${p.address.join(".")}/${p.prefixLength}`;
}
