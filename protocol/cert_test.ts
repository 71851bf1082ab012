import assert from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519";
import {
  armor,
  caIdOf,
  CERT_KIND_NODE,
  CERT_MAX_LEN,
  type CertFields,
  dearmor,
  decodeCertificate,
  decodeRevocationList,
  fingerprintOf,
  fromHex,
  selfSignCa,
  signCertificate,
  signRevocationList,
  toHex,
  verifyCaCertificate,
  verifyCertificate,
  verifyRevocationList,
} from "./cert.ts";

const CA_KEY = new Uint8Array(32).fill(7);
const CA_ID = caIdOf(ed25519.getPublicKey(CA_KEY));
const T0 = 1_700_000_000;

function nodeFields(over: Partial<CertFields> = {}): CertFields {
  return {
    kind: CERT_KIND_NODE,
    caId: CA_ID,
    publicKey: new Uint8Array(32).fill(0x42),
    notBefore: T0,
    notAfter: 1_731_536_000,
    name: "alice",
    addresses: [
      { address: fromHex("fd123456789a00000000000000000001")!, prefixLength: 48 },
      { address: new Uint8Array([100, 64, 0, 1]), prefixLength: 24 },
    ],
    groups: ["web"],
    ...over,
  };
}

// Pinned: Ed25519 signatures are deterministic, so the same inputs give the same bytes forever.
// A change here is a wire-format change and needs a new version byte.
const PINNED_CA = "4d48430101fe812c12f3ab4ce6ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b" +
  "92421eea691446d22c000000006553f100000000007735940007746573742d63610000e1d7656b7205675e92" +
  "93dfa78af0b2a7ca969ba30cda681c7df93ecfef299ceba360f4c2a75d08432871dbc8cb69a8939eeba76836" +
  "04fddbcb086b2052e21d05";
const PINNED_NODE = "4d48430102fe812c12f3ab4ce6424242424242424242424242424242424242424242424242" +
  "4242424242424242000000006553f100000000006735248005616c6963650206fd123456789a000000000000" +
  "0000000130046440000118010377656213fce2d024d2494f90f97283cc0fada120307df51b3f899d7d307485" +
  "4d611176ce5eb7863141d6131e6c39878eebc2a03f80745f7ffe9346dea5075abb69cd00";
const PINNED_FINGERPRINT = "8e2713936226cc2bda2f686c91ccfb92";
const PINNED_CRL = "4d485201fe812c12f3ab4ce60000018bcfe74a4000018e2713936226cc2bda2f686c91ccfb" +
  "925cc8bb6dd577c604181655ea9e7a756b9e85598e5725492f9835d31f851cbadca8ffe81a81cf102de118f0" +
  "d5cc6dca386bccdb26e6dab653c56a820113b42e0c";

Deno.test("cert: CA certificate, node certificate, fingerprint and revocation list bytes are pinned", () => {
  const ca = selfSignCa(CA_KEY, "test-ca", T0, 2_000_000_000);
  assert.equal(toHex(ca.bytes), PINNED_CA);
  const node = signCertificate(nodeFields(), CA_KEY);
  assert.equal(toHex(node.bytes), PINNED_NODE);
  assert.equal(node.bytes.length, 161);
  assert.equal(toHex(fingerprintOf(node)), PINNED_FINGERPRINT);
  const crl = signRevocationList(
    { caId: CA_ID, serial: 1_700_000_123_456, fingerprints: [fingerprintOf(node)] },
    CA_KEY,
  );
  assert.equal(toHex(crl.bytes), PINNED_CRL);
  // And they decode back to the same fields.
  const decoded = decodeCertificate(fromHex(PINNED_NODE)!).cert!;
  assert.equal(decoded.name, "alice");
  assert.deepEqual(decoded.groups, ["web"]);
  assert.equal(decoded.notAfter, 1_731_536_000);
  assert.deepEqual(decoded.addresses.map((a) => a.prefixLength), [48, 24]);
  assert.equal(decodeRevocationList(fromHex(PINNED_CRL)!).crl!.serial, 1_700_000_123_456);
});

Deno.test("cert: verification accepts the genuine chain and rejects every tampered byte", () => {
  const ca = selfSignCa(CA_KEY, "test-ca", T0, 2_000_000_000);
  const node = signCertificate(nodeFields(), CA_KEY);
  assert.equal(verifyCaCertificate(ca, T0 + 10), null);
  assert.equal(verifyCertificate(node, ca, T0 + 10), null);
  assert.equal(verifyCertificate(node, ca, T0 - 1), "not yet valid");
  assert.equal(verifyCertificate(node, ca, 1_731_536_001), "expired");
  assert.equal(verifyCertificate(ca, ca, T0 + 10), "not a node certificate");
  assert.equal(verifyCaCertificate(node, T0 + 10), "not a CA certificate");
  const other = selfSignCa(new Uint8Array(32).fill(8), "other", T0, 2_000_000_000);
  assert.equal(verifyCertificate(node, other, T0 + 10), "wrong CA");
  for (let i = 0; i < node.bytes.length; i++) {
    const bytes = node.bytes.slice();
    bytes[i]! ^= 0x01;
    const d = decodeCertificate(bytes);
    if (d.cert === undefined) continue; // no longer a certificate at all: also a rejection
    assert.notEqual(verifyCertificate(d.cert, ca, T0 + 10), null, `flipped byte ${i} accepted`);
  }
  // A node certificate signed by another key but claiming our CA id.
  const forged = decodeCertificate(node.bytes.slice()).cert!;
  const otherKey = new Uint8Array(32).fill(9);
  const body = node.bytes.subarray(0, node.bytes.length - 64);
  const resigned = new Uint8Array(node.bytes.length);
  resigned.set(body);
  resigned.set(ed25519.sign(body, otherKey), body.length);
  assert.equal(verifyCertificate(decodeCertificate(resigned).cert!, ca, T0 + 10), "bad signature");
  assert.ok(forged);
  // Revocation lists: genuine verifies; tampered, or from another CA, does not.
  const crl = signRevocationList({ caId: CA_ID, serial: 5, fingerprints: [] }, CA_KEY);
  assert.ok(verifyRevocationList(crl, ca));
  assert.ok(!verifyRevocationList(crl, other));
  const tampered = crl.bytes.slice();
  tampered[15]! ^= 1; // the serial
  assert.ok(!verifyRevocationList(decodeRevocationList(tampered).crl!, ca));
  // A certificate's signature never verifies as a revocation list (different magic).
  assert.equal(decodeRevocationList(node.bytes).error, "bad magic");
});

Deno.test("cert: decoders are total over truncations, extensions and random bytes", () => {
  const node = signCertificate(nodeFields({ groups: [] }), CA_KEY);
  const crl = signRevocationList(
    { caId: CA_ID, serial: 1, fingerprints: [new Uint8Array(16)] },
    CA_KEY,
  );
  for (let n = 0; n < node.bytes.length; n++) {
    assert.ok(decodeCertificate(node.bytes.subarray(0, n)).error, `truncated at ${n}`);
  }
  for (let n = 0; n < crl.bytes.length; n++) {
    assert.ok(decodeRevocationList(crl.bytes.subarray(0, n)).error, `crl truncated at ${n}`);
  }
  const longer = new Uint8Array(node.bytes.length + 1);
  longer.set(node.bytes);
  assert.equal(decodeCertificate(longer).error, "trailing bytes");
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (let i = 0; i < 20_000; i++) {
    const bytes = Uint8Array.from({ length: rand() * 3 }, rand);
    if (i % 2 === 0 && bytes.length > 4) bytes.set([0x4d, 0x48, i % 4 ? 0x43 : 0x52, 1]);
    decodeCertificate(bytes);
    decodeRevocationList(bytes);
  }
  // The longest certificate the format allows decodes and stays under CERT_MAX_LEN.
  const big = signCertificate(
    nodeFields({
      name: "n".repeat(63),
      addresses: Array.from(
        { length: 8 },
        () => ({ address: new Uint8Array(16), prefixLength: 128 }),
      ),
      groups: Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(32, "g")),
    }),
    CA_KEY,
  );
  assert.equal(big.bytes.length, CERT_MAX_LEN);
  assert.ok(decodeCertificate(big.bytes).cert);
  assert.throws(() => signCertificate(nodeFields({ name: "a b" }), CA_KEY), RangeError);
  assert.throws(() => signCertificate(nodeFields({ notAfter: T0 - 1 }), CA_KEY), RangeError);
  assert.throws(() => signCertificate(nodeFields({ caId: new Uint8Array(8) }), CA_KEY), RangeError);
});

Deno.test("cert: files are armoured, and dearmor names the wrong kind of file", () => {
  const node = signCertificate(nodeFields(), CA_KEY);
  const text = armor("CERTIFICATE", node.bytes);
  assert.match(
    text,
    /^-----BEGIN MESHUB CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END MESHUB CERTIFICATE-----\n$/,
  );
  const back = dearmor("CERTIFICATE", new TextEncoder().encode(text));
  assert.deepEqual(back, node.bytes);
  assert.deepEqual(dearmor("CERTIFICATE", node.bytes), node.bytes);
  assert.equal(
    dearmor("REVOCATION LIST", new TextEncoder().encode(text)),
    "holds a certificate, expected a revocation list",
  );
});
