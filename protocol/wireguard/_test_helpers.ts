// Shared helpers of the protocol/wireguard unit tests (not exported by mod.ts).
import assert from "node:assert/strict";
import { WgDevice, type WgDeviceOptions, type WgReceiveResult } from "./device.ts";
import type { WgPeer } from "./peer.ts";
import { blake2s } from "@noble/hashes/blake2s";

/** Hex to bytes. */
export function h(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Bytes to hex. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Deterministic randomBytes: BLAKE2s in counter mode over a seed string. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  const seedBytes = new TextEncoder().encode(seed);
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = blake2s(seedBytes, { key: u32(counter++), dkLen: 32 });
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

function u32(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/** A minimal IPv6 packet of `payloadLen` zero payload bytes (next header 59, "no next"). */
export function ip6(payloadLen: number, fill = 0): Uint8Array {
  const p = new Uint8Array(40 + payloadLen).fill(fill, 40);
  p[0] = 0x60;
  p[4] = payloadLen >> 8;
  p[5] = payloadLen & 0xff;
  p[6] = 59;
  p[7] = 64;
  return p;
}

/** Two devices that know each other. */
export interface Pair {
  a: WgDevice;
  b: WgDevice;
  /** a's view of b. */
  ab: WgPeer;
  /** b's view of a. */
  ba: WgPeer;
}

/** Sources used as "addresses" of a and b. */
export const SRC_A: Uint8Array = Uint8Array.of(198, 18, 0, 1, 0xc3, 0x50);
export const SRC_B: Uint8Array = Uint8Array.of(198, 18, 0, 2, 0xc3, 0x50);

/** Builds two devices with deterministic randomness and the given options. */
export function pair(
  opts: Partial<Omit<WgDeviceOptions, "privateKey">> = {},
  pskA?: Uint8Array,
  pskB?: Uint8Array,
): Pair {
  const ra = seededRandom("a");
  const rb = seededRandom("b");
  const a = new WgDevice({ randomBytes: ra, ...opts, privateKey: keyFrom(ra) });
  const b = new WgDevice({ randomBytes: rb, ...opts, privateKey: keyFrom(rb) });
  const ab = a.addPeer(b.publicKey, pskA);
  const ba = b.addPeer(a.publicKey, pskB ?? pskA);
  return { a, b, ab, ba };
}

function keyFrom(r: (n: number) => Uint8Array): Uint8Array {
  const k = r(32);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/** Asserts a result's kind and narrows it. */
export function expectKind<K extends WgReceiveResult["kind"]>(
  r: WgReceiveResult,
  kind: K,
): Extract<WgReceiveResult, { kind: K }> {
  if (r.kind !== kind) throw new Error(`expected ${kind}, got ${JSON.stringify(r)}`);
  return r as Extract<WgReceiveResult, { kind: K }>;
}

/**
 * Completes a handshake initiated by a at time `t`: returns the kinds of what b made of a's
 * first datagrams (data queued on a is delivered to b). Kinds, not results: receive() reuses its
 * transport result objects, so only the last one would still be current.
 */
export function handshake(p: Pair, t: number): { delivered: WgReceiveResult["kind"][] } {
  const init = p.ab.createInitiation(t);
  const reply = expectKind(p.b.receive(init, SRC_A, t), "reply");
  const est = expectKind(p.a.receive(reply.packet, SRC_B, t), "established");
  return { delivered: est.packets.map((pk) => p.b.receive(pk, SRC_A, t).kind) };
}

/** Deep strict equality (node:assert), named as in @std/assert. */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  assert.deepStrictEqual(actual, expected, msg);
}
