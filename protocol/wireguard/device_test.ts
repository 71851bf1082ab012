import assert from "node:assert/strict";
import { WgDevice, type WgReceiveResult } from "./device.ts";
import { WG_DROP_REASONS } from "./peer.ts";
import { publicKeyOf } from "./noise.ts";
import {
  PINNED_INITIATION,
  PINNED_PRIVATE_A,
  PINNED_PRIVATE_B,
  PINNED_RESPONSE,
  PINNED_WALL_MS,
} from "./_test_vectors.ts";
import {
  assertEquals,
  expectKind,
  h,
  handshake,
  hex,
  ip6,
  pair,
  seededRandom,
  SRC_A,
  SRC_B,
} from "./_test_helpers.ts";

/** Tiny timers so tests can walk through the whole state machine. */
const FAST = {
  rekeyAfterMs: 1_000,
  rejectAfterMs: 1_500,
  rekeyAttemptMs: 900,
  rekeyTimeoutMs: 100,
  keepaliveTimeoutMs: 200,
};

Deno.test("two devices complete a handshake and exchange data both ways", () => {
  const p = pair();
  const init = p.ab.createInitiation(10);
  const reply = expectKind(p.b.receive(init, SRC_A, 11), "reply");
  assertEquals(reply.peer, p.ba);
  assertEquals(reply.authenticated, true);
  assertEquals(p.ba.hasSession(11), false); // responder waits for confirmation
  const est = expectKind(p.a.receive(reply.packet, SRC_B, 12), "established");
  assertEquals(est.peer, p.ab);
  assertEquals(est.packets.length, 1); // keepalive to confirm
  assertEquals(est.packets[0]!.length, 32);
  expectKind(p.b.receive(est.packets[0]!, SRC_A, 13), "keepalive");
  assertEquals(p.ba.hasSession(13), true);

  const out = ip6(61, 0xab); // 101 bytes: padded to 112 on the wire
  const dg = p.ab.encrypt(out, 14)!;
  assertEquals(dg.length, 16 + 112 + 16);
  const got = expectKind(p.b.receive(dg, SRC_A, 15), "data");
  assertEquals(got.packet, out);
  assertEquals(got.peer, p.ba);

  const back = ip6(3, 0xcd);
  const dg2 = p.ba.encrypt(back, 16)!;
  assertEquals(expectKind(p.a.receive(dg2, SRC_B, 17), "data").packet, back);
  assertEquals(p.ab.stats.handshakesCompleted, 1);
  assertEquals(p.ba.stats.handshakesCompleted, 1);
  assertEquals(p.ab.stats.txPackets, 2);
  assertEquals(p.ab.stats.rxPackets, 1);
  assertEquals(p.ab.stats.lastHandshakeMs, 12);
});

Deno.test("packets sent before the handshake are queued and delivered on establishment", () => {
  const p = pair();
  assertEquals(p.ab.encrypt(ip6(1, 1), 0), null);
  assertEquals(p.ab.encrypt(ip6(2, 2), 0), null);
  const [init, ...rest] = p.ab.tick(1);
  assertEquals(rest.length, 0);
  const reply = expectKind(p.b.receive(init!, SRC_A, 2), "reply");
  const est = expectKind(p.a.receive(reply.packet, SRC_B, 3), "established");
  assertEquals(est.packets.length, 2);
  // A data result is a view valid until the next receive(): copy to keep it.
  const got = est.packets.map((d) => expectKind(p.b.receive(d, SRC_A, 4), "data").packet.slice());
  assertEquals(got, [ip6(1, 1), ip6(2, 2)]);
});

Deno.test("responder's queued packets leave when the first transport message confirms", () => {
  const p = pair();
  const reply = expectKind(p.b.receive(p.ab.createInitiation(0), SRC_A, 0), "reply");
  assertEquals(p.ba.encrypt(ip6(4, 4), 1), null); // only a `next` session: queue
  assertEquals(p.ba.tick(2), []); // the response counts as a handshake sent: no initiation yet
  const est = expectKind(p.a.receive(reply.packet, SRC_B, 3), "established");
  const ka = expectKind(p.b.receive(est.packets[0]!, SRC_A, 4), "keepalive");
  assertEquals(ka.outgoing.length, 1);
  assertEquals(expectKind(p.a.receive(ka.outgoing[0]!, SRC_B, 5), "data").packet, ip6(4, 4));
});

function converge(order: "initiations-first" | "response-first") {
  const p = pair();
  const ia = p.ab.createInitiation(0);
  const ib = p.ba.createInitiation(0);
  let ra: WgReceiveResult, rb: WgReceiveResult;
  let estA: WgReceiveResult, estB: WgReceiveResult;
  if (order === "initiations-first") {
    ra = p.b.receive(ia, SRC_A, 1);
    rb = p.a.receive(ib, SRC_B, 1);
    estA = p.a.receive(expectKind(ra, "reply").packet, SRC_B, 2);
    estB = p.b.receive(expectKind(rb, "reply").packet, SRC_A, 2);
  } else {
    ra = p.b.receive(ia, SRC_A, 1);
    estA = p.a.receive(expectKind(ra, "reply").packet, SRC_B, 2);
    rb = p.a.receive(ib, SRC_B, 3);
    estB = p.b.receive(expectKind(rb, "reply").packet, SRC_A, 4);
  }
  for (const d of expectKind(estA, "established").packets) p.b.receive(d, SRC_A, 5);
  for (const d of expectKind(estB, "established").packets) p.a.receive(d, SRC_B, 5);
  for (let i = 0; i < 3; i++) {
    const x = ip6(8, i);
    assertEquals(expectKind(p.b.receive(p.ab.encrypt(x, 6)!, SRC_A, 6), "data").packet, x);
    assertEquals(expectKind(p.a.receive(p.ba.encrypt(x, 6)!, SRC_B, 6), "data").packet, x);
  }
  assertEquals(p.ab.hasSession(7) && p.ba.hasSession(7), true);
  assertEquals(p.a.drops.decrypt_failed + p.b.drops.decrypt_failed, 0);
}

Deno.test("simultaneous initiation from both sides converges (initiations cross)", () => {
  converge("initiations-first");
});

Deno.test("simultaneous initiation from both sides converges (one response first)", () => {
  converge("response-first");
});

Deno.test("a replayed transport packet is dropped", () => {
  const p = pair();
  handshake(p, 0);
  const dg = p.ab.encrypt(ip6(5), 1)!;
  expectKind(p.b.receive(dg, SRC_A, 2), "data");
  assertEquals(expectKind(p.b.receive(dg, SRC_A, 3), "drop").reason, "replay");
  // A flipped bit is an authentication failure, not a replay.
  const dg2 = p.ab.encrypt(ip6(5), 4)!;
  dg2[dg2.length - 1]! ^= 1;
  assertEquals(expectKind(p.b.receive(dg2, SRC_A, 5), "drop").reason, "decrypt_failed");
  assertEquals(p.b.drops.replay, 1);
});

Deno.test("a replayed initiation is dropped (TAI64N must increase), floods too", () => {
  let wall = 1_700_000_000_000;
  const p = pair({ wallClockMs: () => wall });
  const init = p.ab.createInitiation(0);
  expectKind(p.b.receive(init, SRC_A, 0), "reply");
  assertEquals(expectKind(p.b.receive(init, SRC_A, 1000), "drop").reason, "stale_timestamp");
  wall += 1000;
  const second = p.ab.createInitiation(1010);
  // Within 50 ms of the last handled initiation from this peer: flood.
  const early = p.b.receive(second, SRC_A, 20);
  assertEquals(expectKind(early, "drop").reason, "initiation_flood");
  expectKind(p.b.receive(second, SRC_A, 1010), "reply");
  assertEquals(p.b.drops.stale_timestamp, 1);
  assertEquals(p.b.drops.initiation_flood, 1);
});

Deno.test("a wrong preshared key fails the handshake at the initiator", () => {
  const p = pair({}, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
  const reply = expectKind(p.b.receive(p.ab.createInitiation(0), SRC_A, 0), "reply");
  const r = p.a.receive(reply.packet, SRC_B, 1);
  assertEquals(expectKind(r, "drop").reason, "handshake_decrypt_failed");
  assertEquals(p.ab.hasSession(1), false);
});

Deno.test("an initiation from an unknown peer or with a bad mac1 is dropped", () => {
  const p = pair();
  const stranger = new WgDevice({ privateKey: new Uint8Array(32).fill(9) });
  const init = stranger.addPeer(p.b.publicKey).createInitiation(0);
  assertEquals(expectKind(p.b.receive(init, SRC_A, 0), "drop").reason, "unknown_peer");
  const bad = p.ab.createInitiation(0);
  bad[120]! ^= 1;
  assertEquals(expectKind(p.b.receive(bad, SRC_A, 0), "drop").reason, "bad_mac1");
  // A response nobody asked for.
  const reply = expectKind(p.b.receive(p.ab.createInitiation(100), SRC_A, 100), "reply");
  p.a.receive(reply.packet, SRC_B, 101);
  assertEquals(expectKind(p.a.receive(reply.packet, SRC_B, 102), "drop").reason, "unknown_index");
});

Deno.test("receive() never throws on truncated, garbage or mutated datagrams", () => {
  const p = pair();
  handshake(p, 0);
  const rnd = seededRandom("fuzz");
  const valid = [
    p.ab.createInitiation(1),
    p.ab.encrypt(ip6(20), 1)!,
  ];
  const reply = expectKind(p.b.receive(p.ab.createInitiation(100), SRC_A, 100), "reply").packet;
  valid.push(reply);
  let n = 0;
  const check = (d: Uint8Array) => {
    const r = p.b.receive(d, SRC_A, 200);
    const r2 = p.a.receive(d, SRC_B, 200);
    for (const x of [r, r2]) {
      if (x.kind === "drop" && !WG_DROP_REASONS.includes(x.reason)) throw new Error(x.reason);
    }
    n++;
  };
  for (let len = 0; len <= 200; len++) {
    for (let type = 0; type <= 5; type++) {
      const d = rnd(len);
      if (len > 0) d[0] = type;
      if (len > 3) d.fill(0, 1, 4);
      check(d);
    }
    check(rnd(len));
  }
  for (const v of valid) {
    for (let len = 0; len < v.length; len++) check(v.subarray(0, len));
    for (let i = 0; i < v.length; i++) {
      const m = v.slice();
      m[i]! ^= 1 << (i % 8);
      check(m);
    }
  }
  const drops = Object.values(p.b.drops).reduce((s, x) => s + x, 0);
  assertEquals(drops > n / 2, true);
});

Deno.test("initiator rekeys after rekeyAfterMs while sending", () => {
  const p = pair({ timers: FAST });
  handshake(p, 0);
  expectKind(p.b.receive(p.ab.encrypt(ip6(1), 500)!, SRC_A, 500), "data");
  assertEquals(p.ab.tick(500).length, 0);
  // Still within rejectAfter: the packet goes out, and a handshake is now wanted.
  const late = p.ab.encrypt(ip6(2), 1_050)!;
  expectKind(p.b.receive(late, SRC_A, 1_050), "data");
  const out = p.ab.tick(1_060);
  assertEquals(out.length, 1);
  assertEquals(out[0]![0], 1); // initiation
  const reply = expectKind(p.b.receive(out[0]!, SRC_A, 1_070), "reply");
  const est = expectKind(p.a.receive(reply.packet, SRC_B, 1_080), "established");
  for (const d of est.packets) p.b.receive(d, SRC_A, 1_080);
  assertEquals(p.ab.stats.handshakesCompleted, 2);
  assertEquals(
    expectKind(p.b.receive(p.ab.encrypt(ip6(3), 1_090)!, SRC_A, 1_090), "data").kind,
    "data",
  );
  // The previous session still decrypts a late packet from b.
  assertEquals(p.ba.hasSession(1_090), true);
});

Deno.test("sessions are rejected after rejectAfterMs; keys are zeroed after 3x", () => {
  const p = pair({ timers: FAST });
  handshake(p, 0);
  const old = p.ab.encrypt(ip6(1), 100)!;
  assertEquals(p.ab.hasSession(1_499), true);
  assertEquals(p.ab.hasSession(1_500), false);
  assertEquals(expectKind(p.b.receive(old, SRC_A, 1_500), "drop").reason, "expired_session");
  assertEquals(p.ab.encrypt(ip6(2), 1_500), null); // queued, handshake wanted
  // Stop the handshake attempts from succeeding: b never answers.
  let t = 1_500;
  for (; t < 1_500 + 4_500 + 1_000; t += 50) p.ab.tick(t);
  assertEquals(p.ab.hasSession(t), false);
  const stale = expectKind(p.b.receive(old, SRC_A, t), "drop").reason;
  assertEquals(stale === "expired_session" || stale === "unknown_index", true);
  // b zeroes its keys 3 x rejectAfter after the handshake: the index is gone.
  p.ba.tick(4_600);
  assertEquals(expectKind(p.b.receive(old, SRC_A, 4_600), "drop").reason, "unknown_index");
});

Deno.test("handshake retries every rekeyTimeout (+jitter), give up after rekeyAttempt", () => {
  const p = pair({ timers: FAST });
  assertEquals(p.ab.encrypt(ip6(1), 0), null);
  const sent: number[] = [];
  for (let t = 0; t <= 3_000; t += 10) {
    for (const d of p.ab.tick(t)) if (d[0] === 1) sent.push(t);
  }
  // First at t=0, then roughly every 100-434 ms until ~900 ms of attempts are spent.
  assertEquals(sent[0], 0);
  for (let i = 1; i < sent.length; i++) {
    const gap = sent[i]! - sent[i - 1]!;
    assertEquals(gap >= 100 && gap <= 450, true, `gap ${gap}`);
  }
  assertEquals(sent.length, 10); // 1 + maxHandshakeAttempts (900/100)
  // New data restarts the handshake.
  assertEquals(p.ab.encrypt(ip6(2), 3_010), null);
  assertEquals(p.ab.tick(3_020).length, 1);
});

Deno.test("keepalive after keepaliveTimeout when data was received but none sent", () => {
  const p = pair({ timers: FAST });
  handshake(p, 0);
  expectKind(p.b.receive(p.ab.encrypt(ip6(1), 10)!, SRC_A, 10), "data");
  assertEquals(p.ba.tick(150), []);
  const out = p.ba.tick(210);
  assertEquals(out.length, 1);
  assertEquals(out[0]!.length, 32);
  expectKind(p.a.receive(out[0]!, SRC_B, 211), "keepalive");
  assertEquals(p.ba.tick(500), []);
});

Deno.test("no reply to sent data for keepalive+rekey timeout starts a new handshake", () => {
  const p = pair({ timers: FAST });
  handshake(p, 0);
  p.ab.encrypt(ip6(1), 10); // b never answers
  assertEquals(p.ab.tick(300), []);
  const out = p.ab.tick(311);
  assertEquals(out.length, 1);
  assertEquals(out[0]![0], 1);
});

Deno.test("persistent keepalive is sent when the link is idle", () => {
  const p = pair({ timers: { ...FAST, persistentKeepaliveMs: 300 } });
  handshake(p, 0);
  assertEquals(p.ab.tick(200), []);
  const out = p.ab.tick(301);
  assertEquals(out.length, 1);
  expectKind(p.b.receive(out[0]!, SRC_A, 301), "keepalive");
});

Deno.test("keepaliveFromOwnSendsOnly: both ends of an idle edge keep sending keepalives", () => {
  const run = (ownSendsOnly: boolean) => {
    // Default (long) session lifetimes: only keepalives are on the wire.
    const p = pair({ timers: { persistentKeepaliveMs: 300 } });
    p.ab.keepaliveFromOwnSendsOnly = ownSendsOnly;
    p.ba.keepaliveFromOwnSendsOnly = ownSendsOnly;
    handshake(p, 0);
    let fromB = 0;
    for (let t = 0; t <= 3_000; t += 50) {
      for (const d of p.ab.tick(t)) p.b.receive(d, SRC_A, t);
      for (const d of p.ba.tick(t)) {
        if (d[0] === 4 && d.length === 32) fromB++; // keepalives only, not rekey handshakes
        p.a.receive(d, SRC_B, t);
      }
    }
    return fromB;
  };
  // WireGuard's rule: A's keepalives restart B's timer, so B stays silent all along...
  assertEquals(run(false), 0);
  // ...unless B counts only its own sends: then it speaks about every 300 ms too.
  const fromB = run(true);
  assertEquals(fromB >= 8 && fromB <= 11, true, `B sent ${fromB} keepalives in 3 s`);
});

Deno.test("under load: initiation without cookie gets a cookie reply, retry with mac2 works", () => {
  const p = pair();
  p.b.alwaysUnderLoad = true;
  const first = p.ab.createInitiation(0);
  const cookie = expectKind(p.b.receive(first, SRC_A, 0), "reply");
  assertEquals(cookie.peer, null);
  assertEquals(cookie.authenticated, false);
  assertEquals(cookie.packet.length, 64);
  // Another source may not reuse it.
  expectKind(p.a.receive(cookie.packet, SRC_B, 1), "none");
  const retry = p.ab.createInitiation(60);
  assertEquals(expectKind(p.b.receive(retry, SRC_B, 60), "reply").authenticated, false);
  const retry2 = p.ab.createInitiation(120);
  const reply = expectKind(p.b.receive(retry2, SRC_A, 120), "reply");
  assertEquals(reply.authenticated, true);
  // The responder's response needs no cookie at the initiator (not under load).
  expectKind(p.a.receive(reply.packet, SRC_B, 121), "established");
  // A forged cookie reply is refused.
  const forged = cookie.packet.slice();
  forged[40]! ^= 1;
  assertEquals(expectKind(p.a.receive(forged, SRC_B, 122), "drop").kind, "drop");
});

Deno.test("the load threshold switches cookie replies on for one second", () => {
  const p = pair({ loadThresholdPerSecond: 2 });
  let wall = 1_700_000_000_000;
  void wall;
  const results: string[] = [];
  for (let i = 0; i < 3; i++) {
    wall += 100;
    const r = p.b.receive(p.ab.createInitiation(i * 100), SRC_A, i * 100);
    results.push(r.kind === "reply" ? (r.authenticated ? "response" : "cookie") : r.kind);
  }
  assertEquals(results, ["response", "response", "cookie"]);
  assertEquals(p.b.isUnderLoad(1_100), true);
  assertEquals(p.b.isUnderLoad(1_300), false);
});

Deno.test("removePeer() forgets sessions: its traffic is an unknown index", () => {
  const p = pair();
  handshake(p, 0);
  const dg = p.ab.encrypt(ip6(1), 1)!;
  p.b.removePeer(p.ba);
  assertEquals(expectKind(p.b.receive(dg, SRC_A, 2), "drop").reason, "unknown_index");
  assertEquals(p.b.peer(p.a.publicKey), undefined);
  assertEquals([...p.b.peers].length, 0);
});

Deno.test("pinned known-answer handshake (fixed keys, ephemerals, timestamp)", () => {
  const p = pair({ wallClockMs: () => PINNED_WALL_MS });
  assertEquals(hex(p.a.publicKey), hex(publicKeyOf(h(PINNED_PRIVATE_A))));
  assertEquals(hex(p.b.publicKey), hex(publicKeyOf(h(PINNED_PRIVATE_B))));
  const init = p.ab.createInitiation(0);
  const reply = expectKind(p.b.receive(init, SRC_A, 0), "reply");
  assertEquals(hex(init), PINNED_INITIATION);
  assertEquals(hex(reply.packet), PINNED_RESPONSE);
  expectKind(p.a.receive(reply.packet, SRC_B, 1), "established");
});

Deno.test("transport results are reused objects, and local indices are small integers", () => {
  const p = pair();
  const init = p.ab.createInitiation(10);
  assert(p.ab.pendingInitiationIndex! < 2 ** 30, "an index below 2^30 is a Smi: no allocation");
  const reply = expectKind(p.b.receive(init, SRC_A, 11), "reply");
  const est = expectKind(p.a.receive(reply.packet, SRC_B, 12), "established");
  expectKind(p.b.receive(est.packets[0]!, SRC_A, 13), "keepalive");
  const first = expectKind(p.b.receive(p.ab.encrypt(ip6(1, 1), 14)!, SRC_A, 15), "data");
  assertEquals(first.packet, ip6(1, 1));
  assertEquals(first.outgoing.length, 0);
  const second = expectKind(p.b.receive(p.ab.encrypt(ip6(2, 2), 16)!, SRC_A, 17), "data");
  assert(second === first, "one result object per device, valid until the next receive()");
  assertEquals(second.packet, ip6(2, 2));
});
