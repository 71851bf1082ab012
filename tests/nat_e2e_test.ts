/**
 * End-to-end NAT behaviour in network namespaces: two members behind one NAT that does not
 * hairpin meet over their LAN addresses; the matrix of NAT kinds (tests/lab/nat.ts) and which
 * pairs connect; natKind from two hubs; a NAT that forgets idle mappings after 30 s.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { type NatKind, natLan } from "./lab/nat.ts";
import { addPublicClient, type ClientSite, type DemoTopology } from "./lab/topology.ts";
import type { ClientStatus } from "../client/control.ts";
import {
  type ClientNode,
  meshubCommand,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "NAT e2e") !== null;

/** An internet segment with a hub at 198.18.0.1 and nothing else yet. */
async function internetWithHub(lab: Lab): Promise<DemoTopology> {
  const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:1::/64");
  const hubNs = await lab.namespace("hub");
  await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24", "fd00:0:1::1/64"]);
  return {
    internet,
    hub: { ns: hubNs, address: "198.18.0.1", address6: "fd00:0:1::1" },
    clients: {},
  };
}

Deno.test({
  name: "nat: two members behind one NAT without hairpinning connect over the LAN",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-lan-" });
  try {
    const topo = await internetWithHub(lab);
    await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address] });
    const lan = await natLan(lab, {
      name: "r7",
      internet: topo.internet,
      wanAddress: "198.18.0.7/24",
      lanBase: "198.19.7",
      clients: ["l1", "l2"],
    });
    const l1 = lan[0]!;
    const l2 = lan[1]!;
    const c1 = await addPublicClient(lab, topo, "c1", 11);
    const options = { dir, psk: newPsk(), hubs: [`${topo.hub.address}:3731`] };
    const nodes = [
      await startClient(lab, l1, options),
      await startClient(lab, l2, options),
      await startClient(lab, c1, options),
    ];
    const [n1, n2] = nodes;
    const [e12] = await waitForEdges(n1!, ["l2"]);
    const [e21] = await waitForEdges(n2!, ["l1"]);
    assert.equal(e12!.path, "LAN");
    assert.equal(e21!.path, "LAN");
    assert.match(e12!.endpoint, /^198\.19\.7\.12:\d+$/);
    assert.match(e21!.endpoint, /^198\.19\.7\.11:\d+$/);
    // The public member reaches both through the NAT's one public address.
    for (const e of await waitForEdges(nodes[2]!, ["l1", "l2"])) {
      assert.match(e.endpoint, /^198\.18\.0\.7:\d+$/);
    }
    const failed = (await pingPairs(lab, nodes, nodes)).filter((p) => p.result.received !== 3);
    assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** Members of the NAT matrix: one behind each kind of NAT, and one without NAT. */
const MATRIX: { name: string; kind: NatKind | "public" }[] = [
  { name: "pub", kind: "public" },
  { name: "eim", kind: "masquerade" },
  { name: "prc", kind: "port-restricted" },
  { name: "sym", kind: "symmetric" },
  { name: "seq", kind: "sequential" },
  { name: "fgt", kind: "forgetful" },
];

Deno.test({
  name: "nat: matrix of NAT kinds (which pairs connect), natKind from two hubs, idle mappings",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-natm-" });
  try {
    const topo = await internetWithHub(lab);
    // Two hubs (two processes, two ports): each member's NAT mapping is seen twice.
    await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address], port: 3731 });
    await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address], port: 3732 });
    const sites: ClientSite[] = [];
    for (const [i, m] of MATRIX.entries()) {
      if (m.kind === "public") sites.push(await addPublicClient(lab, topo, m.name, 11));
      else {
        const [site] = await natLan(lab, {
          name: `r${i + 2}`,
          internet: topo.internet,
          wanAddress: `198.18.0.${i + 2}/24`,
          lanBase: `198.19.${i + 2}`,
          clients: [m.name],
          kind: m.kind,
        });
        sites.push(site!);
      }
    }
    const options = {
      dir,
      psk: newPsk(),
      hubs: [`${topo.hub.address}:3731`, `${topo.hub.address}:3732`],
      extraArgs: ["-v"],
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) nodes.push(await startClient(lab, site, options));

    const connected = new Set<string>();
    /** Edge up, ms after discovery, by `row-column`. */
    const afterMs = new Map<string, number>();
    await t.step("which pairs connect (20 s of punching)", async () => {
      await Promise.all(nodes.map(async (n) => {
        await Promise.all(
          nodes.filter((m) => m !== n).map(async (m) => {
            try {
              const [e] = await waitForEdges(n, [m.name], { timeoutMs: 22_000 });
              connected.add(`${n.name}-${m.name}`);
              afterMs.set(`${n.name}-${m.name}`, e!.afterMs);
            } catch {
              // Not connected: reported in the matrix.
            }
          }),
        );
      }));
      const rows = nodes.map((a) =>
        `${a.name.padEnd(4)} ${
          nodes.map((b) =>
            a === b ? " -- " : connected.has(`${a.name}-${b.name}`) ? " ok " : " no "
          ).join("")
        }`
      );
      console.log(
        `NAT matrix (edge up as seen from the row):\n     ${
          nodes.map((n) => n.name.padEnd(4)).join("")
        }\n${rows.join("\n")}`,
      );
      console.log(
        `edge up, ms after discovery: ${
          [...afterMs].sort().map(([k, v]) => `${k.replace("-", "→")} ${v}`).join(", ")
        }`,
      );
      const ok = (a: string, b: string) => connected.has(`${a}-${b}`) && connected.has(`${b}-${a}`);
      const none = (a: string, b: string) =>
        !connected.has(`${a}-${b}`) && !connected.has(`${b}-${a}`);
      // Stable on Linux 6.x conntrack: members behind port-restricted NATs (input drop)
      // connect with each other and with the public member. Behind a symmetric NAT, a member
      // reaches the public one directly, and a member behind a port-restricted NAT through the
      // port spray from the latter (client/port_prediction.ts): a scan of the random allocator's
      // range (256 ports, all covered by the ≤ 1024-port spray) or a 48-port window above the
      // sequential allocator's last observed port.
      const expected = [
        ["pub", "eim"],
        ["pub", "prc"],
        ["pub", "sym"],
        ["pub", "seq"],
        ["pub", "fgt"],
        ["prc", "fgt"],
        ["prc", "sym"],
        ["fgt", "sym"],
        ["prc", "seq"],
        ["fgt", "seq"],
      ];
      for (const [a, b] of expected) assert.ok(ok(a!, b!), `${a}-${b} should connect`);
      // Two symmetric NATs: each side's mapping toward the other is new and unknown to both,
      // and with one socket a spray from either side only makes more unknown mappings on its
      // own NAT; not attempted (see port_prediction.ts), so never connects.
      assert.ok(none("sym", "seq"), "sym-seq cannot connect");
      // A plain MASQUERADE without the input drop is racy with the members behind filtering
      // NATs (when the peer's punch arrives first it is delivered locally, and its confirmed
      // conntrack entry makes the NAT remap the member's own packet: a tuple clash); the same
      // race decides eim-sym and eim-seq. Those pairs are reported, not asserted.
    });

    await t.step("who sprayed, and which edges came through a spray", async () => {
      const statuses = new Map<string, ClientStatus>();
      for (const name of ["prc", "fgt"]) {
        const n = nodes.find((x) => x.name === name)!;
        const r = await lab.exec(n.site.ns, meshubCommand("status", "--json", n.configPath), {
          timeoutMs: 30_000,
        });
        assert.equal(r.code, 0, r.stderr);
        const s = JSON.parse(r.stdout) as ClientStatus;
        assert.equal(s.node.natKind, "endpoint-independent");
        statuses.set(name, s);
      }
      let sprays = 0;
      for (
        const [from, to, mode] of [
          // Two random ports 16 or less apart (p ≈ 12% in 256) look sequential: a prediction
          // window first, then the scan.
          ["prc", "sym", "(?:scan|predict)"],
          ["fgt", "sym", "(?:scan|predict)"],
          ["prc", "seq", "predict"],
          ["fgt", "seq", "predict"],
        ] as const
      ) {
        const m = statuses.get(from)!.members.find((x) => x.name === to)!;
        assert.equal(m.natKind, "symmetric");
        // The random allocator may give the mapping toward us a port one of the hubs has seen
        // (p ≈ 2/256): then the plain punch to that hub-observed endpoint opens the edge within
        // the first second, before any spray is due, and nothing is sprayed. Only that way.
        const viaHubPort = m.candidates.some((c) =>
          c.source === "hub" && c.endpoint === m.endpoint && c.result === "in use"
        );
        if (m.spray === null && viaHubPort) {
          console.log(`${from}→${to}: no spray; the NAT mapped us to a hub-seen ${m.endpoint}`);
          continue;
        }
        assert.ok(
          m.spray !== null,
          `${from}→${to}: no spray, yet an edge at ${m.endpoint}: ${JSON.stringify(m.candidates)}`,
        );
        const n = nodes.find((x) => x.name === from)!;
        const { line } = await n.proc.waitForLine(
          new RegExp(
            `${to} is behind a symmetric NAT: spraying up to \\d+ ports \\S+ \\S+ \\(${mode} `,
          ),
          { timeoutMs: 1_000 },
        );
        console.log(`${from}: ${line.replace(/^.*?punch[^:]*: /, "")}`);
        // What the spray cost, and what `meshub status` says about the NAT.
        assert.ok(m.spray.sent > 0, JSON.stringify(m.spray));
        console.log(
          `${from}→${to}: natKind ${m.natKind} (${m.portAllocation}), spray ${
            JSON.stringify(m.spray)
          }, edge ${m.state} at ${m.endpoint}`,
        );
        sprays++;
      }
      // Both hub-port coincidences at once: p ≈ (2/256)², so a real spray is always seen.
      assert.ok(sprays >= 3, `only ${sprays} of the 4 pairs sprayed`);
      // The symmetric side never sprays (nothing it could predict).
      for (const name of ["sym", "seq"]) {
        const n = nodes.find((x) => x.name === name)!;
        assert.ok(
          !n.proc.lines.some((l) => l.text.includes("spraying")),
          `${name} should not spray`,
        );
      }
      for (const n of nodes) {
        for (const { text } of n.proc.lines) {
          if (!text.includes("came through the port spray")) continue;
          console.log(`${n.name}: ${text.replace(/^.*?punch[^:]*: /, "")}`);
        }
      }
    });

    await t.step("connected pairs ping", async () => {
      const pairs = (await pingPairs(lab, nodes, nodes))
        .filter((p) => connected.has(`${p.from.name}-${p.to.name}`))
        .filter((p) => p.result.received === 0);
      assert.deepEqual(pairs.map((p) => `${p.from.name}→${p.to.name}`), []);
    });

    await t.step("each member's natKind, from the two hubs' observations", async () => {
      const expected: Record<string, string> = {
        pub: "none",
        eim: "endpoint-independent",
        prc: "endpoint-independent",
        sym: "symmetric",
        seq: "symmetric",
        fgt: "endpoint-independent",
      };
      for (const n of nodes) {
        // Logged when it changes: with one hub's observation a NAT is just "nat"; the verdict
        // comes with the second ("none" already with the first).
        const { match } = await n.proc.waitForLine(
          new RegExp(`our NAT seems (${expected[n.name]}) \\(from (\\d) hub observations\\)`),
          { timeoutMs: 10_000 },
        );
        console.log(`natKind ${n.name}: ${match[1]} (${match[2]} observations)`);
      }
    });

    await t.step(
      "the forgetful NAT (30 s UDP timeout) keeps its edges over 35 s idle",
      async () => {
        await new Promise((r) => setTimeout(r, 35_000));
        const f = nodes.find((n) => n.name === "fgt")!;
        const others = nodes.filter((n) => n !== f && connected.has(`fgt-${n.name}`));
        const failed = (await pingPairs(lab, [f], others)).filter((p) => p.result.received === 0);
        assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
