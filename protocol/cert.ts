/**
 * CA mode: certificates and revocation lists, signed with Ed25519 by the network CA.
 *
 * A **certificate** binds a node's WireGuard (X25519) public key to its name, its VPN addresses
 * and optional groups for a validity period. The CA's own certificate has the same format
 * (kind 1, self-signed, the key is the CA's Ed25519 public key). A **revocation list** (CRL)
 * names revoked certificates by fingerprint. Only the CA key can make either, so they may travel
 * through anyone (the hub, other members) without being trusted.
 *
 * ## Certificate v1 (big-endian)
 *
 * ```text
 * magic        3      "MHC"
 * version      u8     = 1
 * kind         u8     1 = CA (self-signed; public_key is Ed25519), 2 = node (X25519)
 * ca_id        8      SHA-256(CA Ed25519 public key)[0..8]: which CA signed it
 * public_key   32
 * not_before   u64    Unix seconds, ≤ 2^53 - 1
 * not_after    u64    Unix seconds, ≥ not_before
 * name_len     u8     1..63, then name_len bytes of [A-Za-z0-9._-]
 * addr_count   u8     0..8, then per address: family u8 (6|4) | address 16|4 | prefix_len u8
 * group_count  u8     0..8, then per group: len u8 1..32 | bytes of [A-Za-z0-9._-]
 * signature    64     Ed25519 by the CA key over every preceding byte
 * ```
 *
 * A node certificate certifies each address as one host (/128, /32); the prefix length is the
 * VPN prefix the node routes into its TUN (e.g. `/48`). A certificate is 61 + 1 + name + 1 +
 * addresses + 1 + groups + 64 bytes: 157 bytes for a 5-character name with one IPv6 and one
 * IPv4 address and no groups; at most {@linkcode CERT_MAX_LEN} (599).
 *
 * The **fingerprint** of a certificate is `SHA-256(certificate bytes)[0..16]`, shown as 32 hex
 * digits.
 *
 * ## Revocation list v1
 *
 * ```text
 * magic        3      "MHR"
 * version      u8     = 1
 * ca_id        8      the CA that signed it
 * serial       u64    Unix ms when issued; a newer list has a larger serial (members keep the
 *                     newest they have seen), ≤ 2^53 - 1
 * count        u16    0..1024
 * fingerprints count × 16
 * signature    64     Ed25519 by the CA key over every preceding byte
 * ```
 *
 * The magics keep the two signed formats apart (a signature over one can never verify as the
 * other). Decoders are total: any byte string gives a typed error, never an exception.
 *
 * ## Files
 *
 * Files hold the bytes base64-armoured between `-----BEGIN MESHUB <LABEL>-----` and
 * `-----END MESHUB <LABEL>-----` lines (labels `CERTIFICATE`, `REVOCATION LIST`, `CA PRIVATE KEY`);
 * {@linkcode dearmor} also accepts the raw bytes.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519";
import { sha256 } from "@noble/hashes/sha256";
import { formatIPv4, formatIPv6 } from "./ip_address.ts";
import { decodeBase64, encodeBase64 } from "../util/base64.ts";

/** Version byte of both formats. */
export const CERT_VERSION = 1;
/** Certificate kind: the CA's self-signed certificate. */
export const CERT_KIND_CA = 1;
/** Certificate kind: a node certificate. */
export const CERT_KIND_NODE = 2;
/** Length of a CA id. */
export const CA_ID_LEN = 8;
/** Length of a certificate fingerprint. */
export const FINGERPRINT_LEN = 16;
/** Length of an Ed25519 signature. */
export const SIGNATURE_LEN = 64;
/** Length of public keys (Ed25519 and X25519). */
export const CERT_KEY_LEN = 32;
/** Longest name. */
export const CERT_NAME_MAX_LEN = 63;
/** Most addresses in one certificate. */
export const CERT_ADDRESSES_MAX = 8;
/** Most groups in one certificate. */
export const CERT_GROUPS_MAX = 8;
/** Longest group name. */
export const CERT_GROUP_MAX_LEN = 32;
/** Longest certificate. */
export const CERT_MAX_LEN = 4 + 1 + CA_ID_LEN + CERT_KEY_LEN + 16 + 1 + CERT_NAME_MAX_LEN + 1 +
  CERT_ADDRESSES_MAX * 18 + 1 + CERT_GROUPS_MAX * (1 + CERT_GROUP_MAX_LEN) + SIGNATURE_LEN;
/** Most fingerprints in one revocation list. */
export const CRL_MAX_ENTRIES = 1024;
/** Length of a revocation list with no entries. */
export const CRL_MIN_LEN = 4 + CA_ID_LEN + 8 + 2 + SIGNATURE_LEN;

const CERT_MAGIC = [0x4d, 0x48, 0x43]; // "MHC"
const CRL_MAGIC = [0x4d, 0x48, 0x52]; // "MHR"
const NAME_RE = /^[A-Za-z0-9._-]{1,63}$/;
const GROUP_RE = /^[A-Za-z0-9._-]{1,32}$/;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** A certified address: the host address and the VPN prefix length around it. */
export interface CertAddress {
  /** 16 bytes (IPv6) or 4 bytes (IPv4). */
  readonly address: Uint8Array;
  /** 0..128 or 0..32. */
  readonly prefixLength: number;
}

/** The signed fields of a certificate. */
export interface CertFields {
  /** {@linkcode CERT_KIND_CA} or {@linkcode CERT_KIND_NODE}. */
  readonly kind: number;
  /** 8 bytes: SHA-256 of the signing CA's public key, truncated. */
  readonly caId: Uint8Array;
  /** 32 bytes. */
  readonly publicKey: Uint8Array;
  /** Unix seconds. */
  readonly notBefore: number;
  /** Unix seconds. */
  readonly notAfter: number;
  /** 1..63 characters of `[A-Za-z0-9._-]`. */
  readonly name: string;
  /** 0..8 addresses. */
  readonly addresses: readonly CertAddress[];
  /** 0..8 group names. */
  readonly groups: readonly string[];
}

/** A decoded certificate: the fields, the signature and the exact bytes. */
export interface Certificate extends CertFields {
  /** 64 bytes. */
  readonly signature: Uint8Array;
  /** The whole encoded certificate (what the fingerprint and signature cover). */
  readonly bytes: Uint8Array;
}

/** The signed fields of a revocation list. */
export interface CrlFields {
  /** The CA that signs it. */
  readonly caId: Uint8Array;
  /** Unix ms when issued; larger is newer. */
  readonly serial: number;
  /** 16-byte fingerprints of revoked certificates. */
  readonly fingerprints: readonly Uint8Array[];
}

/** A decoded revocation list. */
export interface RevocationList extends CrlFields {
  /** 64 bytes. */
  readonly signature: Uint8Array;
  /** The whole encoded list. */
  readonly bytes: Uint8Array;
}

/** Why a certificate or revocation list did not decode. A fixed set. */
export type CertDecodeError =
  | "bad magic"
  | "unsupported version"
  | "bad kind"
  | "truncated"
  | "trailing bytes"
  | "bad validity"
  | "bad name"
  | "bad address"
  | "bad group"
  | "too many entries";

/** Why a certificate was not accepted. A fixed set, safe to count by. */
export type CertVerifyError =
  | "not a node certificate"
  | "not a CA certificate"
  | "wrong CA"
  | "bad signature"
  | "not yet valid"
  | "expired"
  | "revoked";

/** SHA-256(public key)[0..8]: the id of a CA. */
export function caIdOf(caPublicKey: Uint8Array): Uint8Array {
  return sha256(caPublicKey).slice(0, CA_ID_LEN);
}

/** A certificate's fingerprint: SHA-256 of its bytes, first 16 bytes. */
export function fingerprintOf(cert: { readonly bytes: Uint8Array }): Uint8Array {
  return sha256(cert.bytes).slice(0, FINGERPRINT_LEN);
}

/** Lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Parses hex (any case, `:` separators allowed); null if malformed. */
export function fromHex(text: string): Uint8Array | null {
  const clean = text.replaceAll(":", "");
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) return null;
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function fieldsProblem(f: CertFields): string | null {
  if (f.kind !== CERT_KIND_CA && f.kind !== CERT_KIND_NODE) return "kind must be 1 or 2";
  if (f.caId?.length !== CA_ID_LEN) return "caId must be 8 bytes";
  if (f.publicKey?.length !== CERT_KEY_LEN) return "publicKey must be 32 bytes";
  if (!timeOk(f.notBefore) || !timeOk(f.notAfter) || f.notAfter < f.notBefore) {
    return "validity must be 0 ≤ notBefore ≤ notAfter ≤ 2^53 - 1";
  }
  if (!NAME_RE.test(f.name)) return "name must be 1..63 characters of [A-Za-z0-9._-]";
  if (f.addresses.length > CERT_ADDRESSES_MAX) return `at most ${CERT_ADDRESSES_MAX} addresses`;
  for (const a of f.addresses) {
    const bits = a.address?.length * 8;
    if ((bits !== 128 && bits !== 32) || !Number.isInteger(a.prefixLength)) {
      return "address must be 16 or 4 bytes";
    }
    if (a.prefixLength < 0 || a.prefixLength > bits) return "prefix length out of range";
  }
  if (f.groups.length > CERT_GROUPS_MAX) return `at most ${CERT_GROUPS_MAX} groups`;
  for (const g of f.groups) {
    if (!GROUP_RE.test(g)) return "group must be 1..32 characters of [A-Za-z0-9._-]";
  }
  return null;
}

function timeOk(t: number): boolean {
  return Number.isSafeInteger(t) && t >= 0 && t <= MAX_TIME;
}

function encodeFields(f: CertFields): Uint8Array {
  const bad = fieldsProblem(f);
  if (bad !== null) throw new RangeError(`certificate: ${bad}`);
  const name = new TextEncoder().encode(f.name);
  const groups = f.groups.map((g) => new TextEncoder().encode(g));
  let len = 4 + 1 + CA_ID_LEN + CERT_KEY_LEN + 16 + 1 + name.length + 1 + 1;
  for (const a of f.addresses) len += 2 + a.address.length;
  for (const g of groups) len += 1 + g.length;
  const out = new Uint8Array(len);
  const view = new DataView(out.buffer);
  let at = 0;
  out.set(CERT_MAGIC, at);
  at += 3;
  out[at++] = CERT_VERSION;
  out[at++] = f.kind;
  out.set(f.caId, at);
  at += CA_ID_LEN;
  out.set(f.publicKey, at);
  at += CERT_KEY_LEN;
  view.setBigUint64(at, BigInt(f.notBefore));
  view.setBigUint64(at + 8, BigInt(f.notAfter));
  at += 16;
  out[at++] = name.length;
  out.set(name, at);
  at += name.length;
  out[at++] = f.addresses.length;
  for (const a of f.addresses) {
    out[at++] = a.address.length === 16 ? 6 : 4;
    out.set(a.address, at);
    at += a.address.length;
    out[at++] = a.prefixLength;
  }
  out[at++] = groups.length;
  for (const g of groups) {
    out[at++] = g.length;
    out.set(g, at);
    at += g.length;
  }
  return out;
}

function withSignature(body: Uint8Array, caPrivateKey: Uint8Array): Uint8Array {
  const signature = ed25519.sign(body, caPrivateKey);
  const out = new Uint8Array(body.length + SIGNATURE_LEN);
  out.set(body, 0);
  out.set(signature, body.length);
  return out;
}

/**
 * Signs `fields` with the CA's Ed25519 private key (32-byte seed) and returns the certificate.
 * `fields.caId` must be the id of that key. Throws `RangeError` on out-of-range fields (bugs or
 * command-line mistakes: validate first).
 */
export function signCertificate(fields: CertFields, caPrivateKey: Uint8Array): Certificate {
  const caPublic = ed25519.getPublicKey(caPrivateKey);
  if (!bytesEqual(caIdOf(caPublic), fields.caId)) {
    throw new RangeError("certificate: caId is not the id of the signing key");
  }
  const result = decodeCertificate(withSignature(encodeFields(fields), caPrivateKey));
  if (result.cert === undefined) throw new Error(`certificate: ${result.error}`); // a bug
  return result.cert;
}

/** The CA's self-signed certificate for a new CA key. */
export function selfSignCa(
  caPrivateKey: Uint8Array,
  name: string,
  notBefore: number,
  notAfter: number,
): Certificate {
  const publicKey = ed25519.getPublicKey(caPrivateKey);
  return signCertificate({
    kind: CERT_KIND_CA,
    caId: caIdOf(publicKey),
    publicKey,
    notBefore,
    notAfter,
    name,
    addresses: [],
    groups: [],
  }, caPrivateKey);
}

/** Result of {@linkcode decodeCertificate}. */
export type CertDecodeResult =
  | { readonly cert: Certificate; readonly error?: undefined }
  | { readonly error: CertDecodeError; readonly cert?: undefined };

/**
 * Decodes a certificate. Total: any byte string that is not exactly one well-formed certificate
 * gives `{ error }`. Does not check the signature (see {@linkcode verifyCertificate}). Byte
 * fields are copies.
 */
export function decodeCertificate(bytes: Uint8Array): CertDecodeResult {
  const fail = (error: CertDecodeError): CertDecodeResult => ({ error });
  const len = bytes.length;
  if (len > CERT_MAX_LEN) return fail("trailing bytes");
  let at = 0;
  const need = (n: number) => at + n <= len;
  if (!need(4)) return fail("truncated");
  if (bytes[0] !== CERT_MAGIC[0] || bytes[1] !== CERT_MAGIC[1] || bytes[2] !== CERT_MAGIC[2]) {
    return fail("bad magic");
  }
  if (bytes[3] !== CERT_VERSION) return fail("unsupported version");
  at = 4;
  if (!need(1 + CA_ID_LEN + CERT_KEY_LEN + 16 + 1)) return fail("truncated");
  const kind = bytes[at++]!;
  if (kind !== CERT_KIND_CA && kind !== CERT_KIND_NODE) return fail("bad kind");
  const caId = bytes.slice(at, at + CA_ID_LEN);
  at += CA_ID_LEN;
  const publicKey = bytes.slice(at, at + CERT_KEY_LEN);
  at += CERT_KEY_LEN;
  const notBefore = readU53(bytes, at);
  const notAfter = readU53(bytes, at + 8);
  at += 16;
  if (notBefore === null || notAfter === null || notAfter < notBefore) return fail("bad validity");
  const nameLen = bytes[at++]!;
  if (nameLen < 1 || nameLen > CERT_NAME_MAX_LEN) return fail("bad name");
  if (!need(nameLen)) return fail("truncated");
  const name = ascii(bytes, at, nameLen);
  at += nameLen;
  if (!NAME_RE.test(name)) return fail("bad name");
  if (!need(1)) return fail("truncated");
  const addrCount = bytes[at++]!;
  if (addrCount > CERT_ADDRESSES_MAX) return fail("bad address");
  const addresses: CertAddress[] = [];
  for (let i = 0; i < addrCount; i++) {
    if (!need(1)) return fail("truncated");
    const family = bytes[at++]!;
    const alen = family === 6 ? 16 : family === 4 ? 4 : 0;
    if (alen === 0) return fail("bad address");
    if (!need(alen + 1)) return fail("truncated");
    const address = bytes.slice(at, at + alen);
    const prefixLength = bytes[at + alen]!;
    at += alen + 1;
    if (prefixLength > alen * 8) return fail("bad address");
    addresses.push({ address, prefixLength });
  }
  if (!need(1)) return fail("truncated");
  const groupCount = bytes[at++]!;
  if (groupCount > CERT_GROUPS_MAX) return fail("bad group");
  const groups: string[] = [];
  for (let i = 0; i < groupCount; i++) {
    if (!need(1)) return fail("truncated");
    const glen = bytes[at++]!;
    if (!need(glen)) return fail("truncated");
    const group = ascii(bytes, at, glen);
    at += glen;
    if (!GROUP_RE.test(group)) return fail("bad group");
    groups.push(group);
  }
  if (!need(SIGNATURE_LEN)) return fail("truncated");
  const signature = bytes.slice(at, at + SIGNATURE_LEN);
  at += SIGNATURE_LEN;
  if (at !== len) return fail("trailing bytes");
  return {
    cert: {
      kind,
      caId,
      publicKey,
      notBefore,
      notAfter,
      name,
      addresses,
      groups,
      signature,
      bytes: bytes.slice(),
    },
  };
}

/** Checks an Ed25519 signature over everything but the last 64 bytes; never throws. */
function signatureValid(bytes: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    const body = bytes.subarray(0, bytes.length - SIGNATURE_LEN);
    return ed25519.verify(bytes.subarray(bytes.length - SIGNATURE_LEN), body, publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks a CA certificate: kind CA, self-signed, its id matching its key, and valid at `nowS`
 * (Unix seconds). Returns null when it is good.
 */
export function verifyCaCertificate(ca: Certificate, nowS: number): CertVerifyError | null {
  if (ca.kind !== CERT_KIND_CA) return "not a CA certificate";
  if (!bytesEqual(caIdOf(ca.publicKey), ca.caId)) return "wrong CA";
  if (!signatureValid(ca.bytes, ca.publicKey)) return "bad signature";
  return validity(ca, nowS);
}

/**
 * Checks a node certificate against a CA certificate at `nowS` (Unix seconds): kind node,
 * issued by this CA, signature, validity period. Revocation is the caller's (see
 * {@linkcode fingerprintOf}). Returns null when it is good.
 */
export function verifyCertificate(
  cert: Certificate,
  ca: Certificate,
  nowS: number,
): CertVerifyError | null {
  if (cert.kind !== CERT_KIND_NODE) return "not a node certificate";
  if (!bytesEqual(cert.caId, caIdOf(ca.publicKey))) return "wrong CA";
  if (!signatureValid(cert.bytes, ca.publicKey)) return "bad signature";
  return validity(cert, nowS);
}

function validity(cert: CertFields, nowS: number): CertVerifyError | null {
  if (nowS < cert.notBefore) return "not yet valid";
  if (nowS > cert.notAfter) return "expired";
  return null;
}

/** Signs a revocation list with the CA's private key. Throws `RangeError` on bad fields. */
export function signRevocationList(fields: CrlFields, caPrivateKey: Uint8Array): RevocationList {
  if (!bytesEqual(caIdOf(ed25519.getPublicKey(caPrivateKey)), fields.caId)) {
    throw new RangeError("revocation list: caId is not the id of the signing key");
  }
  if (!timeOk(fields.serial)) throw new RangeError("revocation list: bad serial");
  const n = fields.fingerprints.length;
  if (n > CRL_MAX_ENTRIES) throw new RangeError(`revocation list: at most ${CRL_MAX_ENTRIES}`);
  const body = new Uint8Array(CRL_MIN_LEN - SIGNATURE_LEN + n * FINGERPRINT_LEN);
  const view = new DataView(body.buffer);
  body.set(CRL_MAGIC, 0);
  body[3] = CERT_VERSION;
  body.set(fields.caId, 4);
  view.setBigUint64(4 + CA_ID_LEN, BigInt(fields.serial));
  view.setUint16(12 + CA_ID_LEN, n);
  fields.fingerprints.forEach((fp, i) => {
    if (fp.length !== FINGERPRINT_LEN) throw new RangeError("revocation list: bad fingerprint");
    body.set(fp, 14 + CA_ID_LEN + i * FINGERPRINT_LEN);
  });
  const result = decodeRevocationList(withSignature(body, caPrivateKey));
  if (result.crl === undefined) throw new Error(`revocation list: ${result.error}`);
  return result.crl;
}

/** Result of {@linkcode decodeRevocationList}. */
export type CrlDecodeResult =
  | { readonly crl: RevocationList; readonly error?: undefined }
  | { readonly error: CertDecodeError; readonly crl?: undefined };

/** Decodes a revocation list. Total; does not check the signature. */
export function decodeRevocationList(bytes: Uint8Array): CrlDecodeResult {
  const fail = (error: CertDecodeError): CrlDecodeResult => ({ error });
  if (bytes.length < 4) return fail("truncated");
  if (bytes[0] !== CRL_MAGIC[0] || bytes[1] !== CRL_MAGIC[1] || bytes[2] !== CRL_MAGIC[2]) {
    return fail("bad magic");
  }
  if (bytes[3] !== CERT_VERSION) return fail("unsupported version");
  if (bytes.length < CRL_MIN_LEN) return fail("truncated");
  const caId = bytes.slice(4, 4 + CA_ID_LEN);
  const serial = readU53(bytes, 4 + CA_ID_LEN);
  if (serial === null) return fail("bad validity");
  const count = (bytes[12 + CA_ID_LEN]! << 8) | bytes[13 + CA_ID_LEN]!;
  if (count > CRL_MAX_ENTRIES) return fail("too many entries");
  const expected = CRL_MIN_LEN + count * FINGERPRINT_LEN;
  if (bytes.length < expected) return fail("truncated");
  if (bytes.length > expected) return fail("trailing bytes");
  const fingerprints: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const at = 14 + CA_ID_LEN + i * FINGERPRINT_LEN;
    fingerprints.push(bytes.slice(at, at + FINGERPRINT_LEN));
  }
  return {
    crl: {
      caId,
      serial,
      fingerprints,
      signature: bytes.slice(expected - SIGNATURE_LEN),
      bytes: bytes.slice(),
    },
  };
}

/** True when `crl` was signed by the CA of `ca`. */
export function verifyRevocationList(crl: RevocationList, ca: Certificate): boolean {
  return bytesEqual(crl.caId, caIdOf(ca.publicKey)) && signatureValid(crl.bytes, ca.publicKey);
}

// --- files ----------------------------------------------------------------------------------

/** Armour labels of meshub's files. */
export type ArmorLabel = "CERTIFICATE" | "REVOCATION LIST" | "CA PRIVATE KEY";

/** Base64 between BEGIN/END lines, 64 characters a line, with a trailing newline. */
export function armor(label: ArmorLabel, bytes: Uint8Array): string {
  const b64 = encodeBase64(bytes);
  const lines = [`-----BEGIN MESHUB ${label}-----`];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END MESHUB ${label}-----`, "");
  return lines.join("\n");
}

/**
 * The bytes of an armoured file with `label`, or the file itself when it is not armoured (raw
 * bytes). Returns a string describing the problem when it is armoured wrongly (another label,
 * bad base64).
 */
export function dearmor(label: ArmorLabel, file: Uint8Array): Uint8Array | string {
  const text = new TextDecoder().decode(file.subarray(0, 4096));
  const begin = /-----BEGIN MESHUB ([A-Z ]+)-----/.exec(text);
  if (begin === null) return file;
  if (begin[1] !== label) {
    return `holds a ${begin[1]!.toLowerCase()}, expected a ${label.toLowerCase()}`;
  }
  const end = text.indexOf(`-----END MESHUB ${label}-----`, begin.index);
  if (end < 0) return "has no END line";
  const body = text.slice(begin.index + begin[0].length, end).replace(/\s+/g, "");
  const bytes = decodeBase64(body);
  return bytes ?? "is not valid base64 between its BEGIN and END lines";
}

// --- presentation ---------------------------------------------------------------------------

/** `fd12::1/48` or `100.64.0.1/24`. */
export function formatCertAddress(a: CertAddress): string {
  const text = a.address.length === 16 ? formatIPv6(a.address) : formatIPv4(a.address);
  return `${text}/${a.prefixLength}`;
}

/** ISO 8601 UTC time of Unix seconds (clamped to what `Date` can show). */
export function formatTime(unixS: number): string {
  const ms = Math.min(unixS * 1000, 8.64e15);
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

// --- helpers --------------------------------------------------------------------------------

function readU53(bytes: Uint8Array, at: number): number | null {
  const hi = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
  const lo = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) |
    bytes[at + 7]!) >>> 0;
  if (hi > 0x1fffff) return null;
  return hi * 0x1_0000_0000 + lo;
}

function ascii(bytes: Uint8Array, at: number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(bytes[at + i]!);
  return s;
}

/** Byte-wise equality (not constant time: nothing compared here is secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
