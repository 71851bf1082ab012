/**
 * UDP endpoints (IP address literal + port) as meshub passes them around, prints them, and puts
 * them on the wire.
 *
 * An {@linkcode Endpoint} is *normalised* when its hostname is the canonical text of an IP
 * address (RFC 5952 for IPv6; IPv4-mapped IPv6 replaced by plain IPv4, because Deno reports IPv4
 * senders on a dual-stack socket as `::ffff:a.b.c.d`) and its port is 1..65535. Everything in this
 * module that returns an endpoint returns a normalised one, so two normalised endpoints are the
 * same endpoint exactly when their {@linkcode endpointKey}s are equal.
 *
 * Binary form (big-endian):
 *
 * ```text
 * family u8 (4 | 6) | port u16 | address (4 bytes for family 4, 16 bytes for family 6)
 * ```
 *
 * Family 6 never carries an IPv4-mapped address (that is encoded as family 4), so each endpoint
 * has exactly one encoding; the decoder rejects the other.
 *
 * @module
 */

import {
  formatIP,
  type IpAddress,
  IPV4_LEN,
  IPV6_LEN,
  isIPv4Mapped,
  parseIP,
  parseIPv4,
  parseIPv6,
  unmapIPv4,
} from "./ip_address.ts";

/** A UDP endpoint: an IP address literal (no brackets, no zone) and a port. */
export interface Endpoint {
  /** IP address literal, e.g. `192.0.2.1` or `fd00::1`. */
  readonly hostname: string;
  /** UDP port, 1..65535. */
  readonly port: number;
}

/** Family byte of an IPv4 endpoint in the binary form. */
export const ENDPOINT_FAMILY_IPV4 = 4;
/** Family byte of an IPv6 endpoint in the binary form. */
export const ENDPOINT_FAMILY_IPV6 = 6;
/** Encoded length of an IPv4 endpoint: family 1 + port 2 + address 4. */
export const ENDPOINT_IPV4_LEN = 1 + 2 + IPV4_LEN;
/** Encoded length of an IPv6 endpoint: family 1 + port 2 + address 16. */
export const ENDPOINT_IPV6_LEN = 1 + 2 + IPV6_LEN;
/** Largest encoded endpoint. */
export const ENDPOINT_MAX_LEN = ENDPOINT_IPV6_LEN;

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function parseNormalAddress(hostname: string): IpAddress | null {
  const address = parseIP(hostname);
  return address === null ? null : unmapIPv4(address);
}

/**
 * Normalises an endpoint, e.g. a `Deno.NetAddr` from `DatagramConn.receive()`:
 * `::ffff:192.0.2.1` becomes `192.0.2.1`, IPv6 text becomes RFC 5952 canonical.
 * Total: returns `null` when the hostname is not an IP literal or the port is not 1..65535.
 */
export function normalizeEndpoint(ep: { hostname: string; port: number }): Endpoint | null {
  if (typeof ep.hostname !== "string" || typeof ep.port !== "number" || !isPort(ep.port)) {
    return null;
  }
  const address = parseNormalAddress(ep.hostname);
  if (address === null) return null;
  return { hostname: formatIP(address), port: ep.port };
}

/** Formats an endpoint as `192.0.2.1:51820` or `[fd00::1]:51820`. */
export function formatEndpoint(ep: Endpoint): string {
  return ep.hostname.includes(":") ? `[${ep.hostname}]:${ep.port}` : `${ep.hostname}:${ep.port}`;
}

/**
 * A string that identifies a normalised endpoint, for use as a `Map` key. Equal keys mean the
 * same endpoint only for normalised endpoints (as returned by this module).
 */
export function endpointKey(ep: Endpoint): string {
  return formatEndpoint(ep);
}

/** True when two normalised endpoints are the same. */
export function endpointEquals(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.hostname === b.hostname;
}

/**
 * Parses an endpoint from configuration: `192.0.2.1:51820` or `[fd00::1]:51820`. The host must
 * be an IP literal (no names, no zone ids), IPv6 in brackets; the port must be 1..65535.
 *
 * Config-time helper: throws `SyntaxError` with a message naming the problem. Do not use on
 * packet data (use {@linkcode decodeEndpoint} there).
 */
export function parseEndpoint(text: string): Endpoint {
  const fail = (why: string): never => {
    throw new SyntaxError(`invalid endpoint "${text}": ${why}`);
  };
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) fail("missing ']' after the IPv6 address");
    host = text.slice(1, close);
    if (text[close + 1] !== ":") fail("expected ':port' after ']'");
    portText = text.slice(close + 2);
    if (parseIPv6(host) === null) fail(`"${host}" is not an IPv6 address literal`);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) fail("expected host:port");
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) fail("an IPv6 address needs brackets, e.g. [fd00::1]:3731");
    if (parseIPv4(host) === null) {
      fail(`"${host}" is not an IPv4 address literal (host names are not accepted)`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) fail(`"${portText}" is not a port number`);
  const port = Number(portText);
  if (!isPort(port)) fail(`port ${port} is outside 1..65535`);
  const ep = normalizeEndpoint({ hostname: host, port });
  if (ep === null) return fail("not an endpoint");
  return ep;
}

/**
 * Length of the binary form of an endpoint, or 0 when it cannot be encoded (hostname not an IP
 * literal, port out of range).
 */
export function encodedEndpointLength(ep: Endpoint): number {
  if (!isPort(ep.port)) return 0;
  const address = parseNormalAddress(ep.hostname);
  if (address === null) return 0;
  return address.family === 4 ? ENDPOINT_IPV4_LEN : ENDPOINT_IPV6_LEN;
}

/**
 * Writes the binary form of `ep` into `buf` at `offset` and returns the offset after it.
 * Throws `RangeError` when the endpoint is not encodable or does not fit (bugs: check with
 * {@linkcode encodedEndpointLength} first).
 */
export function writeEndpoint(buf: Uint8Array, offset: number, ep: Endpoint): number {
  if (!isPort(ep.port)) throw new RangeError(`port ${ep.port} is outside 1..65535`);
  const address = parseNormalAddress(ep.hostname);
  if (address === null) throw new RangeError(`"${ep.hostname}" is not an IP address literal`);
  const len = address.family === 4 ? ENDPOINT_IPV4_LEN : ENDPOINT_IPV6_LEN;
  if (offset < 0 || offset + len > buf.length) throw new RangeError("endpoint does not fit");
  buf[offset] = address.family === 4 ? ENDPOINT_FAMILY_IPV4 : ENDPOINT_FAMILY_IPV6;
  buf[offset + 1] = ep.port >> 8;
  buf[offset + 2] = ep.port & 0xff;
  buf.set(address.bytes, offset + 3);
  return offset + len;
}

/** Returns the binary form of an endpoint. Throws `RangeError` when it is not encodable. */
export function encodeEndpoint(ep: Endpoint): Uint8Array {
  const len = encodedEndpointLength(ep);
  if (len === 0) throw new RangeError(`endpoint ${ep.hostname} port ${ep.port} is not encodable`);
  const out = new Uint8Array(len);
  writeEndpoint(out, 0, ep);
  return out;
}

/** Result of {@linkcode decodeEndpoint}: the endpoint and the offset just after it. */
export interface DecodedEndpoint {
  readonly endpoint: Endpoint;
  readonly end: number;
}

/**
 * Reads the binary form of an endpoint from `bytes` at `offset`.
 * Total: returns `null` when it is truncated, has an unknown family, port 0, or is family 6 with
 * an IPv4-mapped address (non-canonical).
 */
export function decodeEndpoint(bytes: Uint8Array, offset: number): DecodedEndpoint | null {
  if (!Number.isInteger(offset) || offset < 0 || offset + 3 > bytes.length) return null;
  const family = bytes[offset]!;
  const port = (bytes[offset + 1]! << 8) | bytes[offset + 2]!;
  if (port === 0) return null;
  const start = offset + 3;
  if (family === ENDPOINT_FAMILY_IPV4) {
    const end = start + IPV4_LEN;
    if (end > bytes.length) return null;
    return {
      endpoint: { hostname: formatIP({ family: 4, bytes: bytes.subarray(start, end) }), port },
      end,
    };
  }
  if (family === ENDPOINT_FAMILY_IPV6) {
    const end = start + IPV6_LEN;
    if (end > bytes.length) return null;
    const address = bytes.subarray(start, end);
    if (isIPv4Mapped(address)) return null;
    return { endpoint: { hostname: formatIP({ family: 6, bytes: address }), port }, end };
  }
  return null;
}
