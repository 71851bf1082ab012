/**
 * The TUN device as the rest of meshub sees it. Implementations live beside this file, one per
 * OS (`tun_linux.ts`, `tun_darwin.ts`); tests use an in-memory fake.
 *
 * Packets are raw IP packets (IPv6 or IPv4, no link header, no packet-information prefix), or,
 * when {@linkcode TunDevice.vnetHdr} is true, a `virtio_net_hdr` followed by an IP packet or a
 * TCP/UDP super-packet (Linux offloads; see `client/tun_offload.ts`).
 *
 * @module
 */

/** A layer-3 virtual interface that meshub reads packets from and writes packets to. */
export interface TunDevice {
  /** Kernel interface name, e.g. `meshub0` or `utun4`. */
  readonly name: string;
  /**
   * True when reads and writes carry a `virtio_net_hdr` in front of the packet (Linux
   * `IFF_VNET_HDR`); absent or false for raw IP packets.
   */
  readonly vnetHdr?: boolean;
  /**
   * The device's file descriptor where `poll` can watch it (Linux): the client then waits for
   * it together with the UDP socket (`client/pump.ts`). -1 once closed.
   */
  readonly fd?: number;
  /** Offloads the kernel accepted, e.g. `["csum", "tso4", "tso6"]`; absent or empty for none. */
  readonly offloads?: readonly string[];
  /**
   * Reads one packet into `buf` without blocking. Returns its length, or 0 when no packet is
   * ready (then await {@linkcode TunDevice.waitReadable}). Throws only when the device is closed.
   */
  tryRead(buf: Uint8Array): number;
  /** Resolves when a packet may be ready, or when the device is closed. */
  waitReadable(): Promise<void>;
  /** Writes one packet. Returns false if the kernel refused it (dropped, counted by caller). */
  write(packet: Uint8Array): boolean;
  /**
   * Writes out packets a batching writer still holds; the driver calls it after each batch of
   * received datagrams. Devices that write each packet at once leave it out.
   */
  flush?(): void;
  /** Closes the device; the kernel removes the interface with its addresses and routes. */
  close(): void;
}
