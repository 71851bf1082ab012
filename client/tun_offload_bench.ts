import {
  TunCoalescer,
  TunSegmenter,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_LEN,
} from "./tun_offload.ts";

// One IPv6 TSO read as the kernel hands it over: 40 + 32 header bytes, 64 000 bytes of payload,
// gso_size 1348 (MTU 1420 minus headers): 48 segments.
const PAYLOAD_LEN = 64_000;
const GSO_SIZE = 1348;
const frame = new Uint8Array(VIRTIO_NET_HDR_LEN + 72 + PAYLOAD_LEN);
frame.set([VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 72, 0]);
frame.set([GSO_SIZE & 0xff, GSO_SIZE >> 8, 40, 0, 16, 0], 4);
const p = frame.subarray(VIRTIO_NET_HDR_LEN);
p.set([0x60, 0, 0, 0, (72 - 40 + PAYLOAD_LEN) >> 8, (72 - 40 + PAYLOAD_LEN) & 0xff, 6, 64]);
p.set([0xfd, 0, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
p.set([0xfd, 0, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 24);
p.set([0x9c, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, 7, 0x80, 0x10, 1, 0xf6], 40);
p.set([1, 1, 8, 10, 0, 1, 2, 3, 0, 4, 5, 6], 60);
crypto.getRandomValues(p.subarray(72));

const segmenter = new TunSegmenter();
segmenter.frame.set(frame);
const segments: Uint8Array[] = [];
segmenter.split(frame.length, (s) => segments.push(s.slice()));
let sink = 0;
const count = (s: Uint8Array) => void (sink += s.length);

Deno.bench({
  name: `TunSegmenter.split: 64 KB TSO read → ${segments.length} segments`,
  fn: () => {
    // The split rewrites the frame in place: restore the first header like a new read would.
    segmenter.frame.set(frame.subarray(0, VIRTIO_NET_HDR_LEN + 72));
    segmenter.split(frame.length, count);
  },
});

const coalescer = new TunCoalescer((f) => {
  sink += f.length;
  return true;
});
Deno.bench({
  name: `TunCoalescer: ${segments.length} decrypted segments → 1 GSO write`,
  fn: () => {
    for (const s of segments) coalescer.write(s);
    coalescer.flush();
  },
});
