/**
 * An in-process fake network for deterministic mesh tests: hosts with IP addresses, UDP sockets,
 * NAT boxes, a hub around the real {@linkcode Registry}, fake TUN devices and a virtual clock.
 * Nothing here touches a real socket or a real timer; `run(untilMs)` moves the clock forward
 * event by event, so hours of protocol time take milliseconds. The models are wireguard-go's
 * `tuntest`/`bindtest` and Nebula's `e2e` router.
 *
 * ```text
 *   inside host ──► NAT (outbound: map source, open a pinhole for that exact remote) ──┐
 *                                                                                      ▼
 *   public host ◄──────────────────────── "internet" (latency, seeded loss) ◄──────────┘
 *                                                                                      │
 *   inside host ◄── NAT (inbound: pinhole for this remote endpoint? else dropped) ◄────┘
 * ```
 *
 * NAT boxes behave like Linux MASQUERADE with conntrack: the mapping is endpoint-independent (one
 * public port per inside socket, whatever the destination), the filtering is address-and-port
 * dependent (an inbound packet passes only if the inside socket sent to exactly that remote
 * endpoint before, and the entry has not timed out). Outbound translation happens when a packet
 * is sent (the NAT is next to the sender), inbound filtering when it arrives (so simultaneous
 * open works as it does on a real path). Hosts behind one NAT reach each other directly.
 *
 * @module
 */
import { Registry, type RegistryOptions } from "../hub/registry.ts";
import { Mesh, type MeshEvent, type MeshOptions, type MeshTimers } from "../client/mesh.ts";
import type { UdpEndpoint } from "../client/udp.ts";
import type { Prefix } from "../client/route_table.ts";
import { nodeAddress, ulaPrefix } from "../protocol/keys.ts";
import { publicKeyOf } from "../protocol/wireguard/mod.ts";

/** Default one-way latency of every path, in virtual ms. */
export const DEFAULT_LATENCY_MS = 10;
/** How often `run()` calls every mesh's `tick()`, in virtual ms. */
export const MESH_TICK_INTERVAL_MS = 200;
/** How often the fake hub sweeps its registry, in virtual ms. */
export const HUB_SWEEP_INTERVAL_MS = 1_000;
/** Conntrack UDP timeout of the fake NATs (Linux `nf_conntrack_udp_timeout_stream`), in ms. */
export const NAT_UDP_TIMEOUT_MS = 120_000;

/** A small seeded PRNG (mulberry32): the same seed gives the same run. */
export class Rng {
  #state: number;

  /** Seeds the generator; any 32-bit integer. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** `n` pseudo-random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** Formats an endpoint as `ip:port` / `[ip]:port` (as `formatEndpoint` in protocol/). */
export function fmt(ep: UdpEndpoint): string {
  return ep.hostname.includes(":") ? `[${ep.hostname}]:${ep.port}` : `${ep.hostname}:${ep.port}`;
}

/** A datagram as the network saw it: for taps (capturing, asserting on paths). */
export interface Delivery {
  /** Virtual time of delivery. */
  readonly atMs: number;
  /** Source as the receiver sees it (after NAT). */
  readonly from: UdpEndpoint;
  /** Receiving socket's own endpoint (inside address for hosts behind a NAT). */
  readonly to: UdpEndpoint;
  /** The payload (the receiver gets a copy). */
  readonly data: Uint8Array;
}

/** Counters of a {@linkcode FakeNet}. */
export interface FakeNetStats {
  sent: number;
  delivered: number;
  /** Dropped by the seeded loss. */
  lost: number;
  /** No host owns the destination address (e.g. another site's private address). */
  unroutable: number;
  /** Host exists but nothing listens on the port, or the socket/host is down. */
  noSocket: number;
  /** Dropped by a NAT's inbound filter. */
  filtered: number;
}

/** A host (one IP address) on the internet or behind a {@linkcode FakeNat}. */
export class FakeHost {
  readonly sockets = new Map<number, FakeSocket>();
  /** While false the host sends and receives nothing (cable pulled). */
  up = true;

  /** @internal Use {@linkcode FakeNet.host}. */
  constructor(readonly net: FakeNet, readonly ip: string, readonly nat: FakeNat | null) {}

  /** Binds a UDP socket; `receive` gets every datagram delivered to it. */
  bind(port: number, receive: (data: Uint8Array, from: UdpEndpoint) => void): FakeSocket {
    if (this.sockets.has(port)) throw new Error(`${this.ip}:${port} is already bound`);
    const socket = new FakeSocket(this, port, receive);
    this.sockets.set(port, socket);
    return socket;
  }
}

/** A bound UDP socket. */
export class FakeSocket {
  /** @internal Use {@linkcode FakeHost.bind}. */
  constructor(
    readonly host: FakeHost,
    readonly port: number,
    public receive: (data: Uint8Array, from: UdpEndpoint) => void,
  ) {}

  /** The socket's own address (the inside address behind a NAT). */
  get endpoint(): UdpEndpoint {
    return { hostname: this.host.ip, port: this.port };
  }

  /** Sends a datagram (delivered after the path latency, unless lost or filtered). */
  send(data: Uint8Array, to: UdpEndpoint): void {
    this.host.net.send(this, data, to);
  }

  /** Unbinds the socket. */
  close(): void {
    this.host.sockets.delete(this.port);
  }
}

interface Conntrack {
  /** Inside socket, `ip:port`. */
  inside: UdpEndpoint;
  lastUsedMs: number;
}

/**
 * A NAT box with endpoint-independent mapping and address-and-port-dependent filtering (Linux
 * MASQUERADE + conntrack, without port preservation so mappings are visible in tests); or, with
 * `symmetric`, a new public port for every (inside socket, remote) pair, taken in sequence (a
 * sequential symmetric NAT).
 */
export class FakeNat {
  /** Inside socket key → public port. */
  readonly #mappings = new Map<string, number>();
  /** Public port → inside socket. */
  readonly #byPort = new Map<number, UdpEndpoint>();
  /** `publicPort|remote` → conntrack entry (the pinhole). */
  readonly #conntrack = new Map<string, Conntrack>();
  #nextPort: number;
  /** Inbound packets dropped by the filter. */
  filtered = 0;

  /** @internal Use {@linkcode FakeNet.nat}. */
  constructor(
    readonly net: FakeNet,
    readonly publicIp: string,
    readonly udpTimeoutMs: number,
    firstPort: number,
    readonly symmetric = false,
  ) {
    this.#nextPort = firstPort;
  }

  /** The public endpoint currently mapped to an inside socket, if any. */
  publicEndpointOf(inside: UdpEndpoint): UdpEndpoint | undefined {
    const port = this.#mappings.get(fmt(inside));
    return port === undefined ? undefined : { hostname: this.publicIp, port };
  }

  /** Forgets every mapping and pinhole; new mappings get new public ports (a NAT reboot). */
  reboot(): void {
    this.#mappings.clear();
    this.#byPort.clear();
    this.#conntrack.clear();
    this.#nextPort += 1000;
  }

  /** @internal Outbound: the public source for a packet from `inside` to `remote`. */
  outbound(inside: UdpEndpoint, remote: UdpEndpoint, nowMs: number): UdpEndpoint {
    const key = this.symmetric ? `${fmt(inside)}|${fmt(remote)}` : fmt(inside);
    let port = this.#mappings.get(key);
    if (port === undefined) {
      port = this.#nextPort++;
      this.#mappings.set(key, port);
      this.#byPort.set(port, inside);
    }
    this.#conntrack.set(`${port}|${fmt(remote)}`, { inside, lastUsedMs: nowMs });
    return { hostname: this.publicIp, port };
  }

  /** @internal Inbound: the inside socket for a packet from `remote` to `port`, or null. */
  inbound(remote: UdpEndpoint, port: number, nowMs: number): UdpEndpoint | null {
    const entry = this.#conntrack.get(`${port}|${fmt(remote)}`);
    if (entry === undefined || nowMs - entry.lastUsedMs >= this.udpTimeoutMs) {
      this.filtered++;
      return null;
    }
    entry.lastUsedMs = nowMs; // conntrack refreshes on traffic in either direction
    return entry.inside;
  }
}

interface Pending {
  atMs: number;
  seq: number;
  /** Source as the receiver will see it. */
  from: UdpEndpoint;
  /** Destination address as routed on the internet (or inside the sender's NAT). */
  to: UdpEndpoint;
  /** The NAT realm the destination lives in (null: the internet). */
  realm: FakeNat | null;
  data: Uint8Array;
}

interface Timer {
  intervalMs: number;
  nextMs: number;
  fn: (nowMs: number) => void;
}

/** Options of {@linkcode FakeNet}. */
export interface FakeNetOptions {
  /** PRNG seed for loss (and for anything a test draws from `net.rng`). Default 1. */
  seed?: number;
  /** One-way latency of every path. Default {@linkcode DEFAULT_LATENCY_MS}. */
  latencyMs?: number;
  /** Probability that a datagram is lost, 0..1. Default 0. */
  lossRate?: number;
}

/** The fake network: routing, NATs, the virtual clock and the event queue. */
export class FakeNet {
  readonly rng: Rng;
  latencyMs: number;
  lossRate: number;
  readonly stats: FakeNetStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    unroutable: 0,
    noSocket: 0,
    filtered: 0,
  };
  /** Called for every delivered datagram, before the receiver sees it. */
  tap: ((d: Delivery) => void) | null = null;

  #nowMs = 0;
  #seq = 0;
  readonly #queue: Pending[] = [];
  readonly #timers: Timer[] = [];
  /** Public addresses: hosts and NAT outside addresses. */
  readonly #public = new Map<string, FakeHost | FakeNat>();
  /** Inside hosts by NAT. */
  readonly #inside = new Map<FakeNat, Map<string, FakeHost>>();
  #natPorts = 20_000;

  constructor(options: FakeNetOptions = {}) {
    this.rng = new Rng(options.seed ?? 1);
    this.latencyMs = options.latencyMs ?? DEFAULT_LATENCY_MS;
    this.lossRate = options.lossRate ?? 0;
  }

  /** The virtual clock, in ms since the network was created. */
  get nowMs(): number {
    return this.#nowMs;
  }

  /** A clock function for injection (`now: net.clock`). */
  readonly clock = (): number => this.#nowMs;

  /** Adds a NAT box with a public address. */
  nat(publicIp: string, options: { udpTimeoutMs?: number; symmetric?: boolean } = {}): FakeNat {
    if (this.#public.has(publicIp)) throw new Error(`${publicIp} is taken`);
    const nat = new FakeNat(
      this,
      publicIp,
      options.udpTimeoutMs ?? NAT_UDP_TIMEOUT_MS,
      this.#natPorts,
      options.symmetric ?? false,
    );
    this.#natPorts += 10_000;
    this.#public.set(publicIp, nat);
    this.#inside.set(nat, new Map());
    return nat;
  }

  /** Adds a host: on the internet, or inside `nat` with a private address. */
  host(ip: string, nat: FakeNat | null = null): FakeHost {
    const realm = nat === null ? this.#public : this.#inside.get(nat)!;
    if (realm.has(ip)) throw new Error(`${ip} is taken`);
    const host = new FakeHost(this, ip, nat);
    realm.set(ip, host);
    return host;
  }

  /** Calls `fn` every `intervalMs` of virtual time during `run()`, first at the next slot. */
  every(intervalMs: number, fn: (nowMs: number) => void): void {
    const nextMs = Math.ceil((this.#nowMs + 1) / intervalMs) * intervalMs;
    this.#timers.push({ intervalMs, nextMs, fn });
  }

  /** @internal Use {@linkcode FakeSocket.send}. */
  send(socket: FakeSocket, data: Uint8Array, to: UdpEndpoint): void {
    this.stats.sent++;
    const host = socket.host;
    if (!host.up) return;
    if (this.lossRate > 0 && this.rng.next() < this.lossRate) {
      this.stats.lost++;
      return;
    }
    let from = socket.endpoint;
    let realm: FakeNat | null = null;
    if (host.nat !== null) {
      if (this.#inside.get(host.nat)!.has(to.hostname)) {
        realm = host.nat; // same site: no translation
      } else {
        from = host.nat.outbound(from, to, this.#nowMs);
      }
    }
    this.#push({
      atMs: this.#nowMs + this.latencyMs,
      seq: this.#seq++,
      from,
      to: { hostname: to.hostname, port: to.port },
      realm,
      data: data.slice(),
    });
  }

  /** Delivers datagrams and fires timers in time order until the clock reaches `untilMs`. */
  run(untilMs: number): void {
    for (;;) {
      const nextPacket = this.#queue[0]?.atMs ?? Infinity;
      let nextTimer = Infinity;
      for (const t of this.#timers) nextTimer = Math.min(nextTimer, t.nextMs);
      const next = Math.min(nextPacket, nextTimer);
      if (next > untilMs) break;
      this.#nowMs = next;
      // Packets first at equal times: timers see everything that arrived up to now.
      if (nextPacket <= nextTimer) {
        this.#deliver(this.#pop());
      } else {
        for (const t of this.#timers) {
          if (t.nextMs !== next) continue;
          t.nextMs += t.intervalMs;
          t.fn(next);
        }
      }
    }
    this.#nowMs = Math.max(this.#nowMs, untilMs);
  }

  /** Runs for `ms` of virtual time. */
  runFor(ms: number): void {
    this.run(this.#nowMs + ms);
  }

  /**
   * Runs until `done()` holds (checked after every event) or `timeoutMs` passes; returns whether
   * it held. The clock stops at the event that made it true.
   */
  runUntil(done: () => boolean, timeoutMs: number): boolean {
    const limit = this.#nowMs + timeoutMs;
    while (!done()) {
      if (this.#nowMs >= limit) return false;
      const nextPacket = this.#queue[0]?.atMs ?? Infinity;
      let nextTimer = Infinity;
      for (const t of this.#timers) nextTimer = Math.min(nextTimer, t.nextMs);
      this.run(Math.min(limit, nextPacket, nextTimer));
    }
    return true;
  }

  #deliver(p: Pending): void {
    let host: FakeHost | undefined;
    let port = p.to.port;
    if (p.realm !== null) {
      host = this.#inside.get(p.realm)!.get(p.to.hostname);
    } else {
      const target = this.#public.get(p.to.hostname);
      if (target instanceof FakeNat) {
        const inside = target.inbound(p.from, p.to.port, this.#nowMs);
        if (inside === null) {
          this.stats.filtered++;
          return;
        }
        host = this.#inside.get(target)!.get(inside.hostname);
        port = inside.port;
      } else {
        host = target;
      }
    }
    if (host === undefined) {
      this.stats.unroutable++;
      return;
    }
    const socket = host.sockets.get(port);
    if (!host.up || socket === undefined) {
      this.stats.noSocket++;
      return;
    }
    this.stats.delivered++;
    this.tap?.({ atMs: this.#nowMs, from: p.from, to: socket.endpoint, data: p.data });
    socket.receive(p.data, p.from);
  }

  // A binary heap ordered by (atMs, seq): deterministic FIFO among equal times.
  #push(p: Pending): void {
    const q = this.#queue;
    q.push(p);
    let i = q.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(q[i]!, q[parent]!)) break;
      [q[i], q[parent]] = [q[parent]!, q[i]!];
      i = parent;
    }
  }

  #pop(): Pending {
    const q = this.#queue;
    const top = q[0]!;
    const last = q.pop()!;
    if (q.length > 0) {
      q[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < q.length && before(q[l]!, q[m]!)) m = l;
        if (r < q.length && before(q[r]!, q[m]!)) m = r;
        if (m === i) break;
        [q[i], q[m]] = [q[m]!, q[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Pending, b: Pending): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A TUN device that records what the mesh writes and lets the test inject packets. */
export class FakeTun {
  /** Every packet written to the device, in order (copies). */
  readonly written: Uint8Array[] = [];
  /** Where injected packets go (the mesh's `handleTunPacket`). */
  handler: ((packet: Uint8Array) => void) | null = null;

  /** The mesh's `writeTun`. */
  readonly write = (packet: Uint8Array): void => {
    this.written.push(packet.slice());
  };

  /** Injects a packet as if the kernel routed it into the device (handled synchronously). */
  inject(packet: Uint8Array): void {
    if (this.handler === null) throw new Error("FakeTun has no handler");
    this.handler(packet.slice());
  }
}

/**
 * The hub: the real {@linkcode Registry} behind fake sockets, one per address (the socket index
 * the registry sees). `down()` stops it answering (and receiving); `restart()` replaces the
 * registry with a fresh one (new token secret, no members), as a restarted process would be.
 */
export class FakeHub {
  registry: Registry;
  readonly sockets: FakeSocket[];
  /** While false, datagrams to the hub are dropped and it sends nothing (sweeps included). */
  up = true;
  /** REGISTER/LEAVE datagrams the hub received while up. */
  received = 0;
  readonly #options: RegistryOptions;

  constructor(
    readonly net: FakeNet,
    readonly endpoints: UdpEndpoint[],
    options: RegistryOptions = {},
  ) {
    this.#options = options;
    this.registry = new Registry(options);
    this.sockets = endpoints.map((ep, index) => {
      const host = net.host(ep.hostname);
      return host.bind(ep.port, (data, from) => this.#receive(index, data, from));
    });
    net.every(HUB_SWEEP_INTERVAL_MS, (nowMs) => {
      if (this.up) this.#send(this.registry.sweep(nowMs));
    });
  }

  /** The first hub endpoint. */
  get endpoint(): UdpEndpoint {
    return this.endpoints[0]!;
  }

  /** A hub process that died: nothing in, nothing out. */
  down(): void {
    this.up = false;
  }

  /** A new hub process: empty registry, new token secret. */
  restart(): void {
    this.registry = new Registry(this.#options);
    this.up = true;
  }

  #receive(index: number, data: Uint8Array, from: UdpEndpoint): void {
    if (!this.up) return;
    this.received++;
    this.#send(this.registry.handle(data, from, index, this.net.nowMs));
  }

  #send(out: { to: UdpEndpoint; socketIndex: number; bytes: Uint8Array }[]): void {
    for (const s of out) this.sockets[s.socketIndex]!.send(s.bytes, s.to);
  }
}

/** One mesh client on the fake network, with its socket, TUN and recorded events. */
export interface FakeMember {
  readonly name: string;
  readonly mesh: Mesh;
  readonly host: FakeHost;
  readonly socket: FakeSocket;
  readonly tun: FakeTun;
  /** Every event the mesh reported, in order. */
  readonly events: MeshEvent[];
  /** Its VPN IPv6 address (16 bytes). */
  readonly address: Uint8Array;
  /** What `localAddresses()` returns; change it to make the mesh re-advertise. */
  localAddresses: string[];
}

/** Options of {@linkcode addMember}. */
export interface AddMemberOptions {
  name: string;
  /** Host to run on (one member per host). */
  host: FakeHost;
  /** Network PSK, 32 bytes. */
  psk: Uint8Array;
  /** Hubs to register with. */
  hubs: UdpEndpoint[];
  timers: MeshTimers;
  /** Private key; default derived from `net.rng`. */
  privateKey?: Uint8Array;
  /** UDP port. Default 51820. */
  port?: number;
  /** VPN IPv6 address (16 bytes). Default: the PSK network's ULA prefix + key-derived id. */
  address?: Uint8Array;
  /** Extra `MeshOptions` fields (static peers, ipv4, ...). */
  extra?: Partial<MeshOptions>;
}

/**
 * Starts a mesh client on `host`: binds its socket, gives it a fake TUN, drives it from the
 * virtual clock and ticks it every {@linkcode MESH_TICK_INTERVAL_MS}. Its VPN address is the
 * network's default (ULA prefix + key-derived interface id); its local candidate is the host's
 * address.
 */
export function addMember(net: FakeNet, o: AddMemberOptions): FakeMember {
  const privateKey = o.privateKey ?? net.rng.bytes(32);
  const address = o.address ?? nodeAddress(ulaPrefix(o.psk), publicKeyOf(privateKey));
  const ipv6: Prefix = { address, prefixLength: 128 };
  const port = o.port ?? 51820;
  const tun = new FakeTun();
  const events: MeshEvent[] = [];
  let mesh: Mesh | null = null;
  const socket = o.host.bind(port, (data, from) => mesh?.handleDatagram(data, from));
  const member: FakeMember = {
    name: o.name,
    get mesh() {
      return mesh!;
    },
    host: o.host,
    socket,
    tun,
    events,
    address,
    localAddresses: [o.host.ip],
  };
  mesh = new Mesh({
    psk: o.psk,
    privateKey,
    name: o.name,
    ipv6,
    hubs: o.hubs,
    timers: o.timers,
    port,
    localAddresses: () => member.localAddresses,
    send: (data, to) => socket.send(data, to),
    writeTun: tun.write,
    now: net.clock,
    onEvent: (e) => events.push(e),
    ...o.extra,
  });
  tun.handler = (p) => mesh!.handleTunPacket(p);
  net.every(MESH_TICK_INTERVAL_MS, () => mesh!.tick());
  return member;
}

/**
 * Adds `n` members named m0..m(n-1): even ones public, odd ones behind two shared NATs (so some
 * meet on a LAN), each with a key of its own. Returns the members and their private keys.
 */
export function addCrowd(
  net: FakeNet,
  n: number,
  o: Pick<AddMemberOptions, "psk" | "hubs" | "timers">,
): { members: FakeMember[]; keys: Uint8Array[] } {
  const nats = [net.nat("198.18.100.1"), net.nat("198.18.101.1")];
  const keys: Uint8Array[] = [];
  const members: FakeMember[] = [];
  for (let i = 0; i < n; i++) {
    const nat = i % 2 === 0 ? null : nats[(i >> 1) % 2]!;
    keys.push(net.rng.bytes(32));
    members.push(addMember(net, {
      ...o,
      name: `m${i}`,
      host: net.host(nat ? `198.19.${i}.2` : `198.18.1.${10 + i}`, nat),
      privateKey: keys[i]!,
    }));
  }
  return { members, keys };
}
