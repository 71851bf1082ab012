/**
 * Member-to-member signalling: how members meet without a hub.
 *
 * Two messages, both carrying sealed adverts (`advert.ts`) that the receiver opens and checks
 * exactly as if a hub had relayed them, so a member passing them on vouches for nothing:
 *
 * | type | name  | carried                              | body after the 4-byte header          |
 * | ---- | ----- | ------------------------------------ | ------------------------------------- |
 * | 0x18 | HELLO | plain UDP, sent with punches         | network_id, node_id, u16 len, advert  |
 * | 0x19 | PEERS | only inside a WireGuard transport    | u16 body_len, count u8, count × entry |
 * | 0x1a | INTRO | only inside a WireGuard transport    | u16 body_len, count u8, count × id    |
 *
 * The header is the one of `hub_messages.ts` (`type u8 | version u8 (= 1) | flags u8 |
 * reserved u8 (= 0)`); the type bytes come from its range reserved for signalling (`0x18..0x1f`).
 *
 * - **HELLO** is what a node sends, next to its punches and handshake initiations, to a member
 *   that may not know it yet (a bootstrap member, a member it met through another member, a
 *   member from its peer cache): the receiver learns the sender's key from the advert, so the
 *   handshake initiation that follows is no longer "from an unknown key". A HELLO is never
 *   answered (no amplification); it only lets the WireGuard handshake proceed.
 * - **PEERS** travels inside an established, authenticated edge (WireGuard transport plaintext
 *   whose first byte `0x19` cannot start an IPv4 or IPv6 packet), so only members ever see it and
 *   it never reaches a TUN. Each entry is `node_id 16 | endpoint | u16 len | advert`, where
 *   `endpoint` is the binary endpoint of `endpoint.ts` or a single `0` byte (none). It says "here
 *   is a member I know, and where I see it": sent to a member whose edge just came up (the others
 *   I know) and to the others about it (an introduction: both sides then punch at once).
 *   `body_len` gives the length because WireGuard pads the plaintext.
 * - **INTRO** asks a member to introduce us (again) to the members listed: a node that learnt of
 *   a member through it but could not reach it sends this when its punching runs out (an
 *   introduction may have been lost, or the other side's NAT filtered us). The member answers by
 *   sending each listed member it has an edge to a PEERS about us, and us a fresh PEERS about
 *   them, so both sides punch at the same time again.
 *
 * Decoded byte fields are views into the input (no copies).
 *
 * @module
 */
import { decodeEndpoint, encodedEndpointLength, type Endpoint, writeEndpoint } from "./endpoint.ts";
import {
  ADVERT_MAX_LEN,
  ADVERT_MIN_LEN,
  HEADER_LEN,
  HUB_PROTOCOL_VERSION,
  ID_LEN,
} from "./hub_messages.ts";

/** Type byte of HELLO (plain UDP). */
export const HELLO_TYPE = 0x18;
/** Type byte of PEERS (inside an edge). */
export const PEERS_TYPE = 0x19;
/** Type byte of INTRO (inside an edge). */
export const INTRO_TYPE = 0x1a;
/** Most entries in one PEERS message. */
export const PEERS_MAX_ENTRIES = 16;
/**
 * Largest PEERS plaintext: with WireGuard's 32 bytes of overhead and padding it still fits a
 * 1500-byte underlay MTU over IPv6 (1350 + 16 + 32 + 8 + 40 < 1500), so it is never fragmented.
 */
export const PEERS_MAX_LEN = 1350;
/** Length of the PEERS header: common header + u16 body_len. */
const PEERS_HEADER_LEN = HEADER_LEN + 2;

/** 0x18 HELLO: "this is me" (plain UDP, never answered). */
export interface HelloMessage {
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  /** The sender's sealed advert, 40..1024 bytes. */
  readonly advert: Uint8Array;
}

/** One member in a PEERS message. */
export interface PeerEntry {
  readonly nodeId: Uint8Array;
  /** Where the sender sees that member (its edge endpoint), if anywhere. */
  readonly endpoint: Endpoint | null;
  /** The member's sealed advert, 40..1024 bytes. */
  readonly advert: Uint8Array;
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function header(out: Uint8Array, type: number): void {
  out[0] = type;
  out[1] = HUB_PROTOCOL_VERSION;
  out[2] = 0;
  out[3] = 0;
}

function validHeader(bytes: Uint8Array, type: number): boolean {
  return bytes.length >= HEADER_LEN && bytes[0] === type &&
    bytes[1] === HUB_PROTOCOL_VERSION && bytes[3] === 0;
}

function checkAdvert(advert: Uint8Array): void {
  if (advert.length < ADVERT_MIN_LEN || advert.length > ADVERT_MAX_LEN) {
    throw new RangeError(`advert needs ${ADVERT_MIN_LEN}..${ADVERT_MAX_LEN} bytes`);
  }
}

/** Encodes a HELLO. Throws `RangeError` on wrong field sizes (a bug in the caller). */
export function encodeHello(msg: HelloMessage): Uint8Array {
  if (msg.networkId.length !== ID_LEN || msg.nodeId.length !== ID_LEN) {
    throw new RangeError(`ids need ${ID_LEN} bytes`);
  }
  checkAdvert(msg.advert);
  const out = new Uint8Array(HEADER_LEN + 2 * ID_LEN + 2 + msg.advert.length);
  header(out, HELLO_TYPE);
  out.set(msg.networkId, HEADER_LEN);
  out.set(msg.nodeId, HEADER_LEN + ID_LEN);
  const at = HEADER_LEN + 2 * ID_LEN;
  out[at] = msg.advert.length >> 8;
  out[at + 1] = msg.advert.length & 0xff;
  out.set(msg.advert, at + 2);
  return out;
}

/** Decodes a HELLO; null for anything else. Never throws. */
export function decodeHello(bytes: Uint8Array): HelloMessage | null {
  if (!validHeader(bytes, HELLO_TYPE)) return null;
  const at = HEADER_LEN + 2 * ID_LEN;
  if (bytes.length < at + 2) return null;
  const len = u16(bytes, at);
  if (len < ADVERT_MIN_LEN || len > ADVERT_MAX_LEN || bytes.length !== at + 2 + len) return null;
  return {
    networkId: bytes.subarray(HEADER_LEN, HEADER_LEN + ID_LEN),
    nodeId: bytes.subarray(HEADER_LEN + ID_LEN, at),
    advert: bytes.subarray(at + 2),
  };
}

/** Encoded length of one PEERS entry. */
export function peerEntryLength(entry: PeerEntry): number {
  const ep = entry.endpoint === null ? 1 : encodedEndpointLength(entry.endpoint);
  return ID_LEN + ep + 2 + entry.advert.length;
}

/**
 * Packs `entries` into as few PEERS messages as fit {@linkcode PEERS_MAX_LEN} and
 * {@linkcode PEERS_MAX_ENTRIES} each. Throws `RangeError` on a bad entry (a bug in the caller).
 */
export function encodePeers(entries: readonly PeerEntry[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let batch: PeerEntry[] = [];
  let size = PEERS_HEADER_LEN + 1;
  const flush = () => {
    if (batch.length === 0) return;
    const msg = new Uint8Array(size);
    header(msg, PEERS_TYPE);
    const bodyLen = size - PEERS_HEADER_LEN;
    msg[HEADER_LEN] = bodyLen >> 8;
    msg[HEADER_LEN + 1] = bodyLen & 0xff;
    msg[PEERS_HEADER_LEN] = batch.length;
    let at = PEERS_HEADER_LEN + 1;
    for (const e of batch) {
      msg.set(e.nodeId, at);
      at += ID_LEN;
      if (e.endpoint === null) msg[at++] = 0;
      else at = writeEndpoint(msg, at, e.endpoint);
      msg[at] = e.advert.length >> 8;
      msg[at + 1] = e.advert.length & 0xff;
      msg.set(e.advert, at + 2);
      at += 2 + e.advert.length;
    }
    out.push(msg);
    batch = [];
    size = PEERS_HEADER_LEN + 1;
  };
  for (const e of entries) {
    if (e.nodeId.length !== ID_LEN) throw new RangeError(`node id needs ${ID_LEN} bytes`);
    checkAdvert(e.advert);
    if (e.endpoint !== null && encodedEndpointLength(e.endpoint) === 0) {
      throw new RangeError("endpoint is not encodable");
    }
    const len = peerEntryLength(e);
    if (size + len > PEERS_MAX_LEN || batch.length === PEERS_MAX_ENTRIES) flush();
    batch.push(e);
    size += len;
  }
  flush();
  return out;
}

/**
 * Length of the PEERS message at the start of `plain` (a decrypted transport payload, possibly
 * padded), or -1 when it is not one. The WireGuard layer uses it to strip the padding. `end`:
 * where the bytes end in `plain` (a reused buffer may be longer); default `plain.length`.
 */
export function edgeMessageLength(plain: Uint8Array, end: number = plain.length): number {
  const type = plain[0];
  if (type !== PEERS_TYPE && type !== INTRO_TYPE) return -1;
  if (end < PEERS_HEADER_LEN || !validHeader(plain, type)) return -1;
  const len = PEERS_HEADER_LEN + u16(plain, HEADER_LEN);
  return len > end || len > PEERS_MAX_LEN ? -1 : len;
}

/** Encodes an INTRO for `nodeIds` (1..{@linkcode PEERS_MAX_ENTRIES} ids of 16 bytes). */
export function encodeIntro(nodeIds: readonly Uint8Array[]): Uint8Array {
  if (nodeIds.length < 1 || nodeIds.length > PEERS_MAX_ENTRIES) {
    throw new RangeError(`1..${PEERS_MAX_ENTRIES} node ids`);
  }
  const out = new Uint8Array(PEERS_HEADER_LEN + 1 + nodeIds.length * ID_LEN);
  header(out, INTRO_TYPE);
  const bodyLen = out.length - PEERS_HEADER_LEN;
  out[HEADER_LEN] = bodyLen >> 8;
  out[HEADER_LEN + 1] = bodyLen & 0xff;
  out[PEERS_HEADER_LEN] = nodeIds.length;
  nodeIds.forEach((id, i) => {
    if (id.length !== ID_LEN) throw new RangeError(`node id needs ${ID_LEN} bytes`);
    out.set(id, PEERS_HEADER_LEN + 1 + i * ID_LEN);
  });
  return out;
}

/** Decodes an INTRO (padding already stripped): the node ids; null when malformed. */
export function decodeIntro(bytes: Uint8Array): Uint8Array[] | null {
  if (bytes[0] !== INTRO_TYPE || edgeMessageLength(bytes) !== bytes.length) return null;
  const count = bytes[PEERS_HEADER_LEN] ?? 0;
  if (count === 0 || count > PEERS_MAX_ENTRIES) return null;
  if (bytes.length !== PEERS_HEADER_LEN + 1 + count * ID_LEN) return null;
  const ids: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const at = PEERS_HEADER_LEN + 1 + i * ID_LEN;
    ids.push(bytes.subarray(at, at + ID_LEN));
  }
  return ids;
}

/** Decodes a PEERS message (padding already stripped); null when malformed. Never throws. */
export function decodePeers(bytes: Uint8Array): PeerEntry[] | null {
  if (
    bytes[0] !== PEERS_TYPE || edgeMessageLength(bytes) !== bytes.length ||
    bytes.length < PEERS_HEADER_LEN + 1
  ) {
    return null;
  }
  const count = bytes[PEERS_HEADER_LEN]!;
  if (count === 0 || count > PEERS_MAX_ENTRIES) return null;
  const entries: PeerEntry[] = [];
  let at = PEERS_HEADER_LEN + 1;
  for (let i = 0; i < count; i++) {
    if (bytes.length < at + ID_LEN + 1) return null;
    const nodeId = bytes.subarray(at, at + ID_LEN);
    at += ID_LEN;
    let endpoint: Endpoint | null = null;
    if (bytes[at] === 0) at++;
    else {
      const ep = decodeEndpoint(bytes, at);
      if (ep === null) return null;
      endpoint = ep.endpoint;
      at = ep.end;
    }
    if (bytes.length < at + 2) return null;
    const len = u16(bytes, at);
    if (len < ADVERT_MIN_LEN || len > ADVERT_MAX_LEN || bytes.length < at + 2 + len) return null;
    entries.push({ nodeId, endpoint, advert: bytes.subarray(at + 2, at + 2 + len) });
    at += 2 + len;
  }
  return at === bytes.length ? entries : null;
}
