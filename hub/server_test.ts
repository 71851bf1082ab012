import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { openAdvert, sealAdvert } from "../protocol/advert.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import {
  type DecodedHubMessage,
  decodeHubMessage,
  encodeHubMessage,
} from "../protocol/hub_messages.ts";
import { deriveNetworkKeys, nodeAddress, nodeId } from "../protocol/keys.ts";
import { HubError, type HubHandle, startHub } from "./server.ts";

const PSK = crypto.getRandomValues(new Uint8Array(32));
const KEYS = deriveNetworkKeys(PSK);

/** A fake client: one UDP socket, a background receive loop, and a queue of decoded replies. */
class FakeClient implements AsyncDisposable {
  readonly conn: Deno.DatagramConn;
  readonly publicKey = crypto.getRandomValues(new Uint8Array(32));
  readonly nodeId = nodeId(PSK, this.publicKey);
  readonly advert: Uint8Array;
  token: Uint8Array = new Uint8Array(16);
  readonly #queue: { msg: DecodedHubMessage; from: Endpoint }[] = [];
  #wake: (() => void) | undefined;
  readonly #loop: Promise<void>;

  constructor(hostname: string) {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.advert = sealAdvert(KEYS, KEYS.networkId, {
      timestampMs: Date.now(),
      publicKey: this.publicKey,
      name: `fake-${this.local.port}`,
      ipv6: { address: nodeAddress(KEYS.ulaPrefix, this.publicKey), prefixLen: 48 },
      ipv4: null,
      udpPort: this.local.port,
      localEndpoints: [],
    });
    this.#loop = this.#receive();
  }

  get local(): Endpoint {
    const addr = this.conn.addr as Deno.NetAddr;
    return { hostname: addr.hostname, port: addr.port };
  }

  async #receive(): Promise<void> {
    for (;;) {
      try {
        const [data, addr] = await this.conn.receive();
        const from = addr as Deno.NetAddr;
        this.#queue.push({
          msg: decodeHubMessage(data),
          from: { hostname: from.hostname, port: from.port },
        });
        this.#wake?.();
      } catch {
        return;
      }
    }
  }

  /** The next datagram, or a failure after `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<{ msg: DecodedHubMessage; from: Endpoint }> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a datagram");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#queue.shift()!;
  }

  async send(bytes: Uint8Array, to: Endpoint): Promise<void> {
    await this.conn.send(bytes, { transport: "udp", ...to });
  }

  async register(hub: Endpoint, fullList = false): Promise<void> {
    await this.send(
      encodeHubMessage({
        kind: "register",
        networkId: KEYS.networkId,
        nodeId: this.nodeId,
        token: this.token,
        advert: this.advert,
        fullList,
      }),
      hub,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.conn.close();
    await this.#loop;
  }
}

async function waitFor(hub: HubHandle, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out; stats ${JSON.stringify(hub.stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Runs CHALLENGE → REGISTER → REGISTERED for a client; returns the REGISTERED message. */
async function join(client: FakeClient, hub: Endpoint) {
  await client.register(hub);
  const challenge = await client.next();
  deepStrictEqual(challenge.from, hub, "the reply comes from the address the request went to");
  ok(challenge.msg.kind === "challenge", challenge.msg.kind);
  client.token = challenge.msg.token.slice();
  await client.register(hub);
  const registered = await client.next();
  deepStrictEqual(registered.from, hub);
  ok(registered.msg.kind === "registered", registered.msg.kind);
  deepStrictEqual(registered.msg.endpoint, client.local, "the hub reports the observed endpoint");
  return registered.msg;
}

Deno.test("hub on 127.0.0.1 and [::1] introduces two real clients to each other", async () => {
  await using hub = await startHub({ addresses: ["127.0.0.1", "::1"], port: 0, keepaliveS: 7 });
  equal(hub.endpoints.length, 2);
  const [hub4, hub6] = hub.endpoints as [Endpoint, Endpoint];
  equal(hub4.hostname, "127.0.0.1");
  equal(hub6.hostname, "::1");
  await using a = new FakeClient("127.0.0.1");
  await using b = new FakeClient("::1");

  const registeredA = await join(a, hub4);
  equal(registeredA.keepaliveS, 7);
  equal(registeredA.members, 1);
  const registeredB = await join(b, hub6);
  equal(registeredB.members, 2);

  // B, the newcomer, gets A (from the [::1] socket); A gets B pushed (from the 127.0.0.1 socket).
  const toB = await b.next();
  deepStrictEqual(toB.from, hub6);
  ok(toB.msg.kind === "member");
  deepStrictEqual(toB.msg.endpoint, a.local);
  const advertOfA = openAdvert(KEYS, KEYS.networkId, toB.msg.nodeId, toB.msg.advert);
  deepStrictEqual(advertOfA.advert?.publicKey, a.publicKey);
  const toA = await a.next();
  deepStrictEqual(toA.from, hub4);
  ok(toA.msg.kind === "member");
  deepStrictEqual(toA.msg.endpoint, b.local);
  deepStrictEqual(toA.msg.nodeId, b.nodeId);
  equal(openAdvert(KEYS, KEYS.networkId, toA.msg.nodeId, toA.msg.advert).error, undefined);

  // A refresh without change gets only REGISTERED.
  await a.register(hub4);
  equal((await a.next()).msg.kind, "registered");

  // 1000 garbage datagrams to both sockets change nothing. Sent in batches the hub has taken in
  // before the next, so the kernel's socket buffers never overflow.
  await using mallory = new FakeClient("127.0.0.1");
  await using mallory6 = new FakeClient("::1");
  const before = hub.stats;
  for (let batch = 0; batch < 20; batch++) {
    for (let i = 0; i < 50; i++) {
      const garbage = crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 1200)));
      if (i % 2 === 0 && garbage.length >= 4) garbage.set([0x11 + (i % 15), 1, i % 3, 0]);
      if (i % 2 === 0) await mallory.send(garbage, hub4);
      else await mallory6.send(garbage, hub6);
    }
    const expected = before.received + 50 * (batch + 1);
    await waitFor(hub, () => hub.stats.received >= expected);
  }
  const after = hub.stats;
  equal(after.members, 2);
  equal(after.networks, 1);
  equal(after.joins, before.joins);
  equal(after.registrations, before.registrations);
  const dropped = (s: typeof after) => Object.values(s.drops).reduce((x, y) => x + y, 0);
  equal(dropped(after) - dropped(before), 1000);
  // Mallory heard nothing: her first reply is the CHALLENGE to her own REGISTER.
  for (const [m, to] of [[mallory, hub4], [mallory6, hub6]] as const) {
    await m.register(to);
    equal((await m.next()).msg.kind, "challenge");
  }

  // A leaves; B is told.
  await a.send(
    encodeHubMessage({
      kind: "leave",
      networkId: KEYS.networkId,
      nodeId: a.nodeId,
      token: a.token,
    }),
    hub4,
  );
  const gone = await b.next();
  ok(gone.msg.kind === "gone");
  deepStrictEqual(gone.msg.nodeId, a.nodeId);
  await waitFor(hub, () => hub.stats.members === 1);
  equal(hub.stats.leaves, 1);
});

Deno.test("the default dual-stack socket reports IPv4 clients as plain IPv4", async () => {
  await using hub = await startHub({ port: 0 });
  equal(hub.endpoints.length, 1);
  const port = hub.endpoints[0]!.port;
  await using a = new FakeClient("127.0.0.1");
  const registered = await join(a, { hostname: "127.0.0.1", port });
  deepStrictEqual(registered.endpoint, a.local);
});

Deno.test("startHub() fails with one clear HubError when it cannot bind", async () => {
  const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    await rejects(startHub({ addresses: ["127.0.0.1"], port }), (e: Error) => {
      ok(e instanceof HubError);
      equal(e.message, `cannot listen on 127.0.0.1:${port}: address already in use`);
      ok(e.cause instanceof Deno.errors.AddrInUse);
      return true;
    });
    // The first socket is closed again when the second fails (the sanitizer checks).
    await rejects(startHub({ addresses: ["::1", "127.0.0.1"], port }), HubError);
  } finally {
    taken.close();
  }
  await rejects(startHub({ addresses: ["192.0.2.1"], port: 0 }), /address not available/);
  await rejects(startHub({ addresses: ["hub.example"], port: 0 }), /expected an IP address/);
  await rejects(startHub({ addresses: ["127.0.0.1"], port: 70000 }), HubError);
  await rejects(startHub({ addresses: ["127.0.0.1"], port: 0, keepaliveS: 0 }), HubError);
});

Deno.test("close() is idempotent", async () => {
  const hub = await startHub({ addresses: ["127.0.0.1"], port: 0 });
  await Promise.all([hub.close(), hub.close()]);
  await hub.close();
});
