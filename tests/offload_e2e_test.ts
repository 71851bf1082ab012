/**
 * End-to-end with TUN offloads on (client/tun_offload.ts): two real meshub clients whose TUN
 * devices carry virtio headers move a TCP stream each way, over IPv6 and over IPv4 inside the
 * VPN, and every byte arrives. The interface counters show that the kernel handed meshub TSO
 * super-packets and accepted coalesced ones back.
 */
import assert from "node:assert/strict";
import { Lab } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import type { ClientSite } from "./lab/topology.ts";
import { type ClientNode, newPsk, startClient, startHub, waitForEdges } from "./lab/meshub.ts";

const skip = labSkipReason(["ip", "ping"], "offload e2e") !== null;
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
/** Bytes per transfer: enough for many full-size TSO sends and GRO batches. */
const TRANSFER_BYTES = 24_000_000;
/** The TUN MTU the lab clients use. */
const MTU = 1420;

interface LinkCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

async function counters(lab: Lab, ns: string): Promise<LinkCounters> {
  const r = await lab.exec(ns, ["ip", "-s", "-j", "link", "show", "meshub0"], { check: true });
  const s = JSON.parse(r.stdout)[0].stats64;
  return {
    rxPackets: s.rx.packets,
    rxBytes: s.rx.bytes,
    txPackets: s.tx.packets,
    txBytes: s.tx.bytes,
  };
}

/** Sends TRANSFER_BYTES from `from` to `to` at `address`; returns the two digests. */
async function transfer(lab: Lab, from: ClientNode, to: ClientNode, address: string) {
  const script = (mode: string, ...args: string[]) => [
    "timeout",
    "120",
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-net",
    `${FIXTURES}tcp_transfer.ts`,
    mode,
    ...args,
  ];
  const before = { from: await counters(lab, from.site.ns), to: await counters(lab, to.site.ns) };
  const sink = lab.spawn(to.site.ns, script("sink", address, "5201"));
  await sink.waitForLine(/listening/, { timeoutMs: 30_000 });
  const source = lab.spawn(
    from.site.ns,
    script("source", address, "5201", String(TRANSFER_BYTES)),
  );
  const sent = await source.waitForLine(/^sha256 /, { timeoutMs: 120_000 });
  const received = await sink.waitForLine(/^sha256 /, { timeoutMs: 120_000 });
  const after = { from: await counters(lab, from.site.ns), to: await counters(lab, to.site.ns) };
  return {
    sent: sent.line,
    received: received.line,
    // What the sender's kernel handed meshub (TUN tx) and what meshub wrote to the receiver's
    // kernel (TUN rx): bytes per packet above the MTU means super-packets.
    sentPerRead: (after.from.txBytes - before.from.txBytes) /
      (after.from.txPackets - before.from.txPackets),
    receivedPerWrite: (after.to.rxBytes - before.to.rxBytes) /
      (after.to.rxPackets - before.to.rxPackets),
  };
}

Deno.test({
  name: "offloads: TCP streams over IPv6 and IPv4 inside arrive intact through TSO/GRO TUNs",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using lab = new Lab();
  const dir = await Deno.makeTempDir({ prefix: "meshub-offload-" });
  try {
    const internet = await lab.segment("inet", "198.18.0.0/24", "fd00:0:7::/64");
    const hubNs = await lab.namespace("hub");
    await lab.attach(internet, hubNs, "eth0", ["198.18.0.1/24"]);
    await startHub(lab, hubNs, { addresses: ["198.18.0.1"] });
    const psk = newPsk();
    const nodes: ClientNode[] = [];
    for (const [i, name] of ["a", "b"].entries()) {
      const ns = await lab.namespace(name);
      const address = `198.18.0.${11 + i}`;
      await lab.attach(internet, ns, "eth0", [`${address}/24`]);
      const site: ClientSite = { name, ns, address, publicAddress: address };
      nodes.push(
        await startClient(lab, site, {
          dir,
          psk,
          hubs: ["198.18.0.1:3731"],
          // Inside the [tun] table.
          extraToml: `ipv4 = "198.19.210.${11 + i}/24"`,
        }),
      );
    }
    const [a, b] = nodes as [ClientNode, ClientNode];
    for (const n of nodes) {
      const { match } = await n.proc.waitForLine(/meshub0 up: .*, offloads (\S+)/);
      assert.match(match[1]!, /csum,tso4,tso6/, `${n.name}: offloads ${match[1]}`);
    }
    await waitForEdges(a, ["b"]);
    await waitForEdges(b, ["a"]);
    // The first packets of an edge may race the handshake: wait for a clean ping each way.
    for (const [n, to] of [[a, "198.19.210.12"], [b, "198.19.210.11"], [a, b.address6]] as const) {
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) {
        ok = (await lab.ping(n.site.ns, to, { count: 1, timeoutS: 1 })).received === 1;
      }
      assert.ok(ok, `${n.name} cannot ping ${to}`);
    }

    await t.step("IPv6 inside: a sends to b", async () => {
      const r = await transfer(lab, a, b, b.address6);
      assert.equal(r.received, r.sent);
      assert.match(r.sent, new RegExp(`bytes ${TRANSFER_BYTES}$`));
      assert.ok(r.sentPerRead > MTU, `a's kernel sent ${r.sentPerRead} bytes per TUN read`);
      assert.ok(r.receivedPerWrite > MTU, `b got ${r.receivedPerWrite} bytes per TUN write`);
    });

    await t.step("IPv4 inside: b sends to a", async () => {
      const r = await transfer(lab, b, a, "198.19.210.11");
      assert.equal(r.received, r.sent);
      assert.match(r.sent, new RegExp(`bytes ${TRANSFER_BYTES}$`));
      assert.ok(r.sentPerRead > MTU, `b's kernel sent ${r.sentPerRead} bytes per TUN read`);
      assert.ok(r.receivedPerWrite > MTU, `a got ${r.receivedPerWrite} bytes per TUN write`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
