/**
 * IP address literals: parsing text to bytes and formatting bytes to canonical text.
 *
 * The parsers are total: they return `null` for anything that is not a plain address literal
 * (no zone ids, no prefix lengths, no leading zeros in IPv4 octets) and never throw, so they are
 * safe on untrusted input. Formatting follows RFC 5952 for IPv6 (lower case, longest run of two or
 * more zero groups compressed, IPv4-mapped addresses as `::ffff:a.b.c.d`).
 *
 * @module
 */

/** Length of an IPv4 address in bytes. */
export const IPV4_LEN = 4;
/** Length of an IPv6 address in bytes. */
export const IPV6_LEN = 16;

/** Longest IPv4 literal accepted (`255.255.255.255`). */
const IPV4_TEXT_MAX_LEN = 15;
/** Longest IPv6 literal accepted (`ffff:...:ffff:255.255.255.255`). */
const IPV6_TEXT_MAX_LEN = 45;

/** An address family and its bytes (4 or 16 of them). */
export type IpAddress =
  | { readonly family: 4; readonly bytes: Uint8Array }
  | { readonly family: 6; readonly bytes: Uint8Array };

/**
 * Parses a dotted-quad IPv4 literal such as `192.0.2.1` into 4 bytes.
 * Total: returns `null` for anything else (including octets with leading zeros, which some
 * parsers read as octal).
 */
export function parseIPv4(text: string): Uint8Array | null {
  if (text.length < 7 || text.length > IPV4_TEXT_MAX_LEN) return null;
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(IPV4_LEN);
  for (let i = 0; i < 4; i++) {
    const octet = parseDecimalOctet(parts[i]!);
    if (octet === null) return null;
    out[i] = octet;
  }
  return out;
}

function parseDecimalOctet(part: string): number | null {
  if (part.length < 1 || part.length > 3) return null;
  if (part.length > 1 && part.charCodeAt(0) === 0x30) return null; // leading zero
  let value = 0;
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return null;
    value = value * 10 + c;
  }
  return value <= 255 ? value : null;
}

/**
 * Parses an IPv6 literal (RFC 4291 text form, with optional `::` and optional trailing dotted
 * IPv4, e.g. `fd00::1` or `::ffff:192.0.2.1`) into 16 bytes. No brackets, no zone id.
 * Total: returns `null` for anything else.
 */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > IPV6_TEXT_MAX_LEN) return null;
  const out = new Uint8Array(IPV6_LEN);
  const doubleColon = text.indexOf("::");
  if (doubleColon !== -1 && text.indexOf("::", doubleColon + 1) !== -1) return null;
  const head = doubleColon === -1 ? text : text.slice(0, doubleColon);
  const tail = doubleColon === -1 ? "" : text.slice(doubleColon + 2);
  const headGroups = parseGroups(head, doubleColon === -1);
  if (headGroups === null) return null;
  const tailGroups = doubleColon === -1 ? [] : parseGroups(tail, true);
  if (tailGroups === null) return null;
  const total = headGroups.length + tailGroups.length;
  if (doubleColon === -1 ? total !== 8 : total > 7) return null;
  for (let i = 0; i < headGroups.length; i++) {
    out[2 * i] = headGroups[i]! >> 8;
    out[2 * i + 1] = headGroups[i]! & 0xff;
  }
  const tailStart = 8 - tailGroups.length;
  for (let i = 0; i < tailGroups.length; i++) {
    out[2 * (tailStart + i)] = tailGroups[i]! >> 8;
    out[2 * (tailStart + i) + 1] = tailGroups[i]! & 0xff;
  }
  return out;
}

/**
 * Parses colon-separated hex groups. When `mayEndInIPv4` the last part may be a dotted quad,
 * which yields two groups.
 */
function parseGroups(text: string, mayEndInIPv4: boolean): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i === parts.length - 1 && mayEndInIPv4 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      continue;
    }
    if (part.length < 1 || part.length > 4) return null;
    let value = 0;
    for (let j = 0; j < part.length; j++) {
      const digit = hexDigit(part.charCodeAt(j));
      if (digit < 0) return null;
      value = (value << 4) | digit;
    }
    groups.push(value);
  }
  return groups.length <= 8 ? groups : null;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * Parses an IPv4 or IPv6 literal (see {@linkcode parseIPv4}, {@linkcode parseIPv6}).
 * Total: returns `null` for anything else. IPv4-mapped IPv6 stays family 6 here; see
 * {@linkcode unmapIPv4}.
 */
export function parseIP(text: string): IpAddress | null {
  if (text.includes(":")) {
    const bytes = parseIPv6(text);
    return bytes === null ? null : { family: 6, bytes };
  }
  const bytes = parseIPv4(text);
  return bytes === null ? null : { family: 4, bytes };
}

/** Formats 4 bytes as a dotted quad. Throws `RangeError` on a wrong length (a bug). */
export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length !== IPV4_LEN) {
    throw new RangeError(`IPv4 address needs 4 bytes, got ${bytes.length}`);
  }
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * Formats 16 bytes as RFC 5952 canonical IPv6 text. Throws `RangeError` on a wrong length (a bug).
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== IPV6_LEN) {
    throw new RangeError(`IPv6 address needs 16 bytes, got ${bytes.length}`);
  }
  if (isIPv4Mapped(bytes)) return `::ffff:${formatIPv4(bytes.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  // Longest run of zero groups (length >= 2), first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** True when 16 bytes are an IPv4-mapped IPv6 address (`::ffff:0:0/96`). */
export function isIPv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== IPV6_LEN) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Returns the IPv4 address inside an IPv4-mapped IPv6 address, or the address unchanged.
 * Dual-stack sockets report IPv4 peers as `::ffff:a.b.c.d`; this gives them one identity.
 */
export function unmapIPv4(address: IpAddress): IpAddress {
  if (address.family === 6 && isIPv4Mapped(address.bytes)) {
    return { family: 4, bytes: address.bytes.slice(12) };
  }
  return address;
}

/** Formats an address of either family (see {@linkcode formatIPv4}, {@linkcode formatIPv6}). */
export function formatIP(address: IpAddress): string {
  return address.family === 4 ? formatIPv4(address.bytes) : formatIPv6(address.bytes);
}
