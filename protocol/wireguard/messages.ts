/**
 * Wire formats of the four WireGuard messages (whitepaper 5.4.2-5.4.6). All integers are little
 * endian; the first four bytes are the message type as a u32, so the three "reserved" bytes must
 * be zero (wireguard-go switches on the whole u32 and drops anything else).
 *
 * Decoders are total: any byte string yields either a typed message (whose byte fields are views
 * into the input, not copies) or a drop reason. They never throw.
 *
 * @module
 */

/** Message type of a handshake initiation. */
export const MESSAGE_INITIATION = 1;
/** Message type of a handshake response. */
export const MESSAGE_RESPONSE = 2;
/** Message type of a cookie reply. */
export const MESSAGE_COOKIE_REPLY = 3;
/** Message type of a transport data message. */
export const MESSAGE_TRANSPORT = 4;

/** Exact size of a handshake initiation, in bytes. */
export const INITIATION_LEN = 148;
/** Exact size of a handshake response, in bytes. */
export const RESPONSE_LEN = 92;
/** Exact size of a cookie reply, in bytes. */
export const COOKIE_REPLY_LEN = 64;
/** Size of the transport header (type, receiver, counter), in bytes. */
export const TRANSPORT_HEADER_LEN = 16;
/** Smallest transport message: header plus the Poly1305 tag of an empty keepalive, in bytes. */
export const TRANSPORT_MIN_LEN = 32;

/** Offset of mac1 in an initiation; mac1 covers everything before it. */
export const INITIATION_MAC1_OFFSET = 116;
/** Offset of mac2 in an initiation; mac2 covers everything before it. */
export const INITIATION_MAC2_OFFSET = 132;
/** Offset of mac1 in a response. */
export const RESPONSE_MAC1_OFFSET = 60;
/** Offset of mac2 in a response. */
export const RESPONSE_MAC2_OFFSET = 76;

/** Type 1: handshake initiation. */
export interface InitiationMessage {
  readonly type: typeof MESSAGE_INITIATION;
  readonly sender: number;
  /** 32 bytes: the initiator's ephemeral public key. */
  readonly ephemeral: Uint8Array;
  /** 48 bytes: AEAD of the initiator's static public key. */
  readonly encryptedStatic: Uint8Array;
  /** 28 bytes: AEAD of the TAI64N timestamp. */
  readonly encryptedTimestamp: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

/** Type 2: handshake response. */
export interface ResponseMessage {
  readonly type: typeof MESSAGE_RESPONSE;
  readonly sender: number;
  readonly receiver: number;
  /** 32 bytes: the responder's ephemeral public key. */
  readonly ephemeral: Uint8Array;
  /** 16 bytes: AEAD of the empty string (a bare tag). */
  readonly encryptedNothing: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

/** Type 3: cookie reply. */
export interface CookieReplyMessage {
  readonly type: typeof MESSAGE_COOKIE_REPLY;
  readonly receiver: number;
  /** 24 bytes: XChaCha20 nonce. */
  readonly nonce: Uint8Array;
  /** 32 bytes: XAEAD of the 16-byte cookie. */
  readonly encryptedCookie: Uint8Array;
}

/** Type 4: transport data. `counter` is exact up to 2^53; see `replay.ts`. */
export interface TransportMessage {
  readonly type: typeof MESSAGE_TRANSPORT;
  readonly receiver: number;
  readonly counter: bigint;
  /** Ciphertext and tag (at least 16 bytes). */
  readonly encrypted: Uint8Array;
}

/** Any decoded WireGuard message. */
export type WgMessage =
  | InitiationMessage
  | ResponseMessage
  | CookieReplyMessage
  | TransportMessage;

/** Why a datagram is not a well-formed WireGuard message. */
export type MessageDropReason = "unknown_type" | "bad_length";

/** Result of {@linkcode decodeMessage}. */
export type DecodeResult =
  | { readonly ok: true; readonly message: WgMessage }
  | { readonly ok: false; readonly reason: MessageDropReason };

/** Reads the message type as wireguard-go does (a u32 LE); -1 when shorter than 4 bytes. */
export function messageType(datagram: Uint8Array): number {
  if (datagram.length < 4) return -1;
  return (datagram[0]! | datagram[1]! << 8 | datagram[2]! << 16 | datagram[3]! << 24) >>> 0;
}

/** Reads a u32 LE at `off` (caller guarantees bounds). */
export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | b[off + 1]! << 8 | b[off + 2]! << 16 | b[off + 3]! << 24) >>> 0;
}

/** Writes a u32 LE at `off`. */
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** Parses one datagram. Never throws. */
export function decodeMessage(datagram: Uint8Array): DecodeResult {
  const t = messageType(datagram);
  const len = datagram.length;
  switch (t) {
    case MESSAGE_INITIATION:
      if (len !== INITIATION_LEN) return { ok: false, reason: "bad_length" };
      return {
        ok: true,
        message: {
          type: MESSAGE_INITIATION,
          sender: readU32(datagram, 4),
          ephemeral: datagram.subarray(8, 40),
          encryptedStatic: datagram.subarray(40, 88),
          encryptedTimestamp: datagram.subarray(88, 116),
          mac1: datagram.subarray(116, 132),
          mac2: datagram.subarray(132, 148),
        },
      };
    case MESSAGE_RESPONSE:
      if (len !== RESPONSE_LEN) return { ok: false, reason: "bad_length" };
      return {
        ok: true,
        message: {
          type: MESSAGE_RESPONSE,
          sender: readU32(datagram, 4),
          receiver: readU32(datagram, 8),
          ephemeral: datagram.subarray(12, 44),
          encryptedNothing: datagram.subarray(44, 60),
          mac1: datagram.subarray(60, 76),
          mac2: datagram.subarray(76, 92),
        },
      };
    case MESSAGE_COOKIE_REPLY:
      if (len !== COOKIE_REPLY_LEN) return { ok: false, reason: "bad_length" };
      return {
        ok: true,
        message: {
          type: MESSAGE_COOKIE_REPLY,
          receiver: readU32(datagram, 4),
          nonce: datagram.subarray(8, 32),
          encryptedCookie: datagram.subarray(32, 64),
        },
      };
    case MESSAGE_TRANSPORT: {
      if (len < TRANSPORT_MIN_LEN) return { ok: false, reason: "bad_length" };
      const lo = BigInt(readU32(datagram, 8));
      const hi = BigInt(readU32(datagram, 12));
      return {
        ok: true,
        message: {
          type: MESSAGE_TRANSPORT,
          receiver: readU32(datagram, 4),
          counter: (hi << 32n) | lo,
          encrypted: datagram.subarray(TRANSPORT_HEADER_LEN),
        },
      };
    }
    default:
      return { ok: false, reason: len < 4 ? "bad_length" : "unknown_type" };
  }
}

/** Fields of an initiation before MACs are added. */
export interface InitiationFields {
  readonly sender: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedStatic: Uint8Array;
  readonly encryptedTimestamp: Uint8Array;
}

/** Encodes an initiation with zero mac1/mac2 (see `cookie.ts` to fill them). */
export function encodeInitiation(f: InitiationFields): Uint8Array {
  const b = new Uint8Array(INITIATION_LEN);
  writeU32(b, 0, MESSAGE_INITIATION);
  writeU32(b, 4, f.sender);
  b.set(checkLen(f.ephemeral, 32), 8);
  b.set(checkLen(f.encryptedStatic, 48), 40);
  b.set(checkLen(f.encryptedTimestamp, 28), 88);
  return b;
}

/** Fields of a response before MACs are added. */
export interface ResponseFields {
  readonly sender: number;
  readonly receiver: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedNothing: Uint8Array;
}

/** Encodes a response with zero mac1/mac2. */
export function encodeResponse(f: ResponseFields): Uint8Array {
  const b = new Uint8Array(RESPONSE_LEN);
  writeU32(b, 0, MESSAGE_RESPONSE);
  writeU32(b, 4, f.sender);
  writeU32(b, 8, f.receiver);
  b.set(checkLen(f.ephemeral, 32), 12);
  b.set(checkLen(f.encryptedNothing, 16), 44);
  return b;
}

/** Encodes a cookie reply. */
export function encodeCookieReply(
  receiver: number,
  nonce: Uint8Array,
  encryptedCookie: Uint8Array,
): Uint8Array {
  const b = new Uint8Array(COOKIE_REPLY_LEN);
  writeU32(b, 0, MESSAGE_COOKIE_REPLY);
  writeU32(b, 4, receiver);
  b.set(checkLen(nonce, 24), 8);
  b.set(checkLen(encryptedCookie, 32), 32);
  return b;
}

/** Writes a transport header (type 4, reserved zero, receiver, 64-bit counter) at `b[0..16]`. */
export function writeTransportHeader(b: Uint8Array, receiver: number, counter: number): void {
  b[0] = MESSAGE_TRANSPORT;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
  writeU32(b, 4, receiver);
  writeU32(b, 8, counter >>> 0);
  // counter is a safe integer, so the high word is exact.
  writeU32(b, 12, Math.floor(counter / 0x1_0000_0000));
}

function checkLen(b: Uint8Array, n: number): Uint8Array {
  if (b.length !== n) throw new RangeError(`field must be ${n} bytes, got ${b.length}`);
  return b;
}
