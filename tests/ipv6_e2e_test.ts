/**
 * End-to-end over an IPv6-only underlay (hub and clients have only fd00::/8 addresses), over a
 * dual-stack one, and path choice on a dual-stack one (client/path_select.ts): a lossy family is
 * avoided, and a broken one is left within seconds.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import type { ClientSite } from "./lab/topology.ts";
import {
  type ClientNode,
  meshubCommand,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";
import type { ClientStatus } from "../client/control.ts";

const skip = labSkipReason(["ip", "ping"], "IPv6 underlay e2e") !== null;
/** WireGuard's usual MTU: the largest whose full-size datagrams fit a 1500-byte IPv6 underlay. */
const IPV6_UNDERLAY_MTU = 1420;

async function run(dualStack: boolean): Promise<void> {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-v6-" });
  try {
    const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:6::/64");
    const hubNs = await lab.namespace("hub");
    const v4 = (host: number) => dualStack ? [`198.18.0.${host}/24`] : [];
    await lab.attach(internet, hubNs, "eth0", ["fd00:0:6::1/64", ...v4(1)]);
    const sites: ClientSite[] = [];
    for (const [i, name] of ["a", "b", "c"].entries()) {
      const ns = await lab.namespace(name);
      const address6 = `fd00:0:6::${11 + i}`;
      await lab.attach(internet, ns, "eth0", [`${address6}/64`, ...v4(11 + i)]);
      sites.push({ name, ns, address: address6, address6, publicAddress: address6 });
    }
    await startHub(lab, hubNs, {
      addresses: ["fd00:0:6::1", ...(dualStack ? ["198.18.0.1"] : [])],
    });
    const hubs = ["[fd00:0:6::1]:3731", ...(dualStack ? ["198.18.0.1:3731"] : [])];
    const options = { dir, psk: newPsk(), hubs, ...(dualStack ? {} : { mtu: IPV6_UNDERLAY_MTU }) };
    const nodes = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));
    for (const n of nodes) {
      const edges = await waitForEdges(n, nodes.filter((m) => m !== n).map((m) => m.name));
      for (const e of edges) {
        if (!dualStack) {
          assert.match(e.endpoint, /^\[?fd00:0:6::1[123]\]?:\d+$/, `${n.name}→${e.peer}`);
        }
      }
      if (dualStack) {
        await n.proc.waitForLine(/registered with hub 198\.18\.0\.1:3731/);
        await n.proc.waitForLine(/registered with hub \[?fd00:0:6::1\]?:3731/);
      }
    }
    const failed = (await pingPairs(lab, nodes, nodes)).filter((p) => p.result.received !== 3);
    assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
    if (!dualStack) await fullSizeUnfragmented(lab, nodes[0]!, nodes[1]!);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** `Ip6FragCreates` of namespace `ns`: IPv6 packets it had to split. */
async function ip6FragCreates(lab: Lab, ns: string): Promise<number> {
  const r = await lab.exec(ns, ["cat", "/proc/net/snmp6"], { check: true });
  const m = /^Ip6FragCreates\s+(\d+)$/m.exec(r.stdout);
  assert.ok(m, "no Ip6FragCreates in /proc/net/snmp6");
  return Number(m[1]);
}

/**
 * Packets of the full TUN MTU ({@linkcode IPV6_UNDERLAY_MTU}) cross an IPv6 edge whole: padding
 * never takes a datagram past 1500 bytes, which the sending host would have to fragment (and many
 * paths drop IPv6 fragments).
 */
async function fullSizeUnfragmented(lab: Lab, a: ClientNode, b: ClientNode): Promise<void> {
  const before = await ip6FragCreates(lab, a.site.ns);
  // An ICMPv6 echo is 40 (IPv6) + 8 (ICMPv6) + payload; -M do: the inner packet is never split.
  const payload = String(IPV6_UNDERLAY_MTU - 48);
  const r = await lab.exec(a.site.ns, [
    "ping",
    ...["-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", payload, b.address6],
  ], { timeoutMs: 15_000 });
  assert.match(r.stdout, / 3 received/, `MTU-size pings ${a.name}→${b.name}: ${r.stdout}`);
  assert.equal(await ip6FragCreates(lab, a.site.ns) - before, 0, "underlay fragments sent");
}

Deno.test({
  name: "ipv6 underlay: IPv6-only hub and clients mesh; MTU-size packets cross unfragmented",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, () => run(false));

Deno.test({
  name: "ipv6 underlay: dual-stack clients register with the hub over both families and mesh",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, () => run(true));

/** The path `node` uses toward `peer`, and its measured paths, from `meshub status --json`. */
async function pathTo(
  lab: Lab,
  node: ClientNode,
  peer: string,
): Promise<{
  path: string | null;
  family: "IPv4" | "IPv6" | null;
  paths: ClientStatus["members"][number]["paths"];
}> {
  const r = await lab.exec(node.site.ns, meshubCommand("status", "--json", node.configPath), {
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, r.stderr);
  const m = (JSON.parse(r.stdout) as ClientStatus).members.find((x) => x.name === peer);
  // The label says where the endpoint came from (`LAN` when the member's advert lists it, as
  // these public addresses are); the family is what this test is about.
  const endpoint = m?.endpoint ?? null;
  const family = endpoint === null ? null : endpoint.startsWith("[") ? "IPv6" : "IPv4";
  return { path: m?.path ?? null, family, paths: m?.paths ?? [] };
}

/** Polls until both nodes use `family` toward each other; returns ms taken. Bounded. */
async function waitForFamily(
  lab: Lab,
  a: ClientNode,
  b: ClientNode,
  family: "IPv4" | "IPv6",
  timeoutMs: number,
): Promise<number> {
  const start = performance.now();
  let last = "";
  while (performance.now() - start < timeoutMs) {
    const [ab, ba] = [await pathTo(lab, a, b.name), await pathTo(lab, b, a.name)];
    if (ab.family === family && ba.family === family) return performance.now() - start;
    last = `${a.name}→${b.name} ${ab.family}, ${b.name}→${a.name} ${ba.family}; ` +
      JSON.stringify(ab.paths);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no ${family} path within ${timeoutMs} ms: ${last}`);
}

/** Drops UDP between `ns` and `peer` (both directions) in family `v6`, with `probability`. */
async function impair(
  lab: Lab,
  ns: string,
  peer: string,
  v6: boolean,
  probability: number | null,
  op: "-A" | "-D",
): Promise<void> {
  const tool = v6 ? "ip6tables" : "iptables";
  const match = probability === null
    ? []
    : ["-m", "statistic", "--mode", "random", "--probability", String(probability)];
  for (const [chain, dir] of [["INPUT", "-s"], ["OUTPUT", "-d"]] as const) {
    await lab.exec(
      ns,
      [tool, "-w", "5", op, chain, "-p", "udp", dir, peer, ...match, "-j", "DROP"],
      {
        check: true,
      },
    );
  }
}

Deno.test({
  name: "ipv6 underlay: dual-stack edges take the better family and move when it breaks",
  ignore: skip || labSkipReason(["ip6tables", "iptables"], "path choice e2e") !== null,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-path-" });
  try {
    const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:7::/64");
    const hubNs = await lab.namespace("hub");
    await lab.attach(internet, hubNs, "eth0", ["fd00:0:7::1/64", "198.18.0.1/24"]);
    const sites: ClientSite[] = [];
    for (const [i, name] of ["a", "b"].entries()) {
      const ns = await lab.namespace(name);
      await lab.attach(internet, ns, "eth0", [`fd00:0:7::${11 + i}/64`, `198.18.0.${11 + i}/24`]);
      sites.push({ name, ns, address: `198.18.0.${11 + i}`, publicAddress: `198.18.0.${11 + i}` });
    }
    await startHub(lab, hubNs, { addresses: ["fd00:0:7::1", "198.18.0.1"] });
    const options = {
      dir,
      psk: newPsk(),
      hubs: ["[fd00:0:7::1]:3731", "198.18.0.1:3731"],
      extraArgs: ["-v"],
    };
    const a = await startClient(lab, sites[0]!, options);
    const b = await startClient(lab, sites[1]!, options);
    await waitForEdges(a, ["b"]);
    await waitForEdges(b, ["a"]);

    await t.step("with 40% loss on IPv4 between them, both pick IPv6", async () => {
      const before = (await pathTo(lab, a, "b")).family;
      await impair(lab, a.site.ns, "198.18.0.12", false, 0.4, "-A");
      const ms = await waitForFamily(lab, a, b, "IPv6", 60_000);
      // Let the IPv4 measurement see the loss (its probes go every 2 s, its loss is over 16).
      await new Promise((r) => setTimeout(r, 8_000));
      const { family, paths } = await pathTo(lab, a, "b");
      console.log(
        `a→b was on ${before}; both on IPv6 after ${
          Math.round(ms)
        } ms; 8 s later a→b on ${family}, ` +
          `a's paths to b: ${JSON.stringify(paths)}`,
      );
      assert.equal(family, "IPv6", "stays on IPv6");
      const v4 = paths.find((p) => p.endpoint.startsWith("198.18.0.12:"));
      assert.ok(v4 !== undefined, "IPv4 is still measured (kept warm)");
      assert.ok(v4.sent >= 4 && v4.lossPct >= 20, JSON.stringify(v4));
    });

    await t.step("IPv6 dropped: the edge moves to IPv4 within seconds, no blackhole", async () => {
      await impair(lab, a.site.ns, "198.18.0.12", false, 0.4, "-D");
      // Continuous ping across the break: 60 × 0.2 s.
      const ping = lab.exec(a.site.ns, [
        "ping",
        "-6",
        "-n",
        "-c",
        "60",
        "-i",
        "0.2",
        "-W",
        "1",
        b.address6,
      ], { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1_000));
      const brokeAt = performance.now();
      await impair(lab, a.site.ns, "fd00:0:7::12", true, null, "-A");
      const ms = await waitForFamily(lab, a, b, "IPv4", 15_000);
      console.log(`IPv6 dropped: both on IPv4 after ${Math.round(ms)} ms`);
      assert.ok(ms < 10_000, `${ms} ms`);
      const out = (await ping).stdout;
      const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
      const lost = [];
      for (let s = 1; s <= 60; s++) if (!seqs.includes(s)) lost.push(s);
      const gapS = lost.length === 0 ? 0 : (lost[lost.length - 1]! - lost[0]! + 1) * 0.2;
      console.log(
        `ping across the break: ${seqs.length}/60 answered; lost ${JSON.stringify(lost)} (gap ≈ ${
          gapS.toFixed(1)
        } s, ${Math.round(performance.now() - brokeAt)} ms of run)`,
      );
      // Everything after the move arrives: the last 20 (4 s) are all answered.
      for (let s = 41; s <= 60; s++) assert.ok(seqs.includes(s), `seq ${s} lost: ${out}`);
      assert.ok(gapS <= 8, `gap ${gapS} s`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
