import assert from "node:assert/strict";
import { classifyNat } from "./nat_kind.ts";

Deno.test("natKind: from the hubs' observations and the node's own addresses", () => {
  const at = (hostname: string, port: number) => ({ hostname, port });
  assert.equal(classifyNat([], ["198.19.2.10"]), "unknown");
  assert.equal(classifyNat([at("198.18.0.11", 5000)], ["198.18.0.11"]), "none");
  assert.equal(classifyNat([at("fd00::11", 5000)], ["FD00::11"]), "none");
  assert.equal(classifyNat([at("198.18.0.2", 5000)], ["198.19.2.10"]), "nat");
  const twoHubs = [at("198.18.0.2", 5000), at("198.18.0.2", 5000)];
  assert.equal(classifyNat(twoHubs, ["198.19.2.10"]), "endpoint-independent");
  assert.equal(
    classifyNat([at("198.18.0.2", 5000), at("198.18.0.2", 61234)], ["198.19.2.10"]),
    "symmetric",
  );
  // One mapping per family is not a symmetric NAT.
  assert.equal(classifyNat([at("198.18.0.2", 5000), at("fd00::2", 7000)], []), "nat");
});
