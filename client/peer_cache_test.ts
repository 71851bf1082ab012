import assert from "node:assert/strict";
import {
  type CachedPeer,
  decodePeerCache,
  encodePeerCache,
  PEER_CACHE_MAX_AGE_MS,
  PEER_CACHE_MAX_ENDPOINTS,
  PeerCacheFile,
} from "./peer_cache.ts";

const NOW = 1_764_000_000_000;

function entry(i: number, ageMs = 1000): CachedPeer {
  return {
    nodeId: new Uint8Array(16).fill(i),
    advert: new Uint8Array(120).fill(i + 1),
    endpoints: [
      { hostname: "198.18.0.2", port: 40000 + i },
      { hostname: "fd00::5", port: 51820 },
    ],
    lastSeenMs: NOW - ageMs,
  };
}

Deno.test("encodePeerCache()/decodePeerCache() round-trip, newest first", () => {
  const entries = [entry(1, 5000), entry(2, 10), entry(3, 60_000)];
  const decoded = decodePeerCache(encodePeerCache(entries, NOW), NOW);
  assert.ok(typeof decoded !== "string");
  assert.deepEqual(decoded.entries, [entries[1], entries[0], entries[2]]);
  assert.equal(decoded.expired, 0);
  assert.equal(decoded.invalid, 0);
});

Deno.test("decodePeerCache() drops entries older than 7 days or from the future", () => {
  const entries = [
    entry(1, PEER_CACHE_MAX_AGE_MS + 1),
    entry(2, PEER_CACHE_MAX_AGE_MS - 1000),
    entry(3, -2 * 24 * 3600 * 1000),
  ];
  const decoded = decodePeerCache(encodePeerCache(entries, NOW), NOW);
  assert.ok(typeof decoded !== "string");
  assert.deepEqual(decoded.entries.map((e) => e.nodeId[0]), [2]);
  assert.equal(decoded.expired, 2);
});

Deno.test("decodePeerCache() ignores a corrupt file or malformed entries, never throws", () => {
  const text = encodePeerCache([entry(1), entry(2)], NOW);
  for (let n = 0; n < text.length - 2; n += 7) {
    const r = decodePeerCache(text.slice(0, n), NOW);
    assert.equal(typeof r, "string", `a torn write of ${n} bytes must not parse`);
  }
  assert.equal(decodePeerCache("[]", NOW), "not a peer cache");
  assert.equal(
    decodePeerCache('{"meshub_peer_cache":2,"peers":[]}', NOW),
    "unknown format version",
  );
  const doc = JSON.parse(text);
  doc.peers[0].endpoints = ["example.org:1"];
  doc.peers.push({ id: "zz" }, 5, null, { ...doc.peers[1] });
  const r = decodePeerCache(JSON.stringify(doc), NOW);
  assert.ok(typeof r !== "string");
  assert.deepEqual(r.entries.map((e) => e.nodeId[0]), [2]);
  assert.equal(r.invalid, 5);
});

Deno.test("encodePeerCache() keeps at most 4 endpoints per entry", () => {
  const many = {
    ...entry(1),
    endpoints: Array.from({ length: 9 }, (_, i) => ({ hostname: "198.18.0.9", port: 1 + i })),
  };
  const r = decodePeerCache(encodePeerCache([many], NOW), NOW);
  assert.ok(typeof r !== "string");
  assert.equal(r.entries[0]!.endpoints.length, PEER_CACHE_MAX_ENDPOINTS);
});

Deno.test("PeerCacheFile: missing is empty, saves are atomic and 0600, corrupt is a warning", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/node.key.peers`;
    const { file, loaded } = await PeerCacheFile.open(path, { nowMs: Date.now() });
    assert.deepEqual(loaded, { entries: [], warning: null, expired: 0 });
    const entries = [{ ...entry(1), lastSeenMs: Date.now() }];
    await file.save(entries, Date.now());
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const again = await PeerCacheFile.open(path, { nowMs: Date.now() });
    assert.deepEqual(again.loaded.entries, entries);
    // No temporary files left behind.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["node.key.peers"]);
    await Deno.writeTextFile(path, '{"meshub_peer_cache":1,"peers":[{"id":');
    const corrupt = await PeerCacheFile.open(path, { nowMs: Date.now() });
    assert.deepEqual(corrupt.loaded.entries, []);
    assert.match(corrupt.loaded.warning!, /not valid JSON/);
    file.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PeerCacheFile: without the right to create files there, it rewrites in place", async () => {
  // A process that may write the cache file but nothing else in its directory (as a client that
  // dropped root into a root-owned directory): the descriptor kept from open() carries the saves.
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/node.key.peers`;
    const script = `
      import { PeerCacheFile } from ${
      JSON.stringify(new URL("./peer_cache.ts", import.meta.url).href)
    };
      const { file } = await PeerCacheFile.open(${
      JSON.stringify(path)
    }, { nowMs: Date.now(), keepDescriptor: true });
      for (let i = 1; i <= 3; i++) {
        const e = { nodeId: new Uint8Array(16).fill(i), advert: new Uint8Array(60 * i).fill(i),
          endpoints: [{ hostname: "198.18.0.2", port: i }], lastSeenMs: Date.now() };
        await file.save(i === 2 ? [e, { ...e, nodeId: new Uint8Array(16).fill(9) }] : [e], Date.now());
      }
      file.close();
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", `--allow-read`, `--allow-write=${path}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const { loaded } = await PeerCacheFile.open(path, { nowMs: Date.now() });
    assert.equal(loaded.warning, null);
    // The last save, shorter than the one before: truncated, not a mix of both.
    assert.deepEqual(loaded.entries.map((e) => e.nodeId[0]), [3]);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
