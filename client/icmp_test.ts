import assert from "node:assert/strict";
import {
  buildEchoRequest6,
  buildTooBig,
  buildUnreachable,
  errorAllowed,
  IPV4_ERROR_MAX_LEN,
  IPV6_MIN_MTU,
  parseEchoReply6,
  TokenBucket,
} from "./icmp.ts";
import { parseIPv4, parseIPv6 } from "../protocol/ip_address.ts";

const ME6 = parseIPv6("fd00:aa::1")!;
const PEER6 = parseIPv6("fd00:aa::2")!;
const ME4 = parseIPv4("100.64.0.1")!;
const PEER4 = parseIPv4("100.64.0.2")!;

/**
 * Independent checksum check: the 16-bit one's complement sum over the words of `bytes`,
 * computed with plain 32-bit arithmetic and end-around carry done at the end, word by word via
 * DataView (the module under test folds as it goes and reads bytes).
 */
function sumIsAllOnes(bytes: Uint8Array): boolean {
  const padded = new Uint8Array(bytes.length + (bytes.length % 2));
  padded.set(bytes);
  const v = new DataView(padded.buffer);
  let total = 0;
  for (let i = 0; i < padded.length; i += 2) total += v.getUint16(i);
  let folded = total;
  while (folded >> 16) folded = (folded >> 16) + (folded & 0xffff);
  return folded === 0xffff;
}

/** The IPv6 pseudo-header (RFC 8200 §8.1) followed by the upper-layer message. */
function withPseudo6(p: Uint8Array): Uint8Array {
  const upper = p.subarray(40);
  const out = new Uint8Array(40 + upper.length);
  out.set(p.subarray(8, 40), 0);
  new DataView(out.buffer).setUint32(32, upper.length);
  out[39] = p[6]!;
  out.set(upper, 40);
  return out;
}

function udp6(src: Uint8Array, dst: Uint8Array, payloadLen: number): Uint8Array {
  const p = new Uint8Array(40 + 8 + payloadLen);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, 8 + payloadLen);
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  for (let i = 48; i < p.length; i++) p[i] = i & 0xff;
  return p;
}

function ipv4(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  payloadLen: number,
  df = false,
): Uint8Array {
  const p = new Uint8Array(20 + payloadLen);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  if (df) p[6] = 0x40;
  p[8] = 64;
  p[9] = proto;
  p.set(src, 12);
  p.set(dst, 16);
  return p;
}

Deno.test("buildUnreachable() answers an IPv6 packet with ICMPv6 type 1 code 3 from our address", () => {
  const invoking = udp6(PEER6, parseIPv6("fd00:aa::9")!, 100);
  // The packet came from the local TUN: its source is our host, the error goes back there.
  invoking.set(ME6, 8);
  const err = buildUnreachable(invoking, "address-unreachable", PEER6, null)!;
  assert.ok(err);
  assert.equal(err[0]! >> 4, 6);
  assert.equal(err[6], 58);
  assert.deepEqual(err.subarray(8, 24), PEER6, "source is the mesh's address");
  assert.deepEqual(err.subarray(24, 40), ME6, "destination is the invoking packet's source");
  assert.equal(err[40], 1);
  assert.equal(err[41], 3);
  assert.equal(new DataView(err.buffer).getUint16(4), err.length - 40, "payload length");
  assert.deepEqual(err.subarray(48), invoking, "the whole invoking packet is quoted");
  assert.ok(sumIsAllOnes(withPseudo6(err)), "ICMPv6 checksum");
  const noRoute = buildUnreachable(invoking, "no-route", PEER6, null)!;
  assert.equal(noRoute[41], 0);
  assert.ok(sumIsAllOnes(withPseudo6(noRoute)));
});

Deno.test("buildUnreachable() quotes at most what fits in the IPv6 minimum MTU; odd lengths check", () => {
  for (const len of [0, 1, 7, 1231, 1232, 1233, 9000]) {
    const invoking = udp6(ME6, PEER6, len);
    const err = buildUnreachable(invoking, "address-unreachable", PEER6, null)!;
    assert.ok(err.length <= IPV6_MIN_MTU, `len ${len}: ${err.length}`);
    assert.deepEqual(err.subarray(48), invoking.subarray(0, err.length - 48));
    assert.ok(sumIsAllOnes(withPseudo6(err)), `checksum for len ${len}`);
  }
});

Deno.test("buildUnreachable() answers IPv4 with ICMP type 3 code 1, both checksums valid", () => {
  for (const len of [8, 9, 100, 1400]) {
    const invoking = ipv4(ME4, PEER4, 17, len);
    const err = buildUnreachable(invoking, "address-unreachable", null, PEER4)!;
    assert.ok(err.length <= IPV4_ERROR_MAX_LEN);
    assert.equal(err[0], 0x45);
    assert.equal(err[9], 1);
    assert.equal(new DataView(err.buffer).getUint16(2), err.length);
    assert.deepEqual(err.subarray(12, 16), PEER4);
    assert.deepEqual(err.subarray(16, 20), ME4);
    assert.equal(err[20], 3);
    assert.equal(err[21], 1);
    assert.ok(sumIsAllOnes(err.subarray(0, 20)), "IPv4 header checksum");
    assert.ok(sumIsAllOnes(err.subarray(20)), "ICMP checksum");
    assert.deepEqual(err.subarray(28), invoking.subarray(0, err.length - 28));
  }
  assert.equal(
    buildUnreachable(ipv4(ME4, PEER4, 17, 8), "no-route", null, PEER4)![21],
    0,
  );
});

Deno.test("buildTooBig() carries the MTU: ICMPv6 type 2, and ICMP type 3 code 4 only with DF", () => {
  const big6 = udp6(ME6, PEER6, 1500);
  const ptb = buildTooBig(big6, 1420, PEER6, null)!;
  assert.equal(ptb[40], 2);
  assert.equal(ptb[41], 0);
  assert.equal(new DataView(ptb.buffer).getUint32(44), 1420);
  assert.ok(ptb.length <= IPV6_MIN_MTU);
  assert.ok(sumIsAllOnes(withPseudo6(ptb)));

  const df = ipv4(ME4, PEER4, 6, 1500, true);
  const fn = buildTooBig(df, 1420, null, PEER4)!;
  assert.equal(fn[20], 3);
  assert.equal(fn[21], 4);
  assert.equal(new DataView(fn.buffer).getUint16(26), 1420, "next-hop MTU");
  assert.ok(sumIsAllOnes(fn.subarray(0, 20)));
  assert.ok(sumIsAllOnes(fn.subarray(20)));
  assert.equal(buildTooBig(ipv4(ME4, PEER4, 6, 1500, false), 1420, null, PEER4), null);
});

Deno.test("errorAllowed() refuses errors about errors, multicast, unspecified and loopback (RFC 4443 §2.4)", () => {
  const echo = buildEchoRequest6(ME6, PEER6, 1, 1);
  assert.ok(errorAllowed(echo), "echo request may draw an error");
  const anError = buildUnreachable(udp6(PEER6, ME6, 10), "no-route", ME6, null)!;
  assert.equal(errorAllowed(anError), false, "no error about an ICMPv6 error");
  assert.equal(buildUnreachable(anError, "no-route", PEER6, null), null);
  const ptb = buildTooBig(udp6(PEER6, ME6, 1500), 1280, ME6, null)!;
  assert.equal(errorAllowed(ptb), false);

  const mcast = udp6(ME6, parseIPv6("ff02::1")!, 10);
  assert.equal(errorAllowed(mcast), false, "multicast destination");
  const unspec = udp6(new Uint8Array(16), PEER6, 10);
  assert.equal(errorAllowed(unspec), false, "unspecified source");
  assert.equal(errorAllowed(udp6(parseIPv6("ff05::2")!, PEER6, 10)), false, "multicast source");
  assert.equal(errorAllowed(udp6(parseIPv6("::1")!, PEER6, 10)), false, "loopback source");

  // A fragment header: the first fragment may draw an error, later ones not.
  const frag = (offset: number) => {
    const p = udp6(ME6, PEER6, 16);
    p[6] = 44;
    p[40] = 17;
    p[42] = (offset << 3) >> 8;
    p[43] = (offset << 3) & 0xff;
    return p;
  };
  assert.ok(errorAllowed(frag(0)));
  assert.equal(errorAllowed(frag(10)), false);

  assert.equal(errorAllowed(ipv4(ME4, parseIPv4("224.0.0.1")!, 17, 8)), false);
  assert.equal(errorAllowed(ipv4(ME4, parseIPv4("255.255.255.255")!, 17, 8)), false);
  assert.equal(errorAllowed(ipv4(new Uint8Array(4), PEER4, 17, 8)), false);
  const icmp4Err = ipv4(ME4, PEER4, 1, 8);
  icmp4Err[20] = 3;
  assert.equal(errorAllowed(icmp4Err), false, "no error about an ICMP error");
  const icmp4Echo = ipv4(ME4, PEER4, 1, 8);
  icmp4Echo[20] = 8;
  assert.ok(errorAllowed(icmp4Echo));
  const laterFragment = ipv4(ME4, PEER4, 17, 8);
  laterFragment[7] = 1;
  assert.equal(errorAllowed(laterFragment), false);
  assert.equal(errorAllowed(new Uint8Array([0x60, 1, 2])), false, "truncated");
  assert.equal(errorAllowed(new Uint8Array(0)), false, "empty");
});

Deno.test("buildEchoRequest6() has a valid checksum, and parseEchoReply6() matches only our replies", () => {
  const req = buildEchoRequest6(ME6, PEER6, 0x1234, 7);
  assert.ok(sumIsAllOnes(withPseudo6(req)));
  // The peer's kernel answers: swap addresses, type 129, fix the checksum.
  const reply = req.slice();
  reply.set(PEER6, 8);
  reply.set(ME6, 24);
  reply[40] = 129;
  const v = new DataView(reply.buffer);
  v.setUint16(42, 0);
  let sum = 0;
  const pseudo = withPseudo6(reply);
  const pv = new DataView(pseudo.buffer);
  for (let i = 0; i < pseudo.length; i += 2) sum += pv.getUint16(i);
  while (sum >> 16) sum = (sum >> 16) + (sum & 0xffff);
  v.setUint16(42, ~sum & 0xffff);
  assert.equal(parseEchoReply6(reply, ME6, 0x1234), 7);
  assert.equal(parseEchoReply6(reply, ME6, 0x1235), null, "other identifier");
  assert.equal(parseEchoReply6(reply, PEER6, 0x1234), null, "not to us");
  assert.equal(parseEchoReply6(req, ME6, 0x1234), null, "a request is no reply");
  const bad = reply.slice();
  bad[50]! ^= 1;
  assert.equal(parseEchoReply6(bad, ME6, 0x1234), null, "bad checksum");
});

Deno.test("TokenBucket allows a burst, then the rate", () => {
  const b = new TokenBucket(10, 10);
  let ok = 0;
  for (let i = 0; i < 50; i++) if (b.take(1000)) ok++;
  assert.equal(ok, 10);
  assert.equal(b.take(1050), false, "half a token after 50 ms");
  assert.equal(b.take(1100), true, "one token after 100 ms");
  ok = 0;
  for (let t = 1100; t <= 2100; t += 10) if (b.take(t)) ok++;
  assert.ok(ok >= 9 && ok <= 11, `about 10 in a second, got ${ok}`);
});
