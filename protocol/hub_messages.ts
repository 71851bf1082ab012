/**
 * meshub's own UDP messages: client ↔ hub registration and client ↔ client punches.
 *
 * They share the client's one UDP socket with WireGuard, whose messages start with a type byte
 * 1..4 followed by three zero bytes. meshub messages start with a type byte in `0x11..0x1f`, so the
 * first byte alone tells the two apart ({@linkcode isHubMessage}).
 *
 * ## Common header (4 bytes)
 *
 * ```text
 * type u8 | version u8 (= 1) | flags u8 | reserved u8 (= 0)
 * ```
 *
 * All multi-byte integers are big-endian. Receivers ignore flag bits they do not know (senders
 * set them to 0); a non-zero reserved byte, another version, a wrong length or trailing bytes make
 * the message invalid. `network_id` and `node_id` are 16 opaque bytes (see `keys.ts`); `token` is
 * 16 bytes; `endpoint` is the binary endpoint of `endpoint.ts` (`family u8 (4|6) | port u16 |
 * address 4|16`, 7 or 19 bytes); `advert` is a sealed advertisement (`advert.ts`), opaque to the
 * hub, 40..1024 bytes (40 = XChaCha20 nonce + Poly1305 tag: nothing sealed is shorter).
 *
 * ## Messages
 *
 * | type    | name       | from → to    | body after the header                       | bytes    |
 * | ------- | ---------- | ------------ | ------------------------------------------- | -------- |
 * | 0x11    | REGISTER   | client → hub | network_id, node_id, token, u16 len, advert | 94..1078 |
 * | 0x12    | CHALLENGE  | hub → client | network_id, node_id, token                  | 52       |
 * | 0x13    | REGISTERED | hub → client | network_id, node_id, keepalive_s u16,       | 47 or 59 |
 * |         |            |              | members u16, endpoint                       |          |
 * | 0x14    | MEMBER     | hub → client | network_id, node_id, endpoint, u16 len,     | 85..1081 |
 * |         |            |              | advert                                      |          |
 * | 0x15    | LEAVE      | client → hub | network_id, node_id, token                  | 52       |
 * | 0x16    | GONE       | hub → client | network_id, node_id                         | 36       |
 * | 0x17    | PUNCH      | peer → peer  | 8 random bytes                              | 12       |
 * | 0x18    | HELLO      | peer → peer  | member-to-member signalling: `signal.ts`    |          |
 * | 0x19-1a | PEERS/INTRO| inside edges | (this decoder calls them "reserved type")   |          |
 * | 0x1b-1f | reserved   | peer → peer  | future signalling; invalid for now          |          |
 *
 * - **REGISTER** flags bit 0 (`0x01`): "send me the full member list". The token is all zeros when
 *   the client has none. Clients re-send REGISTER every `keepalive_s` seconds with the *same*
 *   sealed advert bytes; a new seal is taken as a change and pushed to every member.
 * - **CHALLENGE** answers a REGISTER whose token is missing or invalid. The client stores the token
 *   and sends REGISTER again at once. The token binds the client's observed endpoint, so a
 *   CHALLENGE only reaches whoever really owns that endpoint; it is always smaller than the
 *   REGISTER that caused it, so a hub cannot be used as an amplifier.
 * - **REGISTERED** answers a REGISTER with a valid token: the keepalive interval the hub wants, the
 *   member count of the network (including the registrant), and the endpoint the hub observed
 *   (which the client may learn its public mapping from). It is smaller than any REGISTER.
 * - **MEMBER** tells a validated member about another member: its observed endpoint and its sealed
 *   advert. Sent for every other member to a newcomer and to anyone asking for the full list;
 *   pushed at once to every other member when a member joins or its endpoint or advert changes.
 * - **LEAVE** (valid token, sent from the registered endpoint) makes the hub forget the member
 *   and send GONE to the others. GONE is also sent when the hub expires a member. GONE only means
 *   "the hub no longer knows it": a live direct edge stays up.
 * - **PUNCH** is sent between members to open NAT mappings; receivers only count it.
 *
 * Decoded byte fields are views into the input buffer (no copies): copy what you keep beyond the
 * buffer's lifetime.
 *
 * @module
 */

import { decodeEndpoint, encodedEndpointLength, type Endpoint, writeEndpoint } from "./endpoint.ts";

/** Version byte of every message in this module. */
export const HUB_PROTOCOL_VERSION = 1;
/** Length of the common header. */
export const HEADER_LEN = 4;
/** Length of network ids and node ids on the wire. */
export const ID_LEN = 16;
/** Length of a registration token. */
export const TOKEN_LEN = 16;
/** Shortest sealed advert: XChaCha20 nonce 24 + Poly1305 tag 16. */
export const ADVERT_MIN_LEN = 40;
/** Longest sealed advert. */
export const ADVERT_MAX_LEN = 1024;
/** Length of the random payload of a PUNCH. */
export const PUNCH_NONCE_LEN = 8;

/** REGISTER flag: send me MEMBER messages for every other member. */
export const REGISTER_FLAG_FULL_LIST = 0x01;

/** Message type bytes. */
export const MessageType = {
  REGISTER: 0x11,
  CHALLENGE: 0x12,
  REGISTERED: 0x13,
  MEMBER: 0x14,
  LEAVE: 0x15,
  GONE: 0x16,
  PUNCH: 0x17,
} as const;

/** First type byte of meshub messages. */
export const HUB_TYPE_MIN = 0x11;
/** Last type byte reserved for meshub messages (`0x18..0x1f` are reserved for signalling). */
export const HUB_TYPE_MAX = 0x1f;

/** Size of a REGISTER with the shortest advert. */
export const REGISTER_MIN_LEN = HEADER_LEN + 3 * ID_LEN + 2 + ADVERT_MIN_LEN;
/** Size of a REGISTER with the longest advert. */
export const REGISTER_MAX_LEN = HEADER_LEN + 3 * ID_LEN + 2 + ADVERT_MAX_LEN;
/** Size of a CHALLENGE. */
export const CHALLENGE_LEN = HEADER_LEN + 2 * ID_LEN + TOKEN_LEN;
/** Size of a LEAVE. */
export const LEAVE_LEN = HEADER_LEN + 2 * ID_LEN + TOKEN_LEN;
/** Size of a GONE. */
export const GONE_LEN = HEADER_LEN + 2 * ID_LEN;
/** Size of a PUNCH. */
export const PUNCH_LEN = HEADER_LEN + PUNCH_NONCE_LEN;

/** 0x11 REGISTER, client → hub. */
export interface RegisterMessage {
  readonly kind: "register";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  /** 16 bytes; all zeros when the client has no token yet. */
  readonly token: Uint8Array;
  /** Sealed advert, 40..1024 bytes. */
  readonly advert: Uint8Array;
  /** Flag bit 0: send MEMBER for every other member. */
  readonly fullList: boolean;
}

/** 0x12 CHALLENGE, hub → client. */
export interface ChallengeMessage {
  readonly kind: "challenge";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  readonly token: Uint8Array;
}

/** 0x13 REGISTERED, hub → client. */
export interface RegisteredMessage {
  readonly kind: "registered";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  /** Keepalive interval the hub wants, in seconds (0..65535). */
  readonly keepaliveS: number;
  /** Members of the network, including the registrant (0..65535). */
  readonly members: number;
  /** The registrant's endpoint as the hub saw it. */
  readonly endpoint: Endpoint;
}

/** 0x14 MEMBER, hub → client. */
export interface MemberMessage {
  readonly kind: "member";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  /** The member's endpoint as the hub saw it. */
  readonly endpoint: Endpoint;
  /** The member's sealed advert, 40..1024 bytes. */
  readonly advert: Uint8Array;
}

/** 0x15 LEAVE, client → hub. */
export interface LeaveMessage {
  readonly kind: "leave";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
  readonly token: Uint8Array;
}

/** 0x16 GONE, hub → client. */
export interface GoneMessage {
  readonly kind: "gone";
  readonly networkId: Uint8Array;
  readonly nodeId: Uint8Array;
}

/** 0x17 PUNCH, client → client. */
export interface PunchMessage {
  readonly kind: "punch";
  /** 8 random bytes. */
  readonly nonce: Uint8Array;
}

/** Any well-formed meshub message. */
export type HubMessage =
  | RegisterMessage
  | ChallengeMessage
  | RegisteredMessage
  | MemberMessage
  | LeaveMessage
  | GoneMessage
  | PunchMessage;

/** Why a byte string is not a valid meshub message. A fixed set, safe to count by. */
export type InvalidReason =
  | "empty"
  | "not a meshub message"
  | "reserved type"
  | "truncated header"
  | "unsupported version"
  | "reserved byte not zero"
  | "bad length"
  | "bad advert length"
  | "bad endpoint";

/** Result of decoding a byte string that is not a valid meshub message. */
export interface InvalidHubMessage {
  readonly kind: "invalid";
  readonly reason: InvalidReason;
}

/** What {@linkcode decodeHubMessage} returns. */
export type DecodedHubMessage = HubMessage | InvalidHubMessage;

/** True when the first byte marks a meshub message (`0x11..0x1f`) rather than WireGuard. */
export function isHubMessage(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0]! >= HUB_TYPE_MIN && bytes[0]! <= HUB_TYPE_MAX;
}

function invalid(reason: InvalidReason): InvalidHubMessage {
  return { kind: "invalid", reason };
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

/**
 * Decodes one meshub message. Total: every byte string yields a message or
 * `{ kind: "invalid", reason }`; it never throws and allocates nothing proportional to the input
 * (byte fields are views into `bytes`).
 */
export function decodeHubMessage(bytes: Uint8Array): DecodedHubMessage {
  if (bytes.length === 0) return invalid("empty");
  const type = bytes[0]!;
  if (type < HUB_TYPE_MIN || type > HUB_TYPE_MAX) return invalid("not a meshub message");
  if (type > MessageType.PUNCH) return invalid("reserved type");
  if (bytes.length < HEADER_LEN) return invalid("truncated header");
  if (bytes[1] !== HUB_PROTOCOL_VERSION) return invalid("unsupported version");
  if (bytes[3] !== 0) return invalid("reserved byte not zero");
  const flags = bytes[2]!;
  const len = bytes.length;
  const at = HEADER_LEN;
  const ids = () => ({
    networkId: bytes.subarray(at, at + ID_LEN),
    nodeId: bytes.subarray(at + ID_LEN, at + 2 * ID_LEN),
  });
  switch (type) {
    case MessageType.REGISTER: {
      const lenAt = at + 2 * ID_LEN + TOKEN_LEN;
      if (len < lenAt + 2) return invalid("bad length");
      const advertLen = u16(bytes, lenAt);
      if (advertLen < ADVERT_MIN_LEN || advertLen > ADVERT_MAX_LEN) {
        return invalid("bad advert length");
      }
      if (len !== lenAt + 2 + advertLen) return invalid("bad length");
      return {
        kind: "register",
        ...ids(),
        token: bytes.subarray(at + 2 * ID_LEN, lenAt),
        advert: bytes.subarray(lenAt + 2),
        fullList: (flags & REGISTER_FLAG_FULL_LIST) !== 0,
      };
    }
    case MessageType.CHALLENGE:
    case MessageType.LEAVE: {
      if (len !== CHALLENGE_LEN) return invalid("bad length");
      const token = bytes.subarray(at + 2 * ID_LEN, CHALLENGE_LEN);
      return type === MessageType.CHALLENGE
        ? { kind: "challenge", ...ids(), token }
        : { kind: "leave", ...ids(), token };
    }
    case MessageType.REGISTERED: {
      const epAt = at + 2 * ID_LEN + 4;
      if (len <= epAt) return invalid("bad length");
      const ep = decodeEndpoint(bytes, epAt);
      if (ep === null) return invalid("bad endpoint");
      if (ep.end !== len) return invalid("bad length");
      return {
        kind: "registered",
        ...ids(),
        keepaliveS: u16(bytes, at + 2 * ID_LEN),
        members: u16(bytes, at + 2 * ID_LEN + 2),
        endpoint: ep.endpoint,
      };
    }
    case MessageType.MEMBER: {
      const epAt = at + 2 * ID_LEN;
      if (len <= epAt) return invalid("bad length");
      const ep = decodeEndpoint(bytes, epAt);
      if (ep === null) return invalid("bad endpoint");
      if (len < ep.end + 2) return invalid("bad length");
      const advertLen = u16(bytes, ep.end);
      if (advertLen < ADVERT_MIN_LEN || advertLen > ADVERT_MAX_LEN) {
        return invalid("bad advert length");
      }
      if (len !== ep.end + 2 + advertLen) return invalid("bad length");
      return {
        kind: "member",
        ...ids(),
        endpoint: ep.endpoint,
        advert: bytes.subarray(ep.end + 2),
      };
    }
    case MessageType.GONE:
      if (len !== GONE_LEN) return invalid("bad length");
      return { kind: "gone", ...ids() };
    default: // MessageType.PUNCH
      if (len !== PUNCH_LEN) return invalid("bad length");
      return { kind: "punch", nonce: bytes.subarray(at, PUNCH_LEN) };
  }
}

function checkLen(name: string, value: Uint8Array, len: number): void {
  if (!(value instanceof Uint8Array) || value.length !== len) {
    throw new RangeError(`${name} needs ${len} bytes, got ${value?.length}`);
  }
}

function checkAdvert(advert: Uint8Array): void {
  if (
    !(advert instanceof Uint8Array) || advert.length < ADVERT_MIN_LEN ||
    advert.length > ADVERT_MAX_LEN
  ) {
    throw new RangeError(
      `advert needs ${ADVERT_MIN_LEN}..${ADVERT_MAX_LEN} bytes, got ${advert?.length}`,
    );
  }
}

function checkU16(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`${name} ${value} is outside 0..65535`);
  }
}

function header(out: Uint8Array, type: number, flags: number): void {
  out[0] = type;
  out[1] = HUB_PROTOCOL_VERSION;
  out[2] = flags;
  out[3] = 0;
}

function putU16(out: Uint8Array, at: number, value: number): void {
  out[at] = value >> 8;
  out[at + 1] = value & 0xff;
}

/**
 * Encodes a meshub message. Throws `RangeError` when a field has the wrong size or range, or an
 * endpoint is not encodable: that is a bug in the caller, never a property of received data.
 */
export function encodeHubMessage(msg: HubMessage): Uint8Array {
  if (msg.kind === "punch") {
    checkLen("nonce", msg.nonce, PUNCH_NONCE_LEN);
    const out = new Uint8Array(PUNCH_LEN);
    header(out, MessageType.PUNCH, 0);
    out.set(msg.nonce, HEADER_LEN);
    return out;
  }
  checkLen("networkId", msg.networkId, ID_LEN);
  checkLen("nodeId", msg.nodeId, ID_LEN);
  const putIds = (out: Uint8Array) => {
    out.set(msg.networkId, HEADER_LEN);
    out.set(msg.nodeId, HEADER_LEN + ID_LEN);
  };
  const afterIds = HEADER_LEN + 2 * ID_LEN;
  switch (msg.kind) {
    case "register": {
      checkLen("token", msg.token, TOKEN_LEN);
      checkAdvert(msg.advert);
      const out = new Uint8Array(afterIds + TOKEN_LEN + 2 + msg.advert.length);
      header(out, MessageType.REGISTER, msg.fullList ? REGISTER_FLAG_FULL_LIST : 0);
      putIds(out);
      out.set(msg.token, afterIds);
      putU16(out, afterIds + TOKEN_LEN, msg.advert.length);
      out.set(msg.advert, afterIds + TOKEN_LEN + 2);
      return out;
    }
    case "challenge":
    case "leave": {
      checkLen("token", msg.token, TOKEN_LEN);
      const out = new Uint8Array(CHALLENGE_LEN);
      header(out, msg.kind === "challenge" ? MessageType.CHALLENGE : MessageType.LEAVE, 0);
      putIds(out);
      out.set(msg.token, afterIds);
      return out;
    }
    case "registered": {
      checkU16("keepaliveS", msg.keepaliveS);
      checkU16("members", msg.members);
      const epLen = encodedEndpointLength(msg.endpoint);
      if (epLen === 0) throw new RangeError("endpoint is not encodable");
      const out = new Uint8Array(afterIds + 4 + epLen);
      header(out, MessageType.REGISTERED, 0);
      putIds(out);
      putU16(out, afterIds, msg.keepaliveS);
      putU16(out, afterIds + 2, msg.members);
      writeEndpoint(out, afterIds + 4, msg.endpoint);
      return out;
    }
    case "member": {
      checkAdvert(msg.advert);
      const epLen = encodedEndpointLength(msg.endpoint);
      if (epLen === 0) throw new RangeError("endpoint is not encodable");
      const out = new Uint8Array(afterIds + epLen + 2 + msg.advert.length);
      header(out, MessageType.MEMBER, 0);
      putIds(out);
      const end = writeEndpoint(out, afterIds, msg.endpoint);
      putU16(out, end, msg.advert.length);
      out.set(msg.advert, end + 2);
      return out;
    }
    case "gone": {
      const out = new Uint8Array(GONE_LEN);
      header(out, MessageType.GONE, 0);
      putIds(out);
      return out;
    }
  }
}
