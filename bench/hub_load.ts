/**
 * Load generator for the hub scale benchmark (run by `hub_scale.ts` inside a lab namespace, next
 * to a real `meshub hub`): simulated members, one UDP socket each, sending real REGISTER messages
 * with sealed adverts (`protocol/hub_messages.ts`, `protocol/advert.ts`, `protocol/keys.ts`).
 *
 * Phases, each bounded in time:
 * 1. join: every member registers (REGISTER, CHALLENGE, REGISTER with token, REGISTERED and the
 *    MEMBER fan-out), paced; hub CPU over the phase / registrations.
 * 2. keepalive: every member re-registers once with its token and the same sealed advert; hub
 *    CPU / keepalives.
 * 3. probes: one new member at a time joins a network; time from its first REGISTER until every
 *    other member of that network has received a MEMBER for it.
 *
 * Argument: one JSON object `{hub, port, hubPid, members, networks, probes, timeoutMs}`. Prints
 * progress lines and one `RESULT {...}` line on stdout.
 *
 * @module
 */
import { decodeHubMessage, encodeHubMessage } from "../protocol/hub_messages.ts";
import { type Advert, sealAdvert } from "../protocol/advert.ts";
import { deriveNetworkKeys, type NetworkKeys, nodeIdFromKey } from "../protocol/keys.ts";
import { cpuSeconds, quantile, rssBytes, sleep } from "./lib.ts";

interface Args {
  hub: string;
  port: number;
  hubPid: number;
  members: number;
  networks: number;
  probes: number;
  timeoutMs: number;
}

interface Member {
  net: number;
  sock: Deno.DatagramConn;
  nodeId: Uint8Array;
  advert: Uint8Array;
  token: Uint8Array | null;
  registered: boolean;
  acks: number;
}

const args = JSON.parse(Deno.args[0] ?? "{}") as Args;
const hubAddr: Deno.NetAddr = { transport: "udp", hostname: args.hub, port: args.port };
const ZERO_TOKEN = new Uint8Array(16);
const BATCH = 100;
const BATCH_GAP_MS = 10;

const nets: { keys: NetworkKeys; members: Member[] }[] = [];
for (let i = 0; i < args.networks; i++) {
  nets.push({ keys: deriveNetworkKeys(crypto.getRandomValues(new Uint8Array(32))), members: [] });
}

let stopped = false;
let registeredCount = 0;
let memberMsgs = 0;
let acks = 0;
/** Probe watch: node id (hex) → members still to be told. */
const watch = new Map<string, { left: Set<Member>; done: () => void }>();

function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

function newMember(net: number, index: number): Member {
  const { keys } = nets[net]!;
  const publicKey = crypto.getRandomValues(new Uint8Array(32));
  const sock = Deno.listenDatagram({ transport: "udp", hostname: args.hub, port: 0 });
  const port = (sock.addr as Deno.NetAddr).port;
  const address = new Uint8Array(16);
  address.set(keys.ulaPrefix, 0);
  address.set(publicKey.subarray(0, 8), 8);
  const advert: Advert = {
    timestampMs: Date.now(),
    publicKey,
    name: `m${index}`,
    ipv6: { address, prefixLen: 48 },
    ipv4: null,
    udpPort: port,
    localEndpoints: [],
  };
  const m: Member = {
    net,
    sock,
    nodeId: nodeIdFromKey(keys.nodeIdKey, publicKey),
    advert: sealAdvert(keys, keys.networkId, advert),
    token: null,
    registered: false,
    acks: 0,
  };
  loop(m);
  return m;
}

function register(m: Member, fullList: boolean): void {
  const msg = encodeHubMessage({
    kind: "register",
    networkId: nets[m.net]!.keys.networkId,
    nodeId: m.nodeId,
    token: m.token ?? ZERO_TOKEN,
    fullList,
    advert: m.advert,
  });
  m.sock.send(msg, hubAddr).catch(() => {});
}

async function loop(m: Member): Promise<void> {
  while (!stopped) {
    let data: Uint8Array;
    try {
      [data] = await m.sock.receive();
    } catch {
      return;
    }
    const msg = decodeHubMessage(data);
    if (msg.kind === "challenge") {
      m.token = msg.token.slice();
      register(m, true);
    } else if (msg.kind === "registered") {
      if (!m.registered) {
        m.registered = true;
        registeredCount++;
      }
      m.acks++;
      acks++;
    } else if (msg.kind === "member") {
      memberMsgs++;
      const w = watch.get(hex(msg.nodeId));
      if (w && w.left.delete(m) && w.left.size === 0) w.done();
    }
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < timeoutMs / 20 + 1 && performance.now() < deadline; i++) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

/** Waits until `counter()` stops changing for `quietMs` (bounded). */
async function quiesce(counter: () => number, quietMs: number, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  let last = counter();
  let since = performance.now();
  while (performance.now() < deadline) {
    await sleep(50);
    const now = counter();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return;
  }
}

const say = (s: string) => console.log(s);
const result: Record<string, unknown> = { members: args.members, networks: args.networks };
try {
  // --- join ---
  const all: Member[] = [];
  for (let i = 0; i < args.members; i++) {
    const m = newMember(i % args.networks, i);
    nets[m.net]!.members.push(m);
    all.push(m);
  }
  say(`created ${all.length} members`);
  const cpu0 = cpuSeconds(args.hubPid);
  const t0 = performance.now();
  for (let i = 0; i < all.length; i += BATCH) {
    for (const m of all.slice(i, i + BATCH)) register(m, true);
    await sleep(BATCH_GAP_MS);
  }
  // Retry (bounded) anything a full socket buffer dropped.
  for (let retry = 0; retry < 5 && registeredCount < all.length; retry++) {
    if (await until(() => registeredCount === all.length, 1_000)) break;
    const missing = all.filter((m) => !m.registered);
    say(`retrying ${missing.length} registrations`);
    for (let i = 0; i < missing.length; i += BATCH) {
      for (const m of missing.slice(i, i + BATCH)) register(m, true);
      await sleep(BATCH_GAP_MS);
    }
  }
  await until(() => registeredCount === all.length, args.timeoutMs / 4);
  const joinMs = performance.now() - t0;
  await quiesce(() => memberMsgs, 500, args.timeoutMs / 4);
  const cpu1 = cpuSeconds(args.hubPid);
  result.joined = registeredCount;
  result.joinSeconds = joinMs / 1000;
  result.memberMessagesDuringJoin = memberMsgs;
  result.cpuJoinSeconds = cpu1 - cpu0;
  result.cpuPerRegistrationUs = ((cpu1 - cpu0) / Math.max(1, registeredCount)) * 1e6;
  result.hubRssAfterJoin = rssBytes(args.hubPid);
  say(`joined ${registeredCount}/${all.length} in ${(joinMs / 1000).toFixed(1)} s`);

  // --- keepalive ---
  const live = all.filter((m) => m.registered);
  const acks0 = acks;
  const cpu2 = cpuSeconds(args.hubPid);
  for (let i = 0; i < live.length; i += BATCH) {
    for (const m of live.slice(i, i + BATCH)) register(m, false);
    await sleep(BATCH_GAP_MS);
  }
  await until(() => acks - acks0 >= live.length, args.timeoutMs / 4);
  await quiesce(() => acks, 300, 5_000);
  const cpu3 = cpuSeconds(args.hubPid);
  result.keepalives = acks - acks0;
  result.cpuKeepaliveSeconds = cpu3 - cpu2;
  result.cpuPerKeepaliveUs = ((cpu3 - cpu2) / Math.max(1, acks - acks0)) * 1e6;
  say(`keepalives acknowledged: ${acks - acks0}/${live.length}`);

  // --- probes: join → every other member told ---
  const told: number[] = [];
  let probeFailures = 0;
  for (let p = 0; p < args.probes; p++) {
    const net = p % args.networks;
    const others = nets[net]!.members.filter((m) => m.registered);
    const m = newMember(net, args.members + p);
    const left = new Set(others);
    const done = Promise.withResolvers<void>();
    watch.set(hex(m.nodeId), { left, done: done.resolve });
    const t = performance.now();
    register(m, true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ok = await Promise.race([
      done.promise.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000))),
    ]);
    clearTimeout(timer);
    watch.delete(hex(m.nodeId));
    if (ok || left.size === 0) told.push(performance.now() - t);
    else probeFailures++;
    nets[net]!.members.push(m);
    await sleep(20);
  }
  result.probes = told.length;
  result.probeFailures = probeFailures;
  result.toldMs = {
    p50: quantile(told, 0.5),
    p99: quantile(told, 0.99),
    max: told.length ? Math.max(...told) : NaN,
  };
  result.hubRssBytes = rssBytes(args.hubPid);
  result.hubRssPeakBytes = rssBytes(args.hubPid, "VmHWM");
} catch (e) {
  result.error = e instanceof Error ? e.message : String(e);
}
stopped = true;
console.log("RESULT " + JSON.stringify(result));
for (const n of nets) for (const m of n.members) m.sock.close();
Deno.exit(0);
