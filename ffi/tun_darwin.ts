/**
 * macOS utun devices through a PF_SYSTEM kernel-control socket. No third-party driver needed.
 *
 * UNTESTED: written from the XNU headers (`sys/kern_control.h`, `net/if_utun.h`) and checked by
 * `deno check` only; meshub's test machines run Linux. Try it on a Mac before relying on it.
 *
 * Each packet on a utun socket carries a 4-byte big-endian address family header (AF_INET or
 * AF_INET6) in front of the IP packet; this module strips it on read and adds it on write, so
 * callers see the same raw IP packets as on Linux.
 *
 * @module
 */

import { ERRNO, errno, libc, OsError, sysFcntl, sysIoctl } from "./libc.ts";
import { PollSet } from "./poll_set.ts";
import type { TunDevice } from "./tun.ts";

const PF_SYSTEM = 32;
const AF_SYSTEM = 32;
const SOCK_DGRAM = 2;
const SYSPROTO_CONTROL = 2;
const AF_SYS_CONTROL = 2;
/** `_IOWR('N', 3, struct ctl_info)` with sizeof(struct ctl_info) = 100. */
const CTLIOCGINFO = 0xc0644e03;
const UTUN_CONTROL_NAME = "com.apple.net.utun_control";
const UTUN_OPT_IFNAME = 2;
/** `struct ctl_info { u_int32_t ctl_id; char ctl_name[96]; }` */
const CTL_INFO_LEN = 100;
/** `struct sockaddr_ctl { u8 sc_len; u8 sc_family; u16 ss_sysaddr; u32 sc_id; u32 sc_unit; u32 sc_reserved[5]; }` */
const SOCKADDR_CTL_LEN = 32;
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
/** macOS value (Linux uses 0x800). */
const O_NONBLOCK = 0x4;
const AF_INET = 2;
const AF_INET6 = 30;
/** The address-family header in front of every utun packet. */
const UTUN_HEADER_LEN = 4;
/** Largest IP packet a utun carries, plus its header. */
const UTUN_FRAME_MAX_LEN = 65535 + UTUN_HEADER_LEN;
/** Longest single `poll` in {@linkcode DarwinTun.waitReadable}; bounds how long close takes to notice. */
const POLL_SLICE_MS = 250;

/** A macOS utun device. Implements {@linkcode TunDevice}. Untested (see the module doc). */
export class DarwinTun implements TunDevice {
  /** Kernel interface name, e.g. `utun4`. */
  readonly name: string;
  #fd: number;
  #closed = false;
  readonly #poll: PollSet;
  /** Frames are staged here to add or strip the 4-byte header. */
  readonly #frame = new Uint8Array(UTUN_FRAME_MAX_LEN);

  /** Wraps a connected utun control socket. Use {@linkcode openDarwinTun} to create one. */
  constructor(fd: number, name: string) {
    this.#fd = fd;
    this.name = name;
    this.#poll = new PollSet([fd]);
  }

  /** The socket fd. -1 after close. */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  /** Reads one packet (header stripped) into `buf`. Returns its length, or 0 when none is ready. */
  tryRead(buf: Uint8Array): number {
    if (this.#closed) throw new Error(`TUN device ${this.name} is closed`);
    const n = libc().symbols.read(this.#fd, this.#frame, BigInt(this.#frame.length));
    if (n < 0) {
      const e = errno();
      if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return 0;
      throw new OsError(`read(${this.name})`, e);
    }
    // A frame without a full header carries no packet; report "nothing ready" rather than garbage.
    if (n <= UTUN_HEADER_LEN) return 0;
    const len = Math.min(n - UTUN_HEADER_LEN, buf.length);
    buf.set(this.#frame.subarray(UTUN_HEADER_LEN, UTUN_HEADER_LEN + len));
    return len;
  }

  /** Resolves when a packet may be ready, or when the device is closed (within 250 ms). */
  async waitReadable(): Promise<void> {
    await this.#poll.readable(() => this.#closed, POLL_SLICE_MS);
  }

  /** Writes one IP packet, adding the address-family header. False when the kernel dropped it. */
  write(packet: Uint8Array): boolean {
    if (this.#closed) throw new Error(`TUN device ${this.name} is closed`);
    if (packet.length === 0 || packet.length > UTUN_FRAME_MAX_LEN - UTUN_HEADER_LEN) return false;
    const version = packet[0]! >> 4;
    const family = version === 6 ? AF_INET6 : version === 4 ? AF_INET : 0;
    if (family === 0) return false;
    const frame = this.#frame;
    frame[0] = 0;
    frame[1] = 0;
    frame[2] = 0;
    frame[3] = family;
    frame.set(packet, UTUN_HEADER_LEN);
    const total = packet.length + UTUN_HEADER_LEN;
    const n = libc().symbols.write(this.#fd, frame.subarray(0, total), BigInt(total));
    if (n >= 0) return n === total;
    const e = errno();
    if (
      e === ERRNO.EAGAIN || e === ERRNO.ENOBUFS || e === ERRNO.EINTR || e === ERRNO.ENOMEM ||
      e === ERRNO.EINVAL || e === ERRNO.EIO
    ) return false;
    throw new OsError(`write(${this.name})`, e);
  }

  /** Closes the socket; the kernel removes the utun interface with its addresses and routes. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().symbols.close(this.#fd);
  }

  /** Same as {@linkcode DarwinTun.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The utun unit for `name`: `utunN` asks for that number (sc_unit N+1); any other name lets the
 * kernel pick the next free one (sc_unit 0). macOS cannot give a utun another name.
 */
export function utunUnitFor(name: string): number {
  const m = /^utun(\d{1,5})$/.exec(name);
  return m ? Number(m[1]) + 1 : 0;
}

/**
 * Creates a macOS utun device. Untested (see the module doc).
 *
 * @param name `utunN` for a fixed unit; anything else (e.g. `meshub0`) takes the next free
 *   `utunN`. The real name is in {@linkcode DarwinTun.name}.
 * @throws {OsError} when the control socket cannot be created or connected (needs root).
 */
export function openDarwinTun(name: string): DarwinTun {
  const s = libc().symbols;
  const fd = s.socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL);
  if (fd < 0) {
    throw new OsError("socket(PF_SYSTEM)", errno(), { message: `cannot create utun for ${name}` });
  }
  try {
    const info = new Uint8Array(CTL_INFO_LEN);
    info.set(new TextEncoder().encode(UTUN_CONTROL_NAME), 4);
    if (sysIoctl(fd, CTLIOCGINFO, info) < 0) {
      throw new OsError("ioctl(CTLIOCGINFO)", errno(), {
        message: `cannot find the utun kernel control for ${name}`,
      });
    }
    const ctlId = new DataView(info.buffer).getUint32(0, true);

    const addr = new Uint8Array(SOCKADDR_CTL_LEN);
    const view = new DataView(addr.buffer);
    addr[0] = SOCKADDR_CTL_LEN;
    addr[1] = AF_SYSTEM;
    view.setUint16(2, AF_SYS_CONTROL, true);
    view.setUint32(4, ctlId, true);
    view.setUint32(8, utunUnitFor(name), true);
    if (s.connect(fd, addr, SOCKADDR_CTL_LEN) < 0) {
      const e = errno();
      const hint = e === ERRNO.EPERM || e === ERRNO.EACCES
        ? `creating utun device for ${name} needs root`
        : e === ERRNO.EBUSY
        ? `utun device ${name} is busy: another process has it open`
        : `cannot create utun device for ${name}`;
      throw new OsError("connect(utun_control)", e, { message: hint });
    }

    const ifname = new Uint8Array(32);
    const lenBuf = new Uint8Array(4);
    new DataView(lenBuf.buffer).setUint32(0, ifname.length, true);
    if (s.getsockopt(fd, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, ifname, lenBuf) < 0) {
      throw new OsError("getsockopt(UTUN_OPT_IFNAME)", errno());
    }
    const end = ifname.indexOf(0);
    const actual = new TextDecoder().decode(ifname.subarray(0, end < 0 ? ifname.length : end));

    const flags = sysFcntl(fd, F_GETFL);
    if (flags < 0 || sysFcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      throw new OsError("fcntl(O_NONBLOCK)", errno());
    }
    if (sysFcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      throw new OsError("fcntl(FD_CLOEXEC)", errno());
    }
    return new DarwinTun(fd, actual);
  } catch (e) {
    s.close(fd);
    throw e;
  }
}
