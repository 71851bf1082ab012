import assert from "node:assert/strict";
import fc from "fast-check";
import {
  COALESCE_FLOWS,
  MAX_UDP_SEGMENTS,
  TUN_FRAME_CAPACITY,
  TunCoalescer,
  TunSegmenter,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  VIRTIO_NET_HDR_LEN,
} from "./tun_offload.ts";

// --- packets built by hand, with an obvious checksum ---------------------------------------------

const FIN = 0x01;
const SYN = 0x02;
const PSH = 0x08;
const ACK = 0x10;
const CWR = 0x80;

const SRC4 = [198, 19, 201, 1];
const DST4 = [198, 19, 201, 2];
const SRC6 = [0xfd, 0, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6 = [0xfd, 0, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/** NOP, NOP, timestamps: what Linux puts on every data segment. */
const TS_OPTIONS = [1, 1, 8, 10, 0, 1, 2, 3, 0, 4, 5, 6];

function csum(bytes: number[] | Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

const be16 = (v: number) => [(v >>> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

interface Seg {
  v6: boolean;
  udp?: boolean;
  id?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  options?: number[];
  payload: Uint8Array;
  srcPort?: number;
  dstPort?: number;
  tos?: number;
  ttl?: number;
  /** Leave the transport checksum as this value instead of computing it. */
  check?: number;
}

/** An IP packet with a TCP or UDP segment and correct checksums. */
function packet(s: Seg): Uint8Array {
  const sport = s.srcPort ?? 40000;
  const dport = s.dstPort ?? 5201;
  const l4 = s.udp ? [...be16(sport), ...be16(dport), ...be16(8 + s.payload.length), 0, 0] : [
    ...be16(sport),
    ...be16(dport),
    ...be32(s.seq ?? 1000),
    ...be32(s.ack ?? 7),
    ((20 + (s.options?.length ?? 0)) / 4) << 4,
    s.flags ?? ACK,
    ...be16(s.window ?? 502),
    0,
    0,
    0,
    0,
    ...(s.options ?? []),
  ];
  const l4Len = l4.length + s.payload.length;
  const proto = s.udp ? 17 : 6;
  const src = s.v6 ? SRC6 : SRC4;
  const dst = s.v6 ? DST6 : DST4;
  const pseudo = csum([...src, ...dst]) + proto + l4Len;
  let c = ~csum([...l4, ...s.payload], pseudo) & 0xffff;
  if (s.udp && c === 0) c = 0xffff;
  if (s.check !== undefined) c = s.check;
  const at = s.udp ? 6 : 16;
  l4[at] = c >>> 8;
  l4[at + 1] = c & 0xff;
  let ip: number[];
  if (s.v6) {
    ip = [0x60, 0, 0, 0, ...be16(l4Len), proto, s.ttl ?? 64, ...src, ...dst];
  } else {
    ip = [0x45, s.tos ?? 0, ...be16(20 + l4Len), ...be16(s.id ?? 0x1234), 0x40, 0, s.ttl ?? 64];
    ip.push(proto, 0, 0, ...src, ...dst);
    const hc = ~csum(ip) & 0xffff;
    ip[10] = hc >>> 8;
    ip[11] = hc & 0xff;
  }
  return new Uint8Array([...ip, ...l4, ...s.payload]);
}

/** True when the IP and transport checksums of `p` verify. */
function checksumsOk(p: Uint8Array): boolean {
  const v6 = p[0]! >> 4 === 6;
  const ipHL = v6 ? 40 : (p[0]! & 15) * 4;
  if (!v6 && csum(p.subarray(0, ipHL)) !== 0xffff) return false;
  const proto = v6 ? p[6]! : p[9]!;
  const pseudo = csum(p.subarray(v6 ? 8 : 12, v6 ? 40 : 20)) + proto + (p.length - ipHL);
  return csum(p.subarray(ipHL), pseudo) === 0xffff;
}

interface Vnet {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}

function vnet(h: Vnet): number[] {
  const le16 = (v: number) => [v & 0xff, v >>> 8];
  return [
    h.flags ?? 0,
    h.gsoType ?? 0,
    ...le16(h.hdrLen ?? 0),
    ...le16(h.gsoSize ?? 0),
    ...le16(h.csumStart ?? 0),
    ...le16(h.csumOffset ?? 0),
  ];
}

/**
 * What the kernel hands a TUN reader for a TSO/USO send: one packet with all the payload, the
 * transport checksum field holding the pseudo-header sum (CHECKSUM_PARTIAL), and a virtio header.
 */
function superFrame(s: Seg, gsoSize: number, h: Vnet = {}): Uint8Array {
  const p = packet({ ...s, check: 0 });
  const v6 = s.v6;
  const ipHL = v6 ? 40 : 20;
  const proto = s.udp ? 17 : 6;
  const pseudo = csum([...p.subarray(v6 ? 8 : 12, v6 ? 40 : 20)]) + proto + (p.length - ipHL);
  const at = ipHL + (s.udp ? 6 : 16);
  p[at] = csum([], pseudo) >>> 8;
  p[at + 1] = csum([], pseudo) & 0xff;
  const gsoType = s.udp
    ? VIRTIO_NET_HDR_GSO_UDP_L4
    : v6
    ? VIRTIO_NET_HDR_GSO_TCPV6
    : VIRTIO_NET_HDR_GSO_TCPV4;
  return new Uint8Array([
    ...vnet({
      flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
      gsoType,
      // The kernel reports its linear head length here, often the whole packet.
      hdrLen: Math.min(p.length, 0xffff),
      gsoSize,
      csumStart: ipHL,
      csumOffset: s.udp ? 6 : 16,
      ...h,
    }),
    ...p,
  ]);
}

function payloadOf(len: number, seed = 1): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 0; i < len; i++) p[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return p;
}

/** Runs `frame` through a fresh segmenter and returns copies of what it emitted. */
function split(frame: Uint8Array, seg = new TunSegmenter()): Uint8Array[] {
  seg.frame.set(frame.subarray(0, Math.min(frame.length, seg.frame.length)));
  const out: Uint8Array[] = [];
  const n = seg.split(frame.length, (p) => out.push(p.slice()));
  assert.equal(n, out.length);
  return out;
}

/** The packets the kernel's GSO would have produced from `s` cut into `gsoSize` pieces. */
function expectedSegments(s: Seg, gsoSize: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const n = Math.max(1, Math.ceil(s.payload.length / gsoSize));
  const flags = s.flags ?? ACK;
  for (let i = 0; i < n; i++) {
    let f = flags;
    if (i > 0) f &= ~CWR;
    if (i < n - 1) f &= ~(FIN | PSH);
    out.push(packet({
      ...s,
      id: ((s.id ?? 0x1234) + i) & 0xffff,
      seq: ((s.seq ?? 1000) + i * gsoSize) >>> 0,
      flags: f,
      payload: s.payload.subarray(i * gsoSize, (i + 1) * gsoSize),
    }));
  }
  return out;
}

// --- TunSegmenter --------------------------------------------------------------------------------

for (const v6 of [false, true]) {
  const ip = v6 ? "IPv6" : "IPv4";
  Deno.test(`TunSegmenter.split() cuts an ${ip} TSO super-packet like the kernel's GSO`, () => {
    const s: Seg = {
      v6,
      id: 0xfffe, // wraps
      seq: 0xffff_f000, // wraps
      flags: ACK | PSH | CWR,
      options: TS_OPTIONS,
      payload: payloadOf(10_000),
    };
    const got = split(superFrame(s, 1448));
    const want = expectedSegments(s, 1448);
    assert.equal(got.length, 7);
    assert.deepEqual(got, want);
    assert.equal(got[0]![v6 ? 53 : 33], ACK | CWR);
    assert.equal(got[6]![v6 ? 53 : 33], ACK | PSH);
    for (const p of got) assert.ok(checksumsOk(p));
  });

  Deno.test(`TunSegmenter.split() cuts an ${ip} USO super-packet into UDP datagrams`, () => {
    const s: Seg = { v6, udp: true, payload: payloadOf(5000, 3) };
    const got = split(superFrame(s, 1300));
    const want = [0, 1, 2, 3].map((i) =>
      packet({
        ...s,
        id: 0x1234 + i,
        payload: s.payload.subarray(i * 1300, (i + 1) * 1300),
      })
    );
    assert.deepEqual(got, want);
    for (const p of got) assert.ok(checksumsOk(p));
  });

  Deno.test(`TunSegmenter.split() keeps FIN on the last ${ip} segment only`, () => {
    const s: Seg = { v6, flags: ACK | FIN | PSH, payload: payloadOf(3000) };
    const got = split(superFrame(s, 1000));
    assert.deepEqual(got, expectedSegments(s, 1000));
    assert.deepEqual(got.map((p) => p[v6 ? 53 : 33]), [ACK, ACK, ACK | FIN | PSH]);
  });
}

Deno.test("TunSegmenter sums with WebAssembly SIMD and cuts exactly as with plain JavaScript", () => {
  assert.equal(new TunSegmenter().simd, true);
  assert.equal(new TunSegmenter(false).simd, false);
  const simd = new TunSegmenter();
  const plain = new TunSegmenter(false);
  for (let i = 0; i < 60; i++) {
    const s: Seg = {
      v6: i % 2 === 0,
      udp: i % 3 === 0,
      seq: (i * 0x1357_9bdf) >>> 0,
      payload: payloadOf(1 + i * 997, i),
    };
    const gsoSize = 500 + i * 37;
    const frame = superFrame(s, gsoSize, i % 5 === 0 ? { gsoType: VIRTIO_NET_HDR_GSO_NONE } : {});
    const got = split(frame, simd);
    assert.deepEqual(got, split(frame, plain));
    for (const p of got) assert.ok(checksumsOk(p));
  }
});

Deno.test("TunSegmenter.split() completes the partial checksum of a single packet", () => {
  for (
    const s of [
      { v6: false, payload: payloadOf(500) },
      { v6: true, payload: payloadOf(501) },
      { v6: false, udp: true, payload: payloadOf(77) },
      { v6: true, udp: true, payload: payloadOf(1) },
    ] as Seg[]
  ) {
    const frame = superFrame(s, 0, { gsoType: VIRTIO_NET_HDR_GSO_NONE });
    const got = split(frame);
    assert.deepEqual(got, [packet(s)]);
  }
});

Deno.test("TunSegmenter.split() writes a UDP checksum that comes out 0 as 0xffff", () => {
  // Make the payload sum exactly cancel the rest: put the would-be checksum into the payload.
  const payload = payloadOf(64);
  payload[10] = 0;
  payload[11] = 0;
  const c = (packet({ v6: true, udp: true, payload })[46]! << 8) |
    packet({ v6: true, udp: true, payload })[47]!;
  payload[10] = c >>> 8;
  payload[11] = c & 0xff;
  const s: Seg = { v6: true, udp: true, payload };
  const [got] = split(superFrame(s, 0, { gsoType: VIRTIO_NET_HDR_GSO_NONE }));
  assert.equal((got![46]! << 8) | got![47]!, 0xffff);
  assert.ok(checksumsOk(got!));
  // A super-packet segment that sums to zero is fixed the same way.
  const [seg] = split(superFrame(s, 1000));
  assert.equal((seg![46]! << 8) | seg![47]!, 0xffff);
});

Deno.test("TunSegmenter.split() passes packets without a checksum to do untouched", () => {
  const p = packet({ v6: false, payload: payloadOf(100) });
  assert.deepEqual(split(new Uint8Array([...vnet({}), ...p])), [p]);
  // ICMPv6 or anything else: not even parsed.
  const odd = new Uint8Array([0x60, 1, 2, 3, 4]);
  assert.deepEqual(split(new Uint8Array([...vnet({}), ...odd])), [odd]);
});

Deno.test("TunSegmenter.split() handles gso_size 0, a single segment and exact multiples", () => {
  const s: Seg = { v6: false, flags: ACK | PSH, payload: payloadOf(2896) };
  // gso_size 0 with a GSO type: nothing to cut, checksum still completed.
  assert.deepEqual(split(superFrame(s, 0)), [packet(s)]);
  // Payload not above gso_size: one segment, flags kept.
  assert.deepEqual(split(superFrame(s, 3000)), [packet(s)]);
  assert.deepEqual(split(superFrame(s, 2896)), [packet(s)]);
  // Exact multiple: two full segments.
  const two = split(superFrame(s, 1448));
  assert.deepEqual(two, expectedSegments(s, 1448));
  assert.equal(two.length, 2);
  // No payload at all (a TSO-flagged pure ACK): one packet.
  const ack: Seg = { v6: true, payload: new Uint8Array(0) };
  assert.deepEqual(split(superFrame(ack, 1448)), [packet(ack)]);
  // The ECN bit in gso_type changes nothing here (CWR is cleared after the first anyway).
  const ecn = superFrame({ ...s, flags: ACK | CWR }, 1000);
  ecn[1]! |= VIRTIO_NET_HDR_GSO_ECN;
  assert.deepEqual(split(ecn), expectedSegments({ ...s, flags: ACK | CWR }, 1000));
});

Deno.test("TunSegmenter.split() ignores hdr_len and csum fields the kernel fills loosely", () => {
  const s: Seg = { v6: true, options: TS_OPTIONS, payload: payloadOf(4000) };
  for (const h of [{ hdrLen: 0xffff }, { hdrLen: 0 }, { csumStart: 0, csumOffset: 0 }]) {
    assert.deepEqual(split(superFrame(s, 1400, h)), expectedSegments(s, 1400));
  }
});

Deno.test("TunSegmenter.split() drops malformed frames with a reason and never throws", () => {
  const seg = new TunSegmenter();
  const good: Seg = { v6: false, payload: payloadOf(3000) };
  const drop = (frame: Uint8Array, len = frame.length) => {
    seg.frame.set(frame.subarray(0, Math.min(frame.length, seg.frame.length)));
    assert.equal(seg.split(len, () => assert.fail("emitted")), 0);
    return seg.lastDrop;
  };
  assert.equal(drop(new Uint8Array(0)), "short");
  assert.equal(drop(new Uint8Array(10)), "short");
  assert.equal(drop(new Uint8Array(5), -1), "short");
  assert.equal(drop(new Uint8Array(5), NaN), "short");
  assert.equal(drop(new Uint8Array(0), TUN_FRAME_CAPACITY), "truncated");
  // Type says IPv6, packet is IPv4 (and the other way round).
  assert.equal(drop(superFrame(good, 1000, { gsoType: VIRTIO_NET_HDR_GSO_TCPV6 })), "bad-header");
  assert.equal(
    drop(superFrame({ ...good, v6: true }, 1000, { gsoType: VIRTIO_NET_HDR_GSO_TCPV4 })),
    "bad-header",
  );
  // TCP type over a UDP packet.
  assert.equal(
    drop(superFrame({ ...good, udp: true }, 1000, { gsoType: VIRTIO_NET_HDR_GSO_TCPV4 })),
    "bad-header",
  );
  // Neither IPv4 nor IPv6.
  const v0 = superFrame(good, 1000);
  v0[10] = 0x05;
  assert.equal(drop(v0), "bad-header");
  // IHL below 5, TCP data offset below 5, headers longer than the packet.
  const ihl = superFrame(good, 1000);
  ihl[10] = 0x44;
  assert.equal(drop(ihl), "bad-header");
  const doff = superFrame(good, 1000);
  doff[10 + 32] = 0x40;
  assert.equal(drop(doff), "bad-header");
  const long = superFrame(good, 1000);
  long[10 + 32] = 0xf0;
  assert.equal(drop(long.subarray(0, 10 + 60)), "bad-header");
  assert.equal(drop(superFrame(good, 1000).subarray(0, 10 + 30)), "bad-header");
  // Obsolete UFO and unknown types.
  for (const t of [VIRTIO_NET_HDR_GSO_UDP, 2, 6, 0x7f]) {
    assert.equal(drop(superFrame(good, 1000, { gsoType: t })), "unsupported-gso");
  }
  // A checksum to complete outside the packet.
  const p = packet(good);
  for (
    const [start, offset] of [[p.length, 0], [p.length - 1, 0], [20, p.length], [0xffff, 0xffff]]
  ) {
    const f = new Uint8Array([
      ...vnet({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: start, csumOffset: offset }),
      ...p,
    ]);
    assert.equal(drop(f), "bad-checksum-offsets");
  }
  assert.equal(seg.stats.packets, 0);
  assert.equal(seg.stats.frames, Object.values(seg.stats.drops).reduce((a, b) => a + b));
  // Still works afterwards.
  assert.deepEqual(split(superFrame(good, 1000), seg), expectedSegments(good, 1000));
});

Deno.test("TunSegmenter.split() survives random and mutated frames", () => {
  const seg = new TunSegmenter();
  const base = superFrame({ v6: false, options: TS_OPTIONS, payload: payloadOf(4000) }, 1448);
  const base6 = superFrame({ v6: true, udp: true, payload: payloadOf(3000) }, 1200);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.tuple(
          fc.constantFrom(base, base6),
          fc.array(fc.tuple(fc.nat(120), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
          fc.nat(5000),
        ).map(([b, edits, cut]) => {
          const f = b.slice(0, Math.max(0, b.length - cut));
          for (const [at, v] of edits) if (at < f.length) f[at] = v;
          return f;
        }),
      ),
      (frame) => {
        seg.frame.fill(0);
        seg.frame.set(frame);
        let total = 0;
        const n = seg.split(frame.length, (p) => {
          assert.ok(
            p.length > 0 && p.length <= Math.max(frame.length - VIRTIO_NET_HDR_LEN, 0) + 120,
          );
          total++;
        });
        assert.equal(n, total);
        assert.ok((n === 0) === (seg.lastDrop !== null));
      },
    ),
    { numRuns: 5000 },
  );
});

// --- TunCoalescer --------------------------------------------------------------------------------

/** A coalescer writing into an array of frame copies. */
function coalescer(flows = COALESCE_FLOWS, udp = false) {
  const frames: Uint8Array[] = [];
  const c = new TunCoalescer(
    (f) => {
      frames.push(f.slice());
      return true;
    },
    flows,
    udp,
  );
  return { c, frames };
}

/** The IP packets a frame stands for, through the segmenter (the kernel's GSO, in effect). */
function unpack(frames: Uint8Array[]): Uint8Array[] {
  return frames.flatMap((f) => split(f));
}

/** A stream of MSS-size segments of one flow, as a TCP sender puts them on the wire. */
function stream(v6: boolean, n: number, extra: Partial<Seg> = {}): Uint8Array[] {
  const s: Seg = { v6, options: TS_OPTIONS, payload: payloadOf(1388 * n, n), ...extra };
  return expectedSegments(s, 1388);
}

for (const v6 of [false, true]) {
  const ip = v6 ? "IPv6" : "IPv4";
  Deno.test(`TunCoalescer coalesces in-order ${ip} segments into one GSO write`, () => {
    const { c, frames } = coalescer();
    const segs = stream(v6, 20, { flags: ACK | PSH });
    for (const p of segs) c.write(p);
    assert.equal(frames.length, 1, "the PSH segment ends the super-packet at once");
    const f = frames[0]!;
    assert.equal(f[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert.equal(f[1], v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
    const ipHL = v6 ? 40 : 20;
    assert.equal(f[2]! | (f[3]! << 8), ipHL + 32, "hdr_len");
    assert.equal(f[4]! | (f[5]! << 8), 1388, "gso_size");
    assert.equal(f[6]! | (f[7]! << 8), ipHL, "csum_start");
    assert.equal(f[8]! | (f[9]! << 8), 16, "csum_offset");
    assert.equal(f.length, 10 + ipHL + 32 + 20 * 1388);
    // What the kernel will see after its own segmentation is exactly what was sent.
    assert.deepEqual(unpack(frames), segs);
    assert.deepEqual(c.stats, { packets: 20, writes: 1, superPackets: 1, writeFailures: 0 });
  });

  Deno.test(`TunCoalescer holds ${ip} segments until flush()`, () => {
    const { c, frames } = coalescer();
    const segs = stream(v6, 5);
    for (const p of segs) c.write(p);
    assert.equal(frames.length, 0);
    c.flush();
    assert.equal(frames.length, 1);
    assert.deepEqual(unpack(frames), segs);
    c.flush();
    assert.equal(frames.length, 1, "nothing left to flush");
  });
}

/** `n` datagrams of one UDP flow as a sender's socket emits them (IPv4 ids counting up). */
function datagrams(v6: boolean, n: number, size = 1300, last = size): Uint8Array[] {
  return Array.from({ length: n }, (_, i) =>
    packet({
      v6,
      udp: true,
      id: (0xfffe + i) & 0xffff,
      payload: payloadOf(i === n - 1 ? last : size, i),
    }));
}

for (const v6 of [false, true]) {
  const ip = v6 ? "IPv6" : "IPv4";
  Deno.test(`TunCoalescer merges ${ip} UDP datagrams into one USO write the kernel cuts back`, () => {
    const { c, frames } = coalescer(COALESCE_FLOWS, true);
    const sent = datagrams(v6, 10);
    for (const p of sent) c.write(p);
    assert.equal(frames.length, 0, "held until flush()");
    c.flush();
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    const ipHL = v6 ? 40 : 20;
    assert.equal(f[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert.equal(f[1], VIRTIO_NET_HDR_GSO_UDP_L4);
    assert.equal(f[2]! | (f[3]! << 8), ipHL + 8, "hdr_len");
    assert.equal(f[4]! | (f[5]! << 8), 1300, "gso_size");
    assert.equal(f[6]! | (f[7]! << 8), ipHL, "csum_start");
    assert.equal(f[8]! | (f[9]! << 8), 6, "csum_offset");
    assert.equal(f.length, 10 + ipHL + 8 + 10 * 1300);
    // Through the kernel's segmentation (here: TunSegmenter, which follows it) the very same
    // datagrams come out, IPv4 ids across the 0xffff wrap included.
    assert.deepEqual(unpack(frames), sent);
    assert.deepEqual(c.stats, { packets: 10, writes: 1, superPackets: 1, writeFailures: 0 });
  });

  Deno.test(`TunCoalescer ends a ${ip} UDP super-packet at a shorter datagram`, () => {
    const { c, frames } = coalescer(COALESCE_FLOWS, true);
    const sent = datagrams(v6, 4, 1300, 200);
    for (const p of sent) c.write(p);
    assert.equal(frames.length, 1, "written as soon as the short one arrived");
    assert.deepEqual(unpack(frames), sent);
    // A longer datagram after the first cannot join: it starts a new super-packet.
    const { c: c2, frames: f2 } = coalescer(COALESCE_FLOWS, true);
    const mixed = [...datagrams(v6, 2, 500), ...datagrams(v6, 1, 900)];
    mixed[2] = packet({ v6, udp: true, id: 0, payload: payloadOf(900) });
    for (const p of mixed) c2.write(p);
    c2.flush();
    assert.equal(f2.length, 2);
    assert.deepEqual(unpack(f2), mixed);
  });
}

Deno.test("TunCoalescer keeps UDP datagrams apart that GSO could not recreate", () => {
  // A gap in the IPv4 ids, another TTL, or more than the kernel's 64 segments.
  const { c, frames } = coalescer(COALESCE_FLOWS, true);
  const gap = [
    packet({ v6: false, udp: true, id: 1, payload: payloadOf(1000) }),
    packet({ v6: false, udp: true, id: 3, payload: payloadOf(1000) }),
    packet({ v6: false, udp: true, id: 4, ttl: 9, payload: payloadOf(1000) }),
  ];
  for (const p of gap) c.write(p);
  c.flush();
  assert.equal(frames.length, 3);
  assert.deepEqual(unpack(frames), gap);
  const { c: c2, frames: f2 } = coalescer(COALESCE_FLOWS, true);
  const many = datagrams(true, MAX_UDP_SEGMENTS + 3, 600);
  for (const p of many) c2.write(p);
  c2.flush();
  assert.equal(f2.length, 2);
  assert.equal(f2[0]!.length, 10 + 48 + MAX_UDP_SEGMENTS * 600);
  assert.deepEqual(unpack(f2), many);
});

Deno.test("TunCoalescer writes UDP at once where the device has no USO", () => {
  const { c, frames } = coalescer();
  const sent = datagrams(false, 3);
  for (const p of sent) c.write(p);
  assert.equal(frames.length, 3);
  assert.ok(frames.every((f) => f[0] === 0 && f[1] === 0));
  assert.deepEqual(frames.map((f) => f.subarray(10)), sent);
});

Deno.test("TunCoalescer writes a lone segment unchanged behind a zero header", () => {
  const { c, frames } = coalescer();
  const [p] = stream(false, 1);
  c.write(p!);
  c.flush();
  assert.deepEqual(frames, [new Uint8Array([...new Uint8Array(10), ...p!])]);
});

Deno.test("TunCoalescer writes non-TCP and special TCP packets at once, flow order kept", () => {
  const { c, frames } = coalescer();
  const segs = stream(true, 4);
  c.write(segs[0]!);
  c.write(segs[1]!);
  const udp = packet({ v6: true, udp: true, payload: payloadOf(100) });
  c.write(udp);
  assert.equal(frames.length, 1, "UDP written at once");
  assert.deepEqual(unpack(frames), [udp]);
  // A FIN of the pending flow: the held segments go first, then the FIN.
  const fin = packet({
    v6: true,
    options: TS_OPTIONS,
    seq: 1000 + 2 * 1388,
    flags: ACK | FIN,
    payload: payloadOf(10),
  });
  c.write(fin);
  assert.equal(frames.length, 3);
  assert.deepEqual(unpack(frames.slice(1)), [segs[0], segs[1], fin]);
  // A SYN, a pure ACK, garbage: through at once.
  const syn = packet({ v6: false, flags: SYN, payload: new Uint8Array(0) });
  const ack = packet({ v6: false, payload: new Uint8Array(0) });
  const junk = new Uint8Array([0x45, 0, 0]);
  for (const p of [syn, ack, junk]) c.write(p);
  assert.equal(frames.length, 6);
  assert.deepEqual(frames.slice(3).map((f) => f.subarray(10)), [syn, ack, junk]);
});

Deno.test("TunCoalescer starts a new super-packet on a gap, a changed ack/window/option", () => {
  const base: Seg = { v6: false, options: TS_OPTIONS, payload: payloadOf(1388) };
  const cases: Partial<Seg>[] = [
    { seq: 1000 + 1388 + 1 }, // gap
    { seq: 1000 }, // retransmission
    { ack: 8 },
    { window: 503 },
    { options: [1, 1, 8, 10, 0, 1, 2, 4, 0, 4, 5, 6] }, // newer timestamp
    { ttl: 63 },
    { tos: 2 }, // ECN ECT(0) vs not-ECT
    { flags: ACK | CWR },
  ];
  for (const change of cases) {
    const { c, frames } = coalescer();
    const first = packet({ ...base, seq: 1000 });
    const second = packet({ ...base, seq: 1000 + 1388, id: 0x1235, ...change });
    c.write(first);
    c.write(second);
    c.flush();
    assert.equal(frames.length, 2, JSON.stringify(change));
    assert.deepEqual(unpack(frames), [first, second]);
    assert.equal(c.stats.superPackets, 0);
  }
});

Deno.test("TunCoalescer does not re-verify checksums of authenticated segments", () => {
  // What reaches the coalescer was decrypted and authenticated (kernel WireGuard marks it
  // CHECKSUM_UNNECESSARY): a payload that no longer matches its checksum is still the sender's.
  const { c, frames } = coalescer();
  const segs = stream(false, 3);
  const odd = segs[1]!.slice();
  odd[100]! ^= 0x40;
  c.write(segs[0]!);
  c.write(odd);
  c.write(segs[2]!);
  c.flush();
  assert.equal(frames.length, 1);
  const got = unpack(frames);
  assert.deepEqual(got[1]!.subarray(60), odd.subarray(60), "payload kept as sent");
  assert.deepEqual([got[0], got[2]], [segs[0], segs[2]]);
});

Deno.test("TunCoalescer ends a super-packet after a short segment and below 64 KB", () => {
  const { c, frames } = coalescer();
  const s: Seg = { v6: false, options: TS_OPTIONS, payload: payloadOf(1388 * 3 + 500) };
  const segs = expectedSegments(s, 1388);
  for (const p of segs) c.write(p);
  assert.equal(frames.length, 1, "written as soon as the short one arrived");
  assert.deepEqual(unpack(frames), segs);

  const { c: c2, frames: f2 } = coalescer();
  const many = stream(true, 100);
  for (const p of many) c2.write(p);
  c2.flush();
  assert.ok(f2.every((f) => f.length <= 10 + 65_535));
  assert.equal(f2.length, 3); // 47 + 47 + 6 segments of 1388 + 72 header bytes
  assert.deepEqual(unpack(f2), many);
});

Deno.test("TunCoalescer keeps several flows apart and evicts the oldest when full", () => {
  const { c, frames } = coalescer(2);
  const flows = [40001, 40002, 40003].map((port) => stream(false, 4, { srcPort: port }));
  for (let i = 0; i < 4; i++) for (const f of flows) c.write(f[i]!);
  c.flush();
  const got = unpack(frames);
  assert.equal(got.length, 12);
  // Per flow, the packets arrive complete and in order.
  for (const f of flows) {
    const port = (f[0]![20]! << 8) | f[0]![21]!;
    assert.deepEqual(got.filter((p) => ((p[20]! << 8) | p[21]!) === port), f);
  }
  // Two flows fit: they coalesced; the third kept evicting and being evicted.
  const { c: c2, frames: f2 } = coalescer(2);
  for (let i = 0; i < 4; i++) for (const f of flows.slice(0, 2)) c2.write(f[i]!);
  c2.flush();
  assert.equal(f2.length, 2);
});

Deno.test("TunCoalescer counts writes the device refused", () => {
  const c = new TunCoalescer(() => false);
  for (const p of stream(false, 3)) c.write(p);
  c.write(packet({ v6: true, udp: true, payload: payloadOf(3) }));
  c.flush();
  assert.deepEqual(c.stats, { packets: 4, writes: 2, superPackets: 1, writeFailures: 2 });
});

Deno.test("TunCoalescer delivers every packet of random interleaved streams in flow order", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          v6: fc.boolean(),
          port: fc.integer({ min: 1, max: 4 }),
          len: fc.integer({ min: 0, max: 1400 }),
          gap: fc.boolean(),
          flags: fc.constantFrom(ACK, ACK, ACK, ACK | PSH, ACK | FIN, SYN),
          udp: fc.boolean(),
          flushAfter: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
      fc.integer({ min: 1, max: 4 }),
      (steps, slots) => {
        const { c, frames } = coalescer(slots, true);
        const seq = new Map<string, number>();
        const ids = new Map<string, number>();
        const sent: Uint8Array[] = [];
        for (const st of steps) {
          const key = `${st.v6}/${st.port}/${st.udp}`;
          const s = (seq.get(key) ?? 0) + (st.gap ? 7 : 0);
          // Linux numbers IPv4 packets per socket; a super-packet stands for consecutive ids.
          const id = (ids.get(key) ?? 0) + (st.gap ? 8 : 1);
          ids.set(key, id);
          const p = packet({
            v6: st.v6,
            udp: st.udp,
            id,
            srcPort: st.port,
            seq: s,
            flags: st.flags,
            options: TS_OPTIONS,
            payload: payloadOf(st.len, st.port),
          });
          seq.set(key, s + st.len);
          c.write(p);
          sent.push(p);
          if (st.flushAfter) c.flush();
        }
        c.flush();
        const got = unpack(frames);
        const flowOf = (p: Uint8Array) => {
          const v6 = p[0]! >> 4 === 6;
          return `${v6}/${p[v6 ? 41 : 21]}/${p[v6 ? 6 : 9]}`;
        };
        assert.equal(got.length, sent.length);
        for (const key of new Set(sent.map(flowOf))) {
          assert.deepEqual(
            got.filter((p) => flowOf(p) === key),
            sent.filter((p) => flowOf(p) === key),
          );
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("TunCoalescer survives random packets", () => {
  const c = new TunCoalescer(() => true, 2);
  const base = stream(false, 2);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.tuple(
          fc.constantFrom(...base, ...stream(true, 2)),
          fc.array(fc.tuple(fc.nat(80), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        ).map(([b, edits]) => {
          const p = b.slice();
          for (const [at, v] of edits) if (at < p.length) p[at] = v;
          return p;
        }),
      ),
      (p) => {
        c.write(p);
        if (p.length % 3 === 0) c.flush();
      },
    ),
    { numRuns: 5000 },
  );
  c.flush();
  assert.ok(c.stats.writes > 0);
});
