/**
 * TUN offloads (Linux `IFF_VNET_HDR` + `TUNSETOFFLOAD`), without I/O: every TUN read starts with
 * a `virtio_net_hdr` and may carry a TCP or UDP "super-packet" of up to 64 KB that the kernel
 * did not segment; every TUN write must start with one and may carry such a super-packet.
 *
 * The TUN side of the hot path (the driver is `client.ts`, the mesh core `mesh.ts`):
 *
 * ```
 * inside → outside (one drain = sync reads until EAGAIN, then one awaited poll)
 *   TUN read ──► TunSegmenter.split ──► Mesh.handleTunPacket (route, encrypt) ──► UDP send
 *   (vnet hdr +  headers kept as a template; each MTU-size segment is built in
 *    ≤ 64 KB)    place in front of its payload (IP length/id/checksum, TCP seq,
 *                FIN/PSH last, CWR first, full TCP/UDP checksum summed with
 *                WebAssembly SIMD: the frame lives in its memory): no copy of the
 *                payload, no allocation but one view per segment
 *   end of drain ──► TUN writer flush (ICMP errors written meanwhile) + UDP flush hook
 *
 * outside → inside (one receive batch of datagrams)
 *   UDP receive ──► Mesh.handleDatagram (decrypt, inner-source check) ──► TunCoalescer.write
 *     in-order TCP data of a pending flow (same addresses, ports, ack, window, options; valid
 *     checksum) is appended to that flow's super-packet; anything else is written at once with
 *     a zero header, after the pending packets of its own flow
 *   end of batch ──► TunCoalescer.flush: one TUN write per flow (GSO_TCPV4/6 header, partial
 *     checksum), so the kernel's TCP stack sees a few large packets instead of many small ones
 * ```
 *
 * Segments and super-packets are what Linux's own GSO and GRO produce (`tcp_gso_segment`,
 * `tcp_gro_receive`); the header rules follow them.
 *
 * @module
 */
import {
  addressSum,
  fold16,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4HeaderChecksum,
  sum16,
  wordView,
} from "./checksum.ts";
import { SimdChecksum } from "./checksum_simd.ts";

/** Bytes of `struct virtio_net_hdr` (no `num_buffers`): the TUN default `TUNSETVNETHDRSZ`. */
export const VIRTIO_NET_HDR_LEN = 10;
/** `flags`: the checksum from `csum_start` to the end is still to be computed. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** `gso_type`: a single packet. */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** `gso_type`: IPv4 TCP super-packet. */
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
/** `gso_type`: UDP fragmentation offload (obsolete; never enabled by meshub). */
export const VIRTIO_NET_HDR_GSO_UDP = 3;
/** `gso_type`: IPv6 TCP super-packet. */
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** `gso_type`: UDP super-packet (USO), either IP version. */
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
/** `gso_type` bit: the TCP stream uses ECN. */
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** Largest IP packet a super-packet may be (16-bit IPv4 total / IPv6 payload length). */
export const MAX_SUPER_PACKET_LEN = 65_535;
/** Capacity of {@linkcode TunSegmenter.frame}: a read this long was truncated by the kernel. */
export const TUN_FRAME_CAPACITY = VIRTIO_NET_HDR_LEN + MAX_SUPER_PACKET_LEN + 64;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;
/** Offset of the TCP checksum in the TCP header (virtio `csum_offset`). */
const TCP_CHECKSUM_AT = 16;
/** Offset of the UDP checksum in the UDP header. */
const UDP_CHECKSUM_AT = 6;
const UDP_HEADER_LEN = 8;

/**
 * Room in front of the frame for the header template: IPv4 with options (60) plus TCP with
 * options (60). 134 puts the IP packet at byte 144, so aligned payloads take the fast checksum.
 */
const TEMPLATE_LEN = 134;
const FRAME_AT = TEMPLATE_LEN;
const PACKET_AT = FRAME_AT + VIRTIO_NET_HDR_LEN;

/** Why {@linkcode TunSegmenter.split} dropped a frame. */
export type SegmentDrop =
  /** Shorter than a virtio header plus one byte. */
  | "short"
  /** As long as the buffer: the kernel cut it. */
  | "truncated"
  /** IP or transport header missing, cut short or not matching `gso_type`. */
  | "bad-header"
  /** `gso_type` meshub does not segment (UFO, unknown values). */
  | "unsupported-gso"
  /** `csum_start`/`csum_offset` outside the packet. */
  | "bad-checksum-offsets";

/** Counters of a {@linkcode TunSegmenter}. */
export interface SegmenterStats {
  /** Frames given to {@linkcode TunSegmenter.split}. */
  frames: number;
  /** Frames that were super-packets (split into more than one packet). */
  superPackets: number;
  /** IP packets handed on. */
  packets: number;
  /** Frames dropped, by reason. */
  drops: Record<SegmentDrop, number>;
}

/**
 * Turns TUN reads (virtio header + packet or super-packet) into MTU-size IP packets with
 * complete headers and checksums, the way the kernel's GSO would have.
 *
 * Read into {@linkcode TunSegmenter.frame}, then call {@linkcode TunSegmenter.split} with the
 * length. Never throws for any frame content.
 */
export class TunSegmenter {
  /** The buffer to read the next frame into (capacity {@linkcode TUN_FRAME_CAPACITY}). */
  readonly frame: Uint8Array;
  /** Counters. */
  readonly stats: SegmenterStats = {
    frames: 0,
    superPackets: 0,
    packets: 0,
    drops: {
      "short": 0,
      "truncated": 0,
      "bad-header": 0,
      "unsupported-gso": 0,
      "bad-checksum-offsets": 0,
    },
  };
  /** The reason of the last drop, or null when the last frame was handed on. */
  lastDrop: SegmentDrop | null = null;
  readonly #mem: Uint8Array;
  readonly #words: Uint32Array;
  /** The SIMD sum over #mem (which then lives in its WebAssembly memory), or null. */
  readonly #simd: SimdChecksum | null;

  /**
   * @param simd Sum checksums with WebAssembly SIMD where available (default true; false for
   *   the plain JavaScript sum, e.g. to compare the two).
   */
  constructor(simd = true) {
    const len = FRAME_AT + TUN_FRAME_CAPACITY;
    this.#simd = simd ? SimdChecksum.create(len) : null;
    // Frames are read straight into the WebAssembly memory: the SIMD sum sees nothing else.
    this.#mem = this.#simd?.bytes.subarray(0, len) ?? new Uint8Array(len);
    this.#words = wordView(this.#mem);
    this.frame = this.#mem.subarray(FRAME_AT);
  }

  /** Whether checksums are summed with WebAssembly SIMD. */
  get simd(): boolean {
    return this.#simd !== null;
  }

  /** The folded ones' complement sum of #mem[start..end) (`sum16`). */
  #sum(start: number, end: number): number {
    return this.#simd !== null
      ? this.#simd.sum16(start, end)
      : sum16(this.#mem, start, end, this.#words);
  }

  /**
   * Splits the `len`-byte frame in {@linkcode TunSegmenter.frame} and calls `emit` with each IP
   * packet, in order. A packet is valid only until `emit` returns: the next segment's headers
   * overwrite its tail, so a consumer that keeps one must copy it.
   *
   * @returns the number of packets emitted; 0 when the frame was dropped (see
   *   {@linkcode TunSegmenter.lastDrop}).
   */
  split(len: number, emit: (packet: Uint8Array) => void): number {
    this.stats.frames++;
    const m = this.#mem;
    if (!(len > VIRTIO_NET_HDR_LEN)) return this.#drop("short");
    if (len >= TUN_FRAME_CAPACITY) return this.#drop("truncated");
    const flags = m[FRAME_AT]!;
    const gsoType = m[FRAME_AT + 1]! & ~VIRTIO_NET_HDR_GSO_ECN;
    const gsoSize = m[FRAME_AT + 4]! | (m[FRAME_AT + 5]! << 8);
    const plen = len - VIRTIO_NET_HDR_LEN;
    if (gsoType === VIRTIO_NET_HDR_GSO_NONE || gsoSize === 0) {
      if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
        const start = m[FRAME_AT + 6]! | (m[FRAME_AT + 7]! << 8);
        const offset = m[FRAME_AT + 8]! | (m[FRAME_AT + 9]! << 8);
        if (start + offset + 2 > plen) return this.#drop("bad-checksum-offsets");
        const at = PACKET_AT + start + offset;
        // The field holds the pseudo-header sum: it is summed along with the rest.
        let c = ~this.#sum(PACKET_AT + start, PACKET_AT + plen) & 0xffff;
        // 0 means "no checksum" in UDP; 0xffff is the same value in ones' complement.
        if (c === 0) c = 0xffff;
        m[at] = c >>> 8;
        m[at + 1] = c & 0xff;
      }
      this.lastDrop = null;
      this.stats.packets++;
      emit(m.subarray(PACKET_AT, PACKET_AT + plen));
      return 1;
    }
    const tcp = gsoType === VIRTIO_NET_HDR_GSO_TCPV4 || gsoType === VIRTIO_NET_HDR_GSO_TCPV6;
    if (!tcp && gsoType !== VIRTIO_NET_HDR_GSO_UDP_L4) return this.#drop("unsupported-gso");

    // The kernel's hdr_len is its linear head length, not the header length: parse instead.
    const version = m[PACKET_AT]! >>> 4;
    const v6 = version === 6;
    let ipHL: number;
    let proto: number;
    if (version === 4 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV6) {
      ipHL = (m[PACKET_AT]! & 0xf) * 4;
      proto = m[PACKET_AT + 9]!;
    } else if (v6 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV4) {
      // Super-packets from the local stack carry no extension headers.
      ipHL = 40;
      proto = m[PACKET_AT + 6]!;
    } else {
      return this.#drop("bad-header");
    }
    if (ipHL < 20 || proto !== (tcp ? IPPROTO_TCP : IPPROTO_UDP)) return this.#drop("bad-header");
    let l4HL = UDP_HEADER_LEN;
    if (tcp) {
      if (ipHL + 20 > plen) return this.#drop("bad-header");
      l4HL = (m[PACKET_AT + ipHL + 12]! >>> 4) * 4;
      if (l4HL < 20) return this.#drop("bad-header");
    }
    const hdrLen = ipHL + l4HL;
    if (hdrLen > plen) return this.#drop("bad-header");

    const payloadLen = plen - hdrLen;
    const count = payloadLen <= gsoSize ? 1 : Math.ceil(payloadLen / gsoSize);
    // The original headers become the template; segment 0 is built where they are.
    m.copyWithin(0, PACKET_AT, PACKET_AT + hdrLen);
    const addr = addressSum(m, v6, 0) + proto;
    const id0 = (m[4]! << 8) | m[5]!;
    const seq0 = ((m[ipHL + 4]! << 24) | (m[ipHL + 5]! << 16) | (m[ipHL + 6]! << 8) |
      m[ipHL + 7]!) >>> 0;
    const flags0 = m[ipHL + 13]!;
    const end = PACKET_AT + plen;
    this.lastDrop = null;
    this.stats.packets += count;
    if (count > 1) this.stats.superPackets++;
    for (let i = 0; i < count; i++) {
      const payloadAt = PACKET_AT + hdrLen + i * gsoSize;
      const chunk = Math.min(gsoSize, end - payloadAt);
      const s = payloadAt - hdrLen;
      if (i > 0) m.copyWithin(s, 0, hdrLen);
      const l4 = s + ipHL;
      const l4Len = l4HL + chunk;
      if (v6) {
        const payload = hdrLen - 40 + chunk;
        m[s + 4] = payload >>> 8;
        m[s + 5] = payload & 0xff;
      } else {
        const total = hdrLen + chunk;
        const id = (id0 + i) & 0xffff;
        m[s + 2] = total >>> 8;
        m[s + 3] = total & 0xff;
        m[s + 4] = id >>> 8;
        m[s + 5] = id & 0xff;
        const hc = ipv4HeaderChecksum(m, s, ipHL);
        m[s + 10] = hc >>> 8;
        m[s + 11] = hc & 0xff;
      }
      let checkAt: number;
      if (tcp) {
        const seq = (seq0 + i * gsoSize) >>> 0;
        m[l4 + 4] = seq >>> 24;
        m[l4 + 5] = (seq >>> 16) & 0xff;
        m[l4 + 6] = (seq >>> 8) & 0xff;
        m[l4 + 7] = seq & 0xff;
        let f = flags0;
        if (i > 0) f &= ~TCP_CWR;
        if (i < count - 1) f &= ~(TCP_FIN | TCP_PSH);
        m[l4 + 13] = f;
        checkAt = l4 + TCP_CHECKSUM_AT;
      } else {
        m[l4 + 4] = l4Len >>> 8;
        m[l4 + 5] = l4Len & 0xff;
        checkAt = l4 + UDP_CHECKSUM_AT;
      }
      m[checkAt] = 0;
      m[checkAt + 1] = 0;
      const sum = addr + l4Len + this.#sum(l4, payloadAt) + this.#sum(payloadAt, payloadAt + chunk);
      let c = ~fold16(sum) & 0xffff;
      if (c === 0 && !tcp) c = 0xffff;
      m[checkAt] = c >>> 8;
      m[checkAt + 1] = c & 0xff;
      emit(m.subarray(s, payloadAt + chunk));
    }
    return count;
  }

  #drop(reason: SegmentDrop): number {
    this.stats.drops[reason]++;
    this.lastDrop = reason;
    return 0;
  }
}

/** Where decrypted IP packets go on their way to the TUN device. */
export interface TunWriter {
  /** Writes (or holds for coalescing) one IP packet; the packet is copied, not kept. */
  write(packet: Uint8Array): void;
  /** Writes everything held. Call at the end of each batch of received datagrams. */
  flush(): void;
}

/** Counters of a {@linkcode TunCoalescer}. */
export interface CoalescerStats {
  /** IP packets given to {@linkcode TunCoalescer.write}. */
  packets: number;
  /** TUN writes made (super-packets and single packets). */
  writes: number;
  /** Super-packets written (two or more segments). */
  superPackets: number;
  /** Writes the device refused (queue full, malformed, down). */
  writeFailures: number;
}

/** Most datagrams in one UDP super-packet (the kernel's `UDP_MAX_SEGMENTS`). */
export const MAX_UDP_SEGMENTS = 64;
/** Pending flows held at once; a ninth flow flushes the oldest. */
export const COALESCE_FLOWS = 8;
/** Where the IP packet starts in a flow buffer: after 2 bytes of padding and the virtio header. */
const FLOW_PACKET_AT = 2 + VIRTIO_NET_HDR_LEN;

/** One TCP flow's super-packet under construction. */
class Flow {
  readonly mem = new Uint8Array(FLOW_PACKET_AT + MAX_SUPER_PACKET_LEN + 1);
  readonly words = wordView(this.mem);
  /** Segments held; 0 when the slot is free. */
  count = 0;
  /** IP length of the super-packet so far. */
  len = 0;
  v6 = false;
  /** A UDP flow (USO super-packet) rather than TCP. */
  udp = false;
  ipHL = 0;
  /** Transport header length (8 for UDP). */
  l4HL = 0;
  /** Payload of the first segment: every other one but the last must match it. */
  gsoSize = 0;
  nextSeq = 0;
  /** IPv4 ID the next datagram of a UDP flow must carry (the kernel's USO counts up by one). */
  nextId = 0;
  /** Pseudo-header address sum plus the protocol. */
  addr = 0;
  /** Set after a short or PSH segment: nothing may follow. */
  closed = false;
  psh = false;
  /** When the flow started, for evicting the oldest. */
  started = 0;
}

/**
 * The TUN writer for a device with virtio headers: holds in-order TCP segments of the same flow
 * and writes them as one GSO super-packet on {@linkcode TunCoalescer.flush}; writes everything
 * else at once behind a zero header. Never throws for any packet content.
 */
export class TunCoalescer implements TunWriter {
  /** Counters. */
  readonly stats: CoalescerStats = { packets: 0, writes: 0, superPackets: 0, writeFailures: 0 };
  readonly #write: (frame: Uint8Array) => boolean;
  readonly #flows: Flow[] = [];
  readonly #udp: boolean;
  readonly #raw = new Uint8Array(VIRTIO_NET_HDR_LEN + MAX_SUPER_PACKET_LEN);
  #clock = 0;

  /**
   * @param write writes one frame (virtio header + packet) to the device; false when refused.
   * @param flows how many flows may be pending at once.
   * @param udp also merge UDP datagrams (only where the device took USO: Linux 6.2+).
   */
  constructor(write: (frame: Uint8Array) => boolean, flows = COALESCE_FLOWS, udp = false) {
    this.#write = write;
    this.#udp = udp;
    for (let i = 0; i < flows; i++) this.#flows.push(new Flow());
  }

  /** Writes or holds `packet` (an IP packet; copied). */
  write(packet: Uint8Array): void {
    this.stats.packets++;
    const n = packet.length;
    const version = packet[0]! >>> 4;
    let ipHL: number;
    let proto: number;
    if (version === 4) {
      // No options, not a fragment, length exact.
      proto = packet[9]!;
      if (
        n < 28 || packet[0] !== 0x45 || ((packet[6]! & 0x3f) | packet[7]!) !== 0 ||
        ((packet[2]! << 8) | packet[3]!) !== n
      ) return this.#writeRaw(packet);
      ipHL = 20;
    } else if (version === 6) {
      proto = packet[6]!;
      if (n < 48 || ((packet[4]! << 8) | packet[5]!) + 40 !== n) return this.#writeRaw(packet);
      ipHL = 40;
    } else {
      return this.#writeRaw(packet);
    }
    const v6 = version === 6;
    let l4HL: number;
    if (proto === IPPROTO_TCP) {
      if (n < ipHL + 20) return this.#writeRaw(packet);
      l4HL = (packet[ipHL + 12]! >>> 4) * 4;
      if (l4HL < 20 || ipHL + l4HL > n) return this.#writeRaw(packet);
    } else if (proto === IPPROTO_UDP && this.#udp) {
      // The UDP length must match the IP length: anything else is not ours to rewrite.
      if (((packet[ipHL + 4]! << 8) | packet[ipHL + 5]!) !== n - ipHL) {
        return this.#writeRaw(packet);
      }
      l4HL = UDP_HEADER_LEN;
    } else {
      return this.#writeRaw(packet);
    }
    const udp = proto === IPPROTO_UDP;
    const payload = n - ipHL - l4HL;
    const flow = this.#find(packet, v6, udp);
    if (flow !== undefined) {
      if (
        udp
          ? this.#appendUdp(flow, packet, ipHL, payload)
          : this.#append(flow, packet, ipHL, l4HL, payload)
      ) {
        if (flow.closed) this.#flushFlow(flow);
        return;
      }
      this.#flushFlow(flow);
    }
    if (
      payload === 0 || n > MAX_SUPER_PACKET_LEN ||
      (!udp && packet[ipHL + 13] !== TCP_ACK)
    ) {
      return this.#writeRaw(packet);
    }
    this.#start(packet, v6, udp, ipHL, l4HL, payload);
  }

  /** Writes every pending super-packet. */
  flush(): void {
    for (const f of this.#flows) if (f.count > 0) this.#flushFlow(f);
  }

  #find(p: Uint8Array, v6: boolean, udp: boolean): Flow | undefined {
    // Addresses and ports are contiguous: IPv4 12..23, IPv6 8..43 (no options/ext. headers).
    const from = v6 ? 8 : 12;
    const to = v6 ? 44 : 24;
    for (const f of this.#flows) {
      if (f.count === 0 || f.v6 !== v6 || f.udp !== udp) continue;
      const m = f.mem;
      let i = to - 1;
      // Ports and the address ends differ first between flows: compare backwards.
      while (i >= from && m[FLOW_PACKET_AT + i] === p[i]) i--;
      if (i < from) return f;
    }
    return undefined;
  }

  /** Appends a segment of the flow if it continues it exactly; false if it does not. */
  #append(f: Flow, p: Uint8Array, ipHL: number, tcpHL: number, payload: number): boolean {
    if (tcpHL !== f.l4HL || !this.#fits(f, p, payload)) return false;
    const flags = p[ipHL + 13]!;
    if (flags !== TCP_ACK && flags !== (TCP_ACK | TCP_PSH)) return false;
    const m = f.mem;
    const t = FLOW_PACKET_AT + ipHL;
    const seq = ((p[ipHL + 4]! << 24) | (p[ipHL + 5]! << 16) | (p[ipHL + 6]! << 8) |
      p[ipHL + 7]!) >>> 0;
    if (seq !== f.nextSeq) return false;
    // Ack and window (bytes 8..15 but the offset/flags at 12..13), options (20..).
    for (let i = 8; i < 12; i++) if (m[t + i] !== p[ipHL + i]) return false;
    if (m[t + 14] !== p[ipHL + 14] || m[t + 15] !== p[ipHL + 15]) return false;
    for (let i = 20; i < tcpHL; i++) if (m[t + i] !== p[ipHL + i]) return false;
    // The segment's checksum is not verified: it was decrypted and authenticated, so nothing on
    // the way changed it (kernel WireGuard marks such packets CHECKSUM_UNNECESSARY for the same
    // reason), and under a partial checksum the kernel does not check it again.
    this.#take(f, p, ipHL + tcpHL, payload);
    f.nextSeq = (seq + payload) >>> 0;
    if (payload < f.gsoSize || flags !== TCP_ACK) {
      f.closed = true;
      f.psh = flags !== TCP_ACK;
    }
    return true;
  }

  /**
   * Appends a UDP datagram of the flow if the kernel's UDP GSO would cut it back out exactly:
   * same IP header fields, the IPv4 ID one more than the last, the payload the size of the first
   * (the last datagram may be shorter, and closes the super-packet); false if not.
   */
  #appendUdp(f: Flow, p: Uint8Array, ipHL: number, payload: number): boolean {
    if (f.count >= MAX_UDP_SEGMENTS || !this.#fits(f, p, payload)) return false;
    if (!f.v6) {
      if (((p[4]! << 8) | p[5]!) !== f.nextId) return false;
      f.nextId = (f.nextId + 1) & 0xffff;
    }
    this.#take(f, p, ipHL + UDP_HEADER_LEN, payload);
    if (payload < f.gsoSize) f.closed = true;
    return true;
  }

  /**
   * What every merge needs: an open super-packet with room for `payload`, no longer than the
   * first segment's, and the IP header fields GSO copies into every segment unchanged (IPv6
   * traffic class, flow label, hop limit; IPv4 TOS with the ECN marks, DF, TTL).
   */
  #fits(f: Flow, p: Uint8Array, payload: number): boolean {
    if (f.closed || payload === 0 || payload > f.gsoSize) return false;
    if (f.len + payload > MAX_SUPER_PACKET_LEN) return false;
    const m = f.mem;
    const h = FLOW_PACKET_AT;
    if (f.v6) {
      return m[h] === p[0] && m[h + 1] === p[1] && m[h + 2] === p[2] && m[h + 3] === p[3] &&
        m[h + 7] === p[7];
    }
    return m[h + 1] === p[1] && m[h + 6] === p[6] && m[h + 8] === p[8];
  }

  /** Copies the payload at `p[from..]` behind the super-packet. */
  #take(f: Flow, p: Uint8Array, from: number, payload: number): void {
    f.mem.set(p.subarray(from), FLOW_PACKET_AT + f.len);
    f.len += payload;
    f.count++;
  }

  #start(
    p: Uint8Array,
    v6: boolean,
    udp: boolean,
    ipHL: number,
    l4HL: number,
    payload: number,
  ): void {
    let f: Flow | undefined;
    for (const g of this.#flows) {
      if (g.count === 0) {
        f = g;
        break;
      }
      if (f === undefined || g.started < f.started) f = g;
    }
    if (f === undefined) return this.#writeRaw(p);
    if (f.count > 0) this.#flushFlow(f);
    const m = f.mem;
    m.set(p, FLOW_PACKET_AT);
    const t = FLOW_PACKET_AT + ipHL;
    f.count = 1;
    f.len = p.length;
    f.v6 = v6;
    f.udp = udp;
    f.ipHL = ipHL;
    f.l4HL = l4HL;
    f.gsoSize = payload;
    f.addr = addressSum(m, v6, FLOW_PACKET_AT) + (udp ? IPPROTO_UDP : IPPROTO_TCP);
    f.nextSeq = (((m[t + 4]! << 24) | (m[t + 5]! << 16) | (m[t + 6]! << 8) | m[t + 7]!) +
      payload) >>> 0;
    f.nextId = (((m[FLOW_PACKET_AT + 4]! << 8) | m[FLOW_PACKET_AT + 5]!) + 1) & 0xffff;
    f.closed = false;
    f.psh = false;
    f.started = ++this.#clock;
  }

  #flushFlow(f: Flow): void {
    const m = f.mem;
    const h = FLOW_PACKET_AT;
    const v = h - VIRTIO_NET_HDR_LEN;
    if (f.count === 1) {
      m.fill(0, v, h);
    } else {
      const ipHL = f.ipHL;
      const t = h + ipHL;
      if (f.v6) {
        const payload = f.len - 40;
        m[h + 4] = payload >>> 8;
        m[h + 5] = payload & 0xff;
      } else {
        m[h + 2] = f.len >>> 8;
        m[h + 3] = f.len & 0xff;
        const hc = ipv4HeaderChecksum(m, h, ipHL);
        m[h + 10] = hc >>> 8;
        m[h + 11] = hc & 0xff;
      }
      // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, the kernel trusts the
      // rest (see #append) and completes it per segment only where one leaves the host.
      const pseudo = fold16(f.addr + f.len - ipHL);
      const hdrLen = ipHL + f.l4HL;
      let csumAt: number;
      if (f.udp) {
        // The UDP length of a super-packet covers all of it, as the kernel's UDP GRO sets it.
        m[t + 4] = (f.len - ipHL) >>> 8;
        m[t + 5] = (f.len - ipHL) & 0xff;
        csumAt = UDP_CHECKSUM_AT;
      } else {
        if (f.psh) m[t + 13]! |= TCP_PSH;
        csumAt = TCP_CHECKSUM_AT;
      }
      m[t + csumAt] = pseudo >>> 8;
      m[t + csumAt + 1] = pseudo & 0xff;
      m[v] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      m[v + 1] = f.udp
        ? VIRTIO_NET_HDR_GSO_UDP_L4
        : f.v6
        ? VIRTIO_NET_HDR_GSO_TCPV6
        : VIRTIO_NET_HDR_GSO_TCPV4;
      m[v + 2] = hdrLen & 0xff;
      m[v + 3] = hdrLen >>> 8;
      m[v + 4] = f.gsoSize & 0xff;
      m[v + 5] = f.gsoSize >>> 8;
      m[v + 6] = ipHL;
      m[v + 7] = 0;
      m[v + 8] = csumAt;
      m[v + 9] = 0;
      this.stats.superPackets++;
    }
    f.count = 0;
    this.#emit(m.subarray(v, h + f.len));
  }

  #writeRaw(p: Uint8Array): void {
    if (p.length > MAX_SUPER_PACKET_LEN) {
      this.stats.writeFailures++;
      return;
    }
    const r = this.#raw;
    // The header bytes are never written: they stay zero (GSO_NONE, no checksum to complete).
    r.set(p, VIRTIO_NET_HDR_LEN);
    this.#emit(r.subarray(0, VIRTIO_NET_HDR_LEN + p.length));
  }

  #emit(frame: Uint8Array): void {
    this.stats.writes++;
    if (!this.#write(frame)) this.stats.writeFailures++;
  }
}
