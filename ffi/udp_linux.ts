/**
 * A Linux UDP socket driven by synchronous, batched system calls through FFI: the client's
 * underlay socket (hub traffic and every WireGuard edge).
 *
 * Why not `Deno.listenDatagram`: every `send` there is one promise and one trip through Deno's
 * I/O layer, and nothing bounds how many are in flight, so a flood queued hundreds of MiB and
 * spent a quarter of the CPU in `sendto`. Here nothing on the packet path allocates or awaits:
 *
 * - Receive: the fd is O_NONBLOCK. {@linkcode LinuxUdpSocket.tryReceive} drains it with
 *   `recvmmsg` ({@linkcode RECEIVE_BATCH} datagrams a call, into buffers allocated once) until the
 *   queue is empty or a budget is spent; {@linkcode LinuxUdpSocket.waitReadable} then awaits one
 *   `poll` on a helper thread per wake-up, exactly like the TUN loop (`tun_linux.ts`). With
 *   UDP_GRO the kernel hands over a run of equal-size datagrams from one sender as one buffer;
 *   it is split here, so callers only ever see single datagrams.
 * - Send: {@linkcode LinuxUdpSocket.send} copies the datagram into a send arena and describes it
 *   in a preallocated `mmsghdr` (or the caller writes it there itself:
 *   {@linkcode LinuxUdpSocket.reserve} / {@linkcode LinuxUdpSocket.commit}, which is how the data
 *   path encrypts without a buffer per packet); {@linkcode LinuxUdpSocket.flush} hands the batch
 *   to one `sendmmsg`. With UDP_SEGMENT (GSO), consecutive equal-size datagrams to the same endpoint
 *   share one message that the kernel (or the NIC) cuts back into datagrams. Sending never
 *   waits: when the kernel's send buffer is full (EAGAIN/ENOBUFS) the rest of the batch is
 *   dropped and counted, as a NIC drops when its ring is full, so memory stays bounded whatever
 *   the offered load.
 * - Addresses: a sender's `sockaddr` becomes a `{ hostname, port }` object once and is cached
 *   under a numeric key (IPv4: exact; IPv6: hash, confirmed byte by byte); each endpoint object
 *   caches its `sockaddr` for sending in a `WeakMap`. Strings are built only for new endpoints.
 *
 * Struct layouts (x86-64 and arm64 Linux): `struct mmsghdr` 64 bytes (msg_name @0, msg_namelen
 * @8, msg_iov @16, msg_iovlen @24, msg_control @32, msg_controllen @40, msg_flags @48, msg_len
 * @56), `struct iovec` 16, `sockaddr_in6` 28, `sockaddr_in` 16, `cmsghdr` 16 + data.
 *
 * @module
 */

import { ERRNO, errno, libc, OsError } from "./libc.ts";
import { PollSet } from "./poll_set.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { formatIPv6, parseIP } from "../protocol/ip_address.ts";

// --- protocol constants (Linux ABI) ------------------------------------------------------------
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const UDP_GRO = 104;
const SHUT_RDWR = 2;
const MSG_TRUNC = 0x20;
const EIO = 5;

const MMSGHDR_LEN = 64;
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_CONTROL = 32;
const MSG_CONTROLLEN = 40;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
const IOVEC_LEN = 16;
const SOCKADDR_IN_LEN = 16;
const SOCKADDR_IN6_LEN = 28;
const CMSGHDR_LEN = 16;
/** `CMSG_SPACE(sizeof(uint16_t))`: one UDP_SEGMENT control message. */
const SEGMENT_CMSG_SPACE = 24;
/** Room for the control messages of one received datagram (UDP_GRO needs 24). */
const RECEIVE_CMSG_SPACE = 64;
/** Largest UDP payload over IPv6 (65535 minus the UDP header), and over IPv4 minus its header. */
const MAX_DATAGRAM_LEN = 65_507;

// --- tuning constants --------------------------------------------------------------------------
/** Datagrams (or GRO buffers) one `recvmmsg` call can return. */
export const RECEIVE_BATCH = 64;
/** One receive buffer: a whole GRO run fits (the kernel caps it at 64 KiB). */
const RECEIVE_SLOT_LEN = 65_536;
/** Messages per `sendmmsg` call; a full batch is flushed at once. */
export const SEND_BATCH = 64;
/**
 * Bytes of datagrams queued before a flush is forced: ~90 full-size datagrams, ~0.3 ms of a TCP
 * flow at 3.5 Gbit/s. Why this small: what waits here, the receiver cannot work on yet. With
 * 1 MiB the sender encrypted ~700 datagrams (~1.5 ms) before the first one left, the receiving
 * end idled meanwhile, and a single TCP flow lost ~15% (the two ends share two cores, and a
 * pipeline only keeps both busy when work moves on in small steps). A `sendmmsg` costs a few µs:
 * ~2% of a core at this size.
 */
const SEND_ARENA_LEN = 128 << 10;
/** Most datagrams in one GSO message (the kernel's UDP_MAX_SEGMENTS on older kernels). */
const GSO_MAX_SEGMENTS = 64;
/** Most payload bytes in one GSO message, below the 64 KiB IP limit with headers. */
const GSO_MAX_BYTES = 60_000;
/**
 * Default socket buffer size for both directions, as wireguard-go and Tailscale ask for (set with
 * `SO_*BUFFORCE` where privileged, so `net.core.rmem_max` does not cap it). The kernel charges
 * a GRO buffer's whole truesize against it and drops whole buffers when it is full: with 4 MiB,
 * a receiver descheduled for a few tens of ms on a busy 2-core host lost thousands of datagrams
 * in most UDP floods at ~150k/s; with 7 MiB, in one run of nine.
 */
export const DEFAULT_SOCKET_BUFFER_BYTES = 7 << 20;
/** Default number of datagrams one {@linkcode LinuxUdpSocket.tryReceive} hands out. */
export const RECEIVE_BUDGET = 1024;
/** Receive-side endpoint cache entries before it starts over (bounds a spoofed-source flood). */
const ENDPOINT_CACHE_MAX = 4096;
/**
 * Longest single wait in {@linkcode LinuxUdpSocket.waitReadable}. `close` wakes a waiter at once
 * (shutdown makes `poll` report POLLHUP); the slice is only a safety net.
 */
export const POLL_SLICE_MS = 250;

const TWO_POW_32 = 4_294_967_296;
const TWO_POW_48 = 281_474_976_710_656;

/** Counters of a {@linkcode LinuxUdpSocket}, for status output and tests. */
export interface LinuxUdpStats {
  /** Datagrams the kernel accepted. */
  sent: number;
  /** `sendmmsg` calls. */
  sendCalls: number;
  /** Datagrams dropped because the socket's send buffer was full (EAGAIN/ENOBUFS). */
  sendDropped: number;
  /** Datagrams the kernel refused (no route, wrong family, too big) or that had no IP address. */
  sendErrors: number;
  /** GSO messages sent (each carrying more than one datagram). */
  gsoMessages: number;
  /** Datagrams handed to the receive callback. */
  received: number;
  /** `recvmmsg` calls that returned datagrams. */
  receiveCalls: number;
  /** Received buffers that held more than one datagram (GRO). */
  groBuffers: number;
  /** Datagrams longer than a receive buffer (dropped). */
  receiveTruncated: number;
}

/** Options of {@linkcode openLinuxUdpSocket}. */
export interface LinuxUdpOptions {
  /** Port to bind on all addresses; 0 lets the kernel choose. */
  port: number;
  /** `auto` (default): dual-stack `::`, or `0.0.0.0` where IPv6 is unavailable. */
  family?: "auto" | 4 | 6;
  /** Send and receive buffer size (default {@linkcode DEFAULT_SOCKET_BUFFER_BYTES}). */
  bufferBytes?: number;
  /** Use UDP_SEGMENT (GSO) when the kernel has it (default true). */
  gso?: boolean;
  /** Use UDP_GRO when the kernel has it (default true). */
  gro?: boolean;
}

/** Called once per received datagram; `data` is only valid until the callback returns. */
export type DatagramHandler = (data: Uint8Array, from: Endpoint) => void;

/** A destination's `sockaddr`, cached per endpoint object. */
interface Destination {
  readonly hostname: string;
  readonly port: number;
  readonly sockaddr: Uint8Array;
}

/** A sender seen on the receive side. */
interface Sender {
  /** The IPv6 address bytes (to confirm a hashed key); empty for IPv4. */
  readonly address: Uint8Array;
  readonly endpoint: Endpoint;
}

/** True when synchronous `sendmmsg`/`recvmmsg` are available (Linux with FFI allowed). */
export function linuxUdpAvailable(): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    const s = libc().symbols;
    return s.sendmmsg !== null && s.recvmmsg !== null;
  } catch {
    return false;
  }
}

function pointerOf(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

/** Writes a pointer-sized value without a BigInt (pointers are far below 2^53). */
function setPointer(view: DataView, offset: number, value: number): void {
  const hi = Math.floor(value / TWO_POW_32);
  view.setUint32(offset, value - hi * TWO_POW_32, true);
  view.setUint32(offset + 4, hi, true);
}

/**
 * Points message `i` of an mmsghdr array at its own name slot and iovec (slot `i` of the arrays
 * at `names` and `iov`, one iovec each) and at its control buffer `ctrl`.
 */
function linkMessage(msgs: DataView, i: number, names: number, iov: number, ctrl: number): void {
  const m = i * MMSGHDR_LEN;
  setPointer(msgs, m + MSG_NAME, names + i * SOCKADDR_IN6_LEN);
  setPointer(msgs, m + MSG_IOV, iov + i * IOVEC_LEN);
  setPointer(msgs, m + MSG_IOVLEN, 1);
  setPointer(msgs, m + MSG_CONTROL, ctrl);
}

/** A non-blocking UDP socket with batched sends and receives. See the module documentation. */
export class LinuxUdpSocket {
  /** Local port the socket is bound to. */
  readonly port: number;
  /** 6 for a dual-stack socket (IPv4 peers as mapped addresses), 4 for IPv4 only. */
  readonly family: 4 | 6;
  /** Counters. */
  readonly stats: LinuxUdpStats = {
    sent: 0,
    sendCalls: 0,
    sendDropped: 0,
    sendErrors: 0,
    gsoMessages: 0,
    received: 0,
    receiveCalls: 0,
    groBuffers: 0,
    receiveTruncated: 0,
  };
  #fd: number;
  #closed = false;
  #fdClosed = false;
  #waiters = 0;
  #gso: boolean;
  /** Longest segment a GSO message may use: lowered when the path refused one (MTU). */
  #gsoMaxSegmentLen = MAX_DATAGRAM_LEN;
  /** Messages the kernel refused to segment (then sent datagram by datagram). */
  #gsoRefused = 0;
  readonly #gro: boolean;
  readonly #poll: PollSet;

  // Send side: SEND_BATCH messages; message i owns name slot i, iovec i and control slot i.
  readonly #sendMsgs = new Uint8Array(SEND_BATCH * MMSGHDR_LEN);
  readonly #sendMsgsView = new DataView(this.#sendMsgs.buffer);
  readonly #sendIov = new Uint8Array(SEND_BATCH * IOVEC_LEN);
  readonly #sendIovView = new DataView(this.#sendIov.buffer);
  readonly #sendNames = new Uint8Array(SEND_BATCH * SOCKADDR_IN6_LEN);
  readonly #sendCtrl = new Uint8Array(SEND_BATCH * SEGMENT_CMSG_SPACE);
  readonly #sendCtrlView = new DataView(this.#sendCtrl.buffer);
  readonly #arena = new Uint8Array(SEND_ARENA_LEN);
  readonly #arenaPointer: number;
  #arenaUsed = 0;
  #count = 0;
  readonly #segmentLen = new Int32Array(SEND_BATCH);
  readonly #segments = new Int32Array(SEND_BATCH);
  readonly #bytes = new Int32Array(SEND_BATCH);
  /** Whether message i may take another segment (false once a shorter one ended it). */
  readonly #open = new Uint8Array(SEND_BATCH);
  readonly #destinations: (Destination | null)[] = new Array(SEND_BATCH).fill(null);
  readonly #destinationCache = new WeakMap<object, Destination>();
  #flushScheduled = false;
  readonly #autoFlush = () => {
    this.#flushScheduled = false;
    this.flush();
  };

  // Receive side: RECEIVE_BATCH slots of RECEIVE_SLOT_LEN bytes.
  readonly #recvMsgs = new Uint8Array(RECEIVE_BATCH * MMSGHDR_LEN);
  readonly #recvMsgsView = new DataView(this.#recvMsgs.buffer);
  readonly #recvIov = new Uint8Array(RECEIVE_BATCH * IOVEC_LEN);
  readonly #recvNames = new Uint8Array(RECEIVE_BATCH * SOCKADDR_IN6_LEN);
  readonly #recvNamesView = new DataView(this.#recvNames.buffer);
  readonly #recvCtrl = new Uint8Array(RECEIVE_BATCH * RECEIVE_CMSG_SPACE);
  readonly #recvCtrlView = new DataView(this.#recvCtrl.buffer);
  readonly #recvBuf = new Uint8Array(RECEIVE_BATCH * RECEIVE_SLOT_LEN);
  readonly #senders = new Map<number, Sender>();

  /** Wraps a bound, non-blocking socket. Use {@linkcode openLinuxUdpSocket}. */
  constructor(fd: number, port: number, family: 4 | 6, gso: boolean, gro: boolean) {
    this.#fd = fd;
    this.port = port;
    this.family = family;
    this.#gso = gso;
    this.#gro = gro;
    this.#poll = new PollSet([fd]);

    this.#arenaPointer = pointerOf(this.#arena);
    const names = pointerOf(this.#sendNames);
    const iov = pointerOf(this.#sendIov);
    const ctrl = pointerOf(this.#sendCtrl);
    for (let i = 0; i < SEND_BATCH; i++) {
      linkMessage(this.#sendMsgsView, i, names, iov, ctrl + i * SEGMENT_CMSG_SPACE);
      const c = i * SEGMENT_CMSG_SPACE;
      setPointer(this.#sendCtrlView, c, CMSGHDR_LEN + 2);
      this.#sendCtrlView.setInt32(c + 8, SOL_UDP, true);
      this.#sendCtrlView.setInt32(c + 12, UDP_SEGMENT, true);
    }

    const recvNames = pointerOf(this.#recvNames);
    const recvIov = pointerOf(this.#recvIov);
    const recvIovView = new DataView(this.#recvIov.buffer);
    const recvCtrl = pointerOf(this.#recvCtrl);
    const recvBuf = pointerOf(this.#recvBuf);
    for (let i = 0; i < RECEIVE_BATCH; i++) {
      const m = i * MMSGHDR_LEN;
      linkMessage(this.#recvMsgsView, i, recvNames, recvIov, recvCtrl + i * RECEIVE_CMSG_SPACE);
      setPointer(recvIovView, i * IOVEC_LEN, recvBuf + i * RECEIVE_SLOT_LEN);
      setPointer(recvIovView, i * IOVEC_LEN + 8, RECEIVE_SLOT_LEN);
      this.#resetReceiveSlot(m);
    }
  }

  /** Whether sends use UDP_SEGMENT (turned off for good if the egress path rejects it). */
  get gso(): boolean {
    return this.#gso;
  }

  /** GSO messages the kernel refused (their datagrams were then sent one by one). */
  get gsoRefused(): number {
    return this.#gsoRefused;
  }

  /** Whether the kernel may coalesce received datagrams (UDP_GRO). */
  get gro(): boolean {
    return this.#gro;
  }

  /** Whether {@linkcode LinuxUdpSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The file descriptor, for a combined wait (`ffi/poll_set.ts`); -1 once closed. A waiter that
   * polls it from outside must be woken by {@linkcode LinuxUdpSocket.close} (shutdown does).
   */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  /**
   * Queues one datagram for `to`; it leaves with the next {@linkcode LinuxUdpSocket.flush} (at
   * the latest at the end of the current synchronous job). The bytes are copied: the caller may
   * reuse `data` at once. Never throws; refusals are counted in {@linkcode LinuxUdpSocket.stats}.
   */
  send(data: Uint8Array, to: Endpoint): void {
    const len = data.length;
    if (len > MAX_DATAGRAM_LEN) {
      this.stats.sendErrors++;
      return;
    }
    const room = this.reserve(len);
    if (room === null) {
      this.stats.sendErrors++;
      return;
    }
    room.set(data);
    this.commit(len, to);
  }

  /**
   * Zero-copy sending, step 1: room for a datagram of up to `maxLen` bytes inside the send batch
   * (flushing first when the batch is full). Write the datagram there, then call
   * {@linkcode LinuxUdpSocket.commit} before any other send. Null when closed or too long.
   */
  reserve(maxLen: number): Uint8Array | null {
    if (this.#closed || maxLen > MAX_DATAGRAM_LEN) return null;
    // Both checks here, so that commit() never has to flush what was just written.
    if (this.#count === SEND_BATCH || this.#arenaUsed + maxLen > SEND_ARENA_LEN) this.flush();
    return this.#arena.subarray(this.#arenaUsed, this.#arenaUsed + maxLen);
  }

  /**
   * Zero-copy sending, step 2: queues the first `len` bytes written into the last
   * {@linkcode LinuxUdpSocket.reserve} for `to`. Never throws; refusals are counted.
   */
  commit(len: number, to: Endpoint): void {
    if (this.#closed) {
      this.stats.sendErrors++;
      return;
    }
    const dest = this.#destination(to);
    if (dest === null) {
      this.stats.sendErrors++;
      return;
    }
    const last = this.#count - 1;
    if (
      this.#gso && last >= 0 && this.#destinations[last] === dest && this.#open[last] === 1 &&
      len <= this.#segmentLen[last]! && this.#segmentLen[last]! <= this.#gsoMaxSegmentLen &&
      this.#segments[last]! < GSO_MAX_SEGMENTS &&
      this.#bytes[last]! + len <= GSO_MAX_BYTES && len > 0
    ) {
      // Same endpoint, not longer than the first segment, and already right behind it in the
      // arena: one more segment of the last message.
      this.#arenaUsed += len;
      this.#bytes[last]! += len;
      this.#segments[last]!++;
      // Only the final segment of a GSO message may be shorter.
      if (len < this.#segmentLen[last]!) this.#open[last] = 0;
      return;
    }
    const i = this.#count++;
    this.#sendNames.set(dest.sockaddr, i * SOCKADDR_IN6_LEN);
    this.#sendMsgsView.setUint32(i * MMSGHDR_LEN + MSG_NAMELEN, dest.sockaddr.length, true);
    setPointer(this.#sendIovView, i * IOVEC_LEN, this.#arenaPointer + this.#arenaUsed);
    this.#arenaUsed += len;
    this.#segmentLen[i] = len;
    this.#segments[i] = 1;
    this.#bytes[i] = len;
    this.#open[i] = 1;
    this.#destinations[i] = dest;
    if (i === 0 && !this.#flushScheduled) {
      // A safety net for sends outside the driver's batches (timers, control requests): the
      // data path flushes explicitly, and then this finds nothing to do.
      this.#flushScheduled = true;
      queueMicrotask(this.#autoFlush);
    }
  }

  /**
   * Hands every queued datagram to the kernel with `sendmmsg`, without waiting. Datagrams the
   * kernel has no room for are dropped and counted (`sendDropped`).
   */
  flush(): void {
    const n = this.#count;
    if (n === 0) return;
    const msgs = this.#sendMsgsView;
    for (let i = 0; i < n; i++) {
      const m = i * MMSGHDR_LEN;
      setPointer(this.#sendIovView, i * IOVEC_LEN + 8, this.#bytes[i]!);
      if (this.#segments[i]! > 1) {
        setPointer(msgs, m + MSG_CONTROLLEN, SEGMENT_CMSG_SPACE);
        this.#sendCtrlView.setUint16(
          i * SEGMENT_CMSG_SPACE + CMSGHDR_LEN,
          this.#segmentLen[i]!,
          true,
        );
      } else {
        setPointer(msgs, m + MSG_CONTROLLEN, 0);
      }
    }
    const sendmmsg = libc().symbols.sendmmsg!;
    let at = 0;
    // Bounded: every pass sends at least one message, skips one, or ends the loop; EINTR
    // retries at most a few times.
    let interrupts = 0;
    while (at < n && !this.#closed) {
      const r = sendmmsg(
        this.#fd,
        at === 0 ? this.#sendMsgs : this.#sendMsgs.subarray(at * MMSGHDR_LEN),
        n - at,
        0,
      );
      this.stats.sendCalls++;
      if (r > 0) {
        for (let i = at; i < at + r; i++) {
          this.stats.sent += this.#segments[i]!;
          if (this.#segments[i]! > 1) this.stats.gsoMessages++;
        }
        at += r;
        continue;
      }
      const e = r < 0 ? errno() : ERRNO.EAGAIN;
      if (e === ERRNO.EINTR && ++interrupts < 4) continue;
      if (e === ERRNO.EAGAIN || e === ERRNO.ENOBUFS) {
        // The kernel's queue is full: drop the rest of the batch, like a NIC with a full ring.
        for (let i = at; i < n; i++) this.stats.sendDropped += this.#segments[i]!;
        break;
      }
      if (this.#segments[at]! > 1 && (e === EIO || e === ERRNO.EINVAL || e === ERRNO.EMSGSIZE)) {
        // The path cannot segment (no checksum offload: EIO) or a segment exceeds its MTU
        // (EINVAL, EMSGSIZE: datagrams that need IP fragmentation): send this message's
        // datagrams one by one, and stop merging datagrams that long.
        if (e === EIO) this.#gso = false;
        else {
          this.#gsoMaxSegmentLen = Math.min(this.#gsoMaxSegmentLen, this.#segmentLen[at]! - 1);
        }
        this.#gsoRefused++;
        this.#sendSegmentsSingly(at);
      } else {
        this.stats.sendErrors += this.#segments[at]!;
      }
      at++;
    }
    this.#count = 0;
    this.#arenaUsed = 0;
  }

  /**
   * Hands ready datagrams to `onDatagram` (synchronously, in arrival order) until the socket's
   * queue is empty or `budget` datagrams were handled. Returns how many were handled: 0 means
   * nothing was ready (await {@linkcode LinuxUdpSocket.waitReadable}). The bytes passed to the
   * callback are overwritten by the next call: copy what must outlive it.
   * @throws {OsError} on an unexpected errno; {@linkcode Error} when closed.
   */
  tryReceive(onDatagram: DatagramHandler, budget: number = RECEIVE_BUDGET): number {
    if (this.#closed) throw new Error("UDP socket is closed");
    const recvmmsg = libc().symbols.recvmmsg!;
    const msgs = this.#recvMsgsView;
    let handled = 0;
    // Bounded by the budget: each pass handles at least one datagram or ends the loop.
    while (handled < budget && !this.#closed) {
      const r = recvmmsg(this.#fd, this.#recvMsgs, RECEIVE_BATCH, 0, null);
      if (r <= 0) {
        if (r === 0) break;
        const e = errno();
        if (e === ERRNO.EAGAIN) break;
        if (e === ERRNO.EINTR) continue;
        throw new OsError("recvmmsg", e);
      }
      this.stats.receiveCalls++;
      for (let i = 0; i < r; i++) {
        const m = i * MMSGHDR_LEN;
        const len = msgs.getUint32(m + MSG_LEN, true);
        const flags = msgs.getInt32(m + MSG_FLAGS, true);
        const segment = this.#gro
          ? this.#groSegmentLen(i, msgs.getUint32(m + MSG_CONTROLLEN, true))
          : 0;
        this.#resetReceiveSlot(m);
        if (flags & MSG_TRUNC) {
          this.stats.receiveTruncated++;
          continue;
        }
        const from = this.#sender(i);
        if (from === null) continue;
        const start = i * RECEIVE_SLOT_LEN;
        if (segment > 0 && segment < len) {
          this.stats.groBuffers++;
          for (let at = 0; at < len && !this.#closed; at += segment) {
            const end = at + segment < len ? at + segment : len;
            this.stats.received++;
            handled++;
            onDatagram(this.#recvBuf.subarray(start + at, start + end), from);
          }
        } else {
          this.stats.received++;
          handled++;
          onDatagram(this.#recvBuf.subarray(start, start + len), from);
        }
        if (this.#closed) break;
      }
      // A short batch means the queue was empty a moment ago: the next wait finds out cheaper
      // than one more recvmmsg that would most likely say EAGAIN.
      if (r < RECEIVE_BATCH) break;
    }
    return handled;
  }

  /**
   * Resolves when a datagram may be ready, or when the socket is closed (at once: close wakes
   * the poll). Waits in bounded `poll` slices, so it never hangs.
   */
  async waitReadable(): Promise<void> {
    this.#waiters++;
    try {
      await this.#poll.readable(() => this.#closed, POLL_SLICE_MS);
    } finally {
      this.#waiters--;
      // The fd outlives the close until no poll can still be using its number.
      if (this.#closed && this.#waiters === 0) this.#closeFd();
    }
  }

  /**
   * Closes the socket: queued datagrams are dropped, a pending wait resolves at once. The fd
   * itself is closed when no wait is using it any more. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#count = 0;
    this.#arenaUsed = 0;
    const s = libc().symbols;
    // shutdown() on an unconnected UDP socket fails with ENOTCONN but still marks it shut down
    // and wakes pollers (POLLHUP), which is all we want from it.
    s.shutdown(this.#fd, SHUT_RDWR);
    if (this.#waiters === 0) this.#closeFd();
  }

  /** Same as {@linkcode LinuxUdpSocket.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #closeFd(): void {
    if (this.#fdClosed) return;
    this.#fdClosed = true;
    libc().symbols.close(this.#fd);
    this.#fd = -1;
  }

  #resetReceiveSlot(m: number): void {
    // The kernel overwrites both lengths with what it used.
    this.#recvMsgsView.setUint32(m + MSG_NAMELEN, SOCKADDR_IN6_LEN, true);
    setPointer(this.#recvMsgsView, m + MSG_CONTROLLEN, RECEIVE_CMSG_SPACE);
  }

  #sendSegmentsSingly(i: number): void {
    const s = libc().symbols;
    const dest = this.#destinations[i]!;
    const base = Number(this.#sendIovView.getBigUint64(i * IOVEC_LEN, true)) - this.#arenaPointer;
    const seg = this.#segmentLen[i]!;
    const end = base + this.#bytes[i]!;
    for (let at = base; at < end; at += seg) {
      const len = Math.min(seg, end - at);
      const r = s.sendto(
        this.#fd,
        this.#arena.subarray(at, at + len),
        BigInt(len),
        0,
        dest.sockaddr,
        dest.sockaddr.length,
      );
      if (r >= 0) this.stats.sent++;
      else {
        const e = errno();
        if (e === ERRNO.EAGAIN || e === ERRNO.ENOBUFS) this.stats.sendDropped++;
        else this.stats.sendErrors++;
      }
    }
  }

  /** The UDP_GRO segment size in the control messages of receive slot `i`, or 0. */
  #groSegmentLen(i: number, controlLen: number): number {
    if (controlLen < CMSGHDR_LEN + 4) return 0;
    const v = this.#recvCtrlView;
    const base = i * RECEIVE_CMSG_SPACE;
    let at = 0;
    // Bounded by the control buffer's length; every step advances by at least one header.
    while (at + CMSGHDR_LEN + 4 <= controlLen) {
      const len = v.getUint32(base + at, true);
      if (len < CMSGHDR_LEN) return 0;
      if (
        v.getInt32(base + at + 8, true) === SOL_UDP && v.getInt32(base + at + 12, true) === UDP_GRO
      ) {
        return v.getInt32(base + at + CMSGHDR_LEN, true);
      }
      at += (len + 7) & ~7;
    }
    return 0;
  }

  /** The endpoint in receive slot `i`'s sockaddr, from the cache when seen before. */
  #sender(i: number): Endpoint | null {
    const v = this.#recvNamesView;
    const b = this.#recvNames;
    const at = i * SOCKADDR_IN6_LEN;
    const family = v.getUint16(at, true);
    const port = v.getUint16(at + 2, false);
    let ipv4: number;
    if (family === AF_INET6) {
      const a = at + 8;
      const mapped = v.getUint32(a, true) === 0 && v.getUint32(a + 4, true) === 0 &&
        v.getUint32(a + 8, false) === 0xffff;
      if (!mapped) return this.#sender6(at, port);
      ipv4 = v.getUint32(a + 12, false);
    } else if (family === AF_INET) {
      ipv4 = v.getUint32(at + 4, false);
    } else {
      return null;
    }
    const key = port * TWO_POW_32 + ipv4;
    const hit = this.#senders.get(key);
    if (hit !== undefined) return hit.endpoint;
    const endpoint: Endpoint = {
      hostname: `${ipv4 >>> 24}.${(ipv4 >>> 16) & 0xff}.${(ipv4 >>> 8) & 0xff}.${ipv4 & 0xff}`,
      port,
    };
    this.#remember(
      key,
      { address: EMPTY, endpoint },
      b.slice(at, at + (family === AF_INET6 ? SOCKADDR_IN6_LEN : SOCKADDR_IN_LEN)),
    );
    return endpoint;
  }

  #sender6(at: number, port: number): Endpoint {
    const b = this.#recvNames;
    const a = at + 8;
    // FNV-1a over the 16 address bytes; a hit is confirmed byte by byte.
    let h = 0x811c9dc5;
    for (let k = 0; k < 16; k++) h = Math.imul(h ^ b[a + k]!, 0x01000193);
    const key = TWO_POW_48 + (h >>> 0) * 65_536 + port;
    const hit = this.#senders.get(key);
    if (hit !== undefined) {
      let same = true;
      for (let k = 0; k < 16; k++) {
        if (hit.address[k] !== b[a + k]) {
          same = false;
          break;
        }
      }
      if (same) return hit.endpoint;
    }
    const address = b.slice(a, a + 16);
    // RFC 5952 text, the form the rest of meshub compares.
    const endpoint: Endpoint = { hostname: formatIPv6(address), port };
    this.#remember(key, { address, endpoint }, b.slice(at, at + SOCKADDR_IN6_LEN));
    return endpoint;
  }

  #remember(key: number, sender: Sender, sockaddr: Uint8Array): void {
    if (this.#senders.size >= ENDPOINT_CACHE_MAX) this.#senders.clear();
    this.#senders.set(key, sender);
    // Replies go back to exactly the address they came from (including an IPv6 scope id).
    this.#destinationCache.set(sender.endpoint, {
      hostname: sender.endpoint.hostname,
      port: sender.endpoint.port,
      sockaddr,
    });
  }

  #destination(to: Endpoint): Destination | null {
    const cached = this.#destinationCache.get(to);
    if (cached !== undefined && cached.hostname === to.hostname && cached.port === to.port) {
      return cached;
    }
    const sockaddr = encodeSockaddr(to, this.family);
    if (sockaddr === null) return null;
    const dest = { hostname: to.hostname, port: to.port, sockaddr };
    this.#destinationCache.set(to, dest);
    return dest;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The `sockaddr` for `to` on a socket of `family`: `sockaddr_in6` (IPv4 as `::ffff:a.b.c.d`) for
 * a dual-stack socket, `sockaddr_in` for an IPv4-only one. Null when `to` is not an IP literal
 * with a valid port, or is IPv6 on an IPv4-only socket.
 */
export function encodeSockaddr(to: Endpoint, family: 4 | 6): Uint8Array | null {
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) return null;
  const ip = parseIP(to.hostname);
  if (ip === null) return null;
  const bytes = ip.bytes;
  if (family === 4) {
    let v4: Uint8Array;
    if (bytes.length === 4) v4 = bytes;
    else if (isMapped(bytes)) v4 = bytes.subarray(12);
    else return null;
    const sa = new Uint8Array(SOCKADDR_IN_LEN);
    const v = new DataView(sa.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, to.port, false);
    sa.set(v4, 4);
    return sa;
  }
  const sa = new Uint8Array(SOCKADDR_IN6_LEN);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, to.port, false);
  if (bytes.length === 4) {
    sa[18] = 0xff;
    sa[19] = 0xff;
    sa.set(bytes, 20);
  } else {
    sa.set(bytes, 8);
  }
  return sa;
}

function isMapped(b: Uint8Array): boolean {
  for (let k = 0; k < 10; k++) if (b[k] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function setIntOption(fd: number, level: number, name: number, value: number): boolean {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setInt32(0, value, true);
  return libc().symbols.setsockopt(fd, level, name, v, 4) === 0;
}

function getIntOption(fd: number, level: number, name: number): number | null {
  const v = new Uint8Array(4);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, 4, true);
  if (libc().symbols.getsockopt(fd, level, name, v, len) !== 0) return null;
  return new DataView(v.buffer).getInt32(0, true);
}

/** Binds a new non-blocking socket of `family` to `port`; returns the fd, or -errno. */
function bindSocket(family: 4 | 6, port: number): number {
  const s = libc().symbols;
  const fd = s.socket(
    family === 6 ? AF_INET6 : AF_INET,
    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) return -errno();
  if (family === 6 && !setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0)) {
    const e = errno();
    s.close(fd);
    return -e;
  }
  const sa = new Uint8Array(family === 6 ? SOCKADDR_IN6_LEN : SOCKADDR_IN_LEN);
  const v = new DataView(sa.buffer);
  v.setUint16(0, family === 6 ? AF_INET6 : AF_INET, true);
  v.setUint16(2, port, false);
  if (s.bind(fd, sa, sa.length) !== 0) {
    const e = errno();
    s.close(fd);
    return -e;
  }
  return fd;
}

/**
 * Opens the client's UDP socket: dual-stack `::` (IPv6 with `IPV6_V6ONLY` off, so IPv4 peers
 * arrive as mapped addresses and are reported as plain IPv4), or `0.0.0.0` where IPv6 is
 * unavailable; non-blocking, close-on-exec, with large buffers (forced past `rmem_max` when
 * privileged) and UDP GSO/GRO when the kernel has them.
 *
 * @throws {OsError} when the port is taken (EADDRINUSE), not permitted, or sockets fail.
 */
export function openLinuxUdpSocket(options: LinuxUdpOptions): LinuxUdpSocket {
  const s = libc().symbols;
  if (s.sendmmsg === null || s.recvmmsg === null) {
    throw new OsError("dlopen(sendmmsg)", ERRNO.ENOENT, {
      message: "this C library has no sendmmsg/recvmmsg",
    });
  }
  const { port } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`UDP port must be 0..65535, got ${port}`);
  }
  const want = options.family ?? "auto";
  let family: 4 | 6 = want === 4 ? 4 : 6;
  let fd = bindSocket(family, port);
  if (fd < 0 && want === "auto" && -fd !== ERRNO.EADDRINUSE && -fd !== ERRNO.EACCES) {
    // No IPv6 in this kernel or namespace: an IPv4-only socket still carries IPv4 peers.
    family = 4;
    fd = bindSocket(4, port);
  }
  if (fd < 0) {
    const e = -fd;
    const hint = e === ERRNO.EADDRINUSE
      ? `udp port ${port} is already in use by another program`
      : e === ERRNO.EACCES
      ? `udp port ${port} needs privileges`
      : `cannot open udp port ${port}`;
    throw new OsError("bind", e, { message: hint });
  }
  const bufferBytes = options.bufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
  // The FORCE variants pass net.core.[rw]mem_max (needs CAP_NET_ADMIN); the plain ones are
  // capped at it. Either way the socket works; only its burst tolerance differs.
  if (!setIntOption(fd, SOL_SOCKET, SO_SNDBUFFORCE, bufferBytes)) {
    setIntOption(fd, SOL_SOCKET, SO_SNDBUF, bufferBytes);
  }
  if (!setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bufferBytes)) {
    setIntOption(fd, SOL_SOCKET, SO_RCVBUF, bufferBytes);
  }
  // UDP_SEGMENT is readable where the kernel can segment (Linux 4.18+).
  const gso = (options.gso ?? true) && getIntOption(fd, SOL_UDP, UDP_SEGMENT) !== null;
  const gro = (options.gro ?? true) && setIntOption(fd, SOL_UDP, UDP_GRO, 1);
  const name = new Uint8Array(SOCKADDR_IN6_LEN);
  const nameLen = new Uint8Array(4);
  new DataView(nameLen.buffer).setUint32(0, SOCKADDR_IN6_LEN, true);
  if (s.getsockname(fd, name, nameLen) !== 0) {
    const e = errno();
    s.close(fd);
    throw new OsError("getsockname", e);
  }
  const boundPort = new DataView(name.buffer).getUint16(2, false);
  return new LinuxUdpSocket(fd, boundPort, family, gso, gro);
}
