import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  decodeEndpoint,
  encodedEndpointLength,
  encodeEndpoint,
  endpointKey,
  formatEndpoint,
  normalizeEndpoint,
  parseEndpoint,
} from "./endpoint.ts";

Deno.test("normalizeEndpoint() unmaps IPv4 senders of dual-stack sockets", () => {
  deepStrictEqual(normalizeEndpoint({ hostname: "::ffff:192.0.2.1", port: 5 }), {
    hostname: "192.0.2.1",
    port: 5,
  });
  deepStrictEqual(normalizeEndpoint({ hostname: "FD00:0::1", port: 65535 }), {
    hostname: "fd00::1",
    port: 65535,
  });
});

Deno.test("normalizeEndpoint() returns null for non-endpoints", () => {
  equal(normalizeEndpoint({ hostname: "example.com", port: 5 }), null);
  equal(normalizeEndpoint({ hostname: "1.2.3.4", port: 0 }), null);
  equal(normalizeEndpoint({ hostname: "1.2.3.4", port: 65536 }), null);
  equal(normalizeEndpoint({ hostname: "1.2.3.4", port: 1.5 }), null);
  equal(normalizeEndpoint({ hostname: "fe80::1%eth0", port: 5 }), null);
});

Deno.test("formatEndpoint() brackets IPv6", () => {
  equal(formatEndpoint({ hostname: "1.2.3.4", port: 5 }), "1.2.3.4:5");
  equal(formatEndpoint({ hostname: "fd00::1", port: 5 }), "[fd00::1]:5");
  equal(endpointKey({ hostname: "fd00::1", port: 5 }), "[fd00::1]:5");
});

Deno.test("parseEndpoint() reads config endpoints", () => {
  deepStrictEqual(parseEndpoint("198.18.0.1:3731"), { hostname: "198.18.0.1", port: 3731 });
  deepStrictEqual(parseEndpoint("[FD00:0::1]:1"), { hostname: "fd00::1", port: 1 });
  deepStrictEqual(parseEndpoint("[::ffff:1.2.3.4]:9"), { hostname: "1.2.3.4", port: 9 });
});

Deno.test("parseEndpoint() throws SyntaxError with the reason", () => {
  const cases: [string, RegExp][] = [
    ["fd00::1:5", /needs brackets/],
    ["hub.example:3731", /not an IPv4 address literal/],
    ["[fd00::1", /missing '\]'/],
    ["[fd00::1]5", /expected ':port'/],
    ["[nonsense]:5", /not an IPv6 address literal/],
    ["1.2.3.4", /expected host:port/],
    ["1.2.3.4:", /is not a port number/],
    ["1.2.3.4:0", /outside 1..65535/],
    ["1.2.3.4:70000", /outside 1..65535/],
    ["1.2.3.4:+5", /is not a port number/],
    ["[fe80::1%eth0]:5", /not an IPv6 address literal/],
  ];
  for (const [text, message] of cases) {
    throws(
      () => parseEndpoint(text),
      (e: Error) => e instanceof SyntaxError && message.test(e.message),
      text,
    );
  }
});

Deno.test("encodeEndpoint() round-trips through decodeEndpoint()", () => {
  const cases = [
    { hostname: "1.2.3.4", port: 5 },
    { hostname: "fd00::1", port: 65535 },
    { hostname: "::", port: 1 },
  ];
  for (const ep of cases) {
    const bytes = encodeEndpoint(ep);
    equal(bytes.length, encodedEndpointLength(ep));
    deepStrictEqual(decodeEndpoint(bytes, 0), { endpoint: ep, end: bytes.length });
  }
  deepStrictEqual(
    encodeEndpoint({ hostname: "1.2.3.4", port: 0x1234 }),
    new Uint8Array([4, 0x12, 0x34, 1, 2, 3, 4]),
  );
  // IPv4-mapped input encodes as family 4.
  equal(encodeEndpoint({ hostname: "::ffff:1.2.3.4", port: 5 })[0], 4);
  throws(() => encodeEndpoint({ hostname: "host", port: 5 }), RangeError);
});

Deno.test("decodeEndpoint() rejects truncated, unknown and non-canonical input", () => {
  const v6 = encodeEndpoint({ hostname: "fd00::1", port: 5 });
  for (let i = 0; i < v6.length; i++) equal(decodeEndpoint(v6.subarray(0, i), 0), null);
  equal(decodeEndpoint(new Uint8Array([5, 0, 1, 1, 2, 3, 4]), 0), null);
  equal(decodeEndpoint(new Uint8Array([4, 0, 0, 1, 2, 3, 4]), 0), null);
  const mapped = new Uint8Array(19);
  mapped.set([6, 0, 5], 0);
  mapped.set([0xff, 0xff, 1, 2, 3, 4], 13);
  equal(decodeEndpoint(mapped, 0), null);
  equal(decodeEndpoint(v6, -1), null);
  equal(decodeEndpoint(v6, 100), null);
});

Deno.test("decodeEndpoint() never throws on random bytes", () => {
  for (let i = 0; i < 10_000; i++) {
    const bytes = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 24)));
    if (i % 2 === 0 && bytes.length > 0) bytes[0] = i % 4 === 0 ? 4 : 6;
    const decoded = decodeEndpoint(bytes, 0);
    if (decoded !== null) {
      deepStrictEqual(encodeEndpoint(decoded.endpoint), bytes.subarray(0, decoded.end));
    }
  }
});
