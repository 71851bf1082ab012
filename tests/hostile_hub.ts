/**
 * A hub that misbehaves on purpose, for the hostile-hub tests: the real {@linkcode Registry}
 * (so members can register and it knows who is where), plus everything a compromised hub could
 * do with what it sees. It records every byte it receives and sends.
 *
 * Attacks, each switchable (see {@linkcode HostileBehaviour}), run on every `attack()` call:
 *
 * - **replay**: re-sends the oldest MEMBER it ever sent about each member (an old advert).
 * - **forge random**: MEMBERs with random node ids and random "adverts".
 * - **forge as members**: MEMBERs under a real member's node id with random bytes, with another
 *   member's sealed advert, and with the member's own advert re-sealed... it cannot: it has no
 *   key, so it pairs the real advert with the attacker's endpoint instead.
 * - **rewrite endpoints**: every other MEMBER it relays carries the attacker's endpoint instead
 *   of the member's observed one.
 * - **swap networks**: sends the members of one network to the members of another, with the
 *   original network id and with the id rewritten.
 * - **flood punches**: PUNCH messages and MEMBERs pointing at the attacker, many per second.
 *
 * {@linkcode HostileRegistry} is I/O-free; {@linkcode FakeHostileHub} runs it on the fake network
 * (`fake_net.ts`), and `fixtures/hostile_hub_server.ts` on real UDP sockets for the netns test.
 *
 * @module
 */
import { type HubSend, Registry, type RegistryOptions, toHex } from "../hub/registry.ts";
import {
  decodeHubMessage,
  encodeHubMessage,
  type MemberMessage,
} from "../protocol/hub_messages.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { FakeNet, type FakeSocket, HUB_SWEEP_INTERVAL_MS, Rng } from "./fake_net.ts";

/** Which attacks run. */
export interface HostileBehaviour {
  replay: boolean;
  forgeRandom: boolean;
  forgeAsMembers: boolean;
  rewriteEndpoints: boolean;
  swapNetworks: boolean;
  floodPunches: boolean;
}

/** Every attack on. */
export const ALL_ATTACKS: Readonly<HostileBehaviour> = Object.freeze({
  replay: true,
  forgeRandom: true,
  forgeAsMembers: true,
  rewriteEndpoints: true,
  swapNetworks: true,
  floodPunches: true,
});

/** Options of {@linkcode HostileRegistry}. */
export interface HostileOptions {
  /** Where forged and rewritten endpoints point. */
  attacker: Endpoint;
  /** Attacks to run. Default {@linkcode ALL_ATTACKS}. */
  behaviour?: Partial<HostileBehaviour>;
  /** PRNG seed. */
  seed?: number;
  /** Options of the wrapped registry. */
  registry?: RegistryOptions;
}

/** The misbehaving hub core: `handle()` and `attack()` return datagrams to send. */
export class HostileRegistry {
  readonly registry: Registry;
  readonly behaviour: HostileBehaviour;
  readonly attacker: Endpoint;
  /** Every datagram received, in order (copies). */
  readonly received: Uint8Array[] = [];
  /** Every datagram sent, in order (copies). */
  readonly sent: Uint8Array[] = [];
  /** Counters of what was done. */
  readonly counts: Record<string, number> = {};
  readonly #rng: Rng;
  /** Network id hex → id bytes, as learned from REGISTERs. */
  readonly #networks = new Map<string, Uint8Array>();
  /** node id hex → the first MEMBER message sent about it (for replays). */
  readonly #firstMember = new Map<string, Uint8Array>();
  #relayed = 0;

  constructor(options: HostileOptions) {
    this.registry = new Registry(options.registry ?? {});
    this.behaviour = { ...ALL_ATTACKS, ...options.behaviour };
    this.attacker = options.attacker;
    this.#rng = new Rng(options.seed ?? 666);
  }

  #count(what: string, n = 1): void {
    this.counts[what] = (this.counts[what] ?? 0) + n;
  }

  #record(out: HubSend[]): HubSend[] {
    for (const s of out) this.sent.push(s.bytes.slice());
    return out;
  }

  /** A datagram arrived: the registry answers, then relayed MEMBERs may be rewritten. */
  handle(bytes: Uint8Array, from: Endpoint, socketIndex: number, nowMs: number): HubSend[] {
    this.received.push(bytes.slice());
    const msg = decodeHubMessage(bytes);
    if (msg.kind === "register") this.#networks.set(toHex(msg.networkId), msg.networkId.slice());
    return this.#record(
      this.registry.handle(bytes, from, socketIndex, nowMs).map((s) => this.#tamper(s)),
    );
  }

  /** The registry's expiry sweep. */
  sweep(nowMs: number): HubSend[] {
    return this.#record(this.registry.sweep(nowMs).map((s) => this.#tamper(s)));
  }

  #tamper(s: HubSend): HubSend {
    const msg = decodeHubMessage(s.bytes);
    if (msg.kind !== "member") return s;
    const id = toHex(msg.nodeId);
    if (!this.#firstMember.has(id)) this.#firstMember.set(id, s.bytes.slice());
    if (!this.behaviour.rewriteEndpoints || this.#relayed++ % 2 === 0) return s;
    this.#count("rewritten");
    return { ...s, bytes: member({ ...msg, endpoint: this.attacker }) };
  }

  /** Every member of every network this hub knows: where to send attacks. */
  #targets(): { networkId: Uint8Array; endpoint: Endpoint; socketIndex: number }[] {
    const out = [];
    for (const networkId of this.#networks.values()) {
      for (const m of this.registry.members(networkId)?.values() ?? []) {
        out.push({ networkId, endpoint: m.endpoint, socketIndex: m.socketIndex });
      }
    }
    return out;
  }

  /** One round of every enabled attack. */
  attack(_nowMs: number): HubSend[] {
    const out: HubSend[] = [];
    const targets = this.#targets();
    const rng = this.#rng;
    const b = this.behaviour;
    for (const t of targets) {
      const send = (bytes: Uint8Array, what: string) => {
        out.push({ to: t.endpoint, socketIndex: t.socketIndex, bytes });
        this.#count(what);
      };
      const members = [...(this.registry.members(t.networkId)?.values() ?? [])];
      if (b.replay) {
        for (const old of this.#firstMember.values()) {
          const msg = decodeHubMessage(old);
          if (msg.kind === "member" && sameBytes(msg.networkId, t.networkId)) send(old, "replayed");
        }
      }
      if (b.forgeRandom) {
        send(
          member({
            networkId: t.networkId,
            nodeId: rng.bytes(16),
            endpoint: this.attacker,
            advert: rng.bytes(40 + rng.int(900)),
          }),
          "forged-random",
        );
      }
      if (b.forgeAsMembers && members.length >= 2) {
        const x = rng.pick(members);
        const y = rng.pick(members.filter((m) => m !== x));
        // X's id with garbage, with Y's sealed advert, and X's real advert at the attacker.
        for (
          const advert of [rng.bytes(40 + rng.int(600)), y.advert, x.advert]
        ) {
          send(
            member({ networkId: t.networkId, nodeId: x.nodeId, endpoint: this.attacker, advert }),
            "forged-as-member",
          );
        }
      }
      if (b.swapNetworks) {
        for (const other of this.#networks.values()) {
          if (sameBytes(other, t.networkId)) continue;
          for (const m of this.registry.members(other)?.values() ?? []) {
            const base = { nodeId: m.nodeId, endpoint: m.endpoint, advert: m.advert };
            send(member({ ...base, networkId: other }), "swapped");
            send(member({ ...base, networkId: t.networkId }), "swapped");
          }
        }
      }
      if (b.floodPunches) {
        for (let i = 0; i < 20; i++) {
          send(encodeHubMessage({ kind: "punch", nonce: rng.bytes(8) }), "punch-flood");
        }
      }
    }
    return this.#record(out);
  }

  /**
   * Everything the hub holds: bytes received and sent, and the registry's state (ids, endpoints,
   * adverts). The tests search it for members' secrets.
   */
  everything(): Uint8Array[] {
    const state: Uint8Array[] = [];
    for (const networkId of this.#networks.values()) {
      state.push(networkId);
      for (const m of this.registry.members(networkId)?.values() ?? []) {
        state.push(
          m.nodeId,
          m.advert,
          new TextEncoder().encode(`${m.endpoint.hostname}:${m.endpoint.port}`),
        );
      }
    }
    return [...this.received, ...this.sent, ...state];
  }
}

function member(m: Omit<MemberMessage, "kind">): Uint8Array {
  return encodeHubMessage({ kind: "member", ...m });
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** True when `needle` occurs anywhere in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The hostile hub on the fake network: one socket, attacks every `attackIntervalMs`. */
export class FakeHostileHub {
  readonly core: HostileRegistry;
  readonly socket: FakeSocket;

  constructor(
    readonly net: FakeNet,
    readonly endpoint: Endpoint,
    options: HostileOptions & { attackIntervalMs?: number },
  ) {
    this.core = new HostileRegistry({ seed: net.rng.int(1 << 30), ...options });
    this.socket = net.host(endpoint.hostname).bind(
      endpoint.port,
      (data, from) => this.#send(this.core.handle(data, from, 0, net.nowMs)),
    );
    net.every(HUB_SWEEP_INTERVAL_MS, (nowMs) => this.#send(this.core.sweep(nowMs)));
    net.every(options.attackIntervalMs ?? 1_000, (nowMs) => this.#send(this.core.attack(nowMs)));
  }

  #send(out: HubSend[]): void {
    for (const s of out) this.socket.send(s.bytes, s.to);
  }
}
