/**
 * The client process: opens the TUN device and the UDP socket, then drives the {@linkcode Mesh}
 * with packets and ticks until SIGINT/SIGTERM (or an abort signal), and tears everything down.
 *
 * The data path runs on the one JS thread: one await per wake-up and synchronous,
 * allocation-light work in between (the mesh's own pipeline is described in `mesh.ts`, the TUN
 * offloads in `tun_offload.ts`). On Linux both directions share one loop (`pump.ts`): one
 * combined `poll` over the TUN and UDP fds per wake-up, and each turn does both drains below:
 * the TUN's (its sealed datagrams leave at once, so a receiver's TCP ACKs never wait for the
 * socket drain), then the socket's, then flushes both batches. After a light turn (≤ 16
 * packets) it waits for the next packet right there in a synchronous `poll` (1 ms at a time,
 * 2 ms per job at most), since an awaited wait costs two thread wake-ups (~40-200 µs): a
 * ping's answer is then handled without either. For 50 ms after the last packet it stays hot
 * (sleeps in the synchronous `poll`, giving the event loop one round per ms), so sparse flows
 * skip the hops too; an idle client only awaits. Elsewhere (macOS, or the `Deno.listenDatagram`
 * socket) it is two loops, each awaiting its own fd:
 *
 * Inside → outside (readTun):
 *   poll(tun) ─► read() until EAGAIN or 1024 reads ─► with offloads, a TCP/UDP super-packet of
 *     up to 64 KB is cut into MTU-size packets in place (TunSegmenter) ─► per packet:
 *     mesh.handleTunPacket (route lookup → WireGuard encrypt straight into the socket's send
 *     batch (reserveSend / commitSend: no buffer per packet), GSO-merged with the previous
 *     datagram when it goes to the same peer with the same size)
 *   ─► end of drain (batchDone): udp.flush() = one sendmmsg for the batch (EAGAIN drops and
 *     counts the rest); the TUN writer writes out what the mesh wrote meanwhile (ICMP errors).
 *     A long drain flushes on the way, every 64 messages or 128 KiB, so the receiver gets to
 *     work while this end still encrypts (the two ends are a pipeline over the cores).
 *
 * Outside → inside (readUdp):
 *   poll(udp) ─► recvmmsg (64 a call, GRO buffers split) until the queue is empty or 1024
 *     datagrams ─► per datagram: mesh.handleDatagram
 *     (WireGuard decrypt → inner-source check → TUN writer: in-order TCP segments and, with
 *     USO, UDP datagrams of a flow are held and coalesced (TunCoalescer), anything else is
 *     written at once; handshakes, hub
 *     messages and punches may answer with udp.send)
 *   ─► end of batch (batchDone): udp.flush() (replies, keepalives, queued packets), the TUN
 *     writer writes each held flow as one GSO super-packet
 *
 * Each drain holds the mesh's clock at one reading (TurnClock): no clock call per packet.
 *
 * Timers (every TICK_MS): mesh.tick ─► udp.flush(), TUN writer flush. Anything sent outside
 * these boundaries (control requests) is flushed by the socket itself when the current job ends.
 *
 * Every queue is bounded: the kernel socket buffers (7 MiB, dropped and counted when full), the
 * socket's batch (64 messages), each peer's pre-handshake queue, the TUN writer (8 flows, one
 * 64 KB super-packet each), the TUN device's queue (`tun.queue_length`, 4096 packets).
 *
 * @module
 */
import type { ClientConfig } from "./config.ts";
import { loadOrCreateState } from "./state_file.ts";
import { Mesh } from "./mesh.ts";
import { openUdpSocket, type UdpEndpoint, type UdpSocket, type UdpSocketStats } from "./udp.ts";
import { MESSAGE_TRANSPORT } from "../protocol/wireguard/messages.ts";
import type { Prefix } from "./route_table.ts";
import { nodeAddress, ulaPrefix } from "../protocol/keys.ts";
import { formatIPv4, formatIPv6 } from "../protocol/ip_address.ts";
import { openTun } from "../ffi/tun_open.ts";
import type { TunDevice } from "../ffi/tun.ts";
import { configureInterface, localAddresses } from "../ffi/netcfg.ts";
import { log } from "../util/log.ts";
import { UserError } from "../util/cli_error.ts";
import { InterfaceConfigError } from "../ffi/netcfg.ts";
import { OsError } from "../ffi/libc.ts";
import { openSslAead } from "../ffi/libcrypto.ts";
import { formatPrefix } from "./mesh.ts";
import { TurnClock } from "./turn_clock.ts";
import { COALESCE_FLOWS, TunCoalescer, TunSegmenter, type TunWriter } from "./tun_offload.ts";
import { startCaMode } from "./ca.ts";
import { ClientDiagnostics } from "./control.ts";
import { dropPrivileges, resolveIdentity } from "./privileges.ts";
import { PeerCacheFile } from "./peer_cache.ts";
import { runPump } from "./pump.ts";
import { DataPathError, superviseLoops } from "./supervise.ts";
import { PollSet } from "../ffi/poll_set.ts";
import type { DatagramHandler } from "../ffi/udp_linux.ts";

const tunLog = log("tun");
const clientLog = log("client");

/** How often the mesh timers run. */
const TICK_MS = 200;
/** Largest packet read from the TUN device without offloads (well above any MTU we allow). */
const TUN_READ_BUFFER_LEN = 65_536;
/** Most TUN reads handled per wake-up before the loop yields to the others. */
const TUN_DRAIN_BUDGET = 1024;
/** Pause after an unexpected receive error, so a persistent one cannot spin the loop. */
const RECEIVE_ERROR_PAUSE_MS = 10;
/** Default length of the derived VPN prefix routed into the TUN. */
const DERIVED_PREFIX_LEN = 48;
/** How often the peer cache is checked for changes (and written if there are any). */
const PEER_CACHE_SAVE_MS = 2_000;

/** Options for running a client in-process (tests). */
export interface RunClientOptions {
  /** Stops the client when aborted (in addition to SIGINT/SIGTERM). */
  signal?: AbortSignal;
}

/** The VPN IPv6 address of this node: configured, or derived from the network and node key. */
export function vpnAddress(config: ClientConfig, publicKey: Uint8Array): Prefix {
  if (config.tun.ipv6) return config.tun.ipv6;
  return {
    address: nodeAddress(ulaPrefix(config.psk!), publicKey),
    prefixLength: DERIVED_PREFIX_LEN,
  };
}

/** Runs a client until it is told to stop. Start-up mistakes throw UserError subclasses. */
export async function runClient(config: ClientConfig, options: RunClientOptions = {}) {
  const state = await loadOrCreateState(config.node.stateFile);
  if (state.created) {
    clientLog.info("created a new node key in {path}", { path: config.node.stateFile });
  }
  // CA mode: keys from the CA, addresses and name from this node's certificate (client/ca.ts).
  const ca = config.ca ? await startCaMode(config, state.publicKey) : null;
  const ipv6 = ca?.ipv6 ?? vpnAddress(config, state.publicKey);
  const ipv4 = ca ? ca.ipv4 : config.tun.ipv4;
  // Resolved before anything is created, so a typo in node.user fails fast.
  const identity = config.node.user === undefined
    ? undefined
    : resolveIdentity(config.node.user, config.node.group);

  // Read (and, if we are going to drop root, opened for writing) while we still may.
  const cache = config.node.peerCache === "" ? null : await PeerCacheFile.open(
    config.node.peerCache,
    { nowMs: Date.now(), keepDescriptor: identity !== undefined },
  );
  if (cache !== null) {
    const { loaded } = cache;
    if (loaded.warning !== null) {
      clientLog.warn("peer cache {path}: {warning}; ignored", {
        path: config.node.peerCache,
        warning: loaded.warning,
      });
    }
    if (loaded.entries.length > 0 || loaded.expired > 0) {
      clientLog.info("peer cache {path}: {count} members, {expired} expired", {
        path: config.node.peerCache,
        count: loaded.entries.length,
        expired: loaded.expired,
      });
    }
  }

  // Claimed first: a second client on the same control socket is refused before it touches
  // anything.
  const diagnostics = await ClientDiagnostics.open(config);
  let tun;
  try {
    tun = startupStep(() => openTun(config.tun.interface, { offload: config.tun.offload }));
  } catch (err) {
    await diagnostics.close();
    throw err;
  }
  let socket;
  try {
    await configureInterface({
      name: tun.name,
      mtu: config.tun.mtu,
      queueLength: config.tun.queueLength,
      ipv6: { address: formatIPv6(ipv6.address), prefixLength: ipv6.prefixLength },
      ipv4: ipv4 && { address: formatIPv4(ipv4.address), prefixLength: ipv4.prefixLength },
      // Static peers may live outside our own prefix.
      routes: config.peers.flatMap((p) => [...p.ipv6, ...p.ipv4]).map(formatPrefix),
    });
    socket = startupStep(() => openUdpSocket(config.node.port), `udp port ${config.node.port}`);
  } catch (err) {
    tun.close();
    await diagnostics.close();
    if (err instanceof InterfaceConfigError) throw new UserError(err.message, { cause: err });
    throw err;
  }
  tunLog.info("{name} up: {addresses}, mtu {mtu}, queue {queue}, offloads {offloads}", {
    name: tun.name,
    addresses: [ipv6, ...(ipv4 ? [ipv4] : [])].map(formatPrefix).join(", "),
    mtu: config.tun.mtu,
    // macOS utun has no transmit queue to size.
    queue: Deno.build.os === "linux" ? config.tun.queueLength : "n/a",
    offloads: tun.offloads?.length ? tun.offloads.join(",") : "none",
  });
  if (identity !== undefined) {
    // Everything that needs root exists now (TUN, addresses, routes, socket): drop it for good.
    try {
      dropPrivileges(identity);
    } catch (err) {
      socket.close();
      tun.close();
      await diagnostics.close();
      throw new UserError(`cannot drop privileges to ${identity.user}: ${String(err)}`, {
        cause: err,
      });
    }
    clientLog.info(
      "dropped privileges to user {user} ({uid}), group {group} ({gid}); setuid(0) now fails",
      { ...identity },
    );
  }

  const udp = socket;
  const tunDevice = tun;
  // With virtio headers every write needs one; the coalescer adds it and merges TCP segments,
  // and UDP datagrams too where the kernel took USO (its GSO can then cut them back out).
  const tunOut: TunWriter = tun.vnetHdr
    ? new TunCoalescer(
      (frame) => tunDevice.write(frame),
      COALESCE_FLOWS,
      tun.offloads?.includes("uso6") ?? false,
    )
    : { write: (packet) => void tunDevice.write(packet), flush: () => {} };
  // OpenSSL's ChaCha20-Poly1305 with reused contexts is ~5x the portable one (ffi/libcrypto.ts).
  const aead = openSslAead();
  // Held at one reading per drain of the TUN or the socket: no clock op per packet.
  const clock = new TurnClock();
  const mesh = new Mesh({
    psk: ca?.wireGuardPsk ?? config.psk!,
    ...(ca ? { networkSecret: ca.networkSecret, policy: ca.policy } : {}),
    privateKey: state.privateKey,
    name: config.node.name,
    ipv6: { address: ipv6.address, prefixLength: 128 },
    ipv4: ipv4 ? { address: ipv4.address, prefixLength: 32 } : undefined,
    hubs: config.hubs,
    staticPeers: config.peers.map((p, i) => ({
      name: p.name ?? `peer${i + 1}`,
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      addresses: [...p.ipv6, ...p.ipv4],
    })),
    timers: {
      rekeyAfterMs: config.testing.rekeyAfterMs,
      rejectAfterMs: config.testing.rejectAfterMs,
      keepaliveMs: config.testing.keepaliveMs,
      hubKeepaliveMs: config.testing.hubKeepaliveMs,
    },
    port: udp.port,
    // The TUN is excluded by name: our VPN addresses must never become underlay candidates.
    localAddresses: () => localAddresses({ exclude: [tun.name] }).map((a) => a.address),
    send: (data, to) => udp.send(data, to),
    ...(udp.reserve && udp.commit
      ? {
        reserveSend: (maxLen: number) => udp.reserve!(maxLen),
        commitSend: (len: number, to: UdpEndpoint) => udp.commit!(len, to),
      }
      : {}),
    writeTun: (packet) => tunOut.write(packet),
    now: clock.now,
    aead: aead ?? undefined,
    onEvent: diagnostics.onEvent,
    // Diagnostics inside the VPN: ICMP errors back to the TUN (client/icmp.ts).
    mtu: config.tun.mtu,
    vpnPrefixes: [
      ipv6,
      ...(ipv4 ? [ipv4] : []),
      ...config.peers.flatMap((p) => [...p.ipv6, ...p.ipv4]),
    ],
    peerCache: cache?.loaded.entries ?? [],
    bootstrap: config.bootstrap,
  });
  diagnostics.attach(mesh, {
    interface: tun.name,
    mtu: config.tun.mtu,
    socketDrops: () => socketDrops(udp.stats),
  });
  clientLog.info(
    "node {name}: {address}, udp port {port} ({socket}), {hubs} hub(s), crypto {aead}",
    {
      name: config.node.name,
      address: formatPrefix(ipv6),
      port: udp.port,
      socket: udp.kind,
      hubs: config.hubs.length,
      aead: aead?.name ?? "node:crypto",
    },
  );

  let stopping = false;
  const stopped = Promise.withResolvers<void>();
  const stop = () => {
    if (stopping) return;
    stopping = true;
    stopped.resolve();
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, stop);
  options.signal?.addEventListener("abort", stop);

  /**
   * After each TUN drain or UDP receive batch, and each tick: the encrypted batch and any replies
   * leave in one sendmmsg, and what the mesh wrote to the TUN (coalesced segments) goes in.
   */
  const batchDone = () => {
    udp.flush();
    tunOut.flush();
  };
  const tick = () => {
    mesh.tick();
    // Nothing waits in a batch longer than a tick, whoever put it there.
    batchDone();
  };
  const timer = setInterval(tick, TICK_MS);
  tick();
  // Written on change only, at most every PEER_CACHE_SAVE_MS, one write at a time.
  let savedVersion = mesh.peerCacheVersion;
  let saving: Promise<void> = Promise.resolve();
  const saveCache = () => {
    if (cache === null || mesh.peerCacheVersion === savedVersion) return saving;
    savedVersion = mesh.peerCacheVersion;
    const entries = mesh.peerCacheEntries();
    saving = saving.then(() => cache.file.save(entries, Date.now())).then(
      () => clientLog.debug("peer cache: {count} members saved", { count: entries.length }),
      (err) =>
        clientLog.warn("peer cache {path}: cannot write it: {error}", {
          path: config.node.peerCache,
          error: err instanceof Error ? err.message : String(err),
        }),
    );
    return saving;
  };
  const cacheTimer = setInterval(saveCache, PEER_CACHE_SAVE_MS);
  // One loop with one combined wait where both are pollable fds (Linux), else one loop each.
  const tunFd = tun.fd ?? -1;
  const udpFd = udp.fd ?? -1;
  const pumped = tunFd >= 0 && udpFd >= 0 && udp.tryReceiveBatch !== undefined;
  const loops = pumped ? [pumpDataPath(tun, udp, mesh, clock, batchDone, () => stopping)] : [
    readTun(tun, mesh, clock, batchDone, () => stopping),
    readUdp(udp, mesh, batchDone, () => stopping),
  ];
  // A loop that ends while we run leaves a client that looks alive but moves nothing: stop, and
  // fail after cleaning up, so a supervisor (systemd) restarts it.
  let dataPathFailure: DataPathError | null = null;
  superviseLoops(loops, () => stopping, (err) => {
    dataPathFailure = err;
    clientLog.error("{error}; stopping", { error: err.message });
    stop();
  });

  await stopped.promise;
  clientLog.info("stopping: leaving the hubs, removing {name}", { name: tun.name });
  clearInterval(timer);
  clearInterval(cacheTimer);
  await saveCache();
  cache?.file.close();
  mesh.leave();
  // Give the LEAVE datagrams a moment to go out before the socket closes.
  await new Promise((r) => setTimeout(r, 50));
  // Closing the socket wakes the pump's combined wait (shutdown); the TUN fd outlives it so a
  // poll still running on a helper thread never sees its number reused. The two separate loops
  // each wait on their own fd, so the TUN is closed first for them.
  udp.close();
  if (!pumped) tun.close();
  await Promise.allSettled(loops);
  tun.close();
  await diagnostics.close();
  for (const s of signals) Deno.removeSignalListener(s, stop);
  if (dataPathFailure !== null) throw dataPathFailure;
}

/**
 * A drain of the TUN device: synchronous reads until it is empty or TUN_DRAIN_BUDGET reads, each
 * handed to the mesh (super-packets segmented first when the device has virtio headers). Returns
 * the number of reads. The budget keeps a flood into the TUN from starving the socket and the
 * timers.
 */
function tunDrainer(tun: TunDevice, mesh: Mesh, clock: TurnClock): () => number {
  const segmenter = tun.vnetHdr ? new TunSegmenter() : null;
  const buf = segmenter?.frame ?? new Uint8Array(TUN_READ_BUFFER_LEN);
  const handle = (packet: Uint8Array) => mesh.handleTunPacket(packet);
  const take = segmenter !== null
    ? (n: number) => segmenter.split(n, handle)
    : (n: number) => handle(buf.subarray(0, n));
  const drain = () => {
    let reads = 0;
    let n: number;
    for (; reads < TUN_DRAIN_BUDGET && (n = tun.tryRead(buf)) > 0; reads++) take(n);
    return reads;
  };
  return () => clock.hold(drain);
}

/** The TUN loop: one drain, then `batchDone`, then one wait (the wait returns at once if more). */
async function readTun(
  tun: TunDevice,
  mesh: Mesh,
  clock: TurnClock,
  batchDone: () => void,
  stopping: () => boolean,
): Promise<void> {
  const drain = tunDrainer(tun, mesh, clock);
  while (!stopping()) {
    try {
      drain();
    } catch (err) {
      if (stopping()) return;
      throw err;
    }
    batchDone();
    await tun.waitReadable();
  }
}

/**
 * The combined loop (`pump.ts`): each turn drains the TUN (as {@linkcode readTun} does) and sends
 * what that sealed, then drains the socket (as {@linkcode readUdp} does), then flushes both
 * batches.
 */
function pumpDataPath(
  tun: TunDevice,
  udp: UdpSocket,
  mesh: Mesh,
  clock: TurnClock,
  batchDone: () => void,
  stopping: () => boolean,
): Promise<void> {
  const drainTun = tunDrainer(tun, mesh, clock);
  const onDatagram = datagramHandler(mesh);
  const drainUdp = () => udp.tryReceiveBatch!(onDatagram);
  const poll = new PollSet([tun.fd!, udp.fd!]);
  const turn = (): number => {
    let handled = 0;
    try {
      handled += drainTun();
      // What the TUN drain sealed leaves now, not after the socket drain: under load that drain
      // takes a millisecond or more, and on a receiver the TUN holds the TCP ACKs, so each ACK
      // would wait for it and TCP would see the RTT that much longer.
      udp.flush();
      handled += clock.hold(drainUdp);
    } catch (err) {
      if (stopping()) return 0;
      throw err;
    }
    batchDone();
    return handled;
  };
  return runPump({ poll, turn, stopping });
}

/** The UDP receive callback: transport data is used in place, anything else gets a copy. */
function datagramHandler(mesh: Mesh): DatagramHandler {
  return (data: Uint8Array, from: UdpEndpoint) => {
    // The socket reuses its receive buffers. Transport data (type 4) is decrypted and written
    // before the callback returns; anything else may be kept by the mesh (a hub's token,
    // handshake state), so it gets a copy of its own. Those are rare.
    mesh.handleDatagram(data[0] === MESSAGE_TRANSPORT ? data : data.slice(), from);
  };
}

async function readUdp(
  udp: UdpSocket,
  mesh: Mesh,
  batchDone: () => void,
  stopping: () => boolean,
): Promise<void> {
  const onDatagram = datagramHandler(mesh);
  while (!stopping()) {
    try {
      await udp.receiveBatch(onDatagram);
    } catch {
      if (stopping()) return;
      // Not expected while running; never spin on it.
      await new Promise((r) => setTimeout(r, RECEIVE_ERROR_PAUSE_MS));
      continue;
    }
    batchDone();
  }
}

/** The socket's counters as drop reasons beside the mesh's own (only those that happened). */
function socketDrops(stats: UdpSocketStats): Record<string, number> {
  const drops: Record<string, number> = {};
  if (stats.sendDropped > 0) drops["udp-send-buffer-full"] = stats.sendDropped;
  if (stats.sendErrors > 0) drops["udp-send-refused"] = stats.sendErrors;
  if (stats.receiveTruncated > 0) drops["udp-receive-truncated"] = stats.receiveTruncated;
  return drops;
}

/** Runs one start-up step; OS refusals (no root, port in use, ...) become one-line user errors. */
function startupStep<T>(step: () => T, what = ""): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof OsError) throw new UserError(err.message, { cause: err });
    if (err instanceof Deno.errors.AddrInUse) {
      throw new UserError(`${what}: already in use by another program`, { cause: err });
    }
    if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
      throw new UserError(`${what}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
