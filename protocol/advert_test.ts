import { xchacha20poly1305 } from "@noble/ciphers/chacha";
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  type Advert,
  decodeAdvert,
  encodeAdvert,
  nextAdvertTimestamp,
  openAdvert,
  sealAdvert,
  SEALED_ADVERT_MAX_LEN,
} from "./advert.ts";
import { ADVERT_MIN_LEN } from "./hub_messages.ts";
import { parseIPv6 } from "./ip_address.ts";
import { deriveNetworkKeys, nodeAddress, nodeId } from "./keys.ts";

const PSK = Uint8Array.from({ length: 32 }, (_, i) => i);
const KEYS = deriveNetworkKeys(PSK);
const PUBLIC_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
const NODE_ID = nodeId(PSK, PUBLIC_KEY);

const ADVERT: Advert = {
  timestampMs: 1_700_000_000_123,
  publicKey: PUBLIC_KEY,
  name: "node-1.lab_a",
  ipv6: { address: nodeAddress(KEYS.ulaPrefix, PUBLIC_KEY), prefixLen: 48 },
  ipv4: { address: new Uint8Array([10, 99, 0, 1]), prefixLen: 24 },
  udpPort: 51820,
  localEndpoints: [
    { hostname: "198.19.1.10", port: 51820 },
    { hostname: "fd00:1::10", port: 51820 },
  ],
  extensions: [],
};

Deno.test("sealAdvert() round-trips through openAdvert()", () => {
  const sealed = sealAdvert(KEYS, KEYS.networkId, ADVERT);
  ok(sealed.length >= ADVERT_MIN_LEN && sealed.length <= SEALED_ADVERT_MAX_LEN);
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, sealed), { advert: ADVERT });
});

Deno.test("sealAdvert() uses a fresh nonce each time", () => {
  const a = sealAdvert(KEYS, KEYS.networkId, ADVERT);
  const b = sealAdvert(KEYS, KEYS.networkId, ADVERT);
  ok(a.subarray(0, 24).some((x, i) => x !== b[i]));
});

Deno.test("encodeAdvert() round-trips minimal and maximal adverts", () => {
  const minimal: Advert = {
    timestampMs: 0,
    publicKey: PUBLIC_KEY,
    name: "",
    ipv6: { address: parseIPv6("fd00::1")!, prefixLen: 128 },
    ipv4: null,
    udpPort: 1,
    localEndpoints: [],
    extensions: [],
  };
  deepStrictEqual(decodeAdvert(encodeAdvert(minimal)), { advert: minimal });
  const maximal: Advert = {
    ...ADVERT,
    timestampMs: Number.MAX_SAFE_INTEGER,
    name: "n".repeat(63),
    localEndpoints: Array.from({ length: 8 }, (_, i) => ({ hostname: `fd00::${i + 1}`, port: 9 })),
    extensions: [{ type: 0x01, value: new Uint8Array(255) }, {
      type: 0x7f,
      value: new Uint8Array(),
    }],
  };
  deepStrictEqual(decodeAdvert(encodeAdvert(maximal)), { advert: maximal });
  const sealed = sealAdvert(KEYS, KEYS.networkId, maximal);
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, sealed), { advert: maximal });
});

Deno.test("openAdvert() rejects any flipped bit", () => {
  const sealed = sealAdvert(KEYS, KEYS.networkId, ADVERT);
  for (let bit = 0; bit < sealed.length * 8; bit++) {
    const copy = sealed.slice();
    copy[bit >> 3]! ^= 1 << (bit & 7);
    deepStrictEqual(
      openAdvert(KEYS, KEYS.networkId, NODE_ID, copy),
      { error: "authentication failed" },
      `bit ${bit}`,
    );
  }
});

Deno.test("openAdvert() rejects another network's key, network id or node id", () => {
  const sealed = sealAdvert(KEYS, KEYS.networkId, ADVERT);
  const other = deriveNetworkKeys(new Uint8Array(32).fill(7));
  const fail = { error: "authentication failed" };
  deepStrictEqual(openAdvert(other, KEYS.networkId, NODE_ID, sealed), fail);
  deepStrictEqual(openAdvert(KEYS, other.networkId, NODE_ID, sealed), fail);
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, new Uint8Array(16), sealed), fail);
});

Deno.test("openAdvert() rejects an advert whose public key does not match its node id", () => {
  // A member seals an advert carrying someone else's public key under its own node id.
  const otherKey = new Uint8Array(32).fill(9);
  const plaintext = encodeAdvert({ ...ADVERT, publicKey: otherKey });
  const forged = sealRaw(plaintext, NODE_ID);
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, forged), {
    error: "node id mismatch",
  });
});

Deno.test("openAdvert() rejects bad sizes and malformed plaintext", () => {
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, new Uint8Array(39)), {
    error: "bad sealed length",
  });
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, new Uint8Array(1025)), {
    error: "bad sealed length",
  });
  const good = encodeAdvert(ADVERT);
  const withTrailing = new Uint8Array(good.length + 1);
  withTrailing.set(good);
  deepStrictEqual(openAdvert(KEYS, KEYS.networkId, NODE_ID, sealRaw(withTrailing, NODE_ID)), {
    error: "bad extension",
  });
});

Deno.test("decodeAdvert() keeps unknown optional TLVs and rejects unknown critical ones", () => {
  const good = encodeAdvert(ADVERT);
  const withTlv = (type: number) => {
    const out = new Uint8Array(good.length + 4);
    out.set(good);
    out.set([type, 2, 0xaa, 0xbb], good.length);
    return out;
  };
  deepStrictEqual(decodeAdvert(withTlv(0x05)).advert?.extensions, [
    { type: 0x05, value: new Uint8Array([0xaa, 0xbb]) },
  ]);
  deepStrictEqual(decodeAdvert(withTlv(0x85)), { error: "unknown critical extension" });
});

Deno.test("decodeAdvert() rejects every proper prefix and checks each field", () => {
  const good = encodeAdvert(ADVERT);
  for (let len = 0; len < good.length; len++) {
    ok(decodeAdvert(good.subarray(0, len)).error !== undefined, `cut at ${len}`);
  }
  const patched = (at: number, value: number) => {
    const copy = good.slice();
    copy[at] = value;
    return decodeAdvert(copy).error;
  };
  const nameAt = 1 + 8 + 32;
  const ipv6PrefixAt = nameAt + 1 + ADVERT.name.length + 16;
  equal(patched(0, 2), "unsupported version");
  equal(patched(1, 0x00_20), "timestamp out of range");
  equal(patched(nameAt, 64), "bad name");
  equal(patched(nameAt + 1, 0x20), "bad name");
  equal(patched(ipv6PrefixAt, 129), "bad prefix length");
  equal(patched(ipv6PrefixAt + 1, 2), "bad ipv4 flag");
  equal(patched(ipv6PrefixAt + 6, 33), "bad prefix length");
  equal(patched(ipv6PrefixAt + 9, 9), "too many local endpoints");
  equal(patched(ipv6PrefixAt + 10, 5), "bad endpoint");
});

Deno.test("decodeAdvert() never throws on random bytes", () => {
  const good = encodeAdvert(ADVERT);
  for (let i = 0; i < 10_000; i++) {
    const buf = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 200)));
    if (i % 2 === 0) {
      buf.set(good.subarray(0, Math.min(buf.length, Math.floor(Math.random() * 90))));
    }
    const result = decodeAdvert(buf);
    if (result.advert !== undefined) deepStrictEqual(encodeAdvert(result.advert), buf);
  }
});

Deno.test("encodeAdvert() throws RangeError on invalid fields", () => {
  throws(() => encodeAdvert({ ...ADVERT, name: "has space" }), RangeError);
  throws(() => encodeAdvert({ ...ADVERT, timestampMs: -1 }), RangeError);
  throws(() => encodeAdvert({ ...ADVERT, udpPort: 0 }), RangeError);
  throws(() => encodeAdvert({ ...ADVERT, publicKey: new Uint8Array(31) }), RangeError);
  throws(
    () => encodeAdvert({ ...ADVERT, ipv4: { address: new Uint8Array(4), prefixLen: 33 } }),
    RangeError,
  );
  throws(
    () =>
      encodeAdvert({
        ...ADVERT,
        localEndpoints: Array.from({ length: 9 }, () => ({ hostname: "1.2.3.4", port: 1 })),
      }),
    RangeError,
  );
  throws(
    () =>
      encodeAdvert({
        ...ADVERT,
        extensions: Array.from({ length: 4 }, () => ({ type: 1, value: new Uint8Array(255) })),
      }),
    RangeError,
  );
});

Deno.test("nextAdvertTimestamp() always increases", () => {
  equal(nextAdvertTimestamp(1000, 0), 1000);
  equal(nextAdvertTimestamp(1000, 1000), 1001);
  equal(nextAdvertTimestamp(500, 1000), 1001, "clock stepped back");
});

/** Seals arbitrary plaintext as sealAdvert() does (what a misbehaving member could send). */
function sealRaw(plaintext: Uint8Array, id: Uint8Array): Uint8Array {
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const aad = new Uint8Array([
    ...new TextEncoder().encode("meshub-advert-v1"),
    ...KEYS.networkId,
    ...id,
  ]);
  const ct = xchacha20poly1305(KEYS.advertKey, nonce, aad).encrypt(plaintext);
  return new Uint8Array([...nonce, ...ct]);
}
