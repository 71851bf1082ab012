import assert from "node:assert/strict";
import {
  type ClientConfig,
  ConfigError,
  DEFAULT_TESTING,
  DEFAULT_TUN_QUEUE_LENGTH,
  loadClientConfig,
  parseClientConfig,
} from "./config.ts";
import { encodeBase64, encodeBase64Url } from "../util/base64.ts";
import { UserError } from "../util/cli_error.ts";

const PSK = new Uint8Array(32).map((_, i) => i + 1);
const PEER_KEY = new Uint8Array(32).fill(0xfb);

/** Line numbers below refer to this text; keep it in step with the tests. */
const FULL = `# meshub client
[encryption]
psk = "${encodeBase64Url(PSK)}"

[hub]
addresses = ["198.18.0.1:3731", "[FD00:0:0::1]:4000", "198.18.0.2", "[fd00::2]", "fd00::3"]

[node]
name = "alice"
state_file = "state/alice.key"
port = 51000

[tun]
interface = "mesh7"
mtu = 1400
ipv6 = "fd12:3456:789a::1/48"
ipv4 = "100.64.0.1/24"

[log]
level = "debug"
format = "json"

[[peer]]
public_key = "${encodeBase64(PEER_KEY)}"
endpoint = "[2001:db8::5]:51820"
ipv6 = "fd00:77::2/128"
ipv4 = ["100.66.0.0/16", "100.67.0.1"]
name = "wg-peer"

[[peer]]
public_key = "${encodeBase64(new Uint8Array(32).fill(1))}"
endpoint = "198.18.0.6:51820"
ipv6 = ["fd00:78::/64"]

[testing]
rekey_after_ms = 2000
reject_after_ms = 3000
keepalive_ms = 500
hub_keepalive_ms = 700

[[bootstrap]]
endpoint = "198.18.0.7:51000"
public_key = "${encodeBase64(new Uint8Array(32).fill(2))}"
`;

const MINIMAL = `[encryption]
psk = "${encodeBase64Url(PSK)}"
[node]
name = "alice"
state_file = "/var/lib/meshub/alice.key"
`;

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

/** Parses `text` expecting a ConfigError; returns it after checking it is a one-line message. */
function configError(text: string, path = "client.toml"): ConfigError {
  try {
    parseClientConfig(text, path);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.ok(!err.message.includes("\n"), `message must be one line: ${err.message}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

/** Error message for FULL with `from` replaced by `to` (which must occur exactly once). */
function fullWith(from: string, to: string): string {
  assert.equal(FULL.split(from).length, 2, `"${from}" must occur once in FULL`);
  return configError(FULL.replace(from, to)).message;
}

Deno.test("parseClientConfig() reads every key of a full configuration", () => {
  const config = parseClientConfig(FULL, "/etc/meshub/client.toml");
  const expected: ClientConfig = {
    path: "/etc/meshub/client.toml",
    psk: PSK,
    hubs: [
      { hostname: "198.18.0.1", port: 3731 },
      { hostname: "fd00::1", port: 4000 },
      { hostname: "198.18.0.2", port: 3731 },
      { hostname: "fd00::2", port: 3731 },
      { hostname: "fd00::3", port: 3731 },
    ],
    node: {
      name: "alice",
      stateFile: "/etc/meshub/state/alice.key",
      port: 51000,
      peerCache: "/etc/meshub/state/alice.key.peers",
    },
    tun: {
      interface: "mesh7",
      mtu: 1400,
      offload: true,
      queueLength: 4096,
      ipv6: {
        address: bytes(0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
        prefixLength: 48,
      },
      ipv4: { address: bytes(100, 64, 0, 1), prefixLength: 24 },
    },
    log: { level: "debug", format: "json" },
    control: { socket: "/run/meshub/mesh7.sock" },
    metrics: { listen: null },
    peers: [
      {
        publicKey: PEER_KEY,
        endpoint: { hostname: "2001:db8::5", port: 51820 },
        ipv6: [{
          address: bytes(0xfd, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
          prefixLength: 128,
        }],
        ipv4: [
          { address: bytes(100, 66, 0, 0), prefixLength: 16 },
          { address: bytes(100, 67, 0, 1), prefixLength: 32 },
        ],
        name: "wg-peer",
      },
      {
        publicKey: new Uint8Array(32).fill(1),
        endpoint: { hostname: "198.18.0.6", port: 51820 },
        ipv6: [{
          address: bytes(0xfd, 0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
          prefixLength: 64,
        }],
        ipv4: [],
      },
    ],
    bootstrap: [{
      endpoint: { hostname: "198.18.0.7", port: 51000 },
      publicKey: new Uint8Array(32).fill(2),
    }],
    testing: { rekeyAfterMs: 2000, rejectAfterMs: 3000, keepaliveMs: 500, hubKeepaliveMs: 700 },
  };
  assert.deepEqual(config, expected);
});

Deno.test("parseClientConfig() fills in defaults and leaves optional addresses out", () => {
  const config = parseClientConfig(MINIMAL, "client.toml");
  assert.deepEqual(config.hubs, []);
  assert.deepEqual(config.node, {
    name: "alice",
    stateFile: "/var/lib/meshub/alice.key",
    port: 0,
    peerCache: "/var/lib/meshub/alice.key.peers",
  });
  assert.deepEqual(config.tun, {
    interface: "meshub0",
    mtu: 1408,
    offload: true,
    queueLength: DEFAULT_TUN_QUEUE_LENGTH,
  });
  assert.ok(!("ipv6" in config.tun) && !("ipv4" in config.tun));
  assert.deepEqual(config.log, { level: "info", format: "text" });
  assert.deepEqual(config.peers, []);
  assert.deepEqual(config.testing, DEFAULT_TESTING);
});

Deno.test("parseClientConfig() accepts the psk padded, unpadded, base64url or standard base64", () => {
  const psk = new Uint8Array(32).fill(0xfb); // encodes with '-'/'_' or '+'/'/'
  for (const text of [encodeBase64Url(psk), `${encodeBase64Url(psk)}=`, encodeBase64(psk)]) {
    const config = parseClientConfig(MINIMAL.replace(encodeBase64Url(PSK), text), "c.toml");
    assert.deepEqual(config.psk, psk, text);
  }
});

Deno.test("parseClientConfig() resolves a relative state_file against the config's directory", () => {
  const relative = MINIMAL.replace("/var/lib/meshub/alice.key", "alice.key");
  assert.equal(
    parseClientConfig(relative, "/etc/meshub/client.toml").node.stateFile,
    "/etc/meshub/alice.key",
  );
  assert.equal(parseClientConfig(relative, "conf/client.toml").node.stateFile, "conf/alice.key");
  assert.equal(parseClientConfig(relative, "client.toml").node.stateFile, "alice.key");
});

Deno.test("parseClientConfig() reports an unknown key with the closest known one", () => {
  assert.equal(
    fullWith('interface = "mesh7"', 'interfce = "mesh7"'),
    "client.toml:14: tun.interfce: unknown key, did you mean `interface`?",
  );
  assert.equal(
    fullWith("keepalive_ms = 500", "keepalive = 500"),
    "client.toml:38: testing.keepalive: unknown key, did you mean `keepalive_ms`?",
  );
});

Deno.test("parseClientConfig() points a key in the wrong section to the right one", () => {
  assert.equal(
    fullWith("port = 51000", "level = 1"),
    "client.toml:11: node.level: unknown key, did you mean `log.level` (in the [log] section)?",
  );
});

Deno.test("parseClientConfig() reports an unknown section", () => {
  assert.equal(
    fullWith("[log]", "[logging]"),
    "client.toml:19: logging: unknown section, did you mean `log`?",
  );
  assert.equal(
    fullWith("[log]", "[whatever]"),
    "client.toml:19: whatever: unknown section (known sections: encryption, ca, hub, node, tun, log, control, metrics, peer, bootstrap, testing)",
  );
});

Deno.test("parseClientConfig() reports a value of the wrong type", () => {
  assert.equal(
    fullWith("mtu = 1400", 'mtu = "1400"'),
    'client.toml:15: tun.mtu: must be an integer, got string "1400"',
  );
  assert.equal(
    fullWith('name = "alice"', "name = true"),
    "client.toml:9: node.name: must be a string, got boolean true",
  );
  assert.equal(
    fullWith('"198.18.0.2"', "3731"),
    "client.toml:6: hub.addresses[2]: must be a string, got integer 3731",
  );
  assert.equal(
    configError(MINIMAL + '[peer]\nname = "x"\n').message,
    "client.toml:6: peer: must be an array of tables (write `[[peer]]`), got a table",
  );
  assert.equal(
    configError(MINIMAL + "[[tun]]\nmtu = 1400\n").message,
    "client.toml:6: tun: must be a table (write `[tun]`, not `[[tun]]`), got an array",
  );
});

Deno.test("parseClientConfig() requires the psk to be 32 bytes", () => {
  const short = encodeBase64Url(new Uint8Array(31));
  assert.equal(
    fullWith(encodeBase64Url(PSK), short),
    "client.toml:3: encryption.psk: must be 32 bytes, got 31 bytes",
  );
});

Deno.test("parseClientConfig() rejects a psk that is not base64, without echoing it", () => {
  const message = fullWith(encodeBase64Url(PSK), "not base64 at all!");
  assert.equal(
    message,
    "client.toml:3: encryption.psk: not valid base64url or base64 (generate one with `meshub genkey`)",
  );
});

Deno.test("parseClientConfig() rejects bad hub addresses", () => {
  assert.equal(
    fullWith('"198.18.0.2"', '"hub.example.com:3731"'),
    'client.toml:6: hub.addresses[2]: must be an IP address and port like "198.18.0.1:3731" or "[fd00::1]:3731", got "hub.example.com:3731" (host names are not resolved)',
  );
  assert.equal(
    fullWith('"198.18.0.2"', '"198.18.0.256"'),
    'client.toml:6: hub.addresses[2]: must be an IP address and port like "198.18.0.1:3731" or "[fd00::1]:3731", got "198.18.0.256"',
  );
  assert.equal(
    fullWith('"198.18.0.2"', '"[fe80::1%eth0]:3731"'),
    'client.toml:6: hub.addresses[2]: IPv6 zone indexes are not supported, got "[fe80::1%eth0]:3731"',
  );
  assert.equal(
    fullWith('"198.18.0.2"', '"198.18.0.2:0"'),
    'client.toml:6: hub.addresses[2]: port must be between 1 and 65535, got "0"',
  );
  assert.equal(
    fullWith('"198.18.0.2"', '"198.18.0.1:3731"'),
    'client.toml:6: hub.addresses[2]: duplicate hub address "198.18.0.1:3731"',
  );
  const nine = Array.from({ length: 9 }, (_, i) => `"198.18.0.${i + 1}"`).join(", ");
  assert.match(
    configError(MINIMAL + `[hub]\naddresses = [${nine}]\n`).message,
    /^client\.toml:7: hub\.addresses: at most 8 hubs, got 9$/,
  );
});

Deno.test("parseClientConfig() finds the line of an element of a multi-line array", () => {
  const text = MINIMAL + `[hub]\naddresses = [\n  "198.18.0.1",\n  "198.18.0.x",\n]\n`;
  assert.equal(
    configError(text).message,
    'client.toml:9: hub.addresses[1]: must be an IP address and port like "198.18.0.1:3731" or "[fd00::1]:3731", got "198.18.0.x" (host names are not resolved)',
  );
});

Deno.test("parseClientConfig() rejects node.port 70000", () => {
  assert.equal(
    fullWith("port = 51000", "port = 70000"),
    "client.toml:11: node.port: must be between 0 and 65535, got 70000",
  );
});

Deno.test("parseClientConfig() rejects an MTU below the IPv6 minimum", () => {
  const err = configError(FULL.replace("mtu = 1400", "mtu = 100"));
  assert.equal(err.message, "client.toml:15: tun.mtu: must be between 1280 and 9000, got 100");
  assert.equal(err.path, "client.toml");
  assert.equal(err.key, "tun.mtu");
  assert.equal(err.line, 15);
  assert.ok(err instanceof UserError);
  assert.equal(err.exitCode, 2);
});

Deno.test("parseClientConfig() rejects bad interface addresses and prefixes", () => {
  assert.equal(
    fullWith("fd12:3456:789a::1/48", "fd12:3456:789a::1/129"),
    'client.toml:16: tun.ipv6: prefix length must be between 0 and 128, got "129"',
  );
  assert.equal(
    fullWith("fd12:3456:789a::1/48", "fd12:3456:789a::1"),
    'client.toml:16: tun.ipv6: needs a prefix length, e.g. "fd12:3456:789a::1/48", got "fd12:3456:789a::1"',
  );
  assert.equal(
    fullWith("fd12:3456:789a::1/48", "fd12::3456::1/48"),
    'client.toml:16: tun.ipv6: must be an IPv6 address with a prefix length like "fd12:3456:789a::1/48", got "fd12::3456::1/48"',
  );
  assert.equal(
    fullWith("fd12:3456:789a::1/48", "100.64.0.1/10"),
    'client.toml:16: tun.ipv6: must be an IPv6 address with a prefix length like "fd12:3456:789a::1/48", got an IPv4 address',
  );
  assert.equal(
    fullWith("100.64.0.1/24", "100.64.0.1/33"),
    'client.toml:17: tun.ipv4: prefix length must be between 0 and 32, got "33"',
  );
});

Deno.test("parseClientConfig() rejects a missing required key at its section's line", () => {
  assert.equal(fullWith('name = "alice"\n', ""), "client.toml:8: node.name: required");
  assert.equal(
    configError(MINIMAL.replace(/\[encryption\]\npsk = .*\n/, "")).message,
    "client.toml: encryption.psk: required (generate one with `meshub genkey`)",
  );
});

Deno.test("parseClientConfig() rejects a bad node name or interface name", () => {
  assert.equal(
    fullWith('name = "alice"', 'name = "alice smith"'),
    'client.toml:9: node.name: must be 1 to 63 characters of A-Z a-z 0-9 . _ -, got "alice smith"',
  );
  assert.equal(
    fullWith('interface = "mesh7"', 'interface = "a-very-long-name0"'),
    "client.toml:14: tun.interface: must be 1 to 15 characters, got 17",
  );
  assert.equal(
    fullWith('interface = "mesh7"', 'interface = "mesh/7"'),
    `client.toml:14: tun.interface: must not contain '/' or whitespace, got "mesh/7"`,
  );
});

Deno.test("parseClientConfig() suggests the log level meant", () => {
  assert.equal(
    fullWith('level = "debug"', 'level = "warn"'),
    'client.toml:20: log.level: must be one of trace, debug, info, warning, error, fatal, got "warn"; did you mean "warning"?',
  );
});

Deno.test("parseClientConfig() rejects a peer without addresses", () => {
  assert.equal(
    fullWith('ipv6 = ["fd00:78::/64"]\n', ""),
    "client.toml:30: peer[1]: needs at least one of `ipv6` or `ipv4` (the addresses routed to this peer)",
  );
});

Deno.test("parseClientConfig() checks peer keys, endpoints and routes", () => {
  assert.equal(
    fullWith(encodeBase64(PEER_KEY), encodeBase64(new Uint8Array(16))),
    "client.toml:24: peer[0].public_key: must be 32 bytes, got 16 bytes",
  );
  assert.equal(
    fullWith('"198.18.0.6:51820"', '"198.18.0.6"'),
    'client.toml:32: peer[1].endpoint: must be an IP address and port like "198.18.0.5:51820" or "[fd00::1]:51820", got "198.18.0.6" (the port is required)',
  );
  assert.equal(
    fullWith('"100.67.0.1"', '"100.67.0.1/24"'),
    'client.toml:27: peer[0].ipv4[1]: has host bits set; did you mean "100.67.0.0/24"?',
  );
  assert.equal(
    fullWith(encodeBase64(new Uint8Array(32).fill(1)), encodeBase64(PEER_KEY)),
    "client.toml:31: peer[1].public_key: same public key as peer[0]",
  );
});

Deno.test("parseClientConfig() rejects testing timers out of order", () => {
  assert.equal(
    fullWith("reject_after_ms = 3000", "reject_after_ms = 1000"),
    "client.toml:37: testing.reject_after_ms: reject_after_ms (1000) must be greater than rekey_after_ms (2000)",
  );
  assert.equal(
    fullWith("hub_keepalive_ms = 700", "hub_keepalive_ms = 0"),
    "client.toml:39: testing.hub_keepalive_ms: must be between 1 and 86400000, got 0",
  );
});

Deno.test("parseClientConfig() shows the line of a TOML syntax error", () => {
  const err = configError(FULL.replace("mtu = 1400", "mtu = "));
  assert.equal(err.message, "client.toml:15: TOML syntax error: invalid value");
  assert.equal(err.key, "");
  assert.ok(err.cause instanceof Error);
  assert.equal(
    fullWith("[log]", "[tun]"),
    "client.toml:19: TOML syntax error: trying to redefine an already defined table or value",
  );
});

Deno.test("parseClientConfig() takes tun.queue_length within 16..65536", () => {
  const withQueue = (q: string) => `[tun]\nqueue_length = ${q}\n` + MINIMAL;
  assert.equal(parseClientConfig(withQueue("16"), "client.toml").tun.queueLength, 16);
  assert.equal(parseClientConfig(withQueue("65536"), "client.toml").tun.queueLength, 65536);
  assert.equal(
    configError(withQueue("8")).message,
    "client.toml:2: tun.queue_length: must be between 16 and 65536, got 8",
  );
  assert.equal(
    configError(withQueue("1e9")).message,
    "client.toml:2: tun.queue_length: must be between 16 and 65536, got 1000000000",
  );
});

Deno.test("parseClientConfig() finds the lines of dotted keys", () => {
  assert.equal(
    configError("tun.mtu = 100\n" + MINIMAL).message,
    "client.toml:1: tun.mtu: must be between 1280 and 9000, got 100",
  );
  assert.equal(
    configError(MINIMAL + "tun.mtu = 1400\n").message,
    "client.toml:6: node.tun: unknown key, did you mean the [tun] section?",
  );
});

Deno.test("parseClientConfig() reads tun.offload as a boolean", () => {
  assert.equal(
    parseClientConfig("tun.offload = false\n" + MINIMAL, "client.toml").tun.offload,
    false,
  );
  assert.equal(
    configError('tun.offload = "no"\n' + MINIMAL).message,
    'client.toml:1: tun.offload: must be true or false, got string "no"',
  );
});

Deno.test("loadClientConfig() reads a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/client.toml`;
    await Deno.writeTextFile(path, MINIMAL.replace("/var/lib/meshub/alice.key", "alice.key"));
    const config = await loadClientConfig(path);
    assert.equal(config.path, path);
    assert.equal(config.node.stateFile, `${dir}/alice.key`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadClientConfig() reports a missing file in one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/nope.toml`;
    const err = await loadClientConfig(path).then(() => undefined, (e) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `${path}: cannot read the configuration file: no such file`);
    assert.equal(err.line, undefined);
    assert.ok(err.cause instanceof Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadClientConfig() reports a directory or invalid UTF-8", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const notText = `${dir}/bin.toml`;
    await Deno.writeFile(notText, bytes(0x61, 0x3d, 0xff, 0xfe));
    await assert.rejects(loadClientConfig(notText), {
      message: `${notText}: the configuration file is not valid UTF-8`,
    });
    const err = await loadClientConfig(dir).then(() => undefined, (e) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, new RegExp(`^${dir}: cannot read the configuration file: .+$`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseClientConfig() reads node.peer_cache and checks [[bootstrap]]", () => {
  const minimal = (extra: string) => parseClientConfig(MINIMAL + extra, "/etc/meshub/c.toml");
  assert.equal(minimal("").node.peerCache, "/var/lib/meshub/alice.key.peers");
  assert.equal(minimal('peer_cache = "cache/p.json"\n').node.peerCache, "/etc/meshub/cache/p.json");
  assert.equal(minimal('peer_cache = ""\n').node.peerCache, "");
  assert.deepEqual(minimal("").bootstrap, []);
  const key = encodeBase64(new Uint8Array(32).fill(3));
  const error = (bootstrap: string) => configError(MINIMAL + bootstrap, "c.toml").message;
  assert.equal(
    error(`[[bootstrap]]\nendpoint = "198.18.0.7:1"\n`),
    "c.toml:6: bootstrap[0].public_key: required (`meshub pubkey` on that member prints it)",
  );
  assert.equal(
    error(`[[bootstrap]]\npublic_key = "${key}"\n`),
    "c.toml:6: bootstrap[0].endpoint: required",
  );
  assert.match(
    error(`[[bootstrap]]\nendpoint = "example.org:1"\npublic_key = "${key}"\n`),
    /^c\.toml:7: bootstrap\[0\]\.endpoint: /,
  );
  assert.equal(
    error(`[[bootstrap]]\nendpoint = "198.18.0.7:1"\npublic_key = "AAAA"\n`),
    "c.toml:8: bootstrap[0].public_key: must be 32 bytes, got 3 bytes",
  );
  assert.match(error(`[bootstrap]\nendpoint = "198.18.0.7:1"\n`), /array of tables/);
});
