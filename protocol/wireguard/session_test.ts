import { paddedLength, sealedLength, Session } from "./session.ts";
import { aeadOpen, hash } from "./noise.ts";
import { assertEquals, hex, ip6 } from "./_test_helpers.ts";

const te = new TextEncoder();
const K1 = hash(te.encode("k1"));
const K2 = hash(te.encode("k2"));

function sessions() {
  // A session owns (and zeroes) the keys it is given: hand it copies.
  const a = new Session({ sendKey: K1.slice(), receiveKey: K2.slice() }, 1, 2, true, 0);
  const b = new Session({ sendKey: K2.slice(), receiveKey: K1.slice() }, 2, 1, false, 0);
  return { a, b };
}

Deno.test("Session.seal() pads to 16, writes the header, and opens on the other side", () => {
  const { a, b } = sessions();
  const p = ip6(5, 7); // 45 bytes → 48
  const dg = a.seal(p);
  assertEquals(dg.length, 16 + 48 + 16);
  assertEquals(hex(dg.subarray(0, 16)), "04000000" + "02000000" + "0000000000000000");
  const plain = b.open(dg)!;
  assertEquals(plain.length, 48);
  assertEquals(plain.subarray(0, 45), p);
  assertEquals(plain.subarray(45), new Uint8Array(3));
  assertEquals(Object.getPrototypeOf(plain), Uint8Array.prototype); // not a node Buffer
  assertEquals(a.sendCounter, 1);
  assertEquals(a.seal(p).subarray(8, 16), Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0));
});

Deno.test("Session transport AEAD (node:crypto) equals the handshake AEAD (noble)", () => {
  const { a } = sessions();
  a.sendCounter = 0x1_0000_0005;
  const p = ip6(12);
  const dg = a.seal(p);
  const viaNoble = aeadOpen(K1, 0x1_0000_0005, dg.subarray(16), new Uint8Array(0))!;
  assertEquals(viaNoble.subarray(0, p.length), p);
});

Deno.test("Session keepalive is 32 bytes; tampering or the wrong key fails to open", () => {
  const { a, b } = sessions();
  const ka = a.seal(new Uint8Array(0));
  assertEquals(ka.length, 32);
  assertEquals(b.open(ka)!.length, 0);
  const bad = a.seal(ip6(1));
  bad[20]! ^= 1;
  assertEquals(b.open(bad), null);
  assertEquals(a.open(a.seal(ip6(1))), null); // a's receive key is not its send key
  assertEquals(b.open(new Uint8Array(31)), null);
});

Deno.test("Session.sealInto() pads in place behind the packet, a copy where it cannot, same datagram", () => {
  const p = ip6(5, 7); // 45 bytes → 48
  const frame = new Uint8Array(300).fill(0xab);
  const cases = [
    { name: "room behind", plaintext: frame.subarray(100, 145) },
    { name: "at the buffer's end", plaintext: frame.subarray(255, 300) },
    { name: "exact multiple", plaintext: frame.subarray(0, 48) },
  ];
  for (const { name, plaintext } of cases) {
    plaintext.set(p.subarray(0, Math.min(p.length, plaintext.length)));
    const before = frame.slice();
    const one = sessions();
    const two = sessions();
    const out = new Uint8Array(200);
    const len = one.a.sealInto(plaintext, out);
    assertEquals(out.subarray(0, len), two.a.seal(plaintext.slice()), name);
    assertEquals(frame, before, `${name}: the bytes behind the packet are put back`);
    assertEquals(one.b.open(out.subarray(0, len))!.subarray(0, plaintext.length), plaintext);
  }
  // Plaintext and datagram in one buffer: never zero what may be the output.
  const shared = new Uint8Array(400).fill(0xcd);
  shared.set(p, 0);
  const want = sessions().a.seal(p);
  assertEquals(sessions().a.sealInto(shared.subarray(0, 45), shared.subarray(100)), want.length);
  assertEquals(shared.subarray(100, 100 + want.length), want);
  assertEquals(shared.subarray(45, 100), new Uint8Array(55).fill(0xcd));
});

Deno.test("Session.sealInto() writes the same datagram as seal() into a larger buffer and returns its length", () => {
  const one = sessions();
  const two = sessions();
  const p = ip6(5, 7); // 45 bytes → 48
  const out = new Uint8Array(200).fill(0xee);
  assertEquals(sealedLength(p.length), 80);
  assertEquals(one.a.sealInto(p, out.subarray(10)), 80);
  assertEquals(out.subarray(10, 90), two.a.seal(p));
  assertEquals(out[9], 0xee);
  assertEquals(out[90], 0xee);
  assertEquals(one.b.open(out.subarray(10, 90))!.subarray(0, 45), p);
  assertEquals(sealedLength(0), 32);
  let threw = false;
  try {
    one.a.sealInto(p, new Uint8Array(79));
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assertEquals(threw, true);
});

Deno.test("Session.openInto() decrypts into the reused plaintext buffer without a view", () => {
  const { a, b } = sessions();
  const p = ip6(5, 7); // 45 bytes → 48
  assertEquals(b.openInto(a.seal(p)), 48);
  const buffer = b.plaintext;
  assertEquals(buffer.subarray(0, 45), p);
  assertEquals(b.openInto(a.seal(new Uint8Array(0))), 0);
  assertEquals(b.plaintext, buffer, "the same buffer serves the next packet");
  const bad = a.seal(p);
  bad[bad.length - 1]! ^= 1;
  assertEquals(b.openInto(bad), -1);
  assertEquals(b.openInto(new Uint8Array(31)), -1);
});

Deno.test("paddedLength() pads to 16 but never past the MTU, and never shortens", () => {
  assertEquals(paddedLength(0), 0);
  assertEquals(paddedLength(45), 48);
  assertEquals(paddedLength(1420), 1424);
  assertEquals(paddedLength(1420, 1420), 1420);
  assertEquals(paddedLength(1418, 1420), 1420);
  assertEquals(paddedLength(1404, 1420), 1408);
  assertEquals(paddedLength(1280, 1280), 1280);
  assertEquals(paddedLength(1500, 1420), 1500);
  assertEquals(sealedLength(1420, 1420), 16 + 1420 + 16);
});

Deno.test("Session with an MTU: a full-size packet is sealed unpadded and opens whole", () => {
  const a = new Session({ sendKey: K1.slice(), receiveKey: K2.slice() }, 1, 2, true, 0, {
    mtu: 1420,
  });
  const b = new Session({ sendKey: K2.slice(), receiveKey: K1.slice() }, 2, 1, false, 0);
  const full = crypto.getRandomValues(new Uint8Array(1420));
  const dg = a.seal(full);
  assertEquals(dg.length, 16 + 1420 + 16);
  assertEquals(b.open(dg), full);
  // Below the MTU the usual padding to 16 applies, and in place behind the packet too.
  const frame = new Uint8Array(1500).fill(0xee);
  frame.set(full.subarray(0, 1403));
  const out = new Uint8Array(1500);
  assertEquals(a.sealInto(frame.subarray(0, 1403), out), 16 + 1408 + 16);
  assertEquals(b.open(out.subarray(0, 1440))!.subarray(0, 1403), full.subarray(0, 1403));
  assertEquals(frame.subarray(1403, 1408), new Uint8Array(5).fill(0xee));
});
