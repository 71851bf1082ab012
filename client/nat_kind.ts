/**
 * What kind of NAT a node seems to be behind, from what the hubs observed and the addresses the
 * node itself has. One hub sees one mapping, which only says "behind a NAT" or not; several hubs
 * (or one hub on several addresses) see one mapping each, and comparing them tells an
 * endpoint-independent mapping (same public port toward every hub) from a symmetric one (a new
 * port per destination).
 *
 * @module
 */

/**
 * - `none`: a hub saw the node at one of its own addresses (public address, no NAT);
 * - `endpoint-independent`: behind a NAT that kept the same public endpoint toward ≥ 2 hubs
 *   (hole punching works with it);
 * - `symmetric`: behind a NAT that gave each hub a different public port (hole punching needs
 *   the other side to be reachable, or port prediction);
 * - `nat`: behind a NAT, but only one hub saw it, so the mapping behaviour is unknown;
 * - `unknown`: no hub has seen it yet.
 */
export type NatKind = "none" | "endpoint-independent" | "symmetric" | "nat" | "unknown";

/** Classifies from the hub-observed endpoints and the node's own (local) addresses. */
export function classifyNat(
  observed: readonly { hostname: string; port: number }[],
  localAddresses: readonly string[],
): NatKind {
  if (observed.length === 0) return "unknown";
  const local = new Set(localAddresses.map((a) => a.toLowerCase()));
  if (observed.some((o) => local.has(o.hostname.toLowerCase()))) return "none";
  // Compare per address family: a dual-stack node has one mapping per family.
  const byFamily = new Map<boolean, Set<string>>();
  for (const o of observed) {
    const v6 = o.hostname.includes(":");
    const set = byFamily.get(v6) ?? new Set<string>();
    set.add(`${o.hostname.toLowerCase()} ${o.port}`);
    byFamily.set(v6, set);
  }
  let compared = false;
  for (const [v6, endpoints] of byFamily) {
    const count = observed.filter((o) => o.hostname.includes(":") === v6).length;
    if (endpoints.size > 1) return "symmetric";
    if (count > 1) compared = true;
  }
  return compared ? "endpoint-independent" : "nat";
}
