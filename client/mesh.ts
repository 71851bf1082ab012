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
 *
 * Members come from sealed adverts relayed by the hub(s). A member's candidates are the endpoint
 * the hub observed plus the local addresses in its advert; while a member has no session we
 * "punch": send a PUNCH and a fresh handshake initiation to every candidate about once a second.
 * The first authenticated packet fixes the edge's endpoint; later authenticated packets from a
 * new address move it (roaming). The hub is never needed again once an edge is up.
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
/** Interval between probes of a quiet edge (WireGuard's REKEY_TIMEOUT). */
const PROBE_INTERVAL_MS = 5_000;
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
  /** Tunnel MTU: a larger packet from the TUN gets Packet Too Big. Default: no check. */
  mtu?: number;
  /**
   * Prefixes routed into the TUN (the VPN prefixes): a packet to an address in them without a
   * member gets ICMP "no route". Default: every packet without a member does.
   */
  vpnPrefixes?: Prefix[];
  /** Answer undeliverable TUN packets with ICMP errors (rate-limited). Default true. */
  icmpErrors?: boolean;
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

type CandidateSource = "hub" | "local" | "static";

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
  /** Every endpoint worth trying, rebuilt from the three sources below. */
  candidates: Map<string, Candidate>;
  /** The latest endpoint each hub observed for it (one per hub: bounded). */
  hubObserved: Map<string, UdpEndpoint>;
  /** Local addresses from its newest advert (at most 8). */
  localEndpoints: UdpEndpoint[];
  /** The configured endpoint of a static peer. */
  staticEndpoint: UdpEndpoint | null;
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
  #advertLocal = "";
  #advertTimestamp = 0;
  /** When an unanswered edge last made us re-register early. */
  #lastSuspectMs = Number.NEGATIVE_INFINITY;
  /** Our NAT kind as last logged. */
  #natKind: NatKind = "unknown";
  /** Dropped packets by reason. */
  readonly drops: DropCounters = {};
  readonly #icmpBucket = new TokenBucket(ICMP_RATE_PER_S, ICMP_BURST);
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
    }));
    const now = options.now();
    for (const s of options.staticPeers ?? []) {
      const member = this.#addMember(hex(s.publicKey), s.name, s.publicKey, s.addresses, now);
      member.staticEndpoint = s.endpoint;
      rebuildCandidates(member);
      this.#startPunching(member, now);
    }
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
    const room = this.#o.commitSend ? this.#o.reserveSend?.(sealedLength(packet.length)) : null;
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
        natKind: classifyNat(
          [...m.hubObserved.values()],
          m.localEndpoints.map((e) => e.hostname),
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
        for (const p of result.packets) this.#o.send(p, from);
        return;
      }
      case "keepalive": {
        this.#authenticated(result.peer.context as Member, from, now, true);
        for (const p of result.outgoing) this.#o.send(p, from);
        return;
      }
      case "data": {
        const member = result.peer.context as Member;
        if (this.#routes.lookupSource(result.packet) !== member) {
          this.#drop("inner-source-not-allowed");
          countDrop(member.drops, "inner-source-not-allowed");
          return;
        }
        this.#authenticated(member, from, now, true);
        // Answers to our own probes (`meshub ping`) end here; the rest goes to the TUN.
        if (this.#probes.size > 0 && result.packet[40] === 129 && this.#probeReply(result.packet)) {
          for (const p of result.outgoing) this.#o.send(p, from);
          return;
        }
        this.#o.writeTun(result.packet);
        // Packets queued while we were the responder wait for the first transport packet.
        for (const p of result.outgoing) this.#o.send(p, from);
        return;
      }
    }
  }

  /** An authenticated packet from `member` arrived from `from`: the edge lives there now. */
  #authenticated(member: Member, from: UdpEndpoint, now: number, sessionUp: boolean): void {
    member.lastAuthenticatedMs = now;
    member.txMarkPackets = member.peer.stats.txPackets;
    member.txMarkBytes = member.peer.stats.txBytes;
    member.unansweredSinceMs = 0;
    const key = endpointKey(from);
    const candidate = member.candidates.get(key);
    if (candidate !== undefined) {
      candidate.received++;
      candidate.lastHeardMs = now;
    }
    if (member.movedTargets.some((t) => endpointKey(t) === key)) member.movedTargets = [];
    if (member.endpointKey !== key) {
      const moved = member.endpoint !== null;
      if (this.#byEndpoint.get(member.endpointKey) === member) {
        this.#byEndpoint.delete(member.endpointKey);
      }
      this.#byEndpoint.set(key, member);
      member.endpoint = from;
      member.endpointKey = key;
      if (moved && member.up) {
        const event = {
          kind: "edge-moved" as const,
          name: member.name,
          endpoint: formatEndpoint(from),
          path: this.#pathOf(member, from),
        };
        edgeLog.info("edge to {name} moved to {endpoint} ({path})", event);
        this.#o.onEvent?.(event);
      }
    }
    if (sessionUp && !member.up) {
      member.up = true;
      member.everUp = true;
      member.punchUntilMs = 0;
      const event = {
        kind: "edge-up" as const,
        name: member.name,
        endpoint: formatEndpoint(from),
        path: this.#pathOf(member, from),
        afterMs: Math.round(now - member.firstSeenMs),
      };
      edgeLog.info("edge up: {name} via {endpoint} ({path}), {afterMs} ms after discovery", event);
      this.#o.onEvent?.(event);
    }
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
    if (
      member.up && member.endpoint !== null &&
      silentMs > this.#o.timers.keepaliveMs + PROBE_GRACE_MS &&
      now >= member.nextProbeMs
    ) {
      // WireGuard keepalives are one-sided (a received packet resets the peer's timer), so a
      // quiet edge is asked for an answer: a handshake initiation always gets a response.
      member.nextProbeMs = now + PROBE_INTERVAL_MS;
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
    for (const endpoint of to) {
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
    const member: Member = {
      name,
      id,
      publicKey,
      addresses,
      advertTimestamp: 0,
      candidates: new Map(),
      hubObserved: new Map(),
      localEndpoints: [],
      staticEndpoint: null,
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
    if (
      this.#advert !== null && localKey === this.#advertLocal &&
      generation === this.#policyGeneration
    ) return;
    this.#advertLocal = localKey;
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
    const spare = ADVERT_PLAINTEXT_MAX_LEN - encodeAdvert(advert).length;
    advert = { ...advert, extensions: this.#policy.advertExtensions(spare) };
    this.#advert = sealAdvert(this.#keys, this.#networkId, advert);
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
    if (now < hub.nextRegisterMs || this.#advert === null) return;
    hub.nextRegisterMs = now + (hub.registered ? this.#hubInterval(hub) : HUB_RETRY_MS);
    this.#register(hub, hub.registrations % 3 === 0);
  }

  /** Our re-registration interval with `hub`: ours, or shorter if the hub asks for it. */
  #hubInterval(hub: HubState): number {
    const own = this.#o.timers.hubKeepaliveMs;
    return hub.askedKeepaliveMs > 0 ? Math.min(own, hub.askedKeepaliveMs) : own;
  }

  #register(hub: HubState, fullList: boolean): void {
    if (this.#advert === null) return;
    hub.registrations++;
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
        return;
      }
      case "member":
        hub.lastHeardMs = now;
        this.#handleMember(hub.key, msg.nodeId, msg.endpoint, msg.advert, now);
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
    hubKey: string,
    id: Uint8Array,
    observed: UdpEndpoint,
    sealed: Uint8Array,
    now: number,
  ): void {
    if (bytesEqual(id, this.#nodeId)) return;
    const opened = openAdvert(this.#keys, this.#networkId, id, sealed);
    if ("error" in opened) {
      this.#drop(`advert-${opened.error}`);
      return;
    }
    const advert = opened.advert;
    const idHex = hex(id);
    let member = this.#members.get(idHex);
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
    let changed = false;
    if (member === undefined) {
      member = this.#addMember(idHex, verdict.name, advert.publicKey, addresses, now);
      const event = {
        kind: "member" as const,
        name: verdict.name,
        address: formatIPv6(advert.ipv6.address),
      };
      punchLog.info("member {name} ({address}) discovered, punching", event);
      this.#o.onEvent?.(event);
      changed = true;
    } else if (advert.timestampMs > member.advertTimestamp) {
      member.name = verdict.name;
      this.#setRoutes(member, addresses);
    }
    member.recheck = verdict.recheck ?? null;
    member.advertTimestamp = advert.timestampMs;
    member.localEndpoints = advert.localEndpoints.slice(0, MAX_LOCAL_CANDIDATES);
    // One observed endpoint per hub: a hub (honest after a NAT change, or hostile) can replace
    // it but never grow the list.
    member.hubObserved.set(hubKey, observed);
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
    /** What kind of NAT the member seems to be behind (as for the node itself, from its hubs). */
    natKind: NatKind;
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
  for (const endpoint of member.hubObserved.values()) add(endpoint, "hub");
  if (member.staticEndpoint !== null) add(member.staticEndpoint, "static");
  const added: UdpEndpoint[] = [];
  for (const [key, c] of next) if (!member.candidates.has(key)) added.push(c.endpoint);
  member.candidates = next;
  return added;
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
