/**
 * End-to-end hostile-hub proof and CA mode, in network namespaces with real meshub clients:
 *
 * - a CA made with `meshub ca init`, node certificates with `meshub cert sign --config`;
 * - three CA-mode clients (no PSK; c2 and c3 behind NATs) registered with a hostile hub
 *   (`fixtures/hostile_hub_server.ts`: replays, forgeries, endpoints rewritten to an attacker
 *   namespace, punch floods, every byte recorded) and an honest `meshub hub`;
 * - tcpdump on the hub's and the attacker's interfaces while a marker crosses the VPN;
 * - then the CA revokes c3; c1 restarts with the revocation list, c2 learns it from c1's advert
 *   and drops c3 within a minute.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { buildDemoTopology, type ClientSite } from "./lab/topology.ts";
import { type ClientNode, controlSocketPath, meshubCommand, waitForEdges } from "./lab/meshub.ts";
import { containsBytes } from "./hostile_hub.ts";
import { dearmor, decodeCertificate, fingerprintOf, toHex } from "../protocol/cert.ts";
import { parseIPv6 } from "../protocol/ip_address.ts";
import { decodeBase64 } from "../util/base64.ts";

const skip = labSkipReason(["ip", "iptables", "ping", "tcpdump"], "hostile hub e2e") !== null;
const HUB_SERVER = new URL("./fixtures/hostile_hub_server.ts", import.meta.url).pathname;
const REPO = new URL("../", import.meta.url).pathname;
const ATTACKER_IP = "198.18.0.66";
const ATTACKER = `${ATTACKER_IP}:6666`;
/** 16 bytes, as `ping -p` repeats it through the echo payload. */
const MARKER_HEX = "4d41524b45522d6d65736875622d3f21"; // "MARKER-meshub-?!"
const CONTROL_HEX = "434f4e54524f4c2d756e6465726c6179"; // "CONTROL-underlay"

const TESTING = `
[testing]
rekey_after_ms = 6000
reject_after_ms = 18000
keepalive_ms = 2000
hub_keepalive_ms = 2000
`;

async function host(args: string[]): Promise<string> {
  const cmd = meshubCommand(...args);
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`meshub ${args.join(" ")}: ${text}`);
  return text;
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

Deno.test({
  name: "hostile hub e2e (CA mode): no forged member, no edge at the attacker, the marker never " +
    "captured, the hub holds no identity; a revoked member is dropped",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-hostile-" });
  try {
    const topo = await buildDemoTopology(lab);
    const sites = ["c1", "c2", "c3"].map((n) => topo.clients[n]!) as ClientSite[];
    const attackerNs = await lab.namespace("atk");
    await lab.attach(topo.internet, attackerNs, "eth0", [`${ATTACKER_IP}/24`]);

    // Captures first, so they see everything.
    const dumps = [
      { ns: topo.hub.ns, file: `${dir}/hub.pcap` },
      { ns: attackerNs, file: `${dir}/attacker.pcap` },
    ].map((d) => ({
      ...d,
      proc: lab.spawn(d.ns, [
        "tcpdump",
        "-i",
        "eth0",
        "-n",
        "-U",
        "-s",
        "0",
        // The hostile hub floods its interface: a small capture buffer loses packets under load.
        "-B",
        "16384",
        "-w",
        d.file,
      ]),
    }));
    for (const d of dumps) await d.proc.waitForLine(/listening on/, { timeoutMs: 30_000 });

    const hostile = lab.spawn(topo.hub.ns, [
      Deno.execPath(),
      "run",
      "--quiet",
      "--config",
      `${REPO}deno.json`,
      "--unstable-net",
      "--allow-net",
      "--allow-write",
      HUB_SERVER,
      topo.hub.address,
      "3731",
      ATTACKER,
      `${dir}/hub.record`,
    ]);
    await hostile.waitForLine(/listening/, { timeoutMs: 60_000 });
    const honest = lab.spawn(
      topo.hub.ns,
      meshubCommand("hub", "-a", topo.hub.address, "-p", "3732", "--keepalive", "2"),
    );
    await honest.waitForLine(/listening on/i, { timeoutMs: 60_000 });

    // The CA and one certificate per client, with the real CLI.
    await host(["ca", "init", "--out", `${dir}/ca`, "--name", "hostile-test-ca"]);
    const names = new Map(sites.map((s) => [s.name, `hostile-${s.name}-member`]));
    const addresses = new Map(sites.map((s, i) => [s.name, `fd5e:c0de:42::${i + 1}`]));
    const configFor = (site: ClientSite, extra = "") =>
      [
        "[ca]",
        `certificate = "${dir}/ca/ca.crt"`,
        extra,
        "[hub]",
        `addresses = ["${topo.hub.address}:3731", "${topo.hub.address}:3732"]`,
        "[node]",
        `name = "${names.get(site.name)}"`,
        `state_file = "${dir}/${site.name}.key"`,
        `certificate = "${dir}/${site.name}.crt"`,
        "[tun]",
        `interface = "meshub0"`,
        // Every lab client has its own control socket (they share one file system).
        "[control]",
        `socket = "${controlSocketPath(dir, site.name)}"`,
        TESTING,
      ].join("\n");
    const publicKeys: Uint8Array[] = [];
    for (const site of sites) {
      const path = `${dir}/${site.name}.toml`;
      await Deno.writeTextFile(path, configFor(site));
      publicKeys.push(decodeBase64((await host(["pubkey", path])).trim())!);
      await host([
        "cert",
        "sign",
        "--ca",
        `${dir}/ca`,
        "--config",
        path,
        "--ipv6",
        `${addresses.get(site.name)}/48`,
        "--out",
        `${dir}/${site.name}.crt`,
      ]);
    }
    const caCert = decodeCertificate(
      dearmor("CERTIFICATE", await Deno.readFile(`${dir}/ca/ca.crt`)) as Uint8Array,
    ).cert!;

    const start = async (site: ClientSite): Promise<ClientNode> => {
      const configPath = `${dir}/${site.name}.toml`;
      const startedAt = performance.now();
      const proc = lab.spawn(site.ns, meshubCommand("client", configPath, "-v"));
      const { match } = await proc.waitForLine(/node \S+: ([0-9a-f:]+)\/\d+, udp port (\d+)/, {
        timeoutMs: 60_000,
      });
      return {
        name: names.get(site.name)!,
        site,
        proc,
        address6: match[1]!,
        port: Number(match[2]),
        configPath,
        startedAt,
      };
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) nodes.push(await start(site));

    await t.step(
      "the CA-mode mesh forms under attack, every edge at the peer's own address",
      async () => {
        for (const node of nodes) {
          const edges = await waitForEdges(
            node,
            nodes.filter((n) => n !== node).map((n) => n.name),
            { timeoutMs: 60_000 },
          );
          for (const e of edges) {
            const ip = e.endpoint.replace(/:\d+$/, "");
            const peer = nodes.find((n) => n.name === e.peer)!;
            assert.equal(ip, peer.site.publicAddress, `${node.name}→${e.peer} at ${e.endpoint}`);
          }
        }
        assert.deepEqual(nodes.map((n) => n.address6), [...addresses.values()]);
      },
    );

    await t.step("the marker crosses the VPN while the hub attacks", async () => {
      for (const from of nodes) {
        for (const to of nodes) {
          if (from === to) continue;
          const r = await lab.exec(from.site.ns, [
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "200",
            "-p",
            MARKER_HEX,
            to.address6,
          ]);
          assert.equal(r.code, 0, `${from.name}→${to.name}: ${r.stdout}`);
        }
      }
      // Positive control: the same kind of packet in clear on the underlay is captured.
      // Three echoes each: one lost from a capture under the flood must not fail the control.
      for (const target of [topo.hub.address, ATTACKER_IP]) {
        await lab.exec(sites[0]!.ns, [
          "ping",
          "-c",
          "3",
          "-i",
          "0.2",
          "-W",
          "1",
          "-p",
          CONTROL_HEX,
          target,
        ]);
      }
      // Let the attacks run for a while longer.
      const mark = hostile.lineCount;
      await hostile.waitForLine(/attacks .*"rewritten"/, { since: mark, timeoutMs: 30_000 });
    });

    await t.step("nothing the hub or the attacker captured or stored holds a secret", async () => {
      for (const d of dumps) await d.proc.stop();
      await hostile.stop(5_000);
      const record = (await Deno.readTextFile(`${dir}/hub.record`)).trim().split("\n")
        .map((l) => decodeBase64(l)!);
      assert.ok(record.length > 100, `the hub recorded only ${record.length} items`);
      const hubPcap = await Deno.readFile(`${dir}/hub.pcap`);
      const attackerPcap = await Deno.readFile(`${dir}/attacker.pcap`);
      assert.ok(containsBytes(hubPcap, hexBytes(CONTROL_HEX)), "the hub capture misses packets");
      assert.ok(containsBytes(attackerPcap, hexBytes(CONTROL_HEX)), "attacker capture broken");
      // Members did punch the rewritten endpoints (the attack reached them) and nothing more.
      assert.ok(attackerPcap.length > 5_000, `attacker saw only ${attackerPcap.length} bytes`);
      const secrets: [string, Uint8Array][] = [
        ["the marker", hexBytes(MARKER_HEX)],
        ["the CA key", caCert.publicKey],
      ];
      nodes.forEach((n, i) => {
        secrets.push([`${n.name}'s name`, new TextEncoder().encode(n.name)]);
        secrets.push([`${n.name}'s VPN address`, parseIPv6(n.address6)!]);
        secrets.push([`${n.name}'s public key`, publicKeys[i]!]);
      });
      for (const [what, secret] of secrets) {
        assert.ok(!containsBytes(hubPcap, secret), `the hub's capture holds ${what}`);
        assert.ok(!containsBytes(attackerPcap, secret), `the attacker's capture holds ${what}`);
        for (const r of record) assert.ok(!containsBytes(r, secret), `the hub stored ${what}`);
      }
      // No client accepted anything but the real members, nor moved an edge to the attacker.
      for (const n of nodes) {
        assert.ok(!n.proc.exited, `${n.name} crashed`);
        const lines = n.proc.lines.map((l) => l.text).join("\n");
        assert.doesNotMatch(
          lines,
          new RegExp(`(edge up|moved).*${ATTACKER_IP.replaceAll(".", "\\.")}`),
        );
        const discovered = [...lines.matchAll(/member (\S+) \(/g)].map((m) => m[1]);
        for (const d of discovered) assert.ok([...names.values()].includes(d!), `${n.name}: ${d}`);
      }
    });

    await t.step(
      "c3 is revoked: c1 restarts with the list, c2 learns it from c1 and drops c3",
      async () => {
        const c3Cert = decodeCertificate(
          dearmor("CERTIFICATE", await Deno.readFile(`${dir}/c3.crt`)) as Uint8Array,
        ).cert!;
        const fp = toHex(fingerprintOf(c3Cert));
        await host(["ca", "revoke", "--ca", `${dir}/ca`, fp, "--out", `${dir}/crl`]);
        const [c1, c2, c3] = nodes as [ClientNode, ClientNode, ClientNode];
        await c1.proc.stop();
        await Deno.writeTextFile(
          c1.configPath,
          configFor(c1.site, `revocation_list = "${dir}/crl"`),
        );
        const mark = c2.proc.lineCount;
        const revokedAt = performance.now();
        const again = await start(c1.site);
        nodes[0] = again;
        await waitForEdges(again, [c2.name], { timeoutMs: 60_000 });
        await c2.proc.waitForLine(new RegExp(`member ${c3.name} dropped: revoked`), {
          since: mark,
          timeoutMs: 60_000,
        });
        assert.ok(performance.now() - revokedAt < 60_000);
        // c3 is out: no edge from the restarted c1, no traffic from c2 either way.
        assert.ok(!again.proc.lines.some((l) => l.text.includes(`edge up: ${c3.name}`)));
        const r = await lab.exec(c2.site.ns, ["ping", "-6", "-c", "2", "-W", "1", c3.address6]);
        assert.notEqual(r.code, 0, "c2 still reaches the revoked c3");
        const ok = await lab.exec(c2.site.ns, ["ping", "-6", "-c", "2", "-W", "2", again.address6]);
        assert.equal(ok.code, 0, "c1 and c2 lost each other");
        assert.ok(!honest.exited);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
