import { deepStrictEqual, equal, notDeepStrictEqual, throws } from "node:assert/strict";
import { createHash, createHmac, hkdfSync } from "node:crypto";
import { formatIPv6 } from "./ip_address.ts";
import {
  advertKey,
  deriveNetworkKeys,
  networkId,
  nodeAddress,
  nodeId,
  nodeIdFromKey,
  nodeIdKey,
  ulaPrefix,
} from "./keys.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const PSK = Uint8Array.from({ length: 32 }, (_, i) => i);
const PUBLIC_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);

Deno.test("key derivations are pinned", () => {
  equal(hex(networkId(PSK)), "f6d4650e62bfed79046a9ce8b74b00a5");
  equal(hex(advertKey(PSK)), "8237444ca7c4fe7ce2ba8c193981e7a510261194191aefef5963fa9317ffec7e");
  equal(hex(nodeId(PSK, PUBLIC_KEY)), "826e49a107cbdd46da5691f1113b0c8f");
  equal(hex(ulaPrefix(PSK)), "fd9aff39dfd6");
  equal(formatIPv6(nodeAddress(ulaPrefix(PSK), PUBLIC_KEY)), "fd9a:ff39:dfd6:0:e9:8867:7eec:f94c");
});

Deno.test("derived values are distinct and depend on the secret", () => {
  const other = PSK.slice();
  other[0] = 1;
  notDeepStrictEqual(networkId(PSK), networkId(other));
  notDeepStrictEqual(advertKey(PSK), advertKey(other));
  notDeepStrictEqual(nodeId(PSK, PUBLIC_KEY), nodeId(other, PUBLIC_KEY));
  notDeepStrictEqual(advertKey(PSK), nodeIdKey(PSK));
  notDeepStrictEqual(networkId(PSK), advertKey(PSK).subarray(0, 16));
});

Deno.test("nodeId() has 16 bytes and matches nodeIdFromKey()", () => {
  const id = nodeId(PSK, PUBLIC_KEY);
  equal(id.length, 16);
  equal(id.buffer.byteLength, 16);
  deepStrictEqual(nodeIdFromKey(nodeIdKey(PSK), PUBLIC_KEY), id);
});

Deno.test("ulaPrefix() is an fd00::/8 /48 and nodeAddress() sits in subnet 0", () => {
  const prefix = ulaPrefix(PSK);
  equal(prefix.length, 6);
  equal(prefix[0], 0xfd);
  const address = nodeAddress(prefix, PUBLIC_KEY);
  equal(address.length, 16);
  deepStrictEqual(address.subarray(0, 6), prefix);
  deepStrictEqual(address.subarray(6, 8), new Uint8Array(2));
});

Deno.test("deriveNetworkKeys() matches the single derivations", () => {
  deepStrictEqual(deriveNetworkKeys(PSK), {
    networkId: networkId(PSK),
    advertKey: advertKey(PSK),
    nodeIdKey: nodeIdKey(PSK),
    ulaPrefix: ulaPrefix(PSK),
  });
});

Deno.test("derivations throw RangeError on short secrets and bad public keys", () => {
  throws(() => networkId(new Uint8Array(15)), RangeError);
  throws(() => nodeId(PSK, new Uint8Array(31)), RangeError);
  throws(() => nodeAddress(new Uint8Array(5), PUBLIC_KEY), RangeError);
  equal(networkId(new Uint8Array(64)).length, 16); // CA mode may pass other secret sizes
});

Deno.test("derivations agree with node:crypto HKDF, HMAC and SHA-256", () => {
  const ref = (info: string, len: number) =>
    new Uint8Array(hkdfSync("sha256", PSK, "meshub v1", info, len));
  deepStrictEqual(networkId(PSK), ref("meshub network id", 16));
  deepStrictEqual(advertKey(PSK), ref("meshub advert key", 32));
  deepStrictEqual(nodeIdKey(PSK), ref("meshub node id key", 32));
  deepStrictEqual(ulaPrefix(PSK), new Uint8Array([0xfd, ...ref("meshub ula prefix", 5)]));
  const mac = createHmac("sha256", ref("meshub node id key", 32)).update(PUBLIC_KEY).digest();
  deepStrictEqual(nodeId(PSK, PUBLIC_KEY), new Uint8Array(mac.subarray(0, 16)));
  const iid = createHash("sha256").update(PUBLIC_KEY).digest().subarray(0, 8);
  deepStrictEqual(nodeAddress(ulaPrefix(PSK), PUBLIC_KEY).subarray(8), new Uint8Array(iid));
});
