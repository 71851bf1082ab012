/**
 * Linux TUN devices through `/dev/net/tun`.
 *
 * Reading follows the fastest pattern measured on this platform (see the FFI notes): the fd is
 * O_NONBLOCK, the caller drains it with sync `read` calls ({@linkcode LinuxTun.tryRead}) until
 * it returns 0 (EAGAIN), then awaits one `poll` on a helper thread
 * ({@linkcode LinuxTun.waitReadable}).
 *
 * @module
 */

import { ERRNO, errno, libc, OsError, sysIoctl, sysIoctlValue, sysOpen } from "./libc.ts";
import { PollSet } from "./poll_set.ts";
import type { TunDevice } from "./tun.ts";

const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
/** `_IOW('T', 202, int)` */
const TUNSETIFF = 0x400454ca;
/** `_IOW('T', 208, unsigned int)`, argument by value. */
const TUNSETOFFLOAD = 0x400454d0;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
/** `struct ifreq`: name[16] @0, flags u16 @16, padded to 40 bytes. */
const IFREQ_LEN = 40;
/** IFNAMSIZ minus the terminating NUL. */
const IFNAME_MAX_LEN = 15;
/**
 * Longest single wait in {@linkcode LinuxTun.waitReadable}. A `poll` on a helper thread cannot be
 * interrupted, so this bounds how long a waiter takes to notice {@linkcode LinuxTun.close}.
 */
export const POLL_SLICE_MS = 250;

/** `TUNSETOFFLOAD` bit: the kernel may hand over packets whose checksum is still to be done. */
export const TUN_F_CSUM = 0x01;
/** `TUNSETOFFLOAD` bit: IPv4 TCP super-packets (TSO). */
export const TUN_F_TSO4 = 0x02;
/** `TUNSETOFFLOAD` bit: IPv6 TCP super-packets (TSO). */
export const TUN_F_TSO6 = 0x04;
/** `TUNSETOFFLOAD` bit: IPv4 UDP super-packets (USO, Linux 6.2+; only together with USO6). */
export const TUN_F_USO4 = 0x20;
/** `TUNSETOFFLOAD` bit: IPv6 UDP super-packets (USO). */
export const TUN_F_USO6 = 0x40;

/** Offload sets tried in order by {@linkcode openLinuxTun}: USO is newer than TSO. */
const OFFLOAD_CHOICES = [
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
] as const;

/** Path of the TUN clone device. */
export const TUN_CLONE_PATH = "/dev/net/tun";

/** Errno values after which a write is a counted drop, not a failure. */
const WRITE_DROP_ERRNOS: ReadonlySet<number> = new Set([
  ERRNO.EAGAIN,
  ERRNO.ENOBUFS,
  ERRNO.ENOMEM,
  // The kernel rejects malformed packets (bad IP version nibble) with EINVAL, and writes to a
  // device that is down with EIO: both are a dropped packet, not a broken device.
  ERRNO.EINVAL,
  ERRNO.EIO,
]);

/**
 * Throws a `TypeError` or `RangeError` if `name` cannot be a Linux interface name.
 * A `%d` in the name lets the kernel pick the number (e.g. `meshub%d`).
 */
export function validateLinuxIfName(name: string): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError("TUN device name must be a non-empty string");
  }
  if (new TextEncoder().encode(name).length > IFNAME_MAX_LEN) {
    throw new RangeError(`TUN device name "${name}" is longer than ${IFNAME_MAX_LEN} bytes`);
  }
  if (/[\s/:]/.test(name) || name === "." || name === "..") {
    throw new RangeError(`TUN device name "${name}" contains a character Linux does not allow`);
  }
}

/** A TUN device on Linux. Implements {@linkcode TunDevice}. */
export class LinuxTun implements TunDevice {
  /** Kernel interface name as the kernel assigned it. */
  readonly name: string;
  /**
   * True when every read and write starts with a `virtio_net_hdr` (`IFF_VNET_HDR`); reads may
   * then be TCP/UDP super-packets (see `client/tun_offload.ts`).
   */
  readonly vnetHdr: boolean;
  /** The `TUN_F_*` offload bits the kernel accepted; 0 without virtio headers. */
  readonly offloadFlags: number;
  #fd: number;
  #closed = false;
  readonly #poll: PollSet;

  /**
   * Wraps an open, configured TUN fd. Use {@linkcode openLinuxTun} to create one.
   * @param offloadFlags the `TUN_F_*` bits set on `fd`; non-zero means `IFF_VNET_HDR` is on.
   */
  constructor(fd: number, name: string, offloadFlags = 0) {
    this.#fd = fd;
    this.name = name;
    this.offloadFlags = offloadFlags;
    this.vnetHdr = offloadFlags !== 0;
    this.#poll = new PollSet([fd]);
  }

  /** The file descriptor, for callers that add offloads or batching. -1 after close. */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  /** Names of the accepted offloads, e.g. `["csum", "tso4", "tso6", "uso4", "uso6"]`. */
  get offloads(): string[] {
    const names: [number, string][] = [
      [TUN_F_CSUM, "csum"],
      [TUN_F_TSO4, "tso4"],
      [TUN_F_TSO6, "tso6"],
      [TUN_F_USO4, "uso4"],
      [TUN_F_USO6, "uso6"],
    ];
    return names.filter(([bit]) => (this.offloadFlags & bit) !== 0).map(([, n]) => n);
  }

  /** Whether {@linkcode LinuxTun.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads one packet into `buf` without blocking. Returns its length, or 0 when none is ready.
   * A packet longer than `buf` is truncated by the kernel: size `buf` for the MTU, or for a
   * virtio header plus 64 KB when {@linkcode LinuxTun.vnetHdr} is true.
   * @throws {Error} when the device is closed; {@linkcode OsError} on an unexpected errno.
   */
  tryRead(buf: Uint8Array): number {
    if (this.#closed) throw new Error(`TUN device ${this.name} is closed`);
    const n = libc().symbols.read(this.#fd, buf, BigInt(buf.length));
    if (n >= 0) return n;
    const e = errno();
    if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return 0;
    throw new OsError(`read(${this.name})`, e);
  }

  /**
   * Resolves when a packet may be ready, or when the device is closed (then within
   * {@linkcode POLL_SLICE_MS}). Waits in bounded `poll` slices, so it never hangs forever.
   */
  async waitReadable(): Promise<void> {
    await this.#poll.readable(() => this.#closed, POLL_SLICE_MS);
  }

  /**
   * Writes one IP packet. Returns false when the kernel dropped it (queue full, no buffers,
   * malformed packet, device down).
   * @throws {Error} when the device is closed; {@linkcode OsError} on an unexpected errno.
   */
  write(packet: Uint8Array): boolean {
    if (this.#closed) throw new Error(`TUN device ${this.name} is closed`);
    const n = libc().symbols.write(this.#fd, packet, BigInt(packet.length));
    if (n >= 0) return n === packet.length;
    const e = errno();
    if (WRITE_DROP_ERRNOS.has(e) || e === ERRNO.EINTR) return false;
    throw new OsError(`write(${this.name})`, e);
  }

  /** Closes the fd; the kernel removes the interface with its addresses and routes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().symbols.close(this.#fd);
  }

  /** Same as {@linkcode LinuxTun.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@linkcode openLinuxTun}. */
export interface LinuxTunOptions {
  /**
   * Ask for virtio headers and TSO/USO offloads; without kernel support the device opens without
   * them ({@linkcode LinuxTun.vnetHdr} false). Default false.
   */
  offload?: boolean;
}

/**
 * Creates a Linux TUN device (IFF_TUN | IFF_NO_PI: raw IP packets) named `name`, non-blocking
 * and close-on-exec. The interface exists while the returned device is open; it starts down and
 * without addresses (see `configureInterface` in `netcfg.ts`).
 *
 * With `offload`, the device also gets IFF_VNET_HDR and the largest `TUNSETOFFLOAD` set the
 * kernel accepts (checksum + TSO4/6 + USO4/6, else without USO); if it refuses even TSO, the
 * device is made again without virtio headers.
 *
 * @param name Interface name, at most 15 bytes; `%d` lets the kernel pick a number.
 * @throws {OsError} with a message that says what to do: no root/CAP_NET_ADMIN, name in use,
 *   `/dev/net/tun` missing.
 */
export function openLinuxTun(name: string, options: LinuxTunOptions = {}): LinuxTun {
  validateLinuxIfName(name);
  if (options.offload) {
    let tun: { fd: number; name: string } | undefined;
    try {
      tun = createTun(name, IFF_VNET_HDR);
    } catch (e) {
      // An old kernel without IFF_VNET_HDR says EINVAL: open it plainly below. Anything else
      // (no permission, busy name) would fail the same way again.
      if (!(e instanceof OsError && e.errno === ERRNO.EINVAL)) throw e;
    }
    if (tun !== undefined) {
      for (const flags of OFFLOAD_CHOICES) {
        if (sysIoctlValue(tun.fd, TUNSETOFFLOAD, flags) === 0) {
          return new LinuxTun(tun.fd, tun.name, flags);
        }
      }
      libc().symbols.close(tun.fd);
    }
  }
  const tun = createTun(name, 0);
  return new LinuxTun(tun.fd, tun.name);
}

/**
 * Opens the clone device and attaches it to `name` with `extraFlags`; returns the fd and the
 * name the kernel chose (it differs when `name` contains %d).
 */
function createTun(name: string, extraFlags: number): { fd: number; name: string } {
  const fd = sysOpen(TUN_CLONE_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const e = errno();
    const hint = e === ERRNO.ENOENT || e === ERRNO.ENODEV || e === ERRNO.ENXIO
      ? `${TUN_CLONE_PATH} is missing: load the tun kernel module (modprobe tun)` +
        " or pass the device into the container"
      : e === ERRNO.EACCES || e === ERRNO.EPERM
      ? `opening ${TUN_CLONE_PATH} for ${name} needs root or CAP_NET_ADMIN`
      : `cannot open ${TUN_CLONE_PATH} for ${name}`;
    throw new OsError(`open(${TUN_CLONE_PATH})`, e, { message: hint });
  }
  try {
    const ifr = new Uint8Array(IFREQ_LEN);
    ifr.set(new TextEncoder().encode(name));
    new DataView(ifr.buffer).setUint16(16, IFF_TUN | IFF_NO_PI | extraFlags, true);
    if (sysIoctl(fd, TUNSETIFF, ifr) < 0) {
      const e = errno();
      const hint = e === ERRNO.EPERM || e === ERRNO.EACCES
        ? `creating TUN device ${name} needs root or CAP_NET_ADMIN`
        : e === ERRNO.EBUSY
        ? `TUN device name ${name} is busy: another process has it open`
        : e === ERRNO.EINVAL
        ? `cannot create TUN device ${name}: an interface of another kind has that name`
        : `cannot create TUN device ${name}`;
      throw new OsError("ioctl(TUNSETIFF)", e, { message: hint });
    }
    // The kernel writes the real name back.
    const end = ifr.indexOf(0);
    return { fd, name: new TextDecoder().decode(ifr.subarray(0, end < 0 || end > 16 ? 16 : end)) };
  } catch (e) {
    libc().symbols.close(fd);
    throw e;
  }
}
