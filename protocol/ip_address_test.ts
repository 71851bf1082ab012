import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  formatIPv4,
  formatIPv6,
  isIPv4Mapped,
  parseIP,
  parseIPv4,
  parseIPv6,
  unmapIPv4,
} from "./ip_address.ts";

Deno.test("parseIPv4() reads dotted quads", () => {
  deepStrictEqual(parseIPv4("192.0.2.1"), new Uint8Array([192, 0, 2, 1]));
  deepStrictEqual(parseIPv4("0.0.0.0"), new Uint8Array(4));
  deepStrictEqual(parseIPv4("255.255.255.255"), new Uint8Array([255, 255, 255, 255]));
});

Deno.test("parseIPv4() rejects everything else", () => {
  for (
    const text of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.-4",
      "1.2.3.4 ",
      " 1.2.3.4",
      "a.b.c.d",
      "1..2.3",
      "1.2.3.4/24",
      "0x1.2.3.4",
      "1.2.3.4:80",
    ]
  ) {
    equal(parseIPv4(text), null, text);
  }
});

Deno.test("parseIPv6() reads RFC 4291 text forms", () => {
  const cases: [string, string][] = [
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["fd00::1", "fd000000000000000000000000000001"],
    ["FD00:0:0:0:0:0:0:1", "fd000000000000000000000000000001"],
    ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["1::", "00010000000000000000000000000000"],
    ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
    ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
    ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
  ];
  for (const [text, hex] of cases) {
    const bytes = parseIPv6(text);
    equal(
      bytes === null ? null : Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
      hex,
      text,
    );
  }
});

Deno.test("parseIPv6() rejects everything else", () => {
  for (
    const text of [
      "",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      ":1",
      "1:",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2:3:4:5:6:7:8",
      "12345::",
      "g::",
      "fe80::1%eth0",
      "[::1]",
      "::1.2.3",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "fd00::/48",
      "1:2:3:4:5:6:7:1.2.3.4",
    ]
  ) {
    equal(parseIPv6(text), null, text);
  }
});

Deno.test("formatIPv6() writes RFC 5952 canonical text", () => {
  const cases: [string, string][] = [
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0"],
    ["FD00:0:0:0:0:0:0:0", "fd00::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["1:0:2:0:0:0:3:0", "1:0:2::3:0"],
  ];
  for (const [input, want] of cases) equal(formatIPv6(parseIPv6(input)!), want, input);
});

Deno.test("formatIPv6() round-trips random addresses", () => {
  for (let i = 0; i < 2000; i++) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    // Sprinkle zero groups so compression is exercised.
    for (let g = 0; g < 8; g++) if (Math.random() < 0.4) bytes[2 * g] = bytes[2 * g + 1] = 0;
    deepStrictEqual(parseIPv6(formatIPv6(bytes)), bytes);
  }
});

Deno.test("formatIPv4() and formatIPv6() throw on wrong lengths", () => {
  throws(() => formatIPv4(new Uint8Array(3)), RangeError);
  throws(() => formatIPv6(new Uint8Array(4)), RangeError);
});

Deno.test("unmapIPv4() turns IPv4-mapped IPv6 into IPv4", () => {
  const mapped = parseIP("::ffff:10.1.2.3")!;
  equal(isIPv4Mapped(mapped.bytes), true);
  deepStrictEqual(unmapIPv4(mapped), { family: 4, bytes: new Uint8Array([10, 1, 2, 3]) });
  const plain = parseIP("fd00::1")!;
  equal(unmapIPv4(plain), plain);
  equal(parseIP("nonsense"), null);
  equal(parseIP("10.0.0.1")!.family, 4);
});

Deno.test("parseIP() never throws on random text", () => {
  const alphabet = "0123456789abcdefABCDEFgx:.%[]/ ";
  for (let i = 0; i < 10_000; i++) {
    let text = "";
    const len = Math.floor(Math.random() * 48);
    for (let j = 0; j < len; j++) text += alphabet[Math.floor(Math.random() * alphabet.length)];
    const parsed = parseIP(text);
    if (parsed !== null) deepStrictEqual(parseIP(text), parsed);
  }
});
