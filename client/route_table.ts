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

/**
 * One address family's routes: exact host routes (/128 or /32) by {@linkcode hostKey}, where
 * colliding keys share a list, and the other prefixes, longest first.
 */
class FamilyRoutes<T> {
  readonly #hosts = new Map<number, Entry<T>[]>();
  #prefixes: Entry<T>[] = [];
  /**
   * The host route of the last hit: a flow's packets go to (and come from) one host, so one
   * comparison usually answers. Only host routes, the most specific, are kept here; every change
   * to the routes forgets it.
   */
  #last: Entry<T> | null = null;

  /** @param addressLen 16 (IPv6) or 4 (IPv4). */
  constructor(readonly addressLen: number) {}

  add(entry: Entry<T>): void {
    this.#last = null;
    const prefix = entry.prefix;
    if (prefix.prefixLength === this.addressLen * 8) {
      const key = hostKey(prefix.address, 0, this.addressLen);
      const list = this.#hosts.get(key);
      if (list) list.push(entry);
      else this.#hosts.set(key, [entry]);
    } else {
      this.#prefixes.push(entry);
      this.#prefixes.sort((x, y) => y.prefix.prefixLength - x.prefix.prefixLength);
    }
  }

  /** Removes the entries `drop` selects; `prefix` narrows the search to its host list. */
  remove(drop: (e: Entry<T>) => boolean, prefix?: Prefix): void {
    this.#last = null;
    if (prefix === undefined || prefix.prefixLength === this.addressLen * 8) {
      const keys = prefix === undefined
        ? [...this.#hosts.keys()]
        : [hostKey(prefix.address, 0, this.addressLen)];
      for (const key of keys) {
        const kept = this.#hosts.get(key)?.filter((e) => !drop(e));
        if (kept && kept.length > 0) this.#hosts.set(key, kept);
        else this.#hosts.delete(key);
      }
    }
    if (prefix === undefined || prefix.prefixLength !== this.addressLen * 8) {
      this.#prefixes = this.#prefixes.filter((e) => !drop(e));
    }
  }

  lookup(packet: Uint8Array, offset: number): T | undefined {
    const last = this.#last;
    if (last !== null && prefixContains(last.prefix, packet, offset)) return last.value;
    const list = this.#hosts.get(hostKey(packet, offset, this.addressLen));
    if (list) {
      for (const e of list) {
        if (prefixContains(e.prefix, packet, offset)) {
          this.#last = e;
          return e.value;
        }
      }
    }
    for (const e of this.#prefixes) if (prefixContains(e.prefix, packet, offset)) return e.value;
    return undefined;
  }
}

/** Maps VPN address prefixes to values (peers). Host routes are O(1); other prefixes scanned. */
export class RouteTable<T> {
  readonly #v6 = new FamilyRoutes<T>(16);
  readonly #v4 = new FamilyRoutes<T>(4);

  /** Routes `prefix` to `value`. A later route for the same prefix wins. */
  add(prefix: Prefix, value: T): void {
    this.remove(prefix);
    this.#family(prefix).add({ prefix, value });
  }

  /** Removes the route for exactly this prefix, if any. */
  remove(prefix: Prefix): void {
    const same = (e: Entry<T>) =>
      e.prefix.prefixLength === prefix.prefixLength &&
      e.prefix.address.length === prefix.address.length &&
      prefixContains(e.prefix, prefix.address, 0);
    this.#family(prefix).remove(same, prefix);
  }

  /** Removes every route to `value`. */
  removeValue(value: T): void {
    for (const family of [this.#v6, this.#v4]) family.remove((e) => e.value === value);
  }

  /** The value routed for the destination of an IP packet, or undefined (also for garbage). */
  lookupDestination(packet: Uint8Array): T | undefined {
    return this.#lookup(packet, IPV6_DST_OFFSET, IPV4_DST_OFFSET);
  }

  /** The value routed for the source of an IP packet (for the inner-source check). */
  lookupSource(packet: Uint8Array): T | undefined {
    return this.#lookup(packet, IPV6_SRC_OFFSET, IPV4_SRC_OFFSET);
  }

  #family(prefix: Prefix): FamilyRoutes<T> {
    return prefix.address.length === 16 ? this.#v6 : this.#v4;
  }

  #lookup(packet: Uint8Array, offset6: number, offset4: number): T | undefined {
    const version = packet[0]! >> 4;
    if (version === 6) {
      return packet.length < IPV6_HEADER_LEN ? undefined : this.#v6.lookup(packet, offset6);
    }
    if (version === 4) {
      return packet.length < IPV4_HEADER_LEN ? undefined : this.#v4.lookup(packet, offset4);
    }
    return undefined;
  }
}
