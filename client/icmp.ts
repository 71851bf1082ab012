/**
 * ICMP errors and echo probes for packets inside the VPN. Pure: bytes in, bytes out, no I/O.
 *
 * The mesh is the "router" between the local TUN and every other member, so when it cannot
 * deliver a packet it answers the way a router would, from our own VPN address:
 *
 * - no live edge to the destination: ICMPv6 Destination Unreachable (type 1, code 3 "address
 *   unreachable", or code 0 "no route") / ICMP Destination Unreachable (type 3, code 1 "host
 *   unreachable", or code 0 "net unreachable");
 * - a packet larger than the tunnel MTU: ICMPv6 Packet Too Big (type 2) / ICMP Fragmentation
 *   Needed (type 3 code 4, only when DF is set) carrying the MTU.
 *
 * {@linkcode errorAllowed} applies RFC 4443 §2.4 (e) and RFC 1812 §4.3.2.7: never an error about
 * an ICMP error, a multicast or broadcast destination, an unspecified/multicast/loopback source, or
 * a non-first IPv4 fragment. {@linkcode TokenBucket} rate-limits what is left (RFC 4443 §2.4 (f)).
 *
 * The in-protocol ping ({@linkcode buildEchoRequest6}/{@linkcode parseEchoReply6}) is an ordinary
 * ICMPv6 echo from our VPN address; the peer's kernel answers it, and the mesh takes the reply
 * out of the outside→inside path before it reaches the TUN (matched by identifier).
 *
 * @module
 */

/** IPv6 header length. */
export const IPV6_HEADER_LEN = 40;
/** Smallest IPv6 MTU: an ICMPv6 error must fit in it (RFC 4443 §2.4 (c)). */
export const IPV6_MIN_MTU = 1280;
/** Most an ICMP (v4) error may be (RFC 1812 §4.3.2.3). */
export const IPV4_ERROR_MAX_LEN = 576;
/** IP protocol number of ICMPv6. */
export const PROTO_ICMPV6 = 58;
/** IP protocol number of ICMP. */
export const PROTO_ICMP = 1;
/** Hop limit / TTL of the packets built here. */
const HOP_LIMIT = 64;

/** ICMPv6 types used here. */
export const Icmp6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
} as const;

/** ICMPv6 Destination Unreachable codes (RFC 4443 §3.1). */
export const Icmp6Unreach = { NO_ROUTE: 0, ADDRESS_UNREACHABLE: 3 } as const;
/** ICMP Destination Unreachable codes (RFC 792). */
export const Icmp4Unreach = { NET: 0, HOST: 1, FRAG_NEEDED: 4 } as const;

/** Why the mesh could not deliver a packet from the TUN. */
export type UnreachableKind = "no-route" | "address-unreachable";

/**
 * The Internet checksum (RFC 1071) of `data[start..end)`, folded, not complemented, added to
 * `initial` (for pseudo-headers).
 */
export function onesComplementSum(
  data: Uint8Array,
  start = 0,
  end = data.length,
  initial = 0,
): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** True when `packet` starts with an IPv6 header that is long enough. */
function isIPv6(packet: Uint8Array): boolean {
  return packet.length >= IPV6_HEADER_LEN && packet[0]! >> 4 === 6;
}

/** IPv4 header length in bytes, or 0 when `packet` is no well-formed IPv4 header. */
function ipv4HeaderLen(packet: Uint8Array): number {
  if (packet.length < 20 || packet[0]! >> 4 !== 4) return 0;
  const ihl = (packet[0]! & 0x0f) * 4;
  return ihl >= 20 && ihl <= packet.length ? ihl : 0;
}

function isZero(bytes: Uint8Array, start: number, len: number): boolean {
  for (let i = start; i < start + len; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Whether an ICMP error may be sent about `packet` (RFC 4443 §2.4 (e), RFC 1812 §4.3.2.7):
 * not about ICMP errors (nor unparseable extension chains hiding one), multicast or broadcast
 * destinations, unspecified, multicast or loopback sources, or non-first IPv4 fragments.
 */
export function errorAllowed(packet: Uint8Array): boolean {
  if (isIPv6(packet)) {
    // Source: not unspecified (::), not multicast (ff00::/8), not loopback (::1).
    if (isZero(packet, 8, 16)) return false;
    if (packet[8] === 0xff) return false;
    if (isZero(packet, 8, 15) && packet[23] === 1) return false;
    // Destination: not multicast.
    if (packet[24] === 0xff) return false;
    const proto = upperLayer6(packet);
    if (proto === null) return false;
    if (proto.next === PROTO_ICMPV6) {
      const type = packet[proto.offset];
      // Errors are types 0..127; an ICMPv6 header we cannot read is treated as an error.
      if (type === undefined || type < 128) return false;
    }
    return true;
  }
  const ihl = ipv4HeaderLen(packet);
  if (ihl === 0) return false;
  const src0 = packet[12]!;
  const dst0 = packet[16]!;
  if (isZero(packet, 12, 4) || src0 >= 224 || src0 === 127) return false;
  if (dst0 >= 224) return false; // multicast, class E and the limited broadcast
  const fragOffset = ((packet[6]! & 0x1f) << 8) | packet[7]!;
  if (fragOffset !== 0) return false;
  if (packet[9] === PROTO_ICMP) {
    const type = packet[ihl];
    // Only queries (echo 8, echo reply 0, timestamp 13/14 ...) may draw an error.
    if (type === undefined || !(type === 0 || type === 8 || type === 13 || type === 14)) {
      return false;
    }
  }
  return true;
}

/**
 * Walks IPv6 extension headers (hop-by-hop, routing, destination options; at most 8) to the
 * upper-layer protocol. Returns null for a truncated chain or a fragment that is not the first.
 */
function upperLayer6(packet: Uint8Array): { next: number; offset: number } | null {
  let next = packet[6]!;
  let offset = IPV6_HEADER_LEN;
  for (let i = 0; i < 8; i++) {
    if (next === 0 || next === 43 || next === 60) {
      if (offset + 2 > packet.length) return null;
      const len = (packet[offset + 1]! + 1) * 8;
      next = packet[offset]!;
      offset += len;
    } else if (next === 44) {
      if (offset + 8 > packet.length) return null;
      const fragOffset = ((packet[offset + 2]! << 8) | packet[offset + 3]!) >> 3;
      if (fragOffset !== 0) return null;
      next = packet[offset]!;
      offset += 8;
    } else {
      return { next, offset };
    }
  }
  return null;
}

/** Builds an IPv6 packet carrying ICMPv6 `type`/`code`/`word` about `invoking`, from `source`. */
function icmp6Error(
  invoking: Uint8Array,
  source: Uint8Array,
  type: number,
  code: number,
  word: number,
): Uint8Array {
  const quoted = Math.min(invoking.length, IPV6_MIN_MTU - IPV6_HEADER_LEN - 8);
  const icmpLen = 8 + quoted;
  const p = new Uint8Array(IPV6_HEADER_LEN + icmpLen);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, icmpLen);
  p[6] = PROTO_ICMPV6;
  p[7] = HOP_LIMIT;
  p.set(source, 8);
  p.set(invoking.subarray(8, 24), 24); // back to the original source
  p[40] = type;
  p[41] = code;
  v.setUint32(44, word);
  p.set(invoking.subarray(0, quoted), 48);
  v.setUint16(42, icmp6Checksum(p));
  return p;
}

/** The ICMPv6 checksum of an IPv6 packet whose upper layer directly follows the header. */
export function icmp6Checksum(p: Uint8Array): number {
  const len = p.length - IPV6_HEADER_LEN;
  // Pseudo-header: source, destination, upper-layer length (32 bits), next header (32 bits).
  let sum = onesComplementSum(p, 8, 40);
  sum += (len >>> 16) + (len & 0xffff) + PROTO_ICMPV6;
  // Skip the checksum field itself (bytes 42..43) by summing around it.
  sum = onesComplementSum(p, 40, 42, sum);
  sum = onesComplementSum(p, 44, p.length, sum);
  return ~sum & 0xffff;
}

/** Builds an IPv4 packet carrying ICMP `type`/`code`/`word` about `invoking`, from `source`. */
function icmp4Error(
  invoking: Uint8Array,
  source: Uint8Array,
  type: number,
  code: number,
  word: number,
): Uint8Array {
  const quoted = Math.min(invoking.length, IPV4_ERROR_MAX_LEN - 20 - 8);
  const total = 20 + 8 + quoted;
  const p = new Uint8Array(total);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, total);
  p[8] = HOP_LIMIT;
  p[9] = PROTO_ICMP;
  p.set(source, 12);
  p.set(invoking.subarray(12, 16), 16);
  v.setUint16(10, ~onesComplementSum(p, 0, 20) & 0xffff);
  p[20] = type;
  p[21] = code;
  v.setUint32(24, word);
  p.set(invoking.subarray(0, quoted), 28);
  v.setUint16(22, ~onesComplementSum(p, 20, total) & 0xffff);
  return p;
}

/**
 * The destination-unreachable error for `packet` (IPv6 or IPv4), sent from `source6`/`source4`
 * (our VPN addresses), or null when none may be sent (see {@linkcode errorAllowed}) or there is
 * no source address of the packet's family.
 */
export function buildUnreachable(
  packet: Uint8Array,
  kind: UnreachableKind,
  source6: Uint8Array | null,
  source4: Uint8Array | null,
): Uint8Array | null {
  if (!errorAllowed(packet)) return null;
  if (isIPv6(packet)) {
    if (source6 === null) return null;
    const code = kind === "no-route" ? Icmp6Unreach.NO_ROUTE : Icmp6Unreach.ADDRESS_UNREACHABLE;
    return icmp6Error(packet, source6, Icmp6Type.DEST_UNREACHABLE, code, 0);
  }
  if (source4 === null) return null;
  const code = kind === "no-route" ? Icmp4Unreach.NET : Icmp4Unreach.HOST;
  return icmp4Error(packet, source4, 3, code, 0);
}

/**
 * The "too big" error for `packet` with the tunnel `mtu`: ICMPv6 Packet Too Big, or ICMP
 * Fragmentation Needed when the IPv4 packet has DF set (without DF the kernel fragments; null).
 */
export function buildTooBig(
  packet: Uint8Array,
  mtu: number,
  source6: Uint8Array | null,
  source4: Uint8Array | null,
): Uint8Array | null {
  if (isIPv6(packet)) {
    // Packet Too Big is allowed for multicast destinations (RFC 4443 §2.4 (e.3)); keep it simple
    // and only answer unicast, like everything else here.
    if (source6 === null || !errorAllowed(packet)) return null;
    return icmp6Error(packet, source6, Icmp6Type.PACKET_TOO_BIG, 0, mtu);
  }
  if (source4 === null || !errorAllowed(packet)) return null;
  const dontFragment = (packet[6]! & 0x40) !== 0;
  if (!dontFragment) return null;
  return icmp4Error(packet, source4, 3, Icmp4Unreach.FRAG_NEEDED, mtu & 0xffff);
}

/** Length of the payload of the probes built by {@linkcode buildEchoRequest6}. */
export const ECHO_PAYLOAD_LEN = 16;
const ECHO_MAGIC = new TextEncoder().encode("meshub-p");

/** An ICMPv6 echo request from `source` to `destination` with our identifier and `seq`. */
export function buildEchoRequest6(
  source: Uint8Array,
  destination: Uint8Array,
  identifier: number,
  seq: number,
): Uint8Array {
  const icmpLen = 8 + ECHO_PAYLOAD_LEN;
  const p = new Uint8Array(IPV6_HEADER_LEN + icmpLen);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, icmpLen);
  p[6] = PROTO_ICMPV6;
  p[7] = HOP_LIMIT;
  p.set(source, 8);
  p.set(destination, 24);
  p[40] = Icmp6Type.ECHO_REQUEST;
  v.setUint16(44, identifier);
  v.setUint16(46, seq);
  p.set(ECHO_MAGIC, 48);
  v.setUint16(42, icmp6Checksum(p));
  return p;
}

/**
 * If `packet` is the answer to one of our probes (an ICMPv6 echo reply to `ourAddress` with
 * `identifier` and our payload), returns its sequence number; otherwise null. Cheap on the hot
 * path: the first checks are single bytes.
 */
export function parseEchoReply6(
  packet: Uint8Array,
  ourAddress: Uint8Array,
  identifier: number,
): number | null {
  if (packet.length !== IPV6_HEADER_LEN + 8 + ECHO_PAYLOAD_LEN) return null;
  if (packet[0]! >> 4 !== 6 || packet[6] !== PROTO_ICMPV6) return null;
  if (packet[40] !== Icmp6Type.ECHO_REPLY) return null;
  if (((packet[44]! << 8) | packet[45]!) !== identifier) return null;
  for (let i = 0; i < 16; i++) if (packet[24 + i] !== ourAddress[i]) return null;
  for (let i = 0; i < ECHO_MAGIC.length; i++) if (packet[48 + i] !== ECHO_MAGIC[i]) return null;
  if (icmp6Checksum(packet) !== ((packet[42]! << 8) | packet[43]!)) return null;
  return (packet[46]! << 8) | packet[47]!;
}

/** A token bucket: `ratePerS` tokens a second, at most `burst` saved up. Clock is a parameter. */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #lastMs: number | null = null;

  /** A full bucket. */
  constructor(ratePerS: number, burst: number) {
    this.#ratePerMs = ratePerS / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    if (this.#lastMs !== null) {
      const gained = Math.max(0, nowMs - this.#lastMs) * this.#ratePerMs;
      this.#tokens = Math.min(this.#burst, this.#tokens + gained);
    }
    this.#lastMs = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
