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

import { ERRNO, errno, libc, OsError, sysIoctl, sysOpen } from "./libc.ts";
import type { TunDevice } from "./tun.ts";

const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
/** `_IOW('T', 202, int)` */
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
/** `struct ifreq`: name[16] @0, flags u16 @16, padded to 40 bytes. */
const IFREQ_LEN = 40;
/** IFNAMSIZ minus the terminating NUL. */
const IFNAME_MAX_LEN = 15;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;
/**
 * Longest single wait in {@linkcode LinuxTun.waitReadable}. A `poll` on a helper thread cannot be
 * interrupted, so this bounds how long a waiter takes to notice {@linkcode LinuxTun.close}.
 */
export const POLL_SLICE_MS = 250;

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
  #fd: number;
  #closed = false;
  readonly #pollfd = new Uint8Array(8);

  /** Wraps an open, configured TUN fd. Use {@linkcode openLinuxTun} to create one. */
  constructor(fd: number, name: string) {
    this.#fd = fd;
    this.name = name;
    const view = new DataView(this.#pollfd.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLIN, true);
  }

  /** The file descriptor, for callers that add offloads or batching. -1 after close. */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  /** Whether {@linkcode LinuxTun.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads one packet into `buf` without blocking. Returns its length, or 0 when none is ready.
   * A packet longer than `buf` is truncated by the kernel: size `buf` for the MTU.
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
    const poll = libc().symbols.poll_wait;
    // Bounded: each slice is at most POLL_SLICE_MS; the loop ends on readiness or close.
    while (!this.#closed) {
      // A private pollfd per wait: a concurrent waiter must not see this one's revents.
      const pfd = this.#pollfd.slice();
      const n = await poll(pfd, 1n, POLL_SLICE_MS);
      if (this.#closed) return;
      if (n > 0) {
        const revents = pfd[6]! | (pfd[7]! << 8);
        if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) return;
      } else if (n < 0) {
        // errno is lost on the helper thread; EINTR is the only plausible cause. Let the caller
        // try a read, which reports real errors with errno.
        return;
      }
    }
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

/**
 * Creates a Linux TUN device (IFF_TUN | IFF_NO_PI: raw IP packets) named `name`, non-blocking
 * and close-on-exec. The interface exists while the returned device is open; it starts down and
 * without addresses (see `configureInterface` in `netcfg.ts`).
 *
 * @param name Interface name, at most 15 bytes; `%d` lets the kernel pick a number.
 * @throws {OsError} with a message that says what to do: no root/CAP_NET_ADMIN, name in use,
 *   `/dev/net/tun` missing.
 */
export function openLinuxTun(name: string): LinuxTun {
  validateLinuxIfName(name);
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
    new DataView(ifr.buffer).setUint16(16, IFF_TUN | IFF_NO_PI, true);
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
    // The kernel writes the real name back (it differs when `name` contains %d).
    const end = ifr.indexOf(0);
    const actual = new TextDecoder().decode(ifr.subarray(0, end < 0 || end > 16 ? 16 : end));
    return new LinuxTun(fd, actual);
  } catch (e) {
    libc().symbols.close(fd);
    throw e;
  }
}
