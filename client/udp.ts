/**
 * The client's single UDP socket, which carries hub traffic and every peer edge: one socket is
 * what makes hole punching work, because the hub observes exactly the NAT mapping peers will use.
 *
 * On Linux it is the batched FFI socket of `ffi/udp_linux.ts` (`sendmmsg`/`recvmmsg`, GSO/GRO);
 * elsewhere, or when FFI is unavailable, `Deno.listenDatagram`. Both bound what they hold: a
 * send that finds the kernel (or Deno) full is dropped and counted, never queued without limit.
 *
 * @module
 */
import { type DatagramHandler, linuxUdpAvailable, openLinuxUdpSocket } from "../ffi/udp_linux.ts";
import { ERRNO, OsError } from "../ffi/libc.ts";

/** A UDP address as Deno reports it (IPv4 senders normalised from `::ffff:a.b.c.d`). */
export interface UdpEndpoint {
  /** IP literal, without brackets. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** The socket as the mesh sees it; the real ones are below, tests use a fake. */
export interface UdpSocket {
  /** Local port the socket is bound to. */
  readonly port: number;
  /** Waits for the next datagram (a copy the caller owns). Rejects once the socket is closed. */
  receive(): Promise<[Uint8Array, UdpEndpoint]>;
  /**
   * Waits until datagrams are ready (one wait per call, so other I/O and timers get their turn),
   * then hands each ready one, up to a budget, to `onDatagram` synchronously. The bytes are only
   * valid during the callback. Resolves with the number handled (0 after a spurious wake-up);
   * rejects once the socket is closed.
   */
  receiveBatch(onDatagram: DatagramHandler): Promise<number>;
  /**
   * Sends without waiting (the bytes are copied or owned from now on: callers hand over buffers
   * they no longer touch); the datagram may wait for {@linkcode UdpSocket.flush}, at the latest
   * until the current synchronous job ends. Failures and drops are counted, not thrown.
   */
  send(data: Uint8Array, to: UdpEndpoint): void;
  /** Hands every datagram queued by {@linkcode UdpSocket.send} to the kernel now. */
  flush(): void;
  /**
   * Zero-copy sending, where supported: room for a datagram of up to `maxLen` bytes inside the
   * socket's send batch, to be filled and then queued with {@linkcode UdpSocket.commit} before
   * any other send. Null when unsupported (use send()) or refused.
   */
  reserve?(maxLen: number): Uint8Array | null;
  /** Queues the first `len` bytes of the last {@linkcode UdpSocket.reserve} room for `to`. */
  commit?(len: number, to: UdpEndpoint): void;
  /**
   * The socket's file descriptor, where it has one that `poll` can watch (the Linux FFI socket):
   * then the client waits for it together with the TUN (`client/pump.ts`) and drains it with
   * {@linkcode UdpSocket.tryReceiveBatch}. Closing the socket wakes such a poll.
   */
  readonly fd?: number;
  /**
   * Hands each ready datagram, up to a budget, to `onDatagram` without waiting; returns the
   * number handled (0 when none was ready). Throws once the socket is closed.
   */
  tryReceiveBatch?(onDatagram: DatagramHandler): number;
  /** Closes the socket; a pending receive() or receiveBatch() rejects. */
  close(): void;
}

/** Strips the IPv4-mapped prefix a dual-stack socket puts on IPv4 peers. */
export function normalizeHostname(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".") ? hostname.slice(7) : hostname;
}

/** Error counters of a real socket, for status output. */
export interface UdpSocketStats {
  /** Sends the kernel refused (no route, wrong family, ...). */
  sendErrors: number;
  /** Sends dropped because the socket was full (kernel buffer, or Deno's in-flight bound). */
  sendDropped: number;
  /** Received datagrams longer than a receive buffer (dropped). */
  receiveTruncated: number;
}

/** Which implementation an open socket uses. */
export type UdpSocketKind = "linux-mmsg" | "deno";

/** An open client socket with its counters. */
export type ClientUdpSocket = UdpSocket & {
  /** Counters. */
  readonly stats: UdpSocketStats;
  /** The implementation, for the start-up log line. */
  readonly kind: UdpSocketKind;
};

/** Sends `Deno.listenDatagram` may have outstanding before further ones are dropped. */
export const DENO_MAX_SENDS_IN_FLIGHT = 1024;

/**
 * Opens the client socket: the batched FFI socket on Linux, `Deno.listenDatagram` elsewhere or
 * when `preferFfi` is false or FFI fails. Dual-stack on `::` (IPv4 peers appear as mapped
 * addresses, reported as plain IPv4), falling back to IPv4-only `0.0.0.0` where IPv6 is disabled.
 *
 * @throws {OsError} or `Deno.errors.AddrInUse` when the port is taken or not permitted.
 */
export function openUdpSocket(
  port: number,
  options: { preferFfi?: boolean } = {},
): ClientUdpSocket {
  if ((options.preferFfi ?? true) && linuxUdpAvailable()) {
    try {
      return openFfiSocket(port);
    } catch (err) {
      // The port itself is the problem: Deno would fail the same way, with a vaguer message.
      if (
        err instanceof OsError && (err.errno === ERRNO.EADDRINUSE || err.errno === ERRNO.EACCES)
      ) {
        throw err;
      }
    }
  }
  return openDenoSocket(port);
}

function openFfiSocket(port: number): ClientUdpSocket {
  const sock = openLinuxUdpSocket({ port });
  const stats: UdpSocketStats = {
    get sendErrors() {
      return sock.stats.sendErrors;
    },
    get sendDropped() {
      return sock.stats.sendDropped;
    },
    get receiveTruncated() {
      return sock.stats.receiveTruncated;
    },
  };
  // receive() is for tests and tools; the client uses receiveBatch().
  const pending: [Uint8Array, UdpEndpoint][] = [];
  const keep = (data: Uint8Array, from: UdpEndpoint) => {
    pending.push([data.slice(), from]);
  };
  const closed = () => new Error("UDP socket is closed");
  return {
    port: sock.port,
    stats,
    kind: "linux-mmsg",
    async receive(): Promise<[Uint8Array, UdpEndpoint]> {
      // Bounded by the socket's life: each pass waits once; close ends it.
      while (pending.length === 0) {
        if (sock.closed) throw closed();
        if (sock.tryReceive(keep, 1) > 0) break;
        await sock.waitReadable();
      }
      return pending.shift()!;
    },
    async receiveBatch(onDatagram: DatagramHandler): Promise<number> {
      // Always one await first: a drain that never yields would starve the TUN loop and timers
      // under a flood. The poll returns at once when datagrams are already waiting.
      await sock.waitReadable();
      if (sock.closed) throw closed();
      return sock.tryReceive(onDatagram);
    },
    get fd() {
      return sock.fd;
    },
    tryReceiveBatch(onDatagram: DatagramHandler): number {
      if (sock.closed) throw closed();
      return sock.tryReceive(onDatagram);
    },
    send(data: Uint8Array, to: UdpEndpoint): void {
      sock.send(data, to);
    },
    flush(): void {
      sock.flush();
    },
    reserve(maxLen: number): Uint8Array | null {
      return sock.reserve(maxLen);
    },
    commit(len: number, to: UdpEndpoint): void {
      sock.commit(len, to);
    },
    close(): void {
      sock.close();
    },
  };
}

function openDenoSocket(port: number): ClientUdpSocket {
  let conn: Deno.DatagramConn;
  try {
    conn = Deno.listenDatagram({ transport: "udp", hostname: "::", port });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) throw err;
    conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  }
  const stats: UdpSocketStats = { sendErrors: 0, sendDropped: 0, receiveTruncated: 0 };
  let inFlight = 0;
  const onSent = () => {
    inFlight--;
  };
  const onSendError = () => {
    inFlight--;
    stats.sendErrors++;
  };
  const boundPort = (conn.addr as Deno.NetAddr).port;
  const receive = async (): Promise<[Uint8Array, UdpEndpoint]> => {
    const [data, addr] = await conn.receive();
    const net = addr as Deno.NetAddr;
    return [data, { hostname: normalizeHostname(net.hostname), port: net.port }];
  };
  return {
    port: boundPort,
    stats,
    kind: "deno",
    receive,
    async receiveBatch(onDatagram: DatagramHandler): Promise<number> {
      const [data, from] = await receive();
      onDatagram(data, from);
      return 1;
    },
    send(data: Uint8Array, to: UdpEndpoint): void {
      // Each send is a promise holding its buffer until the kernel takes it; without a bound a
      // flood queues without limit (this once grew to ~600 MiB). Drop like a full NIC ring.
      if (inFlight >= DENO_MAX_SENDS_IN_FLIGHT) {
        stats.sendDropped++;
        return;
      }
      inFlight++;
      conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port }).then(
        onSent,
        onSendError,
      );
    },
    flush(): void {
      // Deno sends each datagram as it is given.
    },
    close(): void {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
}
