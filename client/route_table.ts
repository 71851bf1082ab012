/**
 * Which peer owns a VPN address: the lookup on the hot path (TUN → peer) and the inner-source
 * check on the way back (peer → TUN). Works on raw packet bytes, allocates nothing per packet.
 *
 * @module
 */

/** An address prefix inside the VPN (IPv6: 16 bytes, IPv4: 4 bytes). */
export interface Prefix {
  /** Address bytes (16 for IPv6, 4 for IPv4). */
  address: Uint8Array;
  /** Prefix length in bits. */
  prefixLength: number;
}

interface Entry<T> {
  prefix: Prefix;
  value: T;
}

const IPV6_SRC_OFFSET = 8;
const IPV6_DST_OFFSET = 24;
const IPV4_SRC_OFFSET = 12;
const IPV4_DST_OFFSET = 16;
const IPV6_HEADER_LEN = 40;
const IPV4_HEADER_LEN = 20;

/** True when `bytes[offset..]` lies inside `prefix` (whose family matches the byte count). */
function prefixContains(prefix: Prefix, bytes: Uint8Array, offset: number): boolean {
  const full = prefix.prefixLength >> 3;
  const a = prefix.address;
  for (let i = 0; i < full; i++) if (a[i] !== bytes[offset + i]) return false;
  const rest = prefix.prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (bytes[offset + full]! & mask);
}

/**
 * FNV-1a over the `len` address bytes at `offset`: the Map key of exact host routes. Cut to 30
 * bits so that it is always a small integer in V8 (a Smi): a key of 2^30 or more would be a
 * heap number, one allocation per packet. Exported for tests.
 */
export function hostKey(bytes: Uint8Array, offset: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ bytes[offset + i]!, 0x01000193);
  return h & 0x3fffffff;
}

/** Maps VPN address prefixes to values (peers). Host routes are O(1); other prefixes scanned. */
export class RouteTable<T> {
  /** Exact host routes (/128, /32) by {@linkcode hostKey}; colliding keys share a list. */
  #hosts6 = new Map<number, Entry<T>[]>();
  #hosts4 = new Map<number, Entry<T>[]>();
  #prefixes6: Entry<T>[] = [];
  #prefixes4: Entry<T>[] = [];
  /**
   * The host route of the last hit, per family: a flow's packets go to (and come from) one host,
   * so one comparison usually answers. Only host routes, the most specific, are kept here;
   * every change to the table forgets them.
   */
  #last6: Entry<T> | null = null;
  #last4: Entry<T> | null = null;

  /** Routes `prefix` to `value`. A later route for the same prefix wins. */
  add(prefix: Prefix, value: T): void {
    this.remove(prefix);
    const entry = { prefix, value };
    const len = prefix.address.length;
    if (prefix.prefixLength === len * 8) {
      const hosts = len === 16 ? this.#hosts6 : this.#hosts4;
      const key = hostKey(prefix.address, 0, len);
      const list = hosts.get(key);
      if (list) list.push(entry);
      else hosts.set(key, [entry]);
    } else if (len === 16) {
      this.#prefixes6.push(entry);
      this.#prefixes6.sort((x, y) => y.prefix.prefixLength - x.prefix.prefixLength);
    } else {
      this.#prefixes4.push(entry);
      this.#prefixes4.sort((x, y) => y.prefix.prefixLength - x.prefix.prefixLength);
    }
  }

  /** Removes the route for exactly this prefix, if any. */
  remove(prefix: Prefix): void {
    this.#last6 = this.#last4 = null;
    const same = (e: Entry<T>) =>
      e.prefix.prefixLength === prefix.prefixLength &&
      e.prefix.address.length === prefix.address.length &&
      prefixContains(e.prefix, prefix.address, 0);
    const len = prefix.address.length;
    if (prefix.prefixLength === len * 8) {
      const hosts = len === 16 ? this.#hosts6 : this.#hosts4;
      const key = hostKey(prefix.address, 0, len);
      const list = hosts.get(key)?.filter((e) => !same(e));
      if (list && list.length > 0) hosts.set(key, list);
      else hosts.delete(key);
    } else if (len === 16) this.#prefixes6 = this.#prefixes6.filter((e) => !same(e));
    else this.#prefixes4 = this.#prefixes4.filter((e) => !same(e));
  }

  /** Removes every route to `value`. */
  removeValue(value: T): void {
    this.#last6 = this.#last4 = null;
    for (const hosts of [this.#hosts6, this.#hosts4]) {
      for (const [key, list] of hosts) {
        const kept = list.filter((e) => e.value !== value);
        if (kept.length > 0) hosts.set(key, kept);
        else hosts.delete(key);
      }
    }
    this.#prefixes6 = this.#prefixes6.filter((e) => e.value !== value);
    this.#prefixes4 = this.#prefixes4.filter((e) => e.value !== value);
  }

  /** The value routed for the destination of an IP packet, or undefined (also for garbage). */
  lookupDestination(packet: Uint8Array): T | undefined {
    const version = packet[0]! >> 4;
    if (version === 6) {
      if (packet.length < IPV6_HEADER_LEN) return undefined;
      return this.#lookup6(packet, IPV6_DST_OFFSET);
    }
    if (version === 4) {
      if (packet.length < IPV4_HEADER_LEN) return undefined;
      return this.#lookup4(packet, IPV4_DST_OFFSET);
    }
    return undefined;
  }

  /** The value routed for the source of an IP packet (for the inner-source check). */
  lookupSource(packet: Uint8Array): T | undefined {
    const version = packet[0]! >> 4;
    if (version === 6) {
      if (packet.length < IPV6_HEADER_LEN) return undefined;
      return this.#lookup6(packet, IPV6_SRC_OFFSET);
    }
    if (version === 4) {
      if (packet.length < IPV4_HEADER_LEN) return undefined;
      return this.#lookup4(packet, IPV4_SRC_OFFSET);
    }
    return undefined;
  }

  #lookup6(packet: Uint8Array, offset: number): T | undefined {
    const last = this.#last6;
    if (last !== null && prefixContains(last.prefix, packet, offset)) return last.value;
    const list = this.#hosts6.get(hostKey(packet, offset, 16));
    if (list) {
      for (const e of list) {
        if (prefixContains(e.prefix, packet, offset)) {
          this.#last6 = e;
          return e.value;
        }
      }
    }
    for (const e of this.#prefixes6) if (prefixContains(e.prefix, packet, offset)) return e.value;
    return undefined;
  }

  #lookup4(packet: Uint8Array, offset: number): T | undefined {
    const last = this.#last4;
    if (last !== null && prefixContains(last.prefix, packet, offset)) return last.value;
    const list = this.#hosts4.get(hostKey(packet, offset, 4));
    if (list) {
      for (const e of list) {
        if (prefixContains(e.prefix, packet, offset)) {
          this.#last4 = e;
          return e.value;
        }
      }
    }
    for (const e of this.#prefixes4) if (prefixContains(e.prefix, packet, offset)) return e.value;
    return undefined;
  }
}
