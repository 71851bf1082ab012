/**
 * CA mode in the client: the network secret derived from the CA key, the member policy that
 * checks certificates, and loading the CA, node certificate and revocation list at start-up.
 *
 * ## Keys
 *
 * The network secret (root of the network id, advert key, node ids and ULA prefix, `keys.ts`) is
 * `SHA-256("meshub ca network v1" ‖ CA public key ‖ PSK)`, the PSK being empty when none is
 * configured. With a PSK too ("two locks"), an advert opens only for someone holding both, and
 * the PSK is WireGuard's preshared key; without one, WireGuard's preshared key is
 * `SHA-256("meshub ca wireguard psk v1" ‖ CA public key)`. The hub learns neither.
 *
 * ## Adverts
 *
 * A CA-mode advert carries its certificate in TLVs of type {@linkcode EXT_CERTIFICATE} (the
 * certificate is the concatenation, in order, of every such TLV's value: TLV values are at most
 * 255 bytes) and, when it fits, the newest revocation list the node knows in TLVs of type
 * {@linkcode EXT_REVOCATION_LIST}. A member accepts a peer only if the certificate is from the
 * network CA, for the advert's public key, inside its validity period, not revoked, and names
 * exactly the advert's name and addresses. Every member keeps the newest CA-signed revocation
 * list it has seen (by serial) and re-advertises it, so a list given to one member reaches all.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha256";
import type { Advert, AdvertExtension } from "../protocol/advert.ts";
import {
  bytesEqual,
  type Certificate,
  dearmor,
  decodeCertificate,
  decodeRevocationList,
  fingerprintOf,
  formatCertAddress,
  formatTime,
  type RevocationList,
  toHex,
  verifyCaCertificate,
  verifyCertificate,
  verifyRevocationList,
} from "../protocol/cert.ts";
import type { Prefix } from "./route_table.ts";
import type { ClientConfig } from "./config.ts";
import type { MemberPolicy, MemberVerdict } from "./member_policy.ts";
import { UserError } from "../util/cli_error.ts";
import { log } from "../util/log.ts";

const caLog = log("ca");

/** Advert TLV type (optional range) of certificate fragments. */
export const EXT_CERTIFICATE = 0x01;
/** Advert TLV type (optional range) of revocation-list fragments. */
export const EXT_REVOCATION_LIST = 0x02;
/** A peer's certificate may start this much in our future (clocks disagree a little). */
export const CLOCK_SKEW_TOLERANCE_S = 300;
/** Verified certificates remembered by fingerprint (saves an Ed25519 verify per MEMBER). */
const VERIFIED_CACHE_MAX = 4096;
const TLV_VALUE_MAX = 255;

const NETWORK_LABEL = new TextEncoder().encode("meshub ca network v1");
const WG_PSK_LABEL = new TextEncoder().encode("meshub ca wireguard psk v1");

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The network secret of a CA-mode network (see the module documentation). */
export function caNetworkSecret(caPublicKey: Uint8Array, psk: Uint8Array | null): Uint8Array {
  return sha256(concat(NETWORK_LABEL, caPublicKey, psk ?? new Uint8Array(0)));
}

/** WireGuard's preshared key in CA mode: the PSK, or one derived from the CA key. */
export function caWireGuardPsk(caPublicKey: Uint8Array, psk: Uint8Array | null): Uint8Array {
  return psk ?? sha256(concat(WG_PSK_LABEL, caPublicKey));
}

/** Splits `bytes` into TLVs of `type` (values of at most 255 bytes). */
export function toTlvs(type: number, bytes: Uint8Array): AdvertExtension[] {
  const out: AdvertExtension[] = [];
  for (let at = 0; at < bytes.length; at += TLV_VALUE_MAX) {
    out.push({ type, value: bytes.slice(at, at + TLV_VALUE_MAX) });
  }
  return out;
}

/** Joins the values of every TLV of `type`, in order; null when there is none. */
export function fromTlvs(
  type: number,
  extensions: readonly AdvertExtension[] | undefined,
): Uint8Array | null {
  const parts = (extensions ?? []).filter((e) => e.type === type).map((e) => e.value);
  return parts.length === 0 ? null : concat(...parts);
}

/** Bytes the TLVs of `bytes` take in an advert. */
function tlvSize(bytes: Uint8Array): number {
  return bytes.length + 2 * Math.ceil(bytes.length / TLV_VALUE_MAX);
}

/** Options of {@linkcode CaPolicy}. */
export interface CaPolicyOptions {
  /** The network CA's certificate (already checked with {@linkcode verifyCaCertificate}). */
  ca: Certificate;
  /** This node's certificate (advertised). */
  own: Certificate;
  /** Fingerprints revoked by configuration. */
  revoked?: readonly Uint8Array[];
  /** A CA-signed revocation list to start from (already verified). */
  revocationList?: RevocationList | null;
  /** Wall clock in Unix ms (certificates are dated). Default `Date.now`. */
  wallClockMs?: () => number;
}

/** Reasons a CA-mode peer is refused (drop counters `member-<reason>`). */
export type CaRefusal =
  | "no certificate"
  | "bad certificate"
  | "wrong CA"
  | "bad signature"
  | "not yet valid"
  | "expired"
  | "revoked"
  | "certificate for another key"
  | "name not certified"
  | "address not certified"
  | "not a node certificate"
  | "not a CA certificate";

/** The CA-mode {@linkcode MemberPolicy}. */
export class CaPolicy implements MemberPolicy {
  readonly #ca: Certificate;
  readonly #own: Certificate;
  readonly #configRevoked: Set<string>;
  readonly #clock: () => number;
  readonly #verified = new Map<string, Certificate>();
  #crl: RevocationList | null;
  #crlRevoked = new Set<string>();
  #generation = 0;

  constructor(options: CaPolicyOptions) {
    this.#ca = options.ca;
    this.#own = options.own;
    this.#configRevoked = new Set((options.revoked ?? []).map(toHex));
    this.#clock = options.wallClockMs ?? Date.now;
    this.#crl = null;
    if (options.revocationList) this.#adopt(options.revocationList);
  }

  /** See {@linkcode MemberPolicy.generation}. */
  get generation(): number {
    return this.#generation;
  }

  /** The newest revocation list known (from the file or from a member), if any. */
  get revocationList(): RevocationList | null {
    return this.#crl;
  }

  /** True when the fingerprint is revoked by the configuration or the revocation list. */
  isRevoked(fingerprint: Uint8Array): boolean {
    const hex = toHex(fingerprint);
    return this.#configRevoked.has(hex) || this.#crlRevoked.has(hex);
  }

  /**
   * Takes a revocation list if it is signed by our CA and newer than ours. Returns whether it
   * was taken.
   */
  offerRevocationList(crl: RevocationList): boolean {
    if (this.#crl !== null && crl.serial <= this.#crl.serial) return false;
    if (!verifyRevocationList(crl, this.#ca)) return false;
    this.#adopt(crl);
    caLog.info("revocation list {serial} ({count} revoked) adopted", {
      serial: crl.serial,
      count: crl.fingerprints.length,
    });
    return true;
  }

  #adopt(crl: RevocationList): void {
    this.#crl = crl;
    this.#crlRevoked = new Set(crl.fingerprints.map(toHex));
    this.#generation++;
  }

  /** See {@linkcode MemberPolicy.advertExtensions}: our certificate, and the CRL if it fits. */
  advertExtensions(spareBytes: number): AdvertExtension[] {
    const out = toTlvs(EXT_CERTIFICATE, this.#own.bytes);
    const left = spareBytes - tlvSize(this.#own.bytes);
    if (this.#crl !== null && tlvSize(this.#crl.bytes) <= left) {
      out.push(...toTlvs(EXT_REVOCATION_LIST, this.#crl.bytes));
    }
    return out;
  }

  /** See {@linkcode MemberPolicy.verify}. */
  verify(advert: Advert): MemberVerdict {
    const crlBytes = fromTlvs(EXT_REVOCATION_LIST, advert.extensions);
    if (crlBytes !== null) {
      const crl = decodeRevocationList(crlBytes).crl;
      if (crl !== undefined) this.offerRevocationList(crl);
    }
    const certBytes = fromTlvs(EXT_CERTIFICATE, advert.extensions);
    if (certBytes === null) return refuse("no certificate");
    const result = this.check(certBytes);
    if (typeof result === "string") return refuse(result);
    const cert = result;
    if (!bytesEqual(cert.publicKey, advert.publicKey)) {
      return refuse("certificate for another key");
    }
    if (advert.name !== cert.name) return refuse("name not certified");
    const certified = (a: Uint8Array) => cert.addresses.some((c) => bytesEqual(c.address, a));
    if (!certified(advert.ipv6.address) || (advert.ipv4 && !certified(advert.ipv4.address))) {
      return refuse("address not certified");
    }
    const fingerprint = fingerprintOf(cert);
    return {
      ok: true,
      name: cert.name,
      addresses: certifiedHosts(cert),
      recheck: () => {
        if (this.isRevoked(fingerprint)) return "revoked";
        if (this.#clock() / 1000 > cert.notAfter) return "expired";
        return null;
      },
    };
  }

  /** Decodes and checks a node certificate against the CA, validity and revocation. */
  check(bytes: Uint8Array): Certificate | CaRefusal {
    const decoded = decodeCertificate(bytes);
    if (decoded.cert === undefined) return "bad certificate";
    const fingerprint = fingerprintOf(decoded.cert);
    const key = toHex(fingerprint);
    if (this.isRevoked(fingerprint)) return "revoked";
    const nowS = this.#clock() / 1000;
    let cert = this.#verified.get(key);
    if (cert === undefined) {
      // Signature, CA and kind once per certificate; the dates every time.
      const error = verifyCertificate(
        decoded.cert,
        this.#ca,
        Math.max(nowS, decoded.cert.notBefore),
      );
      if (error !== null) return error;
      if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
      cert = decoded.cert;
      this.#verified.set(key, cert);
    }
    if (nowS + CLOCK_SKEW_TOLERANCE_S < cert.notBefore) return "not yet valid";
    if (nowS > cert.notAfter) return "expired";
    return cert;
  }
}

function refuse(reason: CaRefusal): MemberVerdict {
  return { ok: false, reason };
}

/** The certificate's addresses as host prefixes (/128, /32). */
export function certifiedHosts(cert: Certificate): Prefix[] {
  return cert.addresses.map((a) => ({
    address: a.address,
    prefixLength: a.address.length * 8,
  }));
}

// --- start-up ------------------------------------------------------------------------------

/** What `[ca]` and `[node] certificate` of the configuration name. */
export interface CaFiles {
  /** Path of the CA certificate (`ca.certificate`). */
  certificate: string;
  /** Path of this node's certificate (`node.certificate`). */
  nodeCertificate: string;
  /** Fingerprints revoked in the configuration (`ca.revoked`). */
  revoked: Uint8Array[];
  /** Path of a CA-signed revocation list (`ca.revocation_list`), if any. */
  revocationList?: string | undefined;
}

/** Everything the client needs to run in CA mode. */
export interface CaMode {
  /** The CA certificate. */
  ca: Certificate;
  /** This node's certificate. */
  own: Certificate;
  /** The member policy. */
  policy: CaPolicy;
  /** Root of the network keys. */
  networkSecret: Uint8Array;
  /** WireGuard preshared key. */
  wireGuardPsk: Uint8Array;
}

async function readFile(key: string, path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : String(err);
    throw new UserError(`${key}: cannot read ${path}: ${why}`, { cause: err });
  }
}

/** Reads and decodes a certificate file; throws {@linkcode UserError}. */
export async function readCertificateFile(key: string, path: string): Promise<Certificate> {
  const bytes = dearmor("CERTIFICATE", await readFile(key, path));
  if (typeof bytes === "string") throw new UserError(`${key}: ${path} ${bytes}`);
  const decoded = decodeCertificate(bytes);
  if (decoded.cert === undefined) {
    throw new UserError(`${key}: ${path} is not a meshub certificate (${decoded.error})`);
  }
  return decoded.cert;
}

/** Reads and decodes a revocation list file; throws {@linkcode UserError}. */
export async function readRevocationListFile(key: string, path: string): Promise<RevocationList> {
  const bytes = dearmor("REVOCATION LIST", await readFile(key, path));
  if (typeof bytes === "string") throw new UserError(`${key}: ${path} ${bytes}`);
  const decoded = decodeRevocationList(bytes);
  if (decoded.crl === undefined) {
    throw new UserError(`${key}: ${path} is not a meshub revocation list (${decoded.error})`);
  }
  return decoded.crl;
}

function clockHint(notBefore: number, nowS: number): string {
  return `it is valid from ${formatTime(notBefore)} but this host's clock says ` +
    `${formatTime(Math.floor(nowS))}; check the clock (NTP) or the certificate's dates`;
}

/**
 * Checks the CA, this node's certificate and the revocation list for a node with `publicKey`,
 * and builds the CA mode. Every problem is one clear {@linkcode UserError}: wrong CA, expired
 * or not-yet-valid certificate (with a clock hint), a certificate for another key, a revoked
 * certificate, a revocation list from another CA.
 */
export async function loadCaMode(
  files: CaFiles,
  publicKey: Uint8Array,
  psk: Uint8Array | null,
  wallClockMs: () => number = Date.now,
): Promise<CaMode> {
  const ca = await readCertificateFile("ca.certificate", files.certificate);
  const own = await readCertificateFile("node.certificate", files.nodeCertificate);
  const crl = files.revocationList === undefined
    ? null
    : await readRevocationListFile("ca.revocation_list", files.revocationList);
  return checkCaMode({ ca, own, crl, revoked: files.revoked }, publicKey, psk, wallClockMs);
}

/** The checks of {@linkcode loadCaMode} on decoded inputs (separate for tests). */
export function checkCaMode(
  inputs: {
    ca: Certificate;
    own: Certificate;
    crl: RevocationList | null;
    revoked: readonly Uint8Array[];
  },
  publicKey: Uint8Array,
  psk: Uint8Array | null,
  wallClockMs: () => number = Date.now,
): CaMode {
  const { ca, own, crl } = inputs;
  const nowS = wallClockMs() / 1000;
  const caError = verifyCaCertificate(ca, nowS);
  if (caError === "not a CA certificate") {
    throw new UserError("ca.certificate: is a node certificate, not the CA's certificate");
  }
  if (caError === "not yet valid") {
    throw new UserError(`ca.certificate: not valid yet: ${clockHint(ca.notBefore, nowS)}`);
  }
  if (caError === "expired") {
    throw new UserError(`ca.certificate: the CA expired on ${formatTime(ca.notAfter)}`);
  }
  if (caError !== null) throw new UserError(`ca.certificate: ${caError} (not self-signed)`);
  const ownError = verifyCertificate(own, ca, nowS);
  const fp = toHex(fingerprintOf(own));
  switch (ownError) {
    case null:
      break;
    case "not a node certificate":
      throw new UserError("node.certificate: is a CA certificate, not a node certificate");
    case "wrong CA":
      throw new UserError(
        `node.certificate: issued by another CA (CA id ${toHex(own.caId)}, ` +
          `but ca.certificate is CA id ${toHex(ca.caId)})`,
      );
    case "not yet valid":
      if (nowS + CLOCK_SKEW_TOLERANCE_S >= own.notBefore) break;
      throw new UserError(`node.certificate: not valid yet: ${clockHint(own.notBefore, nowS)}`);
    case "expired":
      throw new UserError(
        `node.certificate: expired on ${formatTime(own.notAfter)} (fingerprint ${fp}); ` +
          "ask the CA for a new one (meshub cert sign)",
      );
    default:
      throw new UserError(`node.certificate: ${ownError} (not signed by this CA)`);
  }
  if (!bytesEqual(own.publicKey, publicKey)) {
    throw new UserError(
      `node.certificate: issued for another key (${b64(own.publicKey)}); this node's key in ` +
        `node.state_file is ${b64(publicKey)} (sign one with meshub cert sign --config)`,
    );
  }
  if (!own.addresses.some((a) => a.address.length === 16)) {
    throw new UserError("node.certificate: certifies no IPv6 address");
  }
  if (crl !== null && !verifyRevocationList(crl, ca)) {
    throw new UserError("ca.revocation_list: not signed by this CA");
  }
  const policy = new CaPolicy({
    ca,
    own,
    revoked: inputs.revoked,
    revocationList: crl,
    wallClockMs,
  });
  if (policy.isRevoked(fingerprintOf(own))) {
    throw new UserError(`node.certificate: revoked (fingerprint ${fp})`);
  }
  return {
    ca,
    own,
    policy,
    networkSecret: caNetworkSecret(ca.publicKey, psk),
    wireGuardPsk: caWireGuardPsk(ca.publicKey, psk),
  };
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** CA mode resolved against the client configuration: keys, policy and the certified addresses. */
export interface ClientCaMode extends CaMode {
  /** The TUN's IPv6 address and the VPN prefix routed into it (from the certificate). */
  ipv6: Prefix;
  /** The TUN's IPv4 address, if the certificate has one. */
  ipv4: Prefix | undefined;
}

/**
 * Loads CA mode for a client whose node key is `publicKey`: {@linkcode loadCaMode}, then checks
 * that `node.name`, `tun.ipv6` and `tun.ipv4` (when set) agree with the certificate.
 */
export async function startCaMode(
  config: Pick<ClientConfig, "ca" | "psk" | "node" | "tun">,
  publicKey: Uint8Array,
  wallClockMs: () => number = Date.now,
): Promise<ClientCaMode> {
  if (config.ca === undefined) throw new Error("startCaMode without [ca]");
  const mode = await loadCaMode(config.ca, publicKey, config.psk, wallClockMs);
  const { own } = mode;
  if (config.node.name !== own.name) {
    throw new UserError(
      `node.name: "${config.node.name}" is not the name in node.certificate ("${own.name}")`,
    );
  }
  const pick = (len: number): Prefix | undefined => {
    const a = own.addresses.find((x) => x.address.length === len);
    return a && { address: a.address, prefixLength: a.prefixLength };
  };
  const ipv6 = pick(16)!;
  const ipv4 = pick(4);
  for (
    const [key, configured, certified] of [["tun.ipv6", config.tun.ipv6, ipv6], [
      "tun.ipv4",
      config.tun.ipv4,
      ipv4,
    ]] as const
  ) {
    if (configured === undefined) continue;
    if (certified === undefined || !bytesEqual(configured.address, certified.address)) {
      throw new UserError(
        `${key}: ${formatPrefix(configured)} is not certified; node.certificate has ${
          own.addresses.map(formatCertAddress).join(", ")
        } (leave ${key} out in CA mode)`,
      );
    }
  }
  caLog.info("CA mode: certified as {name} ({fingerprint}), valid until {until}", {
    name: own.name,
    fingerprint: toHex(fingerprintOf(own)),
    until: formatTime(own.notAfter),
  });
  return { ...mode, ipv6, ipv4 };
}

function formatPrefix(p: Prefix): string {
  return formatCertAddress(p);
}
