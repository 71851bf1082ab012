/**
 * The node state file: this node's static WireGuard (X25519) private key, created on first start.
 *
 * The file is TOML so that later versions can add to it (a peer cache); keys this version does
 * not know are ignored. The private key is standard base64, as `wg(8)` prints it, so a key can be
 * moved between meshub and WireGuard tools:
 *
 * ```toml
 * # meshub node state ...
 * private_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
 * ```
 *
 * Like ssh with its identity files, the file must not be accessible to group or others; it is
 * written with mode 0600 through a temporary file and a rename, so a crash never leaves a
 * half-written key behind. The key is never printed.
 *
 * @module
 */
import { x25519 } from "@noble/curves/ed25519";
import { parse, TomlError } from "smol-toml";
import { dirname } from "node:path";
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { UserError } from "../util/cli_error.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";

/** Length in bytes of X25519 private and public keys. */
export const X25519_KEY_LEN = 32;

/** Mode of the state file: owner read/write only. */
const STATE_FILE_MODE = 0o600;
/** Mode of a state directory that meshub creates. */
const STATE_DIR_MODE = 0o700;

/** What {@linkcode loadOrCreateState} returns. */
export interface NodeState {
  /** The node's static X25519 private key, 32 bytes (clamped when meshub generated it). */
  privateKey: Uint8Array;
  /** The matching public key, 32 bytes. */
  publicKey: Uint8Array;
  /** True if the file did not exist and was created by this call. */
  created: boolean;
}

/**
 * Generates an X25519 private key, clamped as RFC 7748 §5 describes, so the stored key is the
 * one actually used (WireGuard clamps too, and `wg genkey` stores clamped keys).
 */
export function generatePrivateKey(): Uint8Array {
  const key = x25519.utils.randomSecretKey();
  key[0]! &= 248;
  key[31]! &= 127;
  key[31]! |= 64;
  return key;
}

/**
 * Reads the node state at `path`, or creates it with a fresh key if there is no such file
 * (creating the parent directory with mode 0700 if needed). Throws {@linkcode UserError} if the
 * file is readable by group or others, corrupt, or cannot be read or written.
 */
export async function loadOrCreateState(path: string): Promise<NodeState> {
  const existing = await readPrivateKey(path, { missingOk: true });
  if (existing !== undefined) {
    return { privateKey: existing, publicKey: x25519.getPublicKey(existing), created: false };
  }
  const privateKey = generatePrivateKey();
  await writeStateFile(path, serialize(privateKey));
  return { privateKey, publicKey: x25519.getPublicKey(privateKey), created: true };
}

/**
 * Returns the public key of the node state at `path` without creating anything. Throws
 * {@linkcode UserError} if the file is missing, too open, corrupt or unreadable.
 */
export async function readPublicKey(path: string): Promise<Uint8Array> {
  const privateKey = await readPrivateKey(path, { missingOk: false });
  return x25519.getPublicKey(privateKey!);
}

function serialize(privateKey: Uint8Array): string {
  return [
    "# meshub node state, written by meshub.",
    "#",
    "# private_key is this node's static WireGuard (X25519) private key. KEEP THIS FILE SECRET:",
    "# whoever reads it can impersonate this node. meshub refuses to start if group or others",
    "# may access it (fix with `chmod 600`).",
    `private_key = "${encodeBase64(privateKey)}"`,
    "",
  ].join("\n");
}

async function readPrivateKey(
  path: string,
  options: { missingOk: boolean },
): Promise<Uint8Array | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      if (options.missingOk) return undefined;
      throw new UserError(
        `${path}: no such node state file (the client creates it on first start)`,
        { cause: err },
      );
    }
    throw new UserError(`${path}: cannot read the node state file: ${describeIoError(err)}`, {
      cause: err,
    });
  }
  let bytes: Uint8Array;
  try {
    // Check the open file rather than the path, so the file read is the file checked.
    const info = await file.stat();
    if (!info.isFile) throw new UserError(`${path}: the node state file is not a regular file`);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
      throw new UserError(
        `${path}: permissions ${mode} are too open for a file holding a private key; ` +
          `run \`chmod 600 ${path}\``,
      );
    }
    bytes = new Uint8Array(info.size);
    let n = 0;
    while (n < bytes.length) {
      const read = await file.read(bytes.subarray(n));
      if (read === null) break;
      n += read;
    }
    bytes = bytes.subarray(0, n);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: cannot read the node state file: ${describeIoError(err)}`, {
      cause: err,
    });
  } finally {
    file.close();
  }
  return parsePrivateKey(path, bytes);
}

function parsePrivateKey(path: string, bytes: Uint8Array): Uint8Array {
  let doc: Record<string, unknown>;
  try {
    doc = parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    if (err instanceof TomlError) corrupt(path, `TOML syntax error on line ${err.line}`, err);
    corrupt(path, "not valid UTF-8", err);
  }
  const text = doc.private_key;
  if (text === undefined) corrupt(path, "no `private_key`");
  if (typeof text !== "string") corrupt(path, "`private_key` is not a string");
  const key = decodeBase64(text);
  if (key === null) corrupt(path, "`private_key` is not valid base64");
  if (key.length !== X25519_KEY_LEN) {
    corrupt(path, `\`private_key\` must be ${X25519_KEY_LEN} bytes, got ${key.length}`);
  }
  return key;
}

function corrupt(path: string, detail: string, cause?: unknown): never {
  // Never quote the file's content: it is a secret.
  throw new UserError(
    `${path}: corrupt node state file: ${detail} (move it away to generate a new key)`,
    cause === undefined ? {} : { cause },
  );
}

/** Writes `text` to `path` with mode 0600, atomically: temporary file, fsync, rename. */
async function writeStateFile(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
  } catch (err) {
    cannotWrite(path, `create the directory ${dir}`, err);
  }
  try {
    await writeFileAtomic(path, new TextEncoder().encode(text), STATE_FILE_MODE);
  } catch (err) {
    cannotWrite(path, "write the node state file", err);
  }
  await syncDirectory(dir);
}

function cannotWrite(path: string, what: string, err: unknown): never {
  throw new UserError(`${path}: cannot ${what}: ${describeIoError(err)}`, { cause: err });
}

/** Makes the rename durable; best effort, since not every OS lets a directory be fsynced. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    using handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // The key is written either way; only a power cut right now could lose the new name.
  }
}

function describeIoError(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.IsADirectory) return "it is a directory";
  return err instanceof Error ? err.message : String(err);
}
