/**
 * The client's single UDP socket, which carries hub traffic and every peer edge: one socket is
 * what makes hole punching work, because the hub observes exactly the NAT mapping peers will use.
 *
 * @module
 */

/** A UDP address as Deno reports it (IPv4 senders normalised from `::ffff:a.b.c.d`). */
export interface UdpEndpoint {
  /** IP literal, without brackets. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** The socket as the mesh sees it; the real one wraps `Deno.listenDatagram`, tests use a fake. */
export interface UdpSocket {
  /** Local port the socket is bound to. */
  readonly port: number;
  /** Waits for the next datagram. Rejects once the socket is closed. */
  receive(): Promise<[Uint8Array, UdpEndpoint]>;
  /** Sends without waiting; failures (unreachable network, ...) are counted, not thrown. */
  send(data: Uint8Array, to: UdpEndpoint): void;
  /** Closes the socket; a pending receive() rejects. */
  close(): void;
}

/** Strips the IPv4-mapped prefix a dual-stack socket puts on IPv4 peers. */
export function normalizeHostname(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".") ? hostname.slice(7) : hostname;
}

/** Error counters of a real socket, for status output. */
export interface UdpSocketStats {
  /** Sends the kernel refused (no route, buffer full, ...). */
  sendErrors: number;
}

/**
 * Opens the client socket: dual-stack on `::` (IPv4 peers appear as mapped addresses, normalised
 * here), falling back to IPv4-only `0.0.0.0` where IPv6 is disabled.
 */
export function openUdpSocket(port: number): UdpSocket & { stats: UdpSocketStats } {
  let conn: Deno.DatagramConn;
  try {
    conn = Deno.listenDatagram({ transport: "udp", hostname: "::", port });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) throw err;
    conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  }
  const stats: UdpSocketStats = { sendErrors: 0 };
  const onSendError = () => {
    stats.sendErrors++;
  };
  const boundPort = (conn.addr as Deno.NetAddr).port;
  return {
    port: boundPort,
    stats,
    async receive(): Promise<[Uint8Array, UdpEndpoint]> {
      const [data, addr] = await conn.receive();
      const net = addr as Deno.NetAddr;
      return [data, { hostname: normalizeHostname(net.hostname), port: net.port }];
    },
    send(data: Uint8Array, to: UdpEndpoint): void {
      // Deno keeps a reference to the buffer until the send completes, so callers hand over
      // buffers they no longer touch.
      conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port }).catch(
        onSendError,
      );
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
