import assert from "node:assert/strict";
import { decodeBase64, decodeBase64Url, encodeBase64, encodeBase64Url } from "./base64.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("encodeBase64() matches the RFC 4648 test vectors", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["f", "Zg=="],
    ["fo", "Zm8="],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg=="],
    ["fooba", "Zm9vYmE="],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [plain, encoded] of cases) {
    const raw = new TextEncoder().encode(plain);
    assert.equal(encodeBase64(raw), encoded);
    assert.deepEqual(decodeBase64(encoded), raw);
    assert.equal(encodeBase64Url(raw), encoded.replace(/=+$/, ""));
    assert.deepEqual(decodeBase64Url(encoded.replace(/=+$/, "")), raw);
  }
});

Deno.test("encodeBase64() and encodeBase64Url() differ only in the alphabet and padding", () => {
  const raw = bytes(0xfb, 0xff, 0xbf, 0xfe);
  assert.equal(encodeBase64(raw), "+/+//g==");
  assert.equal(encodeBase64Url(raw), "-_-__g");
  assert.deepEqual(decodeBase64Url("-_-__g=="), raw);
  assert.deepEqual(decodeBase64("+/+//g"), raw);
});

Deno.test("decodeBase64() round-trips every length up to 64 bytes", () => {
  for (let n = 0; n <= 64; n++) {
    const raw = crypto.getRandomValues(new Uint8Array(n));
    assert.deepEqual(decodeBase64(encodeBase64(raw)), raw);
    assert.deepEqual(decodeBase64Url(encodeBase64Url(raw)), raw);
  }
});

Deno.test("decodeBase64() returns null on bad input instead of throwing", () => {
  for (
    const bad of [
      "Zg=", // wrong padding
      "Z===",
      "Zm9v=", // padding on a complete quantum
      "Z", // one character cannot hold a byte
      "Zh==", // non-zero trailing bits
      "Zm 9v", // whitespace
      "Zm9v\n",
      "Zm9-", // URL alphabet in standard base64
      "Zm9é",
    ]
  ) {
    assert.equal(decodeBase64(bad), null, bad);
  }
  assert.equal(decodeBase64Url("Zm9+"), null);
  assert.equal(decodeBase64Url("Zm9/"), null);
});
