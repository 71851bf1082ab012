/**
 * End-to-end, in network namespaces: two hubs, clients configured with both. Hub A dies: the
 * existing edges stay up, and a new client behind a NAT gets edges to everyone through hub B
 * alone. Hub A restarts with empty state: within one hub keepalive interval it knows every live
 * member again (its own log), and a client that only knows hub A gets edges to everyone.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import { addNatClient, addPublicClient, type DemoTopology } from "./lab/topology.ts";
import {
  type ClientNode,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "iptables", "ping"], "hub failover e2e") !== null;

/** The hubs' keepalive (`--keepalive`), which the clients adopt as their re-registration interval. */
const HUB_KEEPALIVE_S = 5;
/** Scheduling slack on top of one keepalive interval: the client's 200 ms tick, process wake-ups. */
const SLACK_MS = 1_000;
const TESTING = `
[testing]
keepalive_ms = 3000
hub_keepalive_ms = ${HUB_KEEPALIVE_S * 1000}
`;

/** The pairs that got no reply at all, e.g. `c1→c2` (empty when every pair got one). */
async function silentPairs(
  lab: Lab,
  from: readonly ClientNode[],
  to: readonly ClientNode[],
): Promise<string[]> {
  return (await pingPairs(lab, from, to))
    .filter((p) => p.result.received === 0)
    .map((p) => `${p.from.name}→${p.to.name}`);
}

/** Lines matching `re` that `node` printed from line `since` on. */
function linesSince(node: ClientNode, since: number, re: RegExp): string[] {
  const skipped = node.proc.lineCount - node.proc.lines.length;
  return node.proc.lines.slice(Math.max(0, since - skipped)).map((l) => l.text).filter((t) =>
    re.test(t)
  );
}

Deno.test({
  name: "hub failover: any one hub is enough; a restarted hub is whole within one keepalive",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-failover-" });
  try {
    const internet = await lab.segment("inet", "198.18.0.0/24");
    const hubA = await lab.namespace("huba");
    const hubB = await lab.namespace("hubb");
    await lab.attach(internet, hubA, "eth0", "198.18.0.1/24");
    await lab.attach(internet, hubB, "eth0", "198.18.0.250/24");
    const topo: DemoTopology = {
      internet,
      hub: { ns: hubA, address: "198.18.0.1", address6: "" },
      clients: {},
    };
    const hubArgs = { extraArgs: ["--keepalive", String(HUB_KEEPALIVE_S)] };
    let procA = await startHub(lab, hubA, { addresses: ["198.18.0.1"], ...hubArgs });
    const procB = await startHub(lab, hubB, { addresses: ["198.18.0.250"], ...hubArgs });
    const endpointA = "198.18.0.1:3731";
    const endpointB = "198.18.0.250:3731";
    const options = { dir, psk: newPsk(), hubs: [endpointA, endpointB], extraToml: TESTING };
    const nodes: ClientNode[] = [
      await startClient(lab, await addPublicClient(lab, topo, "c1", 11), options),
      await startClient(lab, await addNatClient(lab, topo, "c2", { site: 2 }), options),
      await startClient(lab, await addNatClient(lab, topo, "c3", { site: 3 }), options),
    ];
    const names = (list: ClientNode[]) => list.map((n) => n.name);

    await t.step("the mesh forms; both hubs know all three members", async () => {
      for (const n of nodes) await waitForEdges(n, names(nodes.filter((m) => m !== n)));
      await procA.waitForLine(/\(3 members\)/);
      await procB.waitForLine(/\(3 members\)/);
    });

    let marks: number[] = [];
    await t.step(
      "hub A dies: edges stay up, a new client behind a NAT joins via hub B",
      async () => {
        marks = nodes.map((n) => n.proc.lineCount);
        procA.kill("SIGKILL");
        await procA.status;
        const c4 = await startClient(
          lab,
          await addNatClient(lab, topo, "c4", { site: 4 }),
          options,
        );
        const old = [...nodes];
        nodes.push(c4);
        await waitForEdges(c4, names(old), { timeoutMs: 30_000 });
        for (const n of old) await waitForEdges(n, ["c4"], { timeoutMs: 30_000 });
        // Hub B alone: c4 never heard of hub A.
        assert.deepEqual(linesSince(c4, 0, /registered with hub 198\.18\.0\.1:/), []);
        // The old members notice hub A is gone (two keepalives + 5 s of silence) and go on.
        await Promise.all(
          old.map((n, i) =>
            n.proc.waitForLine(/hub 198\.18\.0\.1:3731 stopped answering/, {
              since: marks[i],
              timeoutMs: 3 * HUB_KEEPALIVE_S * 1000 + 10_000,
            })
          ),
        );
        assert.deepEqual(await silentPairs(lab, nodes, nodes), []);
        for (const [i, n] of old.entries()) {
          assert.deepEqual(
            linesSince(n, marks[i]!, /edge down/),
            [],
            `${n.name}: an edge went down`,
          );
        }
      },
    );

    /** Restarts hub A and returns how long after it listened it knew all 4 members. */
    const restartA = async (what: string) => {
      procA = await startHub(lab, hubA, { addresses: ["198.18.0.1"], ...hubArgs });
      const listeningAt = performance.now();
      const { line } = await procA.waitForLine(/\(4 members\)/, { timeoutMs: 30_000 });
      const wholeMs = performance.now() - listeningAt;
      console.log(`hub A ${what}: knew all 4 members ${Math.round(wholeMs)} ms after listening`);
      assert.ok(
        wholeMs <= HUB_KEEPALIVE_S * 1000 + SLACK_MS,
        `restarted hub took ${Math.round(wholeMs)} ms to know every member: ${line}`,
      );
    };

    await t.step(
      `hub A restarts empty, after the clients gave it up: whole within ${HUB_KEEPALIVE_S} s`,
      // The clients retry a lost hub every 2 s (HUB_RETRY_MS).
      () => restartA("restarted after being declared lost"),
    );

    await t.step(
      `hub A crashes and restarts at once: whole within one keepalive (${HUB_KEEPALIVE_S} s)`,
      async () => {
        // The clients still count themselves registered: they come back at their next
        // keepalive with the old hub's token, get a CHALLENGE and register anew.
        await procA.waitForLine(/\(4 members\)/);
        procA.kill("SIGKILL");
        await procA.status;
        await restartA("restarted at once");
        for (const [i, n] of nodes.slice(0, 3).entries()) {
          assert.deepEqual(
            linesSince(n, marks[i]!, /hub 198\.18\.0\.1:3731 stopped answering/)
              .length,
            1,
            `${n.name} should have lost hub A only once`,
          );
        }
      },
    );

    await t.step("a client that only knows hub A gets edges to everyone", async () => {
      const c5 = await startClient(lab, await addNatClient(lab, topo, "c5", { site: 5 }), {
        ...options,
        hubs: [endpointA],
      });
      const old = [...nodes];
      nodes.push(c5);
      await waitForEdges(c5, names(old), { timeoutMs: 30_000 });
      for (const n of old) await waitForEdges(n, ["c5"], { timeoutMs: 30_000 });
      assert.deepEqual(await silentPairs(lab, [c5], old), []);
      assert.deepEqual(await silentPairs(lab, old, [c5]), []);
      assert.ok(!procB.exited, "hub B exited");
      for (const [i, n] of old.slice(0, 3).entries()) {
        assert.deepEqual(linesSince(n, marks[i]!, /edge down/), [], `${n.name}: an edge went down`);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
