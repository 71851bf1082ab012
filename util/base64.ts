/**
 * Base64 (RFC 4648 §4) and base64url (RFC 4648 §5) for keys in configuration and state files.
 *
 * Decoding is total and strict: it returns `null` instead of throwing, so callers can turn bad
 * input into their own one-line error. Padding is optional, but when present it must be right;
 * whitespace and non-canonical encodings (non-zero bits after the last byte) are rejected, so one
 * key has exactly one spelling per alphabet.
 *
 * @module
 */

const STANDARD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function reverse(alphabet: string): Int8Array {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
}

const STANDARD_VALUES = reverse(STANDARD_ALPHABET);
const URL_VALUES = reverse(URL_ALPHABET);

function encode(bytes: Uint8Array, alphabet: string, pad: boolean): string {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! +
      alphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + (pad ? "==" : "");
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! +
      (pad ? "=" : "");
  }
  return out;
}

function decode(text: string, values: Int8Array): Uint8Array | null {
  let end = text.length;
  if (text.endsWith("==")) end -= 2;
  else if (text.endsWith("=")) end -= 1;
  // Padding, when present, must complete the last quantum exactly.
  if (end !== text.length && text.length % 4 !== 0) return null;
  const tail = end % 4;
  if (tail === 1) return null;
  const out = new Uint8Array(Math.floor(end / 4) * 3 + (tail === 0 ? 0 : tail - 1));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? values[c]! : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  // Leftover bits must be zero, otherwise two strings would decode to the same bytes.
  if (acc !== 0) return null;
  return out;
}

/** Encodes bytes as standard base64 with padding, the form WireGuard's `wg(8)` prints keys in. */
export function encodeBase64(bytes: Uint8Array): string {
  return encode(bytes, STANDARD_ALPHABET, true);
}

/** Decodes standard base64 (padding optional); returns `null` if `text` is not valid base64. */
export function decodeBase64(text: string): Uint8Array | null {
  return decode(text, STANDARD_VALUES);
}

/** Encodes bytes as base64url without padding (RFC 4648 §5), safe in URLs and file names. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encode(bytes, URL_ALPHABET, false);
}

/** Decodes base64url (padding optional); returns `null` if `text` is not valid base64url. */
export function decodeBase64Url(text: string): Uint8Array | null {
  return decode(text, URL_VALUES);
}
