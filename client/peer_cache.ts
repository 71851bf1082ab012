/**
 * The peer cache: the members this node had a live edge to, so that a restart with every hub
 * down still finds them.
 *
 * Each entry is a member's node id, its **sealed advert** exactly as it arrived (`advert.ts`:
 * authenticated with the network key, so the mesh re-opens it on load and the member policy
 * re-checks it, CA mode included), the **endpoints** that last worked (at most
 * {@linkcode PEER_CACHE_MAX_ENDPOINTS}, the edge's own first) and when the edge was last up.
 * Nothing in it is trusted: an entry that no longer opens or passes the policy is dropped, its
 * endpoints are only punch candidates, and the edge comes up only when the member completes a
 * WireGuard handshake with the key in the advert.
 *
 * The file is JSON (a torn write can never parse as a shorter valid cache) next to the node state
 * file: `<state_file>.peers` unless `node.peer_cache` says otherwise. It is kept apart from the
 * state file on purpose: it is rewritten now and then, the private key never is. It is written
 * with mode 0600 through a temporary file and a rename; a client that dropped root (`node.user`)
 * into a directory it may not write keeps a descriptor opened before the drop and rewrites the
 * file in place (see {@linkcode PeerCacheFile}). A missing file is an empty cache; an unreadable
 * or corrupt one is ignored with a warning, never an error.
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { formatEndpoint, normalizeEndpoint, parseEndpoint } from "../protocol/endpoint.ts";
import type { UdpEndpoint } from "./udp.ts";

/** Entries not seen up for this long are forgotten (7 days). */
export const PEER_CACHE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Most entries kept (newest first). */
export const PEER_CACHE_MAX_ENTRIES = 1024;
/** Most endpoints kept per entry. */
export const PEER_CACHE_MAX_ENDPOINTS = 4;
/** Largest cache file read (well above 1024 entries of the largest advert). */
export const PEER_CACHE_MAX_FILE_LEN = 4 * 1024 * 1024;
/** Format version in the file. */
const FORMAT_VERSION = 1;
const FILE_MODE = 0o600;
/** An entry "last seen" this far in the future is from a broken clock: dropped. */
const MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000;

/** One cached member. */
export interface CachedPeer {
  /** Node id (16 bytes) the advert is sealed to. */
  nodeId: Uint8Array;
  /** The member's sealed advert, as received. */
  advert: Uint8Array;
  /** Endpoints that last worked, best first. */
  endpoints: UdpEndpoint[];
  /** Wall-clock ms when its edge was last up. */
  lastSeenMs: number;
}

/** What {@linkcode decodePeerCache} found. */
export interface DecodedPeerCache {
  /** Entries, unexpired, newest first. */
  entries: CachedPeer[];
  /** Entries dropped because they expired. */
  expired: number;
  /** Entries dropped because they were malformed. */
  invalid: number;
}

/** Serialises `entries` (newest first, bounded) as the cache file's text. */
export function encodePeerCache(entries: readonly CachedPeer[], savedAtMs: number): string {
  const peers = [...entries]
    .sort((a, b) => b.lastSeenMs - a.lastSeenMs)
    .slice(0, PEER_CACHE_MAX_ENTRIES)
    .map((e) => ({
      id: hex(e.nodeId),
      advert: encodeBase64(e.advert),
      endpoints: e.endpoints.slice(0, PEER_CACHE_MAX_ENDPOINTS).map(formatEndpoint),
      last_seen: Math.round(e.lastSeenMs),
    }));
  return JSON.stringify({ meshub_peer_cache: FORMAT_VERSION, saved_at: savedAtMs, peers }) +
    "\n";
}

/**
 * Parses a cache file's text, dropping entries older than {@linkcode PEER_CACHE_MAX_AGE_MS} at
 * `nowMs`. Returns a one-line reason instead when the file as a whole is unusable. Never throws.
 */
export function decodePeerCache(text: string, nowMs: number): DecodedPeerCache | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return "not valid JSON (a torn write?)";
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "not a peer cache";
  const root = doc as Record<string, unknown>;
  if (root.meshub_peer_cache !== FORMAT_VERSION) return "unknown format version";
  if (!Array.isArray(root.peers)) return "no peer list";
  const out: DecodedPeerCache = { entries: [], expired: 0, invalid: 0 };
  const seen = new Set<string>();
  for (const raw of root.peers.slice(0, PEER_CACHE_MAX_ENTRIES)) {
    const entry = decodeEntry(raw);
    if (entry === null || seen.has(hex(entry.nodeId))) {
      out.invalid++;
      continue;
    }
    if (
      nowMs - entry.lastSeenMs > PEER_CACHE_MAX_AGE_MS ||
      entry.lastSeenMs - nowMs > MAX_CLOCK_SKEW_MS
    ) {
      out.expired++;
      continue;
    }
    seen.add(hex(entry.nodeId));
    out.entries.push(entry);
  }
  out.entries.sort((a, b) => b.lastSeenMs - a.lastSeenMs);
  return out;
}

function decodeEntry(raw: unknown): CachedPeer | null {
  if (typeof raw !== "object" || raw === null) return null;
  const e = raw as Record<string, unknown>;
  if (typeof e.id !== "string" || !/^[0-9a-f]{32}$/.test(e.id)) return null;
  if (typeof e.advert !== "string") return null;
  const advert = decodeBase64(e.advert);
  if (advert === null || advert.length < 40 || advert.length > 1024) return null;
  if (typeof e.last_seen !== "number" || !Number.isFinite(e.last_seen)) return null;
  if (!Array.isArray(e.endpoints)) return null;
  const endpoints: UdpEndpoint[] = [];
  for (const text of e.endpoints.slice(0, PEER_CACHE_MAX_ENDPOINTS)) {
    if (typeof text !== "string") return null;
    try {
      const ep = normalizeEndpoint(parseEndpoint(text));
      if (ep === null) return null;
      endpoints.push(ep);
    } catch {
      return null;
    }
  }
  return { nodeId: unhex(e.id), advert, endpoints, lastSeenMs: e.last_seen };
}

/** What {@linkcode PeerCacheFile.open} read. */
export interface LoadedPeerCache {
  /** The file's usable entries (empty when missing or unusable). */
  entries: CachedPeer[];
  /** Why the file was ignored or partly ignored, for a warning; null when all was well. */
  warning: string | null;
  /** Expired entries dropped. */
  expired: number;
}

/**
 * The cache file. {@linkcode open} reads it; {@linkcode save} replaces it atomically (temporary
 * file, fsync, rename, mode 0600). With `keepDescriptor` (the client is about to drop root), the
 * file is also opened for writing at once (created 0600 if missing), so that when the
 * unprivileged user may not create files in the directory, {@linkcode save} still rewrites the
 * cache in place through that descriptor (write from offset 0, truncate, fsync): a torn write
 * then at worst leaves a file that does not parse, which the next start ignores.
 */
export class PeerCacheFile {
  readonly path: string;
  #fd: Deno.FsFile | null;
  #renameFailed = false;

  private constructor(path: string, fd: Deno.FsFile | null) {
    this.path = path;
    this.#fd = fd;
  }

  /** Reads the cache at `path` (never throws for the file's content or absence). */
  static async open(
    path: string,
    options: { nowMs: number; keepDescriptor?: boolean },
  ): Promise<{ file: PeerCacheFile; loaded: LoadedPeerCache }> {
    const loaded = await readCache(path, options.nowMs);
    let fd: Deno.FsFile | null = null;
    if (options.keepDescriptor) {
      try {
        fd = await Deno.open(path, { read: true, write: true, create: true, mode: FILE_MODE });
      } catch (err) {
        loaded.warning ??= `cannot open for writing: ${describe(err)}`;
      }
    }
    return { file: new PeerCacheFile(path, fd), loaded };
  }

  /** Writes `entries`; throws on I/O errors (the caller logs and carries on). */
  async save(entries: readonly CachedPeer[], nowMs: number): Promise<void> {
    const data = new TextEncoder().encode(encodePeerCache(entries, nowMs));
    if (!this.#renameFailed) {
      try {
        await writeFileAtomic(this.path, data, FILE_MODE);
        // The descriptor now points at the replaced file: useless from here on.
        this.#fd?.close();
        this.#fd = null;
        return;
      } catch (err) {
        const denied = err instanceof Deno.errors.PermissionDenied ||
          err instanceof Deno.errors.NotCapable;
        if (!denied || this.#fd === null) throw err;
        this.#renameFailed = true;
      }
    }
    const fd = this.#fd!;
    await fd.seek(0, Deno.SeekMode.Start);
    for (let n = 0; n < data.length;) n += await fd.write(data.subarray(n));
    await fd.truncate(data.length);
    await fd.sync();
  }

  /** Closes the kept descriptor, if any. */
  close(): void {
    this.#fd?.close();
    this.#fd = null;
  }
}

async function readCache(path: string, nowMs: number): Promise<LoadedPeerCache> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) return { entries: [], warning: "not a regular file", expired: 0 };
    if (info.size > PEER_CACHE_MAX_FILE_LEN) {
      return { entries: [], warning: `larger than ${PEER_CACHE_MAX_FILE_LEN} bytes`, expired: 0 };
    }
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { entries: [], warning: null, expired: 0 };
    return { entries: [], warning: `cannot read it: ${describe(err)}`, expired: 0 };
  }
  // An empty file is what keepDescriptor leaves before the first save: an empty cache.
  if (text.trim() === "") return { entries: [], warning: null, expired: 0 };
  const decoded = decodePeerCache(text, nowMs);
  if (typeof decoded === "string") return { entries: [], warning: decoded, expired: 0 };
  return {
    entries: decoded.entries,
    warning: decoded.invalid > 0 ? `${decoded.invalid} malformed entries ignored` : null,
    expired: decoded.expired,
  };
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  return err instanceof Error ? err.message : String(err);
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
