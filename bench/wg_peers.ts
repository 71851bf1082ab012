/**
 * Simulated WireGuard peers for the client scale benchmark (run by `client_scale.ts` in a lab
 * namespace): `count` independent {@linkcode WgDevice}s, each with its own key and UDP socket
 * (`host:basePort+i`), each knowing one peer (the meshub client under test, with the network
 * PSK). They answer handshakes, keep their timers ticking (keepalives, rekeys) and otherwise idle.
 *
 * Argument: one JSON object `{host, basePort, count, peerKey, psk, maxMs}` (keys in standard
 * base64). Prints `KEYS [...]` (the public keys, base64) once listening, then a `STATS {...}` line
 * every 5 s. Exits after `maxMs` (or when killed).
 *
 * @module
 */
import { generatePrivateKey, WgDevice, type WgPeer } from "../protocol/wireguard/mod.ts";
import { decodeBase64, encodeBase64 } from "../util/base64.ts";

interface Args {
  host: string;
  basePort: number;
  count: number;
  peerKey: string;
  psk: string;
  maxMs: number;
}

const args = JSON.parse(Deno.args[0] ?? "{}") as Args;
const peerKey = decodeBase64(args.peerKey)!;
const psk = decodeBase64(args.psk)!;
const start = performance.now();
const now = () => performance.now() - start + 1;
const stats = { handshakes: 0, keepalives: 0, data: 0, drops: 0, sent: 0 };
let stopped = false;

interface Sim {
  device: WgDevice;
  peer: WgPeer;
  sock: Deno.DatagramConn;
  endpoint: Deno.NetAddr | null;
}

const sims: Sim[] = [];
for (let i = 0; i < args.count; i++) {
  const device = new WgDevice({ privateKey: generatePrivateKey() });
  const peer = device.addPeer(peerKey, psk);
  const sock = Deno.listenDatagram({
    transport: "udp",
    hostname: args.host,
    port: args.basePort + i,
  });
  sims.push({ device, peer, sock, endpoint: null });
}

function send(s: Sim, packets: readonly Uint8Array[], to: Deno.NetAddr | null): void {
  if (to === null || stopped) return;
  for (const p of packets) {
    stats.sent++;
    s.sock.send(p, to).catch(() => {});
  }
}

async function loop(s: Sim): Promise<void> {
  const enc = new TextEncoder();
  while (!stopped) {
    let data: Uint8Array;
    let from: Deno.NetAddr;
    try {
      const got = await s.sock.receive();
      data = got[0];
      from = got[1] as Deno.NetAddr;
    } catch {
      return;
    }
    const r = s.device.receive(data, enc.encode(`${from.hostname}:${from.port}`), now());
    switch (r.kind) {
      case "reply":
        if (r.authenticated) {
          s.endpoint = from;
          stats.handshakes++;
        }
        send(s, [r.packet], from);
        break;
      case "established":
        s.endpoint = from;
        stats.handshakes++;
        send(s, r.packets, from);
        break;
      case "keepalive":
        stats.keepalives++;
        send(s, r.outgoing, s.endpoint);
        break;
      case "data":
        stats.data++;
        send(s, r.outgoing, s.endpoint);
        break;
      case "drop":
        stats.drops++;
        break;
    }
  }
}

const loops = sims.map(loop);
const ticker = setInterval(() => {
  const t = now();
  for (const s of sims) send(s, s.peer.tick(t), s.endpoint);
}, 1_000);
const reporter = setInterval(() => console.log("STATS " + JSON.stringify(stats)), 5_000);
console.log("KEYS " + JSON.stringify(sims.map((s) => encodeBase64(s.device.publicKey))));

// The bench stops us (SIGTERM) when done; maxMs bounds the run all the same.
await new Promise((r) => setTimeout(r, args.maxMs));
stopped = true;
clearInterval(ticker);
clearInterval(reporter);
for (const s of sims) s.sock.close();
await Promise.allSettled(loops);
console.log("STATS " + JSON.stringify(stats));
Deno.exit(0);
