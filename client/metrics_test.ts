import assert from "node:assert/strict";
import { renderClientMetrics } from "./metrics.ts";
import { type ClientStatus, clientStatus, formatPing, formatStatus } from "./control.ts";
import { addMember, FakeHub, FakeNet } from "../tests/fake_net.ts";
import { parseClientConfig } from "./config.ts";
import { isLoopback, parseMetricsListen, serveMetrics } from "../util/prometheus.ts";
import { formatHubStatus, hubStatus, renderHubMetrics } from "../hub/control.ts";

const STATUS: ClientStatus = {
  version: 1,
  node: {
    name: "c1",
    addresses: ["fd00:1::1/128"],
    publicKey: "HI/O8hn4P6aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=",
    fingerprint: "HI/O8hn4P6",
    port: 51820,
    interface: "meshub0",
    mtu: 1420,
    natKind: "endpoint-independent",
  },
  hubs: [{
    endpoint: "198.18.0.1:3731",
    state: "registered",
    observedAs: "198.18.0.11:51820",
    lastContactAgoMs: 1200,
  }],
  members: [{
    name: "c2",
    publicKey: "x",
    addresses: ["fd00:1::2/128"],
    state: "up",
    path: "public IPv4",
    endpoint: "198.18.0.2:4000",
    rttMs: 1.5,
    lastHandshakeAgoMs: 3000,
    lastHeardAgoMs: 100,
    tx: { bytes: 1000, packets: 10 },
    rx: { bytes: 2000, packets: 20 },
    handshakes: 1,
    drops: { "inner-source-not-allowed": 2 },
    candidates: [{
      endpoint: "198.19.2.10:4000",
      source: "local",
      sent: 4,
      received: 0,
      lastSentAgoMs: 1000,
      lastHeardAgoMs: null,
      result: "no answer",
    }],
    natKind: "symmetric",
    portAllocation: "sequential",
    spray: { mode: "predict", host: "198.18.0.2", ports: 48, sent: 48 },
    paths: [{
      endpoint: "198.18.0.2:4000",
      path: "public IPv4",
      state: "active",
      srttMs: 1.25,
      lossPct: 0,
      sent: 10,
      answered: 10,
      lastHeardAgoMs: 300,
    }, {
      endpoint: "[fd00:0:1::2]:4000",
      path: "IPv6",
      state: "dead",
      srttMs: 2.5,
      lossPct: 41.2,
      sent: 12,
      answered: 6,
      lastHeardAgoMs: 9000,
    }],
  }],
  drops: { "tun-no-route": 1 },
};

Deno.test("renderClientMetrics() writes per-edge RTT, handshake age, bytes and drops", () => {
  const text = renderClientMetrics(STATUS);
  assert.match(text, /^# TYPE meshub_edge_rtt_seconds gauge$/m);
  assert.match(text, /^meshub_edge_rtt_seconds\{member="c2"\} 0\.0015$/m);
  assert.match(text, /^meshub_edge_handshake_age_seconds\{member="c2"\} 3$/m);
  assert.match(text, /^meshub_edge_sent_bytes_total\{member="c2"\} 1000$/m);
  assert.match(text, /^meshub_edge_received_packets_total\{member="c2"\} 20$/m);
  assert.match(
    text,
    /^meshub_edge_dropped_packets_total\{member="c2",reason="inner-source-not-allowed"\} 2$/m,
  );
  assert.match(text, /^meshub_edge_state\{member="c2",state="up"\} 1$/m);
  assert.match(text, /^meshub_dropped_packets_total\{reason="tun-no-route"\} 1$/m);
  assert.match(text, /^meshub_hub_registered\{hub="198.18.0.1:3731"\} 1$/m);
  // Every sample line is `name{labels} value` or `name value`.
  for (const line of text.trim().split("\n")) {
    if (line.startsWith("#")) continue;
    assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [-0-9.e+]+$/, line);
  }
});

Deno.test("formatStatus() and formatPing() say what each candidate did", () => {
  const text = formatStatus(STATUS);
  assert.match(text, /^c1 {2}fd00:1::1\/128 {2}key HI\/O8hn4P6… {2}udp 51820/);
  assert.match(text, /c2\s+fd00:1::2\s+up\s+public IPv4\s+198\.18\.0\.2:4000\s+1\.50 ms/);
  assert.match(text, /198\.19\.2\.10:4000 \(local\): no answer \(4 sent, 0 received\)/);
  // What kind of NAT each side seems to be behind, the spray, and the measured paths.
  assert.match(text, /mtu 1420 {2}NAT endpoint-independent$/m);
  assert.match(text, /^MEMBER .* RTT +NAT +HANDSHAKE/m);
  assert.match(text, /1\.50 ms +symmetric \(sequential\) +3\.0 s ago/);
  assert.match(text, /spray \(predict\): 48\/48 ports of 198\.18\.0\.2/);
  assert.match(text, /198\.18\.0\.2:4000 \(public IPv4\): active, rtt 1\.25 ms, loss 0%/);
  assert.match(text, /\[fd00:0:1::2\]:4000 \(IPv6\): dead, rtt 2\.50 ms, loss 41\.2% \(6\/12/);
  assert.match(
    formatPing({
      reply: true,
      name: "c2",
      seq: 1,
      rttMs: 0.8,
      path: "LAN",
      endpoint: "10.0.0.2:1",
    }),
    /^pong from c2 via 10\.0\.0\.2:1 \(LAN\) in 0\.80 ms$/,
  );
  const miss = formatPing({
    reply: false,
    name: "c3",
    state: "unreachable",
    timeoutMs: 2000,
    candidates: STATUS.members[0]!.candidates,
  });
  assert.match(
    miss,
    /^no reply from c3 within 2\.0 s: no direct path exists \(state unreachable\)/,
  );
  assert.match(miss, /tried:\n {4}198\.19\.2\.10:4000 \(local\): no answer/);
});

Deno.test("metrics endpoints accept only loopback addresses", () => {
  assert.ok(isLoopback("127.0.0.1"));
  assert.ok(isLoopback("127.1.2.3"));
  assert.ok(isLoopback("::1"));
  assert.ok(!isLoopback("0.0.0.0"));
  assert.ok(!isLoopback("::"));
  assert.ok(!isLoopback("198.18.0.1"));
  assert.deepEqual(parseMetricsListen("127.0.0.1:9731"), { hostname: "127.0.0.1", port: 9731 });
  assert.deepEqual(parseMetricsListen("[::1]:9731"), { hostname: "::1", port: 9731 });
  assert.match(parseMetricsListen("0.0.0.0:9731") as string, /only loopback/);
  assert.match(parseMetricsListen("127.0.0.1") as string, /must be/);
  assert.match(parseMetricsListen("127.0.0.1:0") as string, /port must be/);
});

Deno.test("config: control.socket defaults from the interface; metrics.listen must be loopback", () => {
  const base = `[encryption]\npsk = "${"A".repeat(43)}"\n[node]\nname = "n"\nstate_file = "k"\n`;
  const def = parseClientConfig(base + `[tun]\ninterface = "mh7"\n`, "/etc/meshub/c.toml");
  assert.equal(def.control.socket, "/run/meshub/mh7.sock");
  assert.equal(def.metrics.listen, null);
  const set = parseClientConfig(
    base + `[control]\nsocket = "run/c.sock"\n[metrics]\nlisten = "127.0.0.1:9731"\n`,
    "/etc/meshub/c.toml",
  );
  assert.equal(set.control.socket, "/etc/meshub/run/c.sock");
  assert.deepEqual(set.metrics.listen, { hostname: "127.0.0.1", port: 9731 });
  assert.equal(parseClientConfig(base + `[control]\nsocket = ""\n`, "c.toml").control.socket, "");
  assert.throws(
    () => parseClientConfig(base + `[metrics]\nlisten = "198.18.0.1:9731"\n`, "c.toml"),
    /^ConfigError: c\.toml:7: metrics\.listen: only loopback addresses are allowed/,
  );
});

Deno.test("serveMetrics() serves /metrics on loopback; the hub's page and text", async () => {
  const s = hubStatus(
    {
      received: 10,
      challenges: 1,
      registrations: 5,
      joins: 2,
      leaves: 0,
      expiries: 0,
      memberMessages: 2,
      goneMessages: 0,
      sent: 9,
      sendErrors: 0,
      receiveErrors: 0,
      drops: { "invalid: short": 3 },
      networks: 1,
      members: 2,
      perNetwork: [{ network: "0a0b0c0d", members: 2 }],
    },
    ["198.18.0.1:3731"],
    12,
    0.5,
  );
  const server = serveMetrics({ hostname: "127.0.0.1", port: 0 }, () => renderHubMetrics(s));
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^meshub_hub_network_members\{network="0a0b0c0d"\} 2$/m);
    assert.match(text, /^meshub_hub_registrations_per_second 0\.5$/m);
    assert.match(text, /^meshub_hub_send_errors_total 0$/m);
    assert.match(text, /^meshub_hub_dropped_total\{reason="invalid: short"\} 3$/m);
    const missing = await fetch(`http://127.0.0.1:${server.port}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await server.close();
  }
  assert.match(formatHubStatus(s), /2 members in 1 networks, 0\.5 registrations\/s/);
});

Deno.test("clientStatus() lists the UDP socket's drops beside the mesh's, in JSON, text and metrics", () => {
  const net = new FakeNet({ seed: 7 });
  const hub = { hostname: "198.18.0.1", port: 3731 };
  new FakeHub(net, [hub], { keepaliveMs: 5_000 });
  const member = addMember(net, {
    psk: net.rng.bytes(32),
    hubs: [hub],
    timers: {
      rekeyAfterMs: 120_000,
      rejectAfterMs: 180_000,
      keepaliveMs: 5_000,
      hubKeepaliveMs: 5_000,
    },
    name: "a",
    host: net.host("198.18.3.10"),
  });
  const status = clientStatus(member.mesh, {
    interface: "meshub0",
    mtu: 1420,
    socketDrops: () => ({ "udp-send-buffer-full": 42 }),
  });
  assert.equal(status.drops["udp-send-buffer-full"], 42);
  assert.match(formatStatus(status), /udp-send-buffer-full 42/);
  assert.match(
    renderClientMetrics(status),
    /^meshub_dropped_packets_total\{reason="udp-send-buffer-full"\} 42$/m,
  );
  assert.equal(
    clientStatus(member.mesh, { interface: "meshub0", mtu: 1420 }).drops["udp-send-buffer-full"],
    undefined,
  );
});
