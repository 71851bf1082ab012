/**
 * The hub's soft state: which members each network has, where their packets come from, and their
 * sealed adverts. Pure: no I/O, no timers, the clock is a parameter. {@linkcode Registry.handle}
 * takes one datagram and returns the datagrams to send; {@linkcode Registry.sweep} expires
 * members that missed their keepalives. The UDP server around it is `server.ts`.
 *
 * Everything is soft: a restarted hub (new token secret, empty registry) challenges every member
 * on its next keepalive, and is whole again within one keepalive interval.
 *
 * Flow (message formats in `protocol/hub_messages.ts`):
 *
 * ```text
 * REGISTER, token missing/invalid  → CHALLENGE (token for this endpoint, network, node)
 * REGISTER, valid token, new       → REGISTERED; MEMBER(each other) to it; MEMBER(it) to others
 * REGISTER, valid token, changed   → REGISTERED; MEMBER(it) to others (+ full list if asked)
 * REGISTER, valid token, unchanged → REGISTERED (+ full list if asked, at most every 5 s)
 * LEAVE, valid token, same endpoint→ forget it; GONE to others
 * sweep: silent for expireAfterMs  → forget it; GONE to others
 * anything else                    → dropped, counted by reason
 * ```
 *
 * The token is `HMAC-SHA256(secret, epoch u64 ‖ endpoint ‖ network_id ‖ node_id)[0..16]` with
 * `epoch = floor(now / 60 s)`; the current and previous epochs are accepted. It proves that the
 * registrant receives packets at the endpoint it registers, so nobody can register (or move)
 * a member to an address they do not own, and replies to unproven senders stay smaller than the
 * request (no amplification).
 *
 * Known limit: the hub cannot authenticate members (it holds no network key). Anyone who sees a
 * member's network id and node id on the path can register that node id from their own endpoint
 * with garbage; members then reject the advert (bad tag) and the real member takes its entry back
 * on its next keepalive. That is denial of service, which a hub-based design cannot rule out.
 *
 * @module
 */

import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha256";
import { timingSafeEqual } from "node:crypto";
import {
  encodeEndpoint,
  type Endpoint,
  endpointKey,
  normalizeEndpoint,
} from "../protocol/endpoint.ts";
import {
  CHALLENGE_LEN,
  decodeHubMessage,
  encodeHubMessage,
  type LeaveMessage,
  type RegisterMessage,
  TOKEN_LEN,
} from "../protocol/hub_messages.ts";

/** Default keepalive interval the hub asks members for. */
export const KEEPALIVE_MS = 20_000;
/** Default silence after which a member is forgotten, as a multiple of the keepalive. */
export const EXPIRE_AFTER_KEEPALIVES = 3;
/** Token epoch length; tokens of the current and the previous epoch are accepted. */
export const TOKEN_EPOCH_MS = 60_000;
/** Default bound on members of one network. */
export const MAX_MEMBERS_PER_NETWORK = 1024;
/** Default bound on networks. */
export const MAX_NETWORKS = 10_000;
/** Default bound on members over all networks. */
export const MAX_MEMBERS = 100_000;
/** A member gets the full member list at most this often (except when it joins). */
export const FULL_LIST_MIN_INTERVAL_MS = 5_000;
/** Length of the per-process token secret. */
export const TOKEN_SECRET_LEN = 32;

/** Tuning and injection for a {@linkcode Registry}. */
export interface RegistryOptions {
  /** Keepalive interval told to members, in ms (whole seconds, 1..65535 s). Default 20 s. */
  keepaliveMs?: number;
  /** Silence after which a member is forgotten, in ms. Default 3 × keepalive. */
  expireAfterMs?: number;
  /** Default {@linkcode MAX_MEMBERS_PER_NETWORK}. */
  maxMembersPerNetwork?: number;
  /** Default {@linkcode MAX_NETWORKS}. */
  maxNetworks?: number;
  /** Default {@linkcode MAX_MEMBERS}. */
  maxMembers?: number;
  /** Token secret (≥ 16 bytes). Default: 32 random bytes, new for every process. */
  secret?: Uint8Array;
  /** Called for joins, leaves, expiries and drops (the server logs them). */
  onEvent?: (event: RegistryEvent) => void;
}

/** One datagram to send: out of socket `socketIndex` to `to`. */
export interface HubSend {
  readonly to: Endpoint;
  readonly socketIndex: number;
  readonly bytes: Uint8Array;
}

/** Something worth logging. Ids are the raw 16 bytes (log a short hex form, nothing more). */
export type RegistryEvent =
  | { readonly kind: "network-created"; readonly networkId: Uint8Array }
  | { readonly kind: "network-removed"; readonly networkId: Uint8Array }
  | {
    readonly kind: "joined" | "left" | "expired";
    readonly networkId: Uint8Array;
    readonly nodeId: Uint8Array;
    /** Members of the network afterwards. */
    readonly members: number;
  }
  | { readonly kind: "dropped"; readonly reason: string };

/** What the registry knows about one member (read-only view for tests and stats). */
export interface MemberState {
  readonly nodeId: Uint8Array;
  /** Normalised source endpoint of its last valid REGISTER. */
  readonly endpoint: Endpoint;
  /** Index of the hub socket its packets arrive on; replies and pushes leave from there. */
  readonly socketIndex: number;
  /** Its sealed advert (a copy). */
  readonly advert: Uint8Array;
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
}

/** Counters of a {@linkcode Registry}. */
export interface RegistryCounters {
  /** Datagrams handed to {@linkcode Registry.handle}. */
  received: number;
  /** CHALLENGEs sent. */
  challenges: number;
  /** REGISTERs accepted (valid token). */
  registrations: number;
  joins: number;
  leaves: number;
  expiries: number;
  /** MEMBER messages produced (full lists and pushes). */
  memberMessages: number;
  /** GONE messages produced. */
  goneMessages: number;
}

interface Member extends MemberState {
  endpoint: Endpoint;
  endpointKey: string;
  socketIndex: number;
  advert: Uint8Array;
  lastSeenMs: number;
  lastFullListMs: number;
  /** Encoded MEMBER message for this member, rebuilt when endpoint or advert change. */
  memberMessage: Uint8Array;
}

interface Network {
  readonly networkId: Uint8Array;
  readonly members: Map<string, Member>;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lower-case hex of bytes (for map keys and short log ids). */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!];
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The hub's member registry. See the module documentation for the protocol it implements. */
export class Registry {
  /** Keepalive interval told to members, in ms. */
  readonly keepaliveMs: number;
  /** Silence after which a member is forgotten, in ms. */
  readonly expireAfterMs: number;
  /** Drops by reason. The set of reasons is fixed (no data in them), so this stays small. */
  readonly drops: Record<string, number> = {};
  /** Event counters. */
  readonly counters: RegistryCounters = {
    received: 0,
    challenges: 0,
    registrations: 0,
    joins: 0,
    leaves: 0,
    expiries: 0,
    memberMessages: 0,
    goneMessages: 0,
  };

  readonly #maxMembersPerNetwork: number;
  readonly #maxNetworks: number;
  readonly #maxMembers: number;
  readonly #secret: Uint8Array;
  readonly #onEvent: ((event: RegistryEvent) => void) | undefined;
  readonly #networks = new Map<string, Network>();
  #memberCount = 0;

  /** Throws `RangeError` on nonsensical options (a start-up mistake). */
  constructor(options: RegistryOptions = {}) {
    this.keepaliveMs = options.keepaliveMs ?? KEEPALIVE_MS;
    const keepaliveS = this.keepaliveMs / 1000;
    if (!Number.isInteger(keepaliveS) || keepaliveS < 1 || keepaliveS > 0xffff) {
      throw new RangeError(`keepalive must be 1..65535 whole seconds, got ${keepaliveS} s`);
    }
    this.expireAfterMs = options.expireAfterMs ?? EXPIRE_AFTER_KEEPALIVES * this.keepaliveMs;
    if (!(this.expireAfterMs > this.keepaliveMs)) {
      throw new RangeError(
        `expiry (${this.expireAfterMs} ms) must exceed the keepalive (${this.keepaliveMs} ms)`,
      );
    }
    this.#maxMembersPerNetwork = positive("maxMembersPerNetwork", options.maxMembersPerNetwork) ??
      MAX_MEMBERS_PER_NETWORK;
    this.#maxNetworks = positive("maxNetworks", options.maxNetworks) ?? MAX_NETWORKS;
    this.#maxMembers = positive("maxMembers", options.maxMembers) ?? MAX_MEMBERS;
    const secret = options.secret ??
      crypto.getRandomValues(new Uint8Array(TOKEN_SECRET_LEN));
    if (secret.length < 16) throw new RangeError("token secret needs at least 16 bytes");
    this.#secret = secret.slice();
    this.#onEvent = options.onEvent;
  }

  /** Number of networks with at least one member. */
  get networkCount(): number {
    return this.#networks.size;
  }

  /** Number of members over all networks. */
  get memberCount(): number {
    return this.#memberCount;
  }

  /** Members per network (short hex network id, as in the logs), largest first. */
  networkSizes(): { network: string; members: number }[] {
    return [...this.#networks.values()]
      .map((n) => ({ network: toHex(n.networkId.subarray(0, 4)), members: n.members.size }))
      .sort((a, b) => b.members - a.members);
  }

  /** The members of a network (by node id hex), or undefined when it has none. */
  members(networkId: Uint8Array): ReadonlyMap<string, MemberState> | undefined {
    return this.#networks.get(toHex(networkId))?.members;
  }

  /**
   * The registration token for a sender (16 bytes), as a CHALLENGE would carry it.
   * Returns `null` when `from` is not an IP endpoint.
   */
  token(
    from: Endpoint,
    networkId: Uint8Array,
    nodeId: Uint8Array,
    nowMs: number,
  ): Uint8Array | null {
    const ep = normalizeEndpoint(from);
    if (ep === null) return null;
    return this.#token(Math.floor(nowMs / TOKEN_EPOCH_MS), encodeEndpoint(ep), networkId, nodeId);
  }

  /**
   * Handles one datagram that arrived on socket `socketIndex` from `from` at `nowMs`, and returns
   * the datagrams to send. Never throws on any input: what it cannot use is counted in
   * {@linkcode Registry.drops}. Work per call is bounded by the members of one network.
   */
  handle(bytes: Uint8Array, from: Endpoint, socketIndex: number, nowMs: number): HubSend[] {
    this.counters.received++;
    const msg = decodeHubMessage(bytes);
    if (msg.kind === "invalid") return this.#drop(`invalid: ${msg.reason}`);
    const source = normalizeEndpoint(from);
    if (source === null) return this.#drop("bad source");
    switch (msg.kind) {
      case "register":
        return this.#register(msg, bytes.length, source, socketIndex, nowMs);
      case "leave":
        return this.#leave(msg, source, nowMs);
      default:
        return this.#drop(`unexpected ${msg.kind}`);
    }
  }

  /**
   * Forgets members that have been silent for {@linkcode Registry.expireAfterMs} and returns the
   * GONE messages for the remaining members. Call every few seconds; O(members).
   */
  sweep(nowMs: number): HubSend[] {
    const out: HubSend[] = [];
    for (const [netKey, network] of this.#networks) {
      for (const [nodeKey, member] of network.members) {
        if (this.#isLive(member, nowMs)) continue;
        this.#remove(netKey, network, nodeKey, member, "expired", nowMs, out);
      }
    }
    return out;
  }

  #isLive(member: Member, nowMs: number): boolean {
    return nowMs - member.lastSeenMs < this.expireAfterMs;
  }

  #drop(reason: string): HubSend[] {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    this.#onEvent?.({ kind: "dropped", reason });
    return [];
  }

  #token(epoch: number, endpoint: Uint8Array, networkId: Uint8Array, nodeId: Uint8Array) {
    const input = new Uint8Array(8 + endpoint.length + networkId.length + nodeId.length);
    new DataView(input.buffer).setBigUint64(0, BigInt(epoch));
    input.set(endpoint, 8);
    input.set(networkId, 8 + endpoint.length);
    input.set(nodeId, 8 + endpoint.length + networkId.length);
    return hmac(sha256, this.#secret, input).slice(0, TOKEN_LEN);
  }

  #tokenValid(
    token: Uint8Array,
    source: Endpoint,
    networkId: Uint8Array,
    nodeId: Uint8Array,
    nowMs: number,
  ): boolean {
    const epoch = Math.floor(nowMs / TOKEN_EPOCH_MS);
    const endpoint = encodeEndpoint(source);
    return bytesEqual(token, this.#token(epoch, endpoint, networkId, nodeId)) ||
      bytesEqual(token, this.#token(epoch - 1, endpoint, networkId, nodeId));
  }

  #register(
    msg: RegisterMessage,
    requestLen: number,
    source: Endpoint,
    socketIndex: number,
    nowMs: number,
  ): HubSend[] {
    if (!this.#tokenValid(msg.token, source, msg.networkId, msg.nodeId, nowMs)) {
      if (requestLen <= CHALLENGE_LEN) return this.#drop("register too small to challenge");
      this.counters.challenges++;
      const token = this.token(source, msg.networkId, msg.nodeId, nowMs)!;
      const bytes = encodeHubMessage({
        kind: "challenge",
        networkId: msg.networkId,
        nodeId: msg.nodeId,
        token,
      });
      return [{ to: source, socketIndex, bytes }];
    }

    const netKey = toHex(msg.networkId);
    const nodeKey = toHex(msg.nodeId);
    let network = this.#networks.get(netKey);
    let member = network?.members.get(nodeKey);
    const out: HubSend[] = [];
    if (network !== undefined && member !== undefined && !this.#isLive(member, nowMs)) {
      // Expired but not swept yet: it comes back as a new member.
      this.#remove(netKey, network, nodeKey, member, "expired", nowMs, out);
      network = this.#networks.get(netKey);
      member = undefined;
    }

    let joined = false;
    let changed = false;
    if (member === undefined) {
      if (this.#memberCount >= this.#maxMembers) return this.#drop("hub full");
      if (network === undefined) {
        if (this.#networks.size >= this.#maxNetworks) return this.#drop("too many networks");
        network = { networkId: msg.networkId.slice(), members: new Map() };
        this.#networks.set(netKey, network);
        this.#onEvent?.({ kind: "network-created", networkId: network.networkId });
      } else if (network.members.size >= this.#maxMembersPerNetwork) {
        return this.#drop("network full");
      }
      const advert = msg.advert.slice();
      member = {
        nodeId: msg.nodeId.slice(),
        endpoint: source,
        endpointKey: endpointKey(source),
        socketIndex,
        advert,
        firstSeenMs: nowMs,
        lastSeenMs: nowMs,
        lastFullListMs: -Infinity,
        memberMessage: new Uint8Array(0),
      };
      member.memberMessage = this.#memberMessage(network, member);
      network.members.set(nodeKey, member);
      this.#memberCount++;
      this.counters.joins++;
      joined = true;
      this.#onEvent?.({
        kind: "joined",
        networkId: network.networkId,
        nodeId: member.nodeId,
        members: network.members.size,
      });
    } else {
      const key = endpointKey(source);
      if (key !== member.endpointKey || !bytesEqual(msg.advert, member.advert)) {
        member.endpoint = source;
        member.endpointKey = key;
        member.advert = msg.advert.slice();
        member.memberMessage = this.#memberMessage(network!, member);
        changed = true;
      }
      member.socketIndex = socketIndex;
      member.lastSeenMs = nowMs;
    }
    network = network!;
    this.counters.registrations++;

    out.push({
      to: source,
      socketIndex,
      bytes: encodeHubMessage({
        kind: "registered",
        networkId: network.networkId,
        nodeId: member.nodeId,
        keepaliveS: this.keepaliveMs / 1000,
        members: Math.min(network.members.size, 0xffff),
        endpoint: source,
      }),
    });

    if (joined || changed) {
      for (const other of network.members.values()) {
        if (other === member || !this.#isLive(other, nowMs)) continue;
        out.push({
          to: other.endpoint,
          socketIndex: other.socketIndex,
          bytes: member.memberMessage,
        });
        this.counters.memberMessages++;
      }
    }

    if (joined || msg.fullList) {
      if (!joined && nowMs - member.lastFullListMs < FULL_LIST_MIN_INTERVAL_MS) {
        this.#drop("full list rate limited");
      } else {
        member.lastFullListMs = nowMs;
        for (const other of network.members.values()) {
          if (other === member || !this.#isLive(other, nowMs)) continue;
          out.push({ to: source, socketIndex, bytes: other.memberMessage });
          this.counters.memberMessages++;
        }
      }
    }
    return out;
  }

  #leave(msg: LeaveMessage, source: Endpoint, nowMs: number): HubSend[] {
    if (!this.#tokenValid(msg.token, source, msg.networkId, msg.nodeId, nowMs)) {
      return this.#drop("leave with bad token");
    }
    const netKey = toHex(msg.networkId);
    const nodeKey = toHex(msg.nodeId);
    const network = this.#networks.get(netKey);
    const member = network?.members.get(nodeKey);
    if (network === undefined || member === undefined) return this.#drop("leave of unknown member");
    if (member.endpointKey !== endpointKey(source)) return this.#drop("leave from other endpoint");
    const out: HubSend[] = [];
    this.#remove(netKey, network, nodeKey, member, "left", nowMs, out);
    return out;
  }

  #remove(
    netKey: string,
    network: Network,
    nodeKey: string,
    member: Member,
    why: "left" | "expired",
    nowMs: number,
    out: HubSend[],
  ): void {
    network.members.delete(nodeKey);
    this.#memberCount--;
    if (why === "left") this.counters.leaves++;
    else this.counters.expiries++;
    this.#onEvent?.({
      kind: why,
      networkId: network.networkId,
      nodeId: member.nodeId,
      members: network.members.size,
    });
    if (network.members.size === 0) {
      this.#networks.delete(netKey);
      this.#onEvent?.({ kind: "network-removed", networkId: network.networkId });
      return;
    }
    const gone = encodeHubMessage({
      kind: "gone",
      networkId: network.networkId,
      nodeId: member.nodeId,
    });
    for (const other of network.members.values()) {
      if (!this.#isLive(other, nowMs)) continue;
      out.push({ to: other.endpoint, socketIndex: other.socketIndex, bytes: gone });
      this.counters.goneMessages++;
    }
  }

  #memberMessage(network: Network, member: Member): Uint8Array {
    return encodeHubMessage({
      kind: "member",
      networkId: network.networkId,
      nodeId: member.nodeId,
      endpoint: member.endpoint,
      advert: member.advert,
    });
  }
}

function positive(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}
