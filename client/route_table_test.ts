import assert from "node:assert/strict";
import { RouteTable } from "./route_table.ts";

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
