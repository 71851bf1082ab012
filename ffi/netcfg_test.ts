import assert from "node:assert/strict";
import {
  interfaceCommands,
  InterfaceConfigError,
  isIPv4,
  isIPv6,
  localAddresses,
} from "./netcfg.ts";

Deno.test("interfaceCommands() on Linux sets mtu/up, adds addresses with nodad, and routes", () => {
  assert.deepEqual(
    interfaceCommands({
      name: "meshub0",
      mtu: 1420,
      ipv6: { address: "fd00:99::1", prefixLength: 64 },
      ipv4: { address: "198.18.5.1", prefixLength: 24 },
      routes: ["fd12::/48"],
    }, "linux"),
    [
      ["ip", "link", "set", "dev", "meshub0", "mtu", "1420", "up"],
      ["ip", "-6", "addr", "add", "fd00:99::1/64", "dev", "meshub0", "nodad"],
      ["ip", "-4", "addr", "add", "198.18.5.1/24", "dev", "meshub0"],
      ["ip", "-6", "route", "add", "fd12::/48", "dev", "meshub0"],
    ],
  );
});

Deno.test("interfaceCommands() on Linux sets the transmit queue length with the MTU", () => {
  assert.deepEqual(
    interfaceCommands({ name: "meshub0", mtu: 1420, queueLength: 4096 }, "linux"),
    [["ip", "link", "set", "dev", "meshub0", "mtu", "1420", "txqueuelen", "4096", "up"]],
  );
  assert.throws(
    () => interfaceCommands({ name: "meshub0", mtu: 1420, queueLength: 0 }, "linux"),
    RangeError,
  );
});

Deno.test("interfaceCommands() on macOS uses ifconfig aliases and interface routes", () => {
  const cmds = interfaceCommands({
    name: "utun4",
    mtu: 1420,
    ipv6: { address: "fd00:99::1", prefixLength: 64 },
  }, "darwin");
  assert.deepEqual(cmds, [
    ["ifconfig", "utun4", "mtu", "1420", "up"],
    ["ifconfig", "utun4", "inet6", "fd00:99::1/64", "alias"],
    ["route", "-q", "-n", "add", "-inet6", "fd00:99::1/64", "-interface", "utun4"],
  ]);
});

Deno.test("interfaceCommands() rejects bad names, MTUs, addresses and routes", () => {
  const ok = { name: "meshub0", mtu: 1420 };
  assert.throws(() => interfaceCommands({ ...ok, name: "bad name" }, "linux"), TypeError);
  assert.throws(() => interfaceCommands({ ...ok, name: "-x; rm" }, "linux"), TypeError);
  assert.throws(() => interfaceCommands({ ...ok, name: "-x" }, "linux"), TypeError);
  assert.throws(
    () => interfaceCommands({ ...ok, mtu: 1000, ipv6: { address: "fd00::1", prefixLength: 64 } }),
    RangeError,
  );
  assert.throws(
    () => interfaceCommands({ ...ok, ipv6: { address: "198.18.0.1", prefixLength: 64 } }),
    TypeError,
  );
  assert.throws(
    () => interfaceCommands({ ...ok, ipv4: { address: "198.18.0.1", prefixLength: 33 } }),
    RangeError,
  );
  assert.throws(() => interfaceCommands({ ...ok, routes: ["fd00::"] }), TypeError);
  assert.throws(() => interfaceCommands(ok, "windows"), /not supported on windows/);
});

Deno.test("isIPv6() and isIPv4() accept literals and reject junk", () => {
  for (const a of ["::", "::1", "fd00:99::1", "1:2:3:4:5:6:7:8", "::ffff:198.18.0.1", "fe80::1"]) {
    assert.ok(isIPv6(a), a);
  }
  for (
    const a of [
      "",
      ":",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "fd00::g",
      "198.18.0.1",
      "1:2:3:4:5:6:7::8",
    ]
  ) {
    assert.ok(!isIPv6(a), a);
  }
  assert.ok(isIPv4("198.18.0.1"));
  assert.ok(!isIPv4("198.18.0.256"));
  assert.ok(!isIPv4("198.18.0"));
});

Deno.test("InterfaceConfigError puts command, exit code and stderr on one line", () => {
  const e = new InterfaceConfigError(
    "meshub0",
    ["ip", "-6", "addr", "add", "fd00::1/64", "dev", "meshub0", "nodad"],
    2,
    "RTNETLINK answers: File exists\n",
  );
  assert.equal(
    e.message,
    "configuring meshub0 failed: `ip -6 addr add fd00::1/64 dev meshub0 nodad` exited with 2: " +
      "RTNETLINK answers: File exists",
  );
  assert.equal(e.name, "InterfaceConfigError");
});

Deno.test("localAddresses() skips loopback, link-local and excluded interfaces", () => {
  const all = Deno.networkInterfaces();
  const got = localAddresses();
  for (const a of got) {
    assert.ok(a.address !== "127.0.0.1" && a.address !== "::1", a.address);
    assert.ok(!a.address.toLowerCase().startsWith("fe80:"), a.address);
    assert.equal(a.family, a.address.includes(":") ? 6 : 4);
  }
  const names = [...new Set(all.map((n) => n.name))];
  assert.deepEqual(localAddresses({ exclude: names }), []);
});

Deno.test("localAddresses() skips tunnels (no link-layer address): another VPN's addresses", () => {
  const ni = (name: string, address: string, mac: string) => ({
    name,
    address,
    mac,
    family: address.includes(":") ? "IPv6" as const : "IPv4" as const,
  });
  const interfaces = [
    ni("lo", "127.0.0.1", "00:00:00:00:00:00"),
    ni("eth0", "198.18.0.2", "52:54:00:12:34:56"),
    ni("eth0", "fd00:1::2", "52:54:00:12:34:56"),
    ni("wg0", "198.19.202.1", "00:00:00:00:00:00"),
    ni("tailscale0", "fd00:7a11::1", "00:00:00:00:00:00"),
    ni("meshub0", "fd00:a1::1", "00:00:00:00:00:00"),
    ni("docker0", "198.19.99.1", "02:42:ac:11:00:01"),
  ];
  assert.deepEqual(localAddresses({ interfaces, exclude: ["meshub0"] }), [
    { address: "198.18.0.2", family: 4 },
    { address: "fd00:1::2", family: 6 },
    { address: "198.19.99.1", family: 4 },
  ]);
});
