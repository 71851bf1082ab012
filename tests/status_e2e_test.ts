/**
 * End-to-end diagnostics in the netns lab (the demo topology: a hub, c1 public, c2 and c3 behind
 * NATs): `meshub status` and `meshub ping` against running clients, `meshub hub --status`, a
 * stopped member turning stale and then unreachable, and the kernel's own `ping` getting an
 * ICMPv6 error at once for it. c1 also has another VPN's tunnel interface (a TUN with an address):
 * no member may be offered that address as a candidate.
 */
import assert from "node:assert/strict";
import { Lab, missingTools } from "./lab/netns.ts";
import { buildDemoTopology, type ClientSite } from "./lab/topology.ts";
import {
  type ClientNode,
  controlSocketPath,
  meshubCommand,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";
import type { ClientStatus } from "../client/control.ts";
import type { HubStatus } from "../hub/control.ts";

const isRoot = Deno.build.os === "linux" && Deno.uid() === 0;
const missing = isRoot ? missingTools(["ip", "iptables", "ping"]) : [];

/** c1's address on another VPN's tunnel interface: never a candidate. */
const OTHER_VPN_ADDRESS = "198.19.77.1";

// Short keepalives, so a stopped member turns stale after ~7 s and its edge is down after ~19 s.
const TESTING = `
[testing]
keepalive_ms = 2000
hub_keepalive_ms = 2000
`;

Deno.test({
  name: "status e2e: status, ping, hub status; a stopped member turns stale, then unreachable",
  ignore: !isRoot || missing.length > 0,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-status-" });
  const meshub = (ns: string, ...args: string[]) =>
    lab.exec(ns, meshubCommand(...args), { timeoutMs: 60_000 });
  try {
    const topo = await buildDemoTopology(lab);
    const sites = ["c1", "c2", "c3"].map((n) => topo.clients[n]!) as ClientSite[];
    // Another VPN's interface on c1: a layer-3 tunnel, no link-layer address.
    for (
      const cmd of [
        ["ip", "tuntap", "add", "dev", "othervpn0", "mode", "tun"],
        ["ip", "addr", "add", OTHER_VPN_ADDRESS + "/24", "dev", "othervpn0"],
        ["ip", "link", "set", "othervpn0", "up"],
      ]
    ) await lab.exec(sites[0]!.ns, cmd, { check: true });
    const hubSocket = `${dir}/hub.sock`;
    await startHub(lab, topo.hub.ns, {
      addresses: [topo.hub.address],
      extraArgs: ["--keepalive", "2", "--control", hubSocket],
    });
    const options = {
      dir,
      psk: newPsk(),
      hubs: [`${topo.hub.address}:3731`],
      extraToml: TESTING,
      extraArgs: ["-v"],
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));
    for (const node of nodes) {
      await waitForEdges(node, nodes.filter((n) => n !== node).map((n) => n.name));
    }
    const [c1, , c3] = nodes as [ClientNode, ClientNode, ClientNode];
    const socketOf = (n: ClientNode) => controlSocketPath(dir, n.name);
    const status = async (n: ClientNode): Promise<ClientStatus> => {
      const r = await meshub(n.site.ns, "status", "--json", n.configPath);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };

    await t.step("meshub ping reports the path and RTT of every edge", async () => {
      for (const a of nodes) {
        for (const b of nodes) {
          if (a === b) continue;
          const r = await meshub(a.site.ns, "ping", "-c", "1", b.name, a.configPath);
          assert.equal(r.code, 0, `${a.name}→${b.name}: ${r.stdout}${r.stderr}`);
          const m = /pong from (\S+) via (\S+) \(([^)]+)\) in ([\d.]+) ms/.exec(r.stdout);
          assert.ok(m, r.stdout);
          assert.equal(m[1], b.name);
          assert.equal(m[2]!.replace(/:\d+$/, ""), b.site.publicAddress);
          assert.equal(m[3], "public IPv4");
          assert.ok(Number(m[4]) > 0 && Number(m[4]) < 500, `rtt ${m[4]}`);
        }
      }
      const unknown = await meshub(c1.site.ns, "ping", "-c", "1", "nobody", c1.configPath);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /no member "nobody"/);
    });

    await t.step("meshub status shows every member up with sane RTTs", async () => {
      // Some traffic first, so the counters have something to count.
      await pingPairs(lab, nodes, nodes);
      for (const n of nodes) {
        const s = await status(n);
        assert.equal(s.version, 1);
        assert.equal(s.node.name, n.name);
        assert.equal(s.node.port, n.port);
        assert.equal(s.node.addresses[0]!.replace(/\/\d+$/, ""), n.address6);
        assert.deepEqual(s.hubs.map((h) => h.state), ["registered"]);
        // One hub: c1 is seen at its own address; c2 and c3 behind a NAT of unknown mapping.
        const natOf = (name: string) => name === "c1" ? "none" : "nat";
        assert.equal(s.node.natKind, natOf(n.name));
        assert.equal(s.members.length, 2);
        for (const m of s.members) {
          const peer = nodes.find((x) => x.name === m.name)!;
          assert.equal(m.state, "up", `${n.name}→${m.name}`);
          assert.equal(m.natKind, natOf(m.name), `${n.name}→${m.name}`);
          assert.equal(m.path, "public IPv4");
          assert.equal(m.endpoint!.replace(/:\d+$/, ""), peer.site.publicAddress);
          assert.ok(m.rttMs !== null && m.rttMs > 0 && m.rttMs < 500, `rtt ${m.rttMs}`);
          assert.ok(m.lastHandshakeAgoMs !== null && m.lastHandshakeAgoMs < 120_000);
          assert.ok(m.tx.packets > 0 && m.rx.packets > 0 && m.tx.bytes > 0 && m.rx.bytes > 0);
          assert.ok(m.candidates.some((c) => c.result === "in use"), JSON.stringify(m));
          assert.ok(
            !m.candidates.some((c) => c.endpoint.startsWith(OTHER_VPN_ADDRESS + ":")),
            `another VPN's address offered as a candidate: ${JSON.stringify(m.candidates)}`,
          );
        }
      }
      const table = await meshub(c1.site.ns, "status", c1.configPath);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /MEMBER\s+ADDRESS\s+STATE\s+PATH/);
      assert.match(table.stdout, /c2\s+\S+\s+up\s+public IPv4/);
      assert.match(table.stdout, /udp \d+ .* NAT none$/m);
      assert.match(table.stdout, /c2\s+.*\s+nat\s+\S+ \S+ ago/);
      console.log(`\n--- meshub status (c1) ---\n${table.stdout}`);
    });

    await t.step("meshub hub --status counts members per network", async () => {
      const r = await meshub(topo.hub.ns, "hub", "--status", "--json", "--control", hubSocket);
      assert.equal(r.code, 0, r.stderr);
      const s: HubStatus = JSON.parse(r.stdout);
      assert.equal(s.networks, 1);
      assert.equal(s.members, 3);
      assert.deepEqual(s.perNetwork.map((n) => n.members), [3]);
      assert.ok(s.counters.registrations > 0);
      assert.ok(s.registrationsPerS > 0, `${s.registrationsPerS}`);
      const text = await meshub(topo.hub.ns, "hub", "--status", "--control", hubSocket);
      assert.match(text.stdout, /3 members in 1 networks/);
    });

    await t.step(
      "a stopped member turns stale, then unreachable; ping6 to it fails at once",
      async () => {
        const mark = c1.proc.lineCount;
        // SIGKILL: no LEAVE, no goodbye, like a crash or a pulled cable.
        c3.proc.kill("SIGKILL");
        await c3.proc.status;
        await c1.proc.waitForLine(/edge to c3 is stale/, { since: mark, timeoutMs: 20_000 });
        const stale = (await status(c1)).members.find((m) => m.name === "c3")!;
        assert.equal(stale.state, "stale");
        await c1.proc.waitForLine(/edge down: c3/, { since: mark, timeoutMs: 40_000 });
        const down = (await status(c1)).members.find((m) => m.name === "c3")!;
        assert.ok(["punching", "unreachable"].includes(down.state), down.state);

        const started = performance.now();
        const r = await lab.exec(c1.site.ns, ["ping", "-6", "-c", "1", "-W", "3", c3.address6]);
        const elapsedMs = performance.now() - started;
        const out = r.stdout + r.stderr;
        assert.notEqual(r.code, 0, out);
        assert.match(out, /Destination unreachable|Address unreachable/, out);
        assert.ok(elapsedMs < 1_000, `ping took ${Math.round(elapsedMs)} ms:\n${out}`);

        const after = (await status(c1)).members.find((m) => m.name === "c3")!;
        assert.ok((after.drops.unreachable ?? 0) >= 1, JSON.stringify(after.drops));
        // meshub ping says what it tried.
        const p = await meshub(c1.site.ns, "ping", "-c", "1", "-W", "1", "c3", c1.configPath);
        assert.equal(p.code, 1, p.stdout + p.stderr);
        assert.match(p.stdout, /no reply from c3 within .*no direct path exists/);
        assert.match(p.stdout, /tried:/);
        // The edge to c2 is unaffected.
        const ok = await lab.ping(c1.site.ns, nodes[1]!.address6, {
          count: 1,
          timeoutS: 2,
          v6: true,
        });
        assert.equal(ok.received, 1, ok.output);
      },
    );

    await t.step(
      "meshub status with no client running exits non-zero with a clear message",
      async () => {
        // c3 was killed: its socket file may still be there, nobody answers it.
        const r = await meshub(c3.site.ns, "status", c3.configPath);
        assert.equal(r.code, 3, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`meshub: no meshub client is running \\(control socket ${socketOf(c3)}: `),
        );
        const none = await meshub(c1.site.ns, "status", "--socket", `${dir}/nothing.sock`);
        assert.equal(none.code, 3);
        assert.match(none.stderr, /no meshub client is running .*no such socket/);
      },
    );

    await t.step(
      "a second client on the same control socket is refused before it starts",
      async () => {
        const r = await meshub(c1.site.ns, "client", c1.configPath);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, /another meshub process is running there/);
        assert.ok(!c1.proc.exited);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
