/**
 * End-to-end, in network namespaces: clients that drop root after start-up (`node.user`) keep
 * working across rekeys and roaming; a client that moves (its NAT gets a new public address, it
 * moves behind another NAT, a public client changes address) has every edge back within 5 s,
 * and nothing is blackholed afterwards. The hub runs with its default 20 s keepalive, so the
 * recovery comes from the client's own detection, not from the next registration.
 */
import assert from "node:assert/strict";
import { hostOf, Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { buildDemoTopology, type ClientSite } from "./lab/topology.ts";
import {
  type ClientNode,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";
import { formatRecovery, measureRecovery } from "./lab/recovery.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "roaming e2e") !== null;

const TESTING = `
[testing]
rekey_after_ms = 4000
reject_after_ms = 12000
keepalive_ms = 2000
`;
const RECOVERY_LIMIT_MS = 5_000;

/**
 * uid, gid and effective capabilities of every thread of `pid`. Read through grep(1): Deno
 * demands --allow-all for another process's /proc entries, and the suite runs without it.
 */
async function threadCredentials(pid: number): Promise<string[]> {
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", `grep -H -E '^(Uid|Gid|Groups|CapEff):' /proc/${pid}/task/*/status`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const byThread = new Map<string, Map<string, string>>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const m = /^\/proc\/\d+\/task\/(\d+)\/status:(\w+):[ \t]*(.*)$/.exec(line);
    if (!m) continue;
    const fields = byThread.get(m[1]!) ?? new Map<string, string>();
    fields.set(m[2]!, m[3]!);
    byThread.set(m[1]!, fields);
  }
  return [...byThread.values()].map((f) =>
    `uid ${f.get("Uid")} gid ${f.get("Gid")} groups ${f.get("Groups")} cap ${f.get("CapEff")}`
  );
}

Deno.test({
  name: "roaming: unprivileged clients recover every edge within 5 s when one moves",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-roam-" });
  try {
    const topo = await buildDemoTopology(lab);
    const sites = ["c1", "c2", "c3"].map((n) => topo.clients[n]!) as ClientSite[];
    await startHub(lab, topo.hub.ns, { addresses: [topo.hub.address] });
    const options = {
      dir,
      psk: newPsk(),
      hubs: [`${topo.hub.address}:3731`],
      extraToml: `${TESTING}\n`,
      extraArgs: ["-v"],
    };
    const nodes: ClientNode[] = [];
    for (const site of sites) {
      nodes.push(
        await startClient(lab, site, {
          ...options,
          nodeToml: 'user = "nobody"\ngroup = "nogroup"',
        }),
      );
    }

    await t.step(
      "each client dropped root: every thread runs as nobody, no capabilities",
      async () => {
        for (const n of nodes) {
          await n.proc.waitForLine(/dropped privileges to user nobody \(65534\), group nogroup/);
          const creds = await threadCredentials(n.proc.pid);
          assert.ok(creds.length > 1, `${n.name}: expected several threads`);
          for (const c of creds) {
            assert.match(
              c,
              /^uid 65534\s+65534\s+65534\s+65534 gid 65534\s+65534\s+65534\s+65534 groups\s+cap 0+$/,
              `${n.name}: ${c}`,
            );
          }
        }
      },
    );

    await t.step("the mesh forms and survives rekeys without root", async () => {
      for (const n of nodes) await waitForEdges(n, nodes.filter((m) => m !== n).map((m) => m.name));
      const marks = nodes.map((n) => n.proc.lineCount);
      await Promise.all(
        nodes.map((n, i) =>
          n.proc.waitForLine(/handshake with \S+ (done|answered)/, {
            since: marks[i],
            timeoutMs: 20_000,
          })
        ),
      );
      const failed = (await pingPairs(lab, nodes, nodes)).filter((p) => p.result.received !== 3);
      assert.deepEqual(failed.map((p) => `${p.from.name}→${p.to.name}`), []);
    });

    const recover = async (what: string, move: () => Promise<void>) => {
      const since = Date.now();
      await move();
      const rs = await measureRecovery(lab, nodes, { sinceEpochMs: since, count: 50 });
      console.log(`roaming (${what}): ${formatRecovery(rs)}`);
      if (rs.some((r) => r.recoveryMs === null || r.recoveryMs > RECOVERY_LIMIT_MS)) {
        for (const n of nodes) console.log(`--- ${n.name}\n${n.proc.tail(40)}`);
      }
      for (const r of rs) {
        assert.ok(
          r.recoveryMs !== null && r.recoveryMs <= RECOVERY_LIMIT_MS,
          `${what}: ${formatRecovery([r])}`,
        );
        assert.equal(
          r.tailReceived,
          10,
          `${what}: blackhole after recovery: ${formatRecovery([r])}`,
        );
      }
      for (const n of nodes) assert.ok(!n.proc.exited, `${n.name} exited:\n${n.proc.tail()}`);
    };

    await t.step("c2's NAT gets a new public address (conntrack flushed with it)", async () => {
      const r2 = topo.clients.c2!.router!;
      await recover("NAT WAN address change", async () => {
        // Deleting the address also drops the conntrack entries MASQUERADE made with it. (Delete
        // first: removing a primary address removes its secondaries too.)
        await lab.exec(r2.ns, ["ip", "addr", "del", "198.18.0.2/24", "dev", "wan"], {
          check: true,
        });
        await lab.exec(r2.ns, ["ip", "addr", "add", "198.18.0.20/24", "dev", "wan"], {
          check: true,
        });
      });
      await nodes[0]!.proc.waitForLine(/edge to c2 moved to 198\.18\.0\.20:/);
      await nodes[2]!.proc.waitForLine(/edge to c2 moved to 198\.18\.0\.20:/);
    });

    await t.step("c3 moves behind another NAT (new LAN address, new public address)", async () => {
      const c3 = topo.clients.c3!;
      await recover("move behind another NAT", async () => {
        await lab.exec(c3.ns, ["ip", "link", "del", "eth0"], { check: true });
        await lab.natRouter({
          name: "r6",
          internet: topo.internet,
          wanAddress: "198.18.0.6/24",
          client: c3.ns,
          routerLanAddress: "198.19.6.1/24",
          clientAddress: "198.19.6.10/24",
          clientIf: "eth1",
        });
      });
      await nodes[0]!.proc.waitForLine(/edge to c3 moved to 198\.18\.0\.6:/);
    });

    await t.step("public client c1 changes its own address", async () => {
      const c1 = topo.clients.c1!;
      await recover("public address change", async () => {
        await lab.exec(c1.ns, ["ip", "addr", "del", `${hostOf(c1.address)}/24`, "dev", "eth0"], {
          check: true,
        });
        await lab.exec(c1.ns, ["ip", "addr", "add", "198.18.0.12/24", "dev", "eth0"], {
          check: true,
        });
      });
      await nodes[1]!.proc.waitForLine(/edge to c1 moved to 198\.18\.0\.12:/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
