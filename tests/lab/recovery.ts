/**
 * Measuring how long the mesh takes to carry traffic again after the lab changes under it (a
 * client moves, a NAT forgets), and whether it keeps carrying it (no blackholes).
 *
 * @module
 */
import type { Lab } from "./netns.ts";
import type { ClientNode } from "./meshub.ts";

/** One directed pair's recovery. */
export interface PairRecovery {
  /** `from→to`. */
  pair: string;
  /** Milliseconds from `sinceEpochMs` to the first echo reply; null when none came. */
  recoveryMs: number | null;
  /** Replies among the last `tail` echo requests. */
  tailReceived: number;
  /** Echo requests sent. */
  transmitted: number;
  /** Replies received. */
  received: number;
}

/** Options for {@linkcode measureRecovery}. */
export interface RecoveryOptions {
  /** Wall-clock time (ms since the epoch) the change happened. */
  sinceEpochMs: number;
  /** Echo requests per pair. Default 50. */
  count?: number;
  /** Seconds between echo requests. Default 0.2. */
  intervalS?: number;
  /** How many of the last requests must all be answered to count as "no blackhole". Default 10. */
  tail?: number;
}

/**
 * Pings every directed pair of `nodes` at once (`ping -D`, timestamps per reply) for
 * `count × intervalS` seconds, and returns when each pair first got a reply after the change and
 * how many of the last `tail` requests were answered. Bounded: each ping is bounded in count
 * and killed after its time plus a margin.
 */
export async function measureRecovery(
  lab: Lab,
  nodes: readonly ClientNode[],
  options: RecoveryOptions,
): Promise<PairRecovery[]> {
  const count = options.count ?? 50;
  const intervalS = options.intervalS ?? 0.2;
  const tail = options.tail ?? 10;
  const jobs: Promise<PairRecovery>[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      jobs.push((async () => {
        const r = await lab.exec(a.site.ns, [
          "ping",
          "-6",
          "-n",
          "-D",
          "-c",
          String(count),
          "-i",
          String(intervalS),
          "-W",
          "1",
          b.address6,
        ], { timeoutMs: Math.ceil((count * intervalS + 10) * 1000) });
        const replies = [...r.stdout.matchAll(/^\[(\d+\.\d+)\].*icmp_seq=(\d+)/gm)].map((m) => ({
          atMs: Number(m[1]) * 1000,
          seq: Number(m[2]),
        }));
        const first = replies[0];
        return {
          pair: `${a.name}→${b.name}`,
          recoveryMs: first === undefined ? null : Math.round(first.atMs - options.sinceEpochMs),
          tailReceived: replies.filter((x) => x.seq > count - tail).length,
          transmitted: count,
          received: replies.length,
        };
      })());
    }
  }
  return await Promise.all(jobs);
}

/** `c1→c2 830 ms (10/10)`-style lines for logs and messages. */
export function formatRecovery(rs: readonly PairRecovery[]): string {
  return rs.map((r) =>
    `${r.pair} ${r.recoveryMs === null ? "never" : `${r.recoveryMs} ms`} ` +
    `(last ${r.tailReceived} answered, ${r.received}/${r.transmitted})`
  ).join("; ");
}
