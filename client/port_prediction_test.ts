import assert from "node:assert/strict";
import {
  classifyAllocation,
  decodeNatInfo,
  encodeNatInfo,
  EXT_NAT_INFO,
  planSpray,
  PREDICT_GRACE_MS,
  SEQUENTIAL_WINDOW,
  Spray,
  SPRAY_BUDGET,
  SPRAY_RATE_PER_S,
} from "./port_prediction.ts";

const at = (port: number, hostname = "198.18.0.5") => ({ hostname, port });

Deno.test("classifyAllocation: close ports are sequential, scattered ones random", () => {
  assert.equal(classifyAllocation([]), "unknown");
  assert.equal(classifyAllocation([40000]), "unknown");
  assert.equal(classifyAllocation([40000, 40000]), "unknown");
  assert.equal(classifyAllocation([40000, 40001]), "sequential");
  assert.equal(classifyAllocation([40001, 40000, 40017]), "sequential");
  assert.equal(classifyAllocation([40012, 40200]), "random");
  assert.equal(classifyAllocation([1500, 61000]), "random");
});

Deno.test("planSpray: only from behind a non-symmetric NAT toward a symmetric one", () => {
  const sym = { kind: "symmetric" as const, allocation: "unknown" as const };
  const observed = [at(40010), at(40011)];
  assert.equal(planSpray("none", { ...sym, observed }), null, "no NAT: the member reaches us");
  assert.equal(planSpray("symmetric", { ...sym, observed }), null, "both symmetric: hopeless");
  assert.equal(planSpray("unknown", { ...sym, observed }), null);
  for (const kind of ["endpoint-independent", "nat", "none", "unknown"] as const) {
    assert.equal(
      planSpray("endpoint-independent", { kind, allocation: "unknown", observed }),
      null,
    );
  }
  assert.notEqual(planSpray("endpoint-independent", { ...sym, observed }), null);
  assert.notEqual(planSpray("nat", { ...sym, observed }), null);
  assert.equal(planSpray("nat", { ...sym, observed: [] }), null, "nowhere to spray");
});

Deno.test("planSpray: a sequential allocator gets a small window above the highest port", () => {
  const plan = planSpray("endpoint-independent", {
    kind: "symmetric",
    allocation: "unknown",
    observed: [at(40003), at(40002)],
  })!;
  assert.equal(plan.mode, "predict");
  assert.equal(plan.hostname, "198.18.0.5");
  assert.equal(plan.predicted, SEQUENTIAL_WINDOW);
  assert.deepEqual(plan.ports.slice(0, 3), [40004, 40005, 40006]);
  assert.equal(plan.ports[SEQUENTIAL_WINDOW - 1], 40003 + SEQUENTIAL_WINDOW);
  // Behind the window, a scan around the observed ports (in case they were close by chance).
  assert.equal(plan.ports.length, SPRAY_BUDGET);
  assert.equal(new Set(plan.ports).size, SPRAY_BUDGET, "no port twice");
  assert.equal(plan.ports[SEQUENTIAL_WINDOW], 40002);
  // Never past the last port.
  const top = planSpray("nat", {
    kind: "symmetric",
    allocation: "unknown",
    observed: [at(65530), at(65531)],
  })!;
  assert.deepEqual(top.ports.slice(0, top.predicted), [65532, 65533, 65534, 65535]);
  // One observation: the member's advert tells the allocator.
  const one = planSpray("nat", {
    kind: "symmetric",
    allocation: "sequential",
    observed: [at(50000)],
  })!;
  assert.equal(one.mode, "predict");
  assert.equal(one.ports[0], 50001);
});

Deno.test("planSpray: a random allocator gets a bounded scan around the observed ports", () => {
  const plan = planSpray("endpoint-independent", {
    kind: "symmetric",
    allocation: "random",
    observed: [at(40200), at(40012), at(9, "198.18.0.99")],
  })!;
  assert.equal(plan.mode, "scan");
  assert.equal(plan.hostname, "198.18.0.5", "the address most hubs saw");
  assert.equal(plan.ports.length, SPRAY_BUDGET);
  assert.equal(new Set(plan.ports).size, plan.ports.length, "no port twice");
  // The middle of the observed span first; a 256-port range holding both is covered whole.
  assert.equal(plan.ports[0], 40106);
  for (let p = 40000; p <= 40255; p++) assert.ok(plan.ports.includes(p), `port ${p}`);
  for (let p = 40200 - 255; p <= 40012 + 255; p++) assert.ok(plan.ports.includes(p), `port ${p}`);
  // Near the bottom of the port space: nothing below 1024, still the full budget.
  const low = planSpray("nat", {
    kind: "symmetric",
    allocation: "random",
    observed: [at(1100), at(1300)],
  })!;
  assert.equal(Math.min(...low.ports), 1024);
  assert.equal(low.ports.length, SPRAY_BUDGET);
  // A smaller budget is respected.
  const small = planSpray("nat", {
    kind: "symmetric",
    allocation: "random",
    observed: [at(2000), at(60000)],
  }, 64)!;
  assert.equal(small.ports.length, 64);
});

Deno.test("Spray: paced, each port once, knows its hits", () => {
  const plan = {
    hostname: "198.18.0.5",
    mode: "scan" as const,
    ports: [] as number[],
    predicted: 0,
  };
  for (let p = 40000; p < 41000; p++) plan.ports.push(p);
  const spray = new Spray(plan, 1_000);
  const first = spray.due(1_000);
  assert.deepEqual(first, [40000]);
  const second = spray.due(1_200);
  assert.equal(second.length, SPRAY_RATE_PER_S / 5);
  assert.equal(second[0], 40001);
  assert.deepEqual(spray.due(1_200), [], "nothing twice");
  assert.equal(spray.hit("198.18.0.5", 40050), "scan");
  assert.equal(spray.hit("198.18.0.5", 40500), null, "not sent yet");
  assert.equal(spray.hit("198.18.0.6", 40050), null);
  const rest = spray.due(100_000);
  assert.equal(spray.sent, 1000);
  assert.equal(first.length + second.length + rest.length, 1000);
  assert.ok(spray.done);
  assert.deepEqual(spray.due(200_000), []);
});

Deno.test("NAT info TLV: round trip, optional type, unknown codes read as unknown", () => {
  const ext = encodeNatInfo({ kind: "symmetric", allocation: "sequential" });
  assert.equal(ext.type, EXT_NAT_INFO);
  assert.ok(ext.type < 0x80, "optional: older members ignore it");
  assert.deepEqual(decodeNatInfo([{ type: 0x01, value: new Uint8Array(3) }, ext]), {
    kind: "symmetric",
    allocation: "sequential",
  });
  assert.equal(decodeNatInfo([]), null);
  assert.equal(decodeNatInfo(undefined), null);
  assert.equal(decodeNatInfo([{ type: EXT_NAT_INFO, value: Uint8Array.of(1) }]), null);
  assert.deepEqual(decodeNatInfo([{ type: EXT_NAT_INFO, value: Uint8Array.of(99, 7, 0) }]), {
    kind: "unknown",
    allocation: "unknown",
  });
});

Deno.test("Spray: ports given back (over the global cap) go out later, none twice", () => {
  const plan = {
    hostname: "198.18.0.5",
    mode: "scan" as const,
    ports: [1, 2, 3, 4, 5, 6],
    predicted: 0,
  };
  const spray = new Spray(plan, 0);
  const all: number[] = [];
  let now = 0;
  for (let i = 0; i < 10 && !spray.done; i++, now += 1_000) {
    const due = spray.due(now);
    // Only one goes out per round; the rest are given back.
    all.push(...due.slice(0, 1));
    spray.giveBack(Math.max(0, due.length - 1));
  }
  assert.deepEqual(all, [1, 2, 3, 4, 5, 6]);
  assert.ok(spray.done);
});

Deno.test("Spray: the scan behind a prediction window waits PREDICT_GRACE_MS", () => {
  const plan = planSpray("nat", {
    kind: "symmetric",
    allocation: "sequential",
    observed: [at(40000), at(40001)],
  })!;
  const spray = new Spray(plan, 0);
  const early = spray.due(PREDICT_GRACE_MS - 1);
  assert.equal(early.length, SEQUENTIAL_WINDOW, "the whole window, nothing more");
  assert.equal(spray.hit("198.18.0.5", 40002), "predict");
  assert.deepEqual(spray.due(PREDICT_GRACE_MS - 1), []);
  const scan = spray.due(PREDICT_GRACE_MS);
  assert.equal(scan.length, 1);
  assert.equal(spray.hit("198.18.0.5", scan[0]!), "scan");
  spray.due(60_000);
  assert.ok(spray.done);
  assert.equal(spray.sent, SPRAY_BUDGET);
});
