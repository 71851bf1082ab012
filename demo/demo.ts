/**
 * `deno task demo` (root): a meshub network on this machine, in network namespaces.
 *
 * A hub on an "internet" segment, client c1 directly on it, c2 and c3 each behind its own NAT
 * router (iptables MASQUERADE). Real meshub processes; the demo shows the mesh forming, pings
 * every pair over the VPN's IPv6 addresses, kills the hub, pings again, and cleans up (also on
 * Ctrl-C).
 *
 * @module
 */
import { Lab } from "../tests/lab/netns.ts";
import { installMissingTools } from "../tests/lab/packages.ts";
import { buildDemoTopology } from "../tests/lab/topology.ts";
import {
  type ClientNode,
  newPsk,
  pingPairs,
  startClient,
  startHub,
  waitForEdges,
} from "../tests/lab/meshub.ts";

const bold = (s: string) => Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s;
const say = (s = "") => console.log(s);

async function requireTools(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "the demo needs Linux network namespaces";
  if (Deno.uid() !== 0) {
    return "the demo needs root (network namespaces, TUN devices): sudo deno task demo";
  }
  const missing = await installMissingTools(["ip", "iptables", "ping"], (l) => say(`  ${l}`));
  if (missing.length > 0) {
    return `the demo needs ${missing.join(", ")} (Debian: apt-get install iproute2 iptables ` +
      "iputils-ping)";
  }
  return null;
}

async function pingAll(lab: Lab, nodes: ClientNode[]): Promise<number> {
  let failures = 0;
  for (const { from, to, result: r } of await pingPairs(lab, nodes, nodes)) {
    const ok = r.received === r.transmitted;
    if (!ok) failures++;
    const rtt = r.avgRttMs == null ? "" : `  rtt avg ${r.avgRttMs.toFixed(2)} ms`;
    const mark = ok ? "" : "  ✗";
    say(
      `  ${from.name} → ${to.name}  ${
        to.address6.padEnd(38)
      } ${r.received}/${r.transmitted} replies${rtt}${mark}`,
    );
  }
  return failures;
}

async function main(): Promise<number> {
  const problem = await requireTools();
  if (problem) {
    console.error(`meshub demo: ${problem}`);
    return 2;
  }
  await using lab = new Lab({ handleSignals: true });
  const dir = await Deno.makeTempDir({ prefix: "meshub-demo-" });
  try {
    say(bold(`meshub demo (lab namespaces ${lab.prefix}-*)`));
    const topo = await buildDemoTopology(lab);
    const { c1, c2, c3 } = topo.clients as Record<string, NonNullable<typeof topo.clients[string]>>;
    say(`  "internet" 198.18.0.0/24: hub ${topo.hub.address}, c1 ${c1!.address} (public)`);
    say(
      `  c2 ${c2!.address} behind NAT ${c2!.publicAddress}, c3 ${c3!.address} behind NAT ${
        c3!.publicAddress
      }`,
    );

    const psk = newPsk();
    say("  network PSK generated (as `meshub genkey` does); the hub never sees it");
    const hub = await startHub(lab, topo.hub.ns, {
      addresses: [topo.hub.address, topo.hub.address6],
    });
    say(`  hub listening on ${topo.hub.address}:3731 and [${topo.hub.address6}]:3731`);

    const hubs = [`${topo.hub.address}:3731`];
    const nodes: ClientNode[] = [];
    for (const site of [c1!, c2!, c3!]) {
      const node = await startClient(lab, site, { dir, psk, hubs });
      nodes.push(node);
      say(`  ${node.name} started: VPN address ${node.address6}, udp port ${node.port}`);
    }

    say();
    say(bold("mesh formation (every client reports an edge to every other):"));
    for (const node of nodes) {
      const others = nodes.filter((n) => n !== node).map((n) => n.name);
      const edges = await waitForEdges(node, others);
      const allUpS = (performance.now() - node.startedAt) / 1000;
      for (const e of edges) {
        const upS = (e.afterMs / 1000).toFixed(2);
        say(
          `  ${node.name} ↔ ${e.peer}: direct via ${e.endpoint} (${e.path}), ${upS} s after discovery`,
        );
      }
      say(
        `  ${node.name}: all ${edges.length} edges up ${
          allUpS.toFixed(2)
        } s after its process started`,
      );
    }

    say();
    say(bold("pings over the VPN (IPv6 inside, WireGuard edges):"));
    let failures = await pingAll(lab, nodes);

    say();
    say(bold("killing the hub..."));
    await hub.stop();
    say("  hub stopped; existing edges do not need it");
    say(bold("pings with no hub:"));
    failures += await pingAll(lab, nodes);

    say();
    say(
      failures === 0
        ? bold("all pairs reachable, with and without the hub.")
        : bold(`${failures} pair(s) failed`),
    );
    say("cleaning up (namespaces, processes, TUN devices)...");
    return failures === 0 ? 0 : 1;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    // Lab failures carry the processes' last output; show it without a stack trace.
    console.error(`meshub demo failed: ${err instanceof Error ? err.message : err}`);
    code = 1;
  }
  Deno.exit(code);
}
