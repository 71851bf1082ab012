/**
 * The client process: opens the TUN device and the UDP socket, then drives the {@linkcode Mesh}
 * with packets and ticks until SIGINT/SIGTERM (or an abort signal), and tears everything down.
 *
 * Two loops move the data, each in explicit batches (the TUN side of the pipeline is described
 * in `tun_offload.ts`): the TUN loop drains the device (super-packets segmented) into
 * `Mesh.handleTunPacket` and ends each drain with `tunBatchDone`; the UDP loop feeds received
 * datagrams to `Mesh.handleDatagram` and ends each receive batch with `udpBatchDone`, which
 * flushes the coalesced TUN writes.
 *
 * @module
 */
import type { ClientConfig } from "./config.ts";
import { loadOrCreateState } from "./state_file.ts";
import { Mesh } from "./mesh.ts";
import { openUdpSocket } from "./udp.ts";
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
import { TunCoalescer, TunSegmenter, type TunWriter } from "./tun_offload.ts";
import { startCaMode } from "./ca.ts";
import { ClientDiagnostics } from "./control.ts";
import { dropPrivileges, resolveIdentity } from "./privileges.ts";

const tunLog = log("tun");
const clientLog = log("client");

/** How often the mesh timers run. */
const TICK_MS = 200;
/** Largest packet read from the TUN device without offloads (well above any MTU we allow). */
const TUN_READ_BUFFER_LEN = 65_536;
/** Most datagrams in one receive batch (then the TUN writes are flushed). */
const UDP_BATCH_MAX = 64;
/** Default length of the derived VPN prefix routed into the TUN. */
const DERIVED_PREFIX_LEN = 48;

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

  // Claimed first: a second client on the same control socket is refused before it touches
  // anything.
  const diagnostics = await ClientDiagnostics.open(config);
  let tun;
  try {
    tun = startupStep(() => openTun(config.tun.interface, { offload: true }));
  } catch (err) {
    await diagnostics.close();
    throw err;
  }
  let socket;
  try {
    await configureInterface({
      name: tun.name,
      mtu: config.tun.mtu,
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
  tunLog.info("{name} up: {addresses}, mtu {mtu}, offloads {offloads}", {
    name: tun.name,
    addresses: [ipv6, ...(ipv4 ? [ipv4] : [])].map(formatPrefix).join(", "),
    mtu: config.tun.mtu,
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
  // With virtio headers every write needs one; the coalescer adds it (and merges TCP segments).
  const tunOut: TunWriter = tun.vnetHdr
    ? new TunCoalescer((frame) => tunDevice.write(frame))
    : { write: (packet) => void tunDevice.write(packet), flush: () => {} };
  // OpenSSL's ChaCha20-Poly1305 with reused contexts is ~5x the portable one (ffi/libcrypto.ts).
  const aead = openSslAead();
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
    writeTun: (packet) => tunOut.write(packet),
    now: () => performance.now(),
    aead: aead ?? undefined,
    onEvent: diagnostics.onEvent,
    // Diagnostics inside the VPN: ICMP errors back to the TUN (client/icmp.ts).
    mtu: config.tun.mtu,
    vpnPrefixes: [
      ipv6,
      ...(ipv4 ? [ipv4] : []),
      ...config.peers.flatMap((p) => [...p.ipv6, ...p.ipv4]),
    ],
  });
  diagnostics.attach(mesh, { interface: tun.name, mtu: config.tun.mtu });
  clientLog.info("node {name}: {address}, udp port {port}, {hubs} hub(s), crypto {aead}", {
    name: config.node.name,
    address: formatPrefix(ipv6),
    port: udp.port,
    hubs: config.hubs.length,
    aead: aead?.name ?? "node:crypto",
  });

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

  /** Call after each TUN drain: what the mesh wrote to the TUN meanwhile (ICMP errors) goes out. */
  const tunBatchDone = () => tunOut.flush();
  /** Call after each UDP receive batch: coalesced TCP segments go to the TUN as super-packets. */
  const udpBatchDone = () => tunOut.flush();

  const timer = setInterval(() => {
    mesh.tick();
    // Nothing may wait in the TUN writer longer than a tick, whoever wrote it.
    tunOut.flush();
  }, TICK_MS);
  mesh.tick();
  const tunLoop = readTun(tun, mesh, tunBatchDone, () => stopping);
  // Deno.listenDatagram hands over one datagram per await, but all that are waiting arrive in
  // one event-loop turn: that turn is the receive batch.
  const udpBatch = new TurnBatch(udpBatchDone, UDP_BATCH_MAX);
  const udpLoop = (async () => {
    while (!stopping) {
      let received;
      try {
        received = await udp.receive();
      } catch {
        if (stopping) return;
        continue;
      }
      mesh.handleDatagram(received[0], received[1]);
      udpBatch.add();
    }
  })();

  await stopped.promise;
  clientLog.info("stopping: leaving the hubs, removing {name}", { name: tun.name });
  clearInterval(timer);
  mesh.leave();
  // Give the LEAVE datagrams a moment to go out before the socket closes.
  await new Promise((r) => setTimeout(r, 50));
  udp.close();
  udpBatch.close();
  tun.close();
  await diagnostics.close();
  await Promise.allSettled([tunLoop, udpLoop]);
  for (const s of signals) Deno.removeSignalListener(s, stop);
}

/**
 * Groups datagrams handed over one per await into batches: a batch ends at the end of the
 * event-loop turn in which they arrived, or after `max` of them. A MessageChannel message is a
 * macrotask (~4 µs, not clamped like nested timers), so the microtasks that hand over datagrams
 * that were already waiting all run before it.
 */
class TurnBatch {
  readonly #channel = new MessageChannel();
  readonly #done: () => void;
  readonly #max: number;
  #count = 0;
  #scheduled = false;

  constructor(done: () => void, max: number) {
    this.#done = done;
    this.#max = max;
    this.#channel.port1.onmessage = () => {
      this.#scheduled = false;
      if (this.#count > 0) this.#end();
    };
  }

  /** Counts one datagram handled; ends the batch now or at the end of this turn. */
  add(): void {
    if (++this.#count >= this.#max) return this.#end();
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#channel.port2.postMessage(null);
  }

  /** Stops it for good (an open port keeps the process alive). */
  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }

  #end(): void {
    this.#count = 0;
    this.#done();
  }
}

/**
 * The TUN loop: drains the device with synchronous reads until it is empty, segmenting
 * super-packets when it has virtio headers, then calls `batchDone` and waits once.
 */
async function readTun(
  tun: TunDevice,
  mesh: Mesh,
  batchDone: () => void,
  stopping: () => boolean,
): Promise<void> {
  const segmenter = tun.vnetHdr ? new TunSegmenter() : null;
  const buf = segmenter?.frame ?? new Uint8Array(TUN_READ_BUFFER_LEN);
  const handle = (packet: Uint8Array) => mesh.handleTunPacket(packet);
  while (!stopping()) {
    let n: number;
    try {
      // Drain everything that is ready with cheap synchronous reads, then wait once.
      if (segmenter !== null) {
        while ((n = tun.tryRead(buf)) > 0) segmenter.split(n, handle);
      } else {
        while ((n = tun.tryRead(buf)) > 0) handle(buf.subarray(0, n));
      }
    } catch (err) {
      if (stopping()) return;
      throw err;
    }
    batchDone();
    await tun.waitReadable();
  }
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
