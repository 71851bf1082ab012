import assert from "node:assert/strict";
import { hostKey, RouteTable } from "./route_table.ts";

function v6(last: number, src = 0): Uint8Array {
  const p = new Uint8Array(60);
  p[0] = 0x60;
  p.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src], 8);
  p.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last], 24);
  return p;
}

function addr6(last: number): Uint8Array {
  return new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
}

Deno.test("RouteTable finds host routes and falls back to the longest prefix", () => {
  const t = new RouteTable<string>();
  t.add({ address: addr6(2), prefixLength: 128 }, "bob");
  t.add({ address: addr6(0), prefixLength: 120 }, "lan");
  t.add({ address: addr6(0), prefixLength: 8 }, "wide");
  assert.equal(t.lookupDestination(v6(2)), "bob");
  assert.equal(t.lookupDestination(v6(3)), "lan");
  assert.equal(t.lookupSource(v6(9, 2)), "bob");
  t.removeValue("bob");
  assert.equal(t.lookupDestination(v6(2)), "lan");
});

Deno.test("RouteTable handles IPv4 and ignores garbage", () => {
  const t = new RouteTable<string>();
  t.add({ address: new Uint8Array([100, 64, 0, 2]), prefixLength: 32 }, "bob");
  t.add({ address: new Uint8Array([100, 64, 0, 0]), prefixLength: 24 }, "net");
  const p = new Uint8Array(28);
  p[0] = 0x45;
  p.set([100, 64, 0, 2], 16);
  assert.equal(t.lookupDestination(p), "bob");
  p[19] = 7;
  assert.equal(t.lookupDestination(p), "net");
  p[18] = 1;
  assert.equal(t.lookupDestination(p), undefined);
  assert.equal(t.lookupDestination(new Uint8Array([0x60, 1, 2])), undefined);
  assert.equal(t.lookupDestination(new Uint8Array([0x00])), undefined);
  assert.equal(t.lookupSource(new Uint8Array(0)), undefined);
});

Deno.test("RouteTable keeps host routes apart whose keys collide", () => {
  // fd00::c815:7c71 and fd00::2262:e5bb share a 30-bit key (found by search).
  const addr = (b: number[]) => {
    const a = new Uint8Array(16);
    a[0] = 0xfd;
    a.set(b, 12);
    return a;
  };
  const x = addr([0xc8, 0x15, 0x7c, 0x71]);
  const y = addr([0x22, 0x62, 0xe5, 0xbb]);
  assert.equal(hostKey(x, 0, 16), hostKey(y, 0, 16));
  const packetTo = (a: Uint8Array) => {
    const p = new Uint8Array(40);
    p[0] = 0x60;
    p.set(a, 24);
    return p;
  };
  const t = new RouteTable<string>();
  t.add({ address: x, prefixLength: 128 }, "x");
  t.add({ address: y, prefixLength: 128 }, "y");
  assert.equal(t.lookupDestination(packetTo(x)), "x");
  assert.equal(t.lookupDestination(packetTo(y)), "y");
  t.remove({ address: x, prefixLength: 128 });
  assert.equal(t.lookupDestination(packetTo(x)), undefined);
  assert.equal(t.lookupDestination(packetTo(y)), "y");
  t.add({ address: y, prefixLength: 128 }, "y2");
  assert.equal(t.lookupDestination(packetTo(y)), "y2", "a later route for the same prefix wins");
  t.removeValue("y2");
  assert.equal(t.lookupDestination(packetTo(y)), undefined);
});

Deno.test("RouteTable host keys are small integers (no heap number per lookup)", () => {
  for (let i = 0; i < 1 << 17; i += 97) {
    const a = new Uint8Array([198, 18 + (i >> 16), (i >> 8) & 0xff, i & 0xff]);
    const key = hostKey(a, 0, 4);
    assert.ok(Number.isInteger(key) && key >= 0 && key < 2 ** 30, `key ${key}`);
  }
});

Deno.test("RouteTable's last-hit memo never outlives a change to the table", () => {
  const t = new RouteTable<string>();
  t.add({ address: addr6(2), prefixLength: 128 }, "bob");
  t.add({ address: addr6(0), prefixLength: 120 }, "lan");
  assert.equal(t.lookupDestination(v6(2)), "bob");
  assert.equal(t.lookupSource(v6(9, 2)), "bob", "the same host as a source");
  assert.equal(t.lookupDestination(v6(3)), "lan", "another host is not taken for the last one");
  t.add({ address: addr6(2), prefixLength: 128 }, "bob2");
  assert.equal(t.lookupDestination(v6(2)), "bob2");
  t.remove({ address: addr6(2), prefixLength: 128 });
  assert.equal(t.lookupDestination(v6(2)), "lan");
  t.add({ address: addr6(2), prefixLength: 128 }, "carol");
  assert.equal(t.lookupDestination(v6(2)), "carol");
  t.removeValue("carol");
  assert.equal(t.lookupDestination(v6(2)), "lan");
  const p4 = new Uint8Array(20);
  p4[0] = 0x45;
  p4.set([100, 64, 0, 2], 16);
  t.add({ address: new Uint8Array([100, 64, 0, 2]), prefixLength: 32 }, "v4");
  assert.equal(t.lookupDestination(p4), "v4");
  p4[19] = 3;
  assert.equal(t.lookupDestination(p4), undefined);
  t.removeValue("v4");
  p4[19] = 2;
  assert.equal(t.lookupDestination(p4), undefined);
});
