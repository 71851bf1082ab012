import assert from "node:assert/strict";
import {
  decodeHello,
  decodeIntro,
  decodePeers,
  edgeMessageLength,
  encodeHello,
  encodeIntro,
  encodePeers,
  HELLO_TYPE,
  type PeerEntry,
  PEERS_MAX_ENTRIES,
  PEERS_MAX_LEN,
  PEERS_TYPE,
} from "./signal.ts";
import { ipPacketLength } from "./wireguard/peer.ts";

function entry(i: number, advertLen = 200, v6 = false): PeerEntry {
  return {
    nodeId: new Uint8Array(16).fill(i),
    endpoint: i % 3 === 0
      ? null
      : v6
      ? { hostname: "fd00::1", port: 1000 + i }
      : { hostname: "198.18.0.2", port: 1000 + i },
    advert: new Uint8Array(advertLen).fill(i + 1),
  };
}

Deno.test("encodeHello()/decodeHello() round-trip and reject every malformed variant", () => {
  const msg = {
    networkId: new Uint8Array(16).fill(1),
    nodeId: new Uint8Array(16).fill(2),
    advert: new Uint8Array(100).fill(3),
  };
  const bytes = encodeHello(msg);
  assert.equal(bytes[0], HELLO_TYPE);
  assert.deepEqual(decodeHello(bytes), msg);
  assert.equal(decodeHello(bytes.subarray(0, bytes.length - 1)), null);
  assert.equal(decodeHello(new Uint8Array([...bytes, 0])), null);
  for (const [at, value] of [[0, 0x17], [1, 2], [3, 1]] as const) {
    const bad = bytes.slice();
    bad[at] = value;
    assert.equal(decodeHello(bad), null, `byte ${at}`);
  }
  assert.throws(() => encodeHello({ ...msg, advert: new Uint8Array(39) }), RangeError);
});

Deno.test("encodePeers() packs entries into messages within the size and count limits", () => {
  const entries = Array.from({ length: 40 }, (_, i) => entry(i, 100 + i * 20, i % 2 === 0));
  const messages = encodePeers(entries);
  assert.ok(messages.length > 1);
  const decoded = messages.flatMap((m) => {
    assert.ok(m.length <= PEERS_MAX_LEN);
    assert.equal(m[0], PEERS_TYPE);
    const d = decodePeers(m);
    assert.ok(d);
    assert.ok(d.length <= PEERS_MAX_ENTRIES);
    return d;
  });
  assert.deepEqual(decoded, entries);
  // The largest advert still fits one message.
  assert.equal(encodePeers([entry(1, 1024, true)]).length, 1);
  assert.deepEqual(encodePeers([]), []);
});

Deno.test("edgeMessageLength() strips WireGuard padding and never accepts an IP packet", () => {
  const [msg] = encodePeers([entry(1)]);
  const padded = new Uint8Array(msg!.length + 13);
  padded.set(msg!);
  assert.equal(edgeMessageLength(padded), msg!.length);
  assert.deepEqual(decodePeers(padded.subarray(0, edgeMessageLength(padded))), [entry(1)]);
  // No IP packet is taken for signalling, and no signalling for an IP packet.
  assert.equal(ipPacketLength(msg!), -1);
  const ip6 = new Uint8Array(40);
  ip6[0] = 0x60;
  assert.equal(edgeMessageLength(ip6), -1);
  // `end` bounds both inside a longer, reused buffer.
  assert.equal(edgeMessageLength(padded, msg!.length), msg!.length);
  assert.equal(edgeMessageLength(padded, msg!.length - 1), -1);
  assert.equal(ipPacketLength(ip6, 40), 40);
  assert.equal(ipPacketLength(ip6, 39), -1);
});

Deno.test("decodePeers() rejects truncations, trailing bytes and bad counts without throwing", () => {
  const [msg] = encodePeers([entry(1), entry(2, 300, true), entry(3)]);
  for (let n = 0; n < msg!.length; n++) assert.equal(decodePeers(msg!.subarray(0, n)), null);
  const zero = msg!.slice();
  zero[6] = 0;
  assert.equal(decodePeers(zero), null);
  const more = msg!.slice();
  more[6] = 4;
  assert.equal(decodePeers(more), null);
  // Random bytes after a valid header: null or entries, never an exception.
  for (let i = 0; i < 2000; i++) {
    const junk = crypto.getRandomValues(new Uint8Array(8 + (i % 400)));
    junk.set([PEERS_TYPE, 1, 0, 0, (junk.length - 6) >> 8, (junk.length - 6) & 0xff]);
    decodePeers(junk);
  }
});

Deno.test("encodeIntro()/decodeIntro() round-trip; INTRO and PEERS are never confused", () => {
  const ids = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)];
  const msg = encodeIntro(ids);
  assert.deepEqual(decodeIntro(msg), ids);
  assert.equal(decodePeers(msg), null);
  const padded = new Uint8Array(msg.length + 7);
  padded.set(msg);
  assert.equal(edgeMessageLength(padded), msg.length);
  const [peers] = encodePeers([entry(1)]);
  assert.equal(decodeIntro(peers!), null);
  for (let n = 0; n < msg.length; n++) assert.equal(decodeIntro(msg.subarray(0, n)), null);
  assert.throws(() => encodeIntro([]), RangeError);
  assert.throws(() => encodeIntro([new Uint8Array(15)]), RangeError);
});
