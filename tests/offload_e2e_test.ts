/**
 * End-to-end with TUN offloads on (client/tun_offload.ts): two real meshub clients whose TUN
 * devices carry virtio headers move a TCP stream each way, over IPv6 and over IPv4 inside the
 * VPN, and every byte arrives; UDP sent with UDP_SEGMENT (USO) arrives datagram by datagram. The
 * interface counters show that the kernel handed meshub super-packets and accepted coalesced ones
 * back.
 */
import assert from "node:assert/strict";
import { Lab, missingTools } from "./lab/netns.ts";
import { labSkipReason } from "./lab/packages.ts";
import type { ClientSite } from "./lab/topology.ts";
import { DEFAULT_TUN_QUEUE_LENGTH } from "../client/config.ts";
import {
  type ClientNode,
  newPsk,
  startClient,
  startHub,
  startTcpTransfer,
  waitForEdges,
} from "./lab/meshub.ts";
import { DEFAULT_TUN_MTU } from "../client/config.ts";

const skip = labSkipReason(["ip", "ping"], "offload e2e") !== null;
/** The UDP GSO step needs a sender that sets UDP_SEGMENT: Python's socket module does. */
const noPython = missingTools(["python3"]).length > 0;
if (!skip && noPython) console.error("tests/offload_e2e_test.ts: UDP GSO step skipped, no python3");
/** Bytes per transfer: enough for many full-size TSO sends and GRO batches. */
const TRANSFER_BYTES = 24_000_000;
/** The TUN MTU the lab clients use (meshub's default). */
const MTU = DEFAULT_TUN_MTU;

/** Datagrams and their content for the UDP GSO step: 3 sends of 10 full segments and a short one. */
const UDP_GSO_PY = `
import socket, sys
mode, addr = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
data = bytes((i * 7 + i // 251) & 255 for i in range(1200 * 10 + 345))
segs = [data[k:k + 1200] for k in range(0, len(data), 1200)]
s = socket.socket(fam, socket.SOCK_DGRAM)
if mode == "send":
    s.setsockopt(17, 103, 1200)  # SOL_UDP, UDP_SEGMENT: one send, 11 datagrams
    for _ in range(3):
        s.sendto(data, (addr, 5300))
    print("sent", flush=True)
else:
    s.bind((addr, 5300))
    s.settimeout(10)
    print("listening", flush=True)
    good = bad = 0
    try:
        while good + bad < 33:
            d, _ = s.recvfrom(65535)
            if d in segs:
                good += 1
            else:
                bad += 1
    except socket.timeout:
        pass
    print("good", good, "bad", bad, flush=True)
`;

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
  const before = { from: await counters(lab, from.site.ns), to: await counters(lab, to.site.ns) };
  const transfer = await startTcpTransfer(lab, {
    fromNs: from.site.ns,
    toNs: to.site.ns,
    address,
    bytes: TRANSFER_BYTES,
    timeoutMs: 120_000,
  });
  const { sent, received } = await transfer.done;
  const after = { from: await counters(lab, from.site.ns), to: await counters(lab, to.site.ns) };
  return {
    sent,
    received,
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
          // Inside the [tun] table; b also sets its queue length.
          extraToml: `ipv4 = "198.19.210.${11 + i}/24"` + (i === 1 ? "\nqueue_length = 1000" : ""),
        }),
      );
    }
    const [a, b] = nodes as [ClientNode, ClientNode];
    for (const n of nodes) {
      const { match } = await n.proc.waitForLine(/meshub0 up: .*, offloads (\S+)/);
      assert.match(match[1]!, /csum,tso4,tso6/, `${n.name}: offloads ${match[1]}`);
    }
    // The TUN's transmit queue: the default, and b's tun.queue_length.
    for (const [n, want] of [[a, DEFAULT_TUN_QUEUE_LENGTH], [b, 1000]] as const) {
      const link = await lab.exec(n.site.ns, ["ip", "-j", "link", "show", "meshub0"], {
        check: true,
      });
      assert.equal(JSON.parse(link.stdout)[0].txqlen, want, `${n.name}: ${link.stdout}`);
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

    await t.step({
      name: "UDP GSO: a sends UDP_SEGMENT datagrams to b, over IPv4 and IPv6 inside",
      ignore: noPython,
      fn: async () => {
        // Where b's kernel took USO, b writes each batch of datagrams as one USO super-packet.
        const offloads = await b.proc.waitForLine(/offloads (\S+)/);
        const uso = offloads.match[1]!.includes("uso6");
        for (const address of ["198.19.210.12", b.address6]) {
          const before = await counters(lab, a.site.ns);
          const bBefore = await counters(lab, b.site.ns);
          const py = (
            mode: string,
          ) => ["timeout", "30", "python3", "-c", UDP_GSO_PY, mode, address];
          const sink = lab.spawn(b.site.ns, py("recv"));
          await sink.waitForLine(/listening/, { timeoutMs: 10_000 });
          await lab.exec(a.site.ns, py("send"), { check: true, timeoutMs: 30_000 });
          const got = await sink.waitForLine(/^good /, { timeoutMs: 20_000 });
          const after = await counters(lab, a.site.ns);
          const bAfter = await counters(lab, b.site.ns);
          // Every datagram arrives with its content and a checksum the receiver's kernel took;
          // a's kernel handed meshub whole super-packets (USO).
          assert.equal(got.line, "good 33 bad 0", address);
          const perRead = (after.txBytes - before.txBytes) / (after.txPackets - before.txPackets);
          assert.ok(perRead > MTU, `${address}: ${perRead} bytes per TUN read`);
          // ... and b's kernel cut b's merged writes back into the very same datagrams.
          const writes = bAfter.rxPackets - bBefore.rxPackets;
          if (uso) assert.ok(writes < 33, `${address}: 33 datagrams took ${writes} TUN writes`);
        }
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
