import assert from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519";
import {
  caIdOf,
  CERT_KIND_NODE,
  type Certificate,
  decodeRevocationList,
  fingerprintOf,
  selfSignCa,
  signCertificate,
  signRevocationList,
} from "../protocol/cert.ts";
import { checkCaMode, EXT_CERTIFICATE, fromTlvs, toTlvs } from "./ca.ts";
import { UserError } from "../util/cli_error.ts";

const NOW_MS = Date.UTC(2030, 5, 1);
const NOW_S = NOW_MS / 1000;
const CA_KEY = new Uint8Array(32).fill(3);
const CA = selfSignCa(CA_KEY, "ca", NOW_S - 86400, NOW_S + 86400 * 365);
const KEY = new Uint8Array(32).fill(0x11);
const ADDRESS = Uint8Array.from([0xfd, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function node(
  over: { notBefore?: number; notAfter?: number; key?: Uint8Array } = {},
  caKey = CA_KEY,
) {
  return signCertificate({
    kind: CERT_KIND_NODE,
    caId: caIdOf(ed25519.getPublicKey(caKey)),
    publicKey: over.key ?? KEY,
    notBefore: over.notBefore ?? NOW_S - 60,
    notAfter: over.notAfter ?? NOW_S + 3600,
    name: "alice",
    addresses: [{ address: ADDRESS, prefixLength: 48 }],
    groups: [],
  }, caKey);
}

function start(own: Certificate, ca = CA, revoked: Uint8Array[] = []) {
  return checkCaMode({ ca, own, crl: null, revoked }, KEY, null, () => NOW_MS);
}

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof UserError && re.test(err.message));
}

Deno.test("checkCaMode() accepts a good certificate and names each start-up mistake in one line", () => {
  const mode = start(node());
  assert.equal(mode.own.name, "alice");
  assert.equal(mode.networkSecret.length, 32);
  // Two locks: a PSK changes the network secret and is WireGuard's preshared key.
  const psk = new Uint8Array(32).fill(9);
  const locked = checkCaMode(
    { ca: CA, own: node(), crl: null, revoked: [] },
    KEY,
    psk,
    () => NOW_MS,
  );
  assert.notDeepEqual(locked.networkSecret, mode.networkSecret);
  assert.deepEqual(locked.wireGuardPsk, psk);

  const otherCaKey = new Uint8Array(32).fill(4);
  rejects(
    () => start(node({}, otherCaKey)),
    /^node\.certificate: issued by another CA \(CA id [0-9a-f]{16}, but ca\.certificate is CA id/,
  );
  rejects(
    () => start(node({ notAfter: NOW_S - 10, notBefore: NOW_S - 100 })),
    /^node\.certificate: expired on 2030-05-31T23:59:50Z/,
  );
  rejects(
    () => start(node({ notBefore: NOW_S + 7200, notAfter: NOW_S + 9000 })),
    /not valid yet: .*this host's clock says 2030-06-01T00:00:00Z; check the clock/,
  );
  // A few minutes of clock skew are tolerated.
  assert.ok(start(node({ notBefore: NOW_S + 60 })));
  rejects(
    () => start(node({ key: new Uint8Array(32).fill(0x22) })),
    /^node\.certificate: issued for another key .* this node's key in node\.state_file is/,
  );
  rejects(() => start(CA), /^node\.certificate: is a CA certificate/);
  rejects(() => start(node(), node() as Certificate), /^ca\.certificate: is a node certificate/);
  rejects(() => start(node(), selfSignCa(CA_KEY, "ca", NOW_S - 100, NOW_S - 10)), /the CA expired/);
  rejects(
    () => start(node(), CA, [fingerprintOf(node())]),
    /^node\.certificate: revoked \(fingerprint/,
  );
  const foreignCrl = signRevocationList({
    caId: caIdOf(ed25519.getPublicKey(otherCaKey)),
    serial: 1,
    fingerprints: [],
  }, otherCaKey);
  rejects(
    () =>
      checkCaMode({ ca: CA, own: node(), crl: foreignCrl, revoked: [] }, KEY, null, () => NOW_MS),
    /^ca\.revocation_list: not signed by this CA/,
  );
});

Deno.test("CaPolicy keeps the newest CA-signed revocation list only, and TLVs carry long certificates", () => {
  const mode = start(node());
  const older = signRevocationList({ caId: CA.caId, serial: 10, fingerprints: [] }, CA_KEY);
  const newer = signRevocationList({
    caId: CA.caId,
    serial: 20,
    fingerprints: [new Uint8Array(16)],
  }, CA_KEY);
  assert.ok(mode.policy.offerRevocationList(older));
  assert.ok(mode.policy.offerRevocationList(newer));
  assert.ok(!mode.policy.offerRevocationList(older), "rolled back to an older list");
  // A list with a higher serial and our CA id, but signed by another key, is refused.
  const otherKey = new Uint8Array(32).fill(5);
  const other = signRevocationList(
    { caId: caIdOf(ed25519.getPublicKey(otherKey)), serial: 30, fingerprints: [] },
    otherKey,
  ).bytes;
  other.set(CA.caId, 4);
  assert.ok(!mode.policy.offerRevocationList(decodeRevocationList(other).crl!));
  assert.equal(mode.policy.revocationList?.serial, 20);
  const long = new Uint8Array(600).map((_, i) => i);
  const tlvs = toTlvs(EXT_CERTIFICATE, long);
  assert.equal(tlvs.length, 3);
  assert.deepEqual(
    fromTlvs(EXT_CERTIFICATE, [{ type: 9, value: new Uint8Array(3) }, ...tlvs]),
    long,
  );
  assert.equal(fromTlvs(EXT_CERTIFICATE, []), null);
});
