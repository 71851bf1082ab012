/**
 * The CA commands: `meshub ca init | ca revoke | cert sign | cert show`.
 *
 * Files: a CA directory holds `ca.key` (the Ed25519 private key, mode 0600) and `ca.crt` (its
 * self-signed certificate, which every member gets). Certificates and revocation lists are
 * armoured text (`protocol/cert.ts`). Nothing is overwritten without `--force`, except a
 * revocation list, which `ca revoke` extends in place.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519";
import {
  armor,
  CERT_GROUPS_MAX,
  CERT_KIND_CA,
  CERT_KIND_NODE,
  type CertAddress,
  type Certificate,
  dearmor,
  decodeCertificate,
  decodeRevocationList,
  fingerprintOf,
  formatCertAddress,
  formatTime,
  fromHex,
  type RevocationList,
  selfSignCa,
  signCertificate,
  signRevocationList,
  toHex,
  verifyCaCertificate,
  verifyRevocationList,
} from "../protocol/cert.ts";
import { parseIPv4, parseIPv6 } from "../protocol/ip_address.ts";
import { decodeBase64, decodeBase64Url, encodeBase64 } from "../util/base64.ts";
import { UserError } from "../util/cli_error.ts";

/** File name of the CA private key inside a CA directory. */
export const CA_KEY_FILE = "ca.key";
/** File name of the CA certificate inside a CA directory. */
export const CA_CERT_FILE = "ca.crt";
/** Default validity of a CA: 10 years. */
const CA_VALID_DEFAULT = "3650d";
/** Default validity of a node certificate: 1 year. */
const CERT_VALID_DEFAULT = "365d";
/** Default VPN prefix length routed into the TUN when `--ipv6` gives none. */
const DEFAULT_IPV6_PREFIX = 48;
/** Default IPv4 prefix length when `--ipv4` gives none. */
const DEFAULT_IPV4_PREFIX = 24;

const CA_USAGE = `Usage:
  meshub ca init --out DIR [--name NAME] [--valid 3650d] [--force]
  meshub ca revoke --ca DIR FINGERPRINT... --out FILE

ca init     creates a network CA: DIR/ca.key (Ed25519 private key, mode 0600; keep it
            offline) and DIR/ca.crt (its self-signed certificate; give it to every member).
ca revoke   writes a CA-signed revocation list naming the certificates FINGERPRINT...
            (32 hex digits, from meshub cert show). When FILE already holds a list from this
            CA, its entries are kept and the new list gets a higher serial. Members pass the
            newest list on to each other, so giving it to one member is enough.`;

const CERT_USAGE = `Usage:
  meshub cert sign --ca DIR --name NAME (--public-key KEY | --config CLIENT.TOML)
                   --ipv6 ADDR[/LEN] [--ipv4 ADDR[/LEN]] [--groups a,b] [--valid 365d]
                   --out FILE [--force]
  meshub cert show FILE

cert sign   issues a node certificate: binds the node's WireGuard public key (as
            meshub pubkey prints it, or read from the config's node.state_file) to its
            name and VPN addresses. LEN is the VPN prefix routed into the TUN (default /48
            for IPv6, /24 for IPv4); the node may only use the address itself.
            --valid takes s, m, h or d (e.g. 90d, 12h).
cert show   prints a certificate, CA certificate or revocation list readably.`;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parse(
  command: string,
  args: string[],
  options: NonNullable<Parameters<typeof parseArgs>[0]>["options"],
): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    const raw = err instanceof Error ? err.message : String(err);
    const unknown = /Unknown option '([^']+)'/.exec(raw);
    const message = unknown ? `unknown option ${unknown[1]}` : raw.split("\n")[0];
    throw new UserError(`${command}: ${message} (try meshub ${command} --help)`);
  }
}

/** Runs `meshub ca ...` or `meshub cert ...`; returns the exit code. */
export async function caCommand(command: "ca" | "cert", args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const usage = command === "ca" ? CA_USAGE : CERT_USAGE;
  if (sub === undefined) {
    console.error(usage);
    return 2;
  }
  if (sub === "-h" || sub === "--help" || sub === "help") {
    console.log(usage);
    return 0;
  }
  const full = `${command} ${sub}`;
  if (rest.includes("-h") || rest.includes("--help")) {
    console.log(usage);
    return 0;
  }
  switch (full) {
    case "ca init":
      return await caInit(rest);
    case "ca revoke":
      return await caRevoke(rest);
    case "cert sign":
      return await certSign(rest);
    case "cert show":
      return await certShow(rest);
    default:
      throw new UserError(`unknown command "${full}" (try meshub ${command} --help)`);
  }
}

// --- ca init -------------------------------------------------------------------------------

async function caInit(args: string[]): Promise<number> {
  const { values, positionals } = parse("ca init", args, {
    out: { type: "string" },
    name: { type: "string" },
    valid: { type: "string" },
    force: { type: "boolean" },
  });
  if (positionals.length > 0) throw new UserError(`ca init: unexpected "${positionals[0]}"`);
  const dir = required("ca init", values, "out", "DIR");
  const name = (values.name as string | undefined) ?? "meshub-ca";
  checkName("ca init: --name", name);
  const validS = parseDuration("ca init: --valid", (values.valid as string) ?? CA_VALID_DEFAULT);
  const force = values.force === true;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 }).catch((err) => {
    throw new UserError(`ca init: cannot create ${dir}: ${describeIo(err)}`, { cause: err });
  });
  const keyPath = join(dir, CA_KEY_FILE);
  const certPath = join(dir, CA_CERT_FILE);
  if (!force) {
    for (const p of [keyPath, certPath]) {
      if (await exists(p)) {
        throw new UserError(`ca init: ${p} exists; not overwriting it (use --force)`);
      }
    }
  }
  const privateKey = ed25519.utils.randomPrivateKey();
  const now = nowS();
  const ca = selfSignCa(privateKey, name, now, now + validS);
  await writeNew(keyPath, armor("CA PRIVATE KEY", privateKey), 0o600, force, "ca init");
  await writeNew(certPath, armor("CERTIFICATE", ca.bytes), 0o644, force, "ca init");
  console.log(
    `created CA "${name}" (CA id ${toHex(ca.caId)}), valid until ${formatTime(ca.notAfter)}`,
  );
  console.log(`  ${keyPath}   private key: keep it offline, never give it to anyone`);
  console.log(`  ${certPath}   certificate: give it to every member ([ca] certificate)`);
  return 0;
}

// --- CA directory ---------------------------------------------------------------------------

interface LoadedCa {
  privateKey: Uint8Array;
  cert: Certificate;
}

async function loadCaDir(command: string, dir: string): Promise<LoadedCa> {
  const keyPath = join(dir, CA_KEY_FILE);
  const certPath = join(dir, CA_CERT_FILE);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(keyPath);
  } catch (err) {
    throw new UserError(`${command}: cannot read ${keyPath}: ${describeIo(err)}`, {
      cause: err,
    });
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new UserError(
      `${command}: ${keyPath} is readable by others (mode ${
        (info.mode & 0o777).toString(8)
      }); run chmod 600 ${keyPath}`,
    );
  }
  const keyBytes = dearmor("CA PRIVATE KEY", await readFile(command, keyPath));
  if (typeof keyBytes === "string") throw new UserError(`${command}: ${keyPath} ${keyBytes}`);
  if (keyBytes.length !== 32) {
    throw new UserError(`${command}: ${keyPath} is not a meshub CA private key`);
  }
  const cert = await readCert(command, certPath);
  const error = verifyCaCertificate(cert, nowS());
  if (error === "expired") {
    throw new UserError(`${command}: the CA expired on ${formatTime(cert.notAfter)}`);
  }
  if (error !== null && error !== "not yet valid") {
    throw new UserError(`${command}: ${certPath} is not a valid CA certificate (${error})`);
  }
  const publicKey = ed25519.getPublicKey(keyBytes);
  if (toHex(publicKey) !== toHex(cert.publicKey)) {
    throw new UserError(`${command}: ${keyPath} and ${certPath} do not belong together`);
  }
  return { privateKey: keyBytes, cert };
}

// --- cert sign ------------------------------------------------------------------------------

async function certSign(args: string[]): Promise<number> {
  const { values, positionals } = parse("cert sign", args, {
    ca: { type: "string" },
    name: { type: "string" },
    "public-key": { type: "string" },
    config: { type: "string" },
    ipv6: { type: "string" },
    ipv4: { type: "string" },
    groups: { type: "string" },
    valid: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
  });
  if (positionals.length > 0) throw new UserError(`cert sign: unexpected "${positionals[0]}"`);
  const caDir = required("cert sign", values, "ca", "DIR");
  const out = required("cert sign", values, "out", "FILE");
  const keyText = values["public-key"] as string | undefined;
  const configPath = values.config as string | undefined;
  if ((keyText === undefined) === (configPath === undefined)) {
    throw new UserError("cert sign: give exactly one of --public-key KEY or --config CLIENT.TOML");
  }
  let publicKey: Uint8Array;
  let name = values.name as string | undefined;
  if (keyText !== undefined) {
    const key = decodeBase64(keyText) ?? decodeBase64Url(keyText);
    if (key === null || key.length !== 32) {
      throw new UserError(
        "cert sign: --public-key must be a 32-byte key in base64 (as meshub pubkey prints it)",
      );
    }
    publicKey = key;
  } else {
    const { loadClientConfig } = await import("../client/config.ts");
    const { readPublicKey } = await import("../client/state_file.ts");
    const config = await loadClientConfig(configPath!);
    publicKey = await readPublicKey(config.node.stateFile).catch((err) => {
      throw new UserError(
        `cert sign: ${err instanceof Error ? err.message : err} (run meshub pubkey ${configPath} ` +
          "first to create the node key)",
        { cause: err },
      );
    });
    name ??= config.node.name;
  }
  if (name === undefined) throw new UserError("cert sign: --name NAME is required");
  checkName("cert sign: --name", name);
  const ipv6Text = values.ipv6 as string | undefined;
  if (ipv6Text === undefined) {
    throw new UserError("cert sign: --ipv6 ADDR[/LEN] is required (e.g. fd12:3456:789a::1/48)");
  }
  const addresses: CertAddress[] = [parseAddress("--ipv6", ipv6Text, 6)];
  const ipv4Text = values.ipv4 as string | undefined;
  if (ipv4Text !== undefined) addresses.push(parseAddress("--ipv4", ipv4Text, 4));
  const groups = values.groups === undefined
    ? []
    : (values.groups as string).split(",").map((g) => g.trim()).filter((g) => g !== "");
  if (groups.length > CERT_GROUPS_MAX) {
    throw new UserError(`cert sign: --groups: at most ${CERT_GROUPS_MAX} groups`);
  }
  for (const g of groups) {
    if (!/^[A-Za-z0-9._-]{1,32}$/.test(g)) {
      throw new UserError(`cert sign: --groups: "${g}" must be 1 to 32 of A-Z a-z 0-9 . _ -`);
    }
  }
  const validS = parseDuration(
    "cert sign: --valid",
    (values.valid as string) ?? CERT_VALID_DEFAULT,
  );
  const ca = await loadCaDir("cert sign", caDir);
  const now = nowS();
  // A node certificate never outlives its CA.
  const notAfter = Math.min(now + validS, ca.cert.notAfter);
  const cert = signCertificate({
    kind: CERT_KIND_NODE,
    caId: ca.cert.caId,
    publicKey,
    notBefore: now,
    notAfter,
    name,
    addresses,
    groups,
  }, ca.privateKey);
  if (!values.force && await exists(out)) {
    throw new UserError(`cert sign: ${out} exists; not overwriting it (use --force)`);
  }
  await writeNew(out, armor("CERTIFICATE", cert.bytes), 0o644, values.force === true, "cert sign");
  console.log(
    `signed ${out}: ${name}, fingerprint ${toHex(fingerprintOf(cert))}, valid until ${
      formatTime(cert.notAfter)
    }`,
  );
  return 0;
}

// --- ca revoke ------------------------------------------------------------------------------

async function caRevoke(args: string[]): Promise<number> {
  const { values, positionals } = parse("ca revoke", args, {
    ca: { type: "string" },
    out: { type: "string" },
  });
  const caDir = required("ca revoke", values, "ca", "DIR");
  const out = required("ca revoke", values, "out", "FILE");
  if (positionals.length === 0) {
    throw new UserError("ca revoke: name at least one FINGERPRINT (from meshub cert show)");
  }
  const add = positionals.map((text) => {
    const fp = fromHex(text);
    if (fp === null || fp.length !== 16) {
      throw new UserError(`ca revoke: "${text}" is not a fingerprint (32 hex digits)`);
    }
    return fp;
  });
  const ca = await loadCaDir("ca revoke", caDir);
  let previous: RevocationList | null = null;
  if (await exists(out)) {
    const bytes = dearmor("REVOCATION LIST", await readFile("ca revoke", out));
    const decoded = typeof bytes === "string" ? null : decodeRevocationList(bytes).crl;
    if (decoded === undefined || decoded === null || !verifyRevocationList(decoded, ca.cert)) {
      throw new UserError(
        `ca revoke: ${out} exists and is not a revocation list of this CA; not overwriting it`,
      );
    }
    previous = decoded;
  }
  const all = new Map<string, Uint8Array>();
  for (const fp of [...(previous?.fingerprints ?? []), ...add]) all.set(toHex(fp), fp);
  const serial = Math.max(Date.now(), (previous?.serial ?? 0) + 1);
  const crl = signRevocationList(
    { caId: ca.cert.caId, serial, fingerprints: [...all.values()] },
    ca.privateKey,
  );
  const tmp = `${out}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, armor("REVOCATION LIST", crl.bytes), { mode: 0o644 });
  await Deno.rename(tmp, out);
  console.log(
    `wrote ${out}: serial ${serial}, ${crl.fingerprints.length} revoked ` +
      `(${add.length} named now)`,
  );
  return 0;
}

// --- cert show ------------------------------------------------------------------------------

async function certShow(args: string[]): Promise<number> {
  const { positionals } = parse("cert show", args, {});
  if (positionals.length !== 1) throw new UserError("cert show: expects one FILE");
  const path = positionals[0]!;
  const file = await readFile("cert show", path);
  const asCrl = dearmor("REVOCATION LIST", file);
  if (asCrl instanceof Uint8Array && asCrl !== file) {
    const crl = decodeRevocationList(asCrl).crl;
    if (crl === undefined) throw new UserError(`cert show: ${path}: damaged revocation list`);
    console.log(describeRevocationList(crl));
    return 0;
  }
  const bytes = dearmor("CERTIFICATE", file);
  if (typeof bytes === "string") throw new UserError(`cert show: ${path} ${bytes}`);
  const cert = decodeCertificate(bytes).cert;
  if (cert === undefined) {
    const crl = decodeRevocationList(bytes).crl;
    if (crl !== undefined) {
      console.log(describeRevocationList(crl));
      return 0;
    }
    throw new UserError(`cert show: ${path} is not a meshub certificate or revocation list`);
  }
  console.log(describeCertificate(cert, nowS()));
  return 0;
}

/** A readable description of a certificate (what `meshub cert show` prints). */
export function describeCertificate(cert: Certificate, now: number): string {
  const state = now < cert.notBefore
    ? "NOT YET VALID"
    : now > cert.notAfter
    ? "EXPIRED"
    : `valid (${Math.floor((cert.notAfter - now) / 86400)} days left)`;
  const selfSigned = cert.kind === CERT_KIND_CA &&
    verifyCaCertificate(cert, Math.max(now, cert.notBefore)) !== "bad signature";
  const lines = [
    `${cert.kind === CERT_KIND_CA ? "CA certificate" : "node certificate"}: ${cert.name}`,
    `  fingerprint  ${toHex(fingerprintOf(cert))}`,
    `  CA id        ${toHex(cert.caId)}${
      cert.kind === CERT_KIND_CA ? (selfSigned ? " (self-signed)" : " (BAD SELF-SIGNATURE)") : ""
    }`,
    `  public key   ${encodeBase64(cert.publicKey)}${
      cert.kind === CERT_KIND_CA ? " (Ed25519)" : " (WireGuard)"
    }`,
    `  not before   ${formatTime(cert.notBefore)}`,
    `  not after    ${formatTime(cert.notAfter)}`,
    `  status       ${state}`,
  ];
  if (cert.kind === CERT_KIND_NODE) {
    lines.push(`  addresses    ${cert.addresses.map(formatCertAddress).join(", ") || "(none)"}`);
    lines.push(`  groups       ${cert.groups.join(", ") || "(none)"}`);
  }
  return lines.join("\n");
}

/** A readable description of a revocation list. */
export function describeRevocationList(crl: RevocationList): string {
  return [
    `revocation list: ${crl.fingerprints.length} revoked`,
    `  CA id        ${toHex(crl.caId)}`,
    `  serial       ${crl.serial} (issued ${new Date(crl.serial).toISOString()})`,
    ...crl.fingerprints.map((fp) => `  revoked      ${toHex(fp)}`),
  ].join("\n");
}

// --- helpers --------------------------------------------------------------------------------

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

function required(command: string, values: Values, key: string, what: string): string {
  const v = values[key];
  if (typeof v !== "string" || v === "") {
    throw new UserError(`${command}: --${key} ${what} is required`);
  }
  return v;
}

function checkName(what: string, name: string): void {
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(name)) {
    throw new UserError(`${what}: must be 1 to 63 characters of A-Z a-z 0-9 . _ -, got "${name}"`);
  }
}

/** `90d`, `12h`, `30m`, `45s` → seconds. */
export function parseDuration(what: string, text: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text);
  if (m === null) throw new UserError(`${what}: expected a duration like 365d, 12h, 30m or 90s`);
  const n = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
  if (n < 1) throw new UserError(`${what}: must be at least 1s`);
  return n;
}

function parseAddress(what: string, text: string, family: 4 | 6): CertAddress {
  const [addr, len, extra] = text.split("/");
  const address = family === 6 ? parseIPv6(addr!) : parseIPv4(addr!);
  const max = family === 6 ? 128 : 32;
  const prefixLength = len === undefined
    ? (family === 6 ? DEFAULT_IPV6_PREFIX : DEFAULT_IPV4_PREFIX)
    : /^\d{1,3}$/.test(len)
    ? Number(len)
    : NaN;
  if (address === null || extra !== undefined || !(prefixLength <= max)) {
    const example = family === 6 ? "fd12:3456:789a::1/48" : "100.64.0.1/24";
    throw new UserError(`cert sign: ${what}: expected an IPv${family} address like ${example}`);
  }
  return { address, prefixLength };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function readFile(command: string, path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    throw new UserError(`${command}: cannot read ${path}: ${describeIo(err)}`, { cause: err });
  }
}

async function readCert(command: string, path: string): Promise<Certificate> {
  const bytes = dearmor("CERTIFICATE", await readFile(command, path));
  if (typeof bytes === "string") throw new UserError(`${command}: ${path} ${bytes}`);
  const cert = decodeCertificate(bytes).cert;
  if (cert === undefined) throw new UserError(`${command}: ${path} is not a meshub certificate`);
  return cert;
}

/** Writes a new file with `mode` (created exclusively unless `force`). */
async function writeNew(
  path: string,
  text: string,
  mode: number,
  force: boolean,
  command: string,
): Promise<void> {
  try {
    if (force) await Deno.remove(path).catch(() => {});
    await Deno.writeTextFile(path, text, { mode, createNew: true });
    await Deno.chmod(path, mode); // the umask may have taken bits away; never added any
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new UserError(`${command}: ${path} exists; not overwriting it (use --force)`);
    }
    throw new UserError(`${command}: cannot write ${path}: ${describeIo(err)}`, { cause: err });
  }
}

function describeIo(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  return err instanceof Error ? err.message : String(err);
}
