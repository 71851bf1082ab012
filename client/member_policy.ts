/**
 * Who may be a member, and with which name and VPN addresses: the one decision the mesh leaves to
 * the network's mode.
 *
 * - **PSK mode** ({@linkcode PSK_POLICY}): anyone who can seal an advert holds the network PSK and
 *   is trusted; its name and addresses are what it advertises.
 * - **CA mode** (`ca.ts`): an advert must carry a certificate from the network CA for the
 *   advertised public key, inside its validity period and not revoked; name and addresses come
 *   from the certificate.
 *
 * The mesh opens an advert (sealing and replay are its business), asks the policy, and routes
 * exactly the addresses the policy returns: the inner-source check then enforces them. It calls
 * `recheck` about once a second and drops the member when it returns a reason.
 *
 * @module
 */
import type { Advert, AdvertExtension } from "../protocol/advert.ts";
import type { Prefix } from "./route_table.ts";

/** The policy's answer for one advert. */
export type MemberVerdict =
  | {
    readonly ok: true;
    /** The member's name (for logs and status). */
    readonly name: string;
    /** Host prefixes (/128, /32) routed to the member; its packets must come from these. */
    readonly addresses: Prefix[];
    /** Called about once a second: a reason to drop the member now (expired, revoked), or null. */
    readonly recheck?: () => string | null;
  }
  | {
    readonly ok: false;
    /** Why, from a small fixed set (it becomes a drop counter `member-<reason>`). */
    readonly reason: string;
  };

/** Decides about members; see the module documentation. */
export interface MemberPolicy {
  /**
   * Bumped whenever {@linkcode advertExtensions} would return something new (a newer revocation
   * list arrived): the mesh then re-seals and re-sends its advert.
   */
  readonly generation: number;
  /** TLVs for this node's own advert; at most `spareBytes` bytes of TLV (2 + value each). */
  advertExtensions(spareBytes: number): AdvertExtension[];
  /** Whether the node behind an opened, non-replayed advert may be a member, and as what. */
  verify(advert: Advert): MemberVerdict;
}

/** PSK mode: every advert that opened is a member, with the name and addresses it claims. */
export const PSK_POLICY: MemberPolicy = {
  generation: 0,
  advertExtensions: () => [],
  verify(advert: Advert): MemberVerdict {
    const addresses: Prefix[] = [{ address: advert.ipv6.address, prefixLength: 128 }];
    if (advert.ipv4) addresses.push({ address: advert.ipv4.address, prefixLength: 32 });
    return { ok: true, name: advert.name, addresses };
  },
};
