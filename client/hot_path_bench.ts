/**
 * The mesh's share of the data path, without the kernel: member a routes and seals a burst of
 * 44 TCP segments (1420 bytes, IPv6) into a send arena the way the FFI socket's zero-copy
 * batch takes them; member b opens them, checks the inner source and coalesces them into one
 * TUN frame. The TUN and UDP system calls are left out, so the figures are the mesh's JS and
 * crypto per packet, steady enough to compare two versions of the hot path in one run:
 *
 * ```sh
 * deno bench --allow-all client/hot_path_bench.ts
 * ```
 *
 * (ns per burst / 44 = ns per packet; "receive" is the second minus the first.) The two members
 * meet over `tests/fake_net.ts` first; OpenSSL's AEAD is used where it loads, as the client
 * does.
 */
import { addMember, FakeHub, FakeNet } from "../tests/fake_net.ts";
import { openSslAead } from "../ffi/libcrypto.ts";
import { TunCoalescer } from "./tun_offload.ts";

const SEGMENT_LEN = 1420;
const SEGMENTS = 44;
const HUB = { hostname: "198.18.0.1", port: 3731 };
const TIMERS = {
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  keepaliveMs: 25_000,
  hubKeepaliveMs: 20_000,
};

const net = new FakeNet({ seed: 7 });
const psk = net.rng.bytes(32);
new FakeHub(net, [HUB], { keepaliveMs: TIMERS.hubKeepaliveMs });
const aead = openSslAead() ?? undefined;
const arena = new Uint8Array(1 << 17);
let arenaUsed = 0;
let capture = false;
const offsets: number[] = [];
const lengths: number[] = [];
let frames = 0;
const coalescer = new TunCoalescer(() => {
  frames++;
  return true;
});
const common = { psk, hubs: [HUB], timers: TIMERS };
const a = addMember(net, {
  ...common,
  name: "a",
  host: net.host("198.18.3.10"),
  extra: {
    aead,
    mtu: SEGMENT_LEN,
    reserveSend: (maxLen: number) => capture ? arena.subarray(arenaUsed, arenaUsed + maxLen) : null,
    commitSend: (len: number) => {
      offsets.push(arenaUsed);
      lengths.push(len);
      arenaUsed += len;
    },
  },
});
const b = addMember(net, {
  ...common,
  name: "b",
  host: net.host("198.18.3.11"),
  extra: { aead, mtu: SEGMENT_LEN, writeTun: (p: Uint8Array) => coalescer.write(p) },
});
const up = () =>
  [a, b].every((m) => {
    const members = m.mesh.status().members;
    return members.length === 1 && members[0]!.up;
  });
if (!net.runUntil(up, 30_000)) throw new Error("the two members did not meet");

// One TSO burst a → b: consecutive sequence numbers, ACK only, so b coalesces all of it.
const burst = new Uint8Array(SEGMENT_LEN * SEGMENTS);
const payloadLen = SEGMENT_LEN - 40 - 20;
let seq = 1;
function nextBurst(): void {
  for (let i = 0; i < SEGMENTS; i++) {
    const p = burst.subarray(i * SEGMENT_LEN, (i + 1) * SEGMENT_LEN);
    p[0] = 0x60;
    p[4] = (SEGMENT_LEN - 40) >> 8;
    p[5] = (SEGMENT_LEN - 40) & 0xff;
    p[6] = 6;
    p[7] = 64;
    p.set(a.address, 8);
    p.set(b.address, 24);
    p.set([0x13, 0x88, 0xc3, 0x50], 40);
    p.set([seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff], 44);
    p[52] = 0x50;
    p[53] = 0x10;
    p[54] = 0xff;
    p[55] = 0xff;
    seq = (seq + payloadLen) >>> 0;
  }
}
// The responder's session is confirmed by the first data packet: send one through the net.
nextBurst();
a.tun.inject(burst.subarray(0, SEGMENT_LEN));
net.runFor(100);
coalescer.flush();
const fromA = a.socket.endpoint;
capture = true;

function send(): void {
  arenaUsed = 0;
  offsets.length = 0;
  lengths.length = 0;
  nextBurst();
  for (let i = 0; i < SEGMENTS; i++) {
    a.mesh.handleTunPacket(burst.subarray(i * SEGMENT_LEN, (i + 1) * SEGMENT_LEN));
  }
  if (offsets.length !== SEGMENTS) throw new Error(`${offsets.length} datagrams sealed`);
}

function receive(): void {
  const before = frames;
  for (let i = 0; i < offsets.length; i++) {
    b.mesh.handleDatagram(arena.subarray(offsets[i]!, offsets[i]! + lengths[i]!), fromA);
  }
  coalescer.flush();
  if (frames !== before + 1) throw new Error(`the burst became ${frames - before} frames, not one`);
}

Deno.bench({
  name: `send: ${SEGMENTS} × ${SEGMENT_LEN} B (route, seal)`,
  group: "hot path",
  fn: send,
});
Deno.bench({
  name: `send + receive: ${SEGMENTS} × ${SEGMENT_LEN} B (open, source check, coalesce)`,
  group: "hot path",
  fn: () => {
    send();
    receive();
  },
});
