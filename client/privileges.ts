/**
 * Dropping root once the client no longer needs it.
 *
 * The client needs root (or CAP_NET_ADMIN) only to create the TUN device, give it addresses and
 * routes, and bind its UDP socket. After that every operation works on file descriptors it
 * already holds, so it switches to an unprivileged user for good: `setgroups(0)` (no
 * supplementary groups), `setgid`, `setuid` — in that order, since after `setuid` the process may
 * no longer change its groups — and then checks that `setuid(0)` fails, so a mistake here can
 * never leave the process quietly running as root.
 *
 * glibc applies `setuid`/`setgid`/`setgroups` to every thread of the process (its "setxid"
 * broadcast), which matters here because Deno runs several threads.
 *
 * After the drop, the process cannot create or delete interfaces or routes; it does not need to:
 * closing the TUN file descriptor (or exiting) makes the kernel remove the device with its
 * addresses and routes.
 *
 * @module
 */
import { errno, libc, OsError } from "../ffi/libc.ts";
import { UserError } from "../util/cli_error.ts";

/** A user and group to run as, resolved to numbers. */
export interface Identity {
  /** User name as configured (or the number as text). */
  user: string;
  uid: number;
  /** Group name as configured, or the user's primary group. */
  group: string;
  gid: number;
}

/**
 * Resolves `user` and `group` (names or decimal ids) with `/etc/passwd` and `/etc/group`. Without
 * `group`, the user's primary group from `/etc/passwd` is used. Throws {@linkcode UserError}
 * when a name is unknown. Call it before dropping anything (the files stay readable anyway).
 */
export function resolveIdentity(
  user: string,
  group?: string,
  files: { passwd?: string; group?: string } = {},
): Identity {
  const passwd = readLines(files.passwd ?? "/etc/passwd");
  let uid: number | undefined;
  let primaryGid: number | undefined;
  for (const line of passwd) {
    const f = line.split(":");
    if (f.length < 4) continue;
    if (f[0] === user || (/^\d+$/.test(user) && f[2] === user)) {
      uid = Number(f[2]);
      primaryGid = Number(f[3]);
      break;
    }
  }
  if (uid === undefined && /^\d+$/.test(user)) uid = Number(user);
  if (uid === undefined || !Number.isInteger(uid)) {
    throw new UserError(`node.user: no such user ${JSON.stringify(user)} in /etc/passwd`);
  }
  let gid: number | undefined;
  let groupName = group;
  if (group === undefined) {
    if (primaryGid === undefined) {
      throw new UserError(`node.user: ${user} has no primary group; set node.group`);
    }
    gid = primaryGid;
    groupName = String(primaryGid);
  } else {
    for (const line of readLines(files.group ?? "/etc/group")) {
      const f = line.split(":");
      if (f.length < 3) continue;
      if (f[0] === group || (/^\d+$/.test(group) && f[2] === group)) {
        gid = Number(f[2]);
        break;
      }
    }
    if (gid === undefined && /^\d+$/.test(group)) gid = Number(group);
    if (gid === undefined || !Number.isInteger(gid)) {
      throw new UserError(`node.group: no such group ${JSON.stringify(group)} in /etc/group`);
    }
  }
  if (uid === 0) throw new UserError(`node.user: ${user} is root; dropping to it would do nothing`);
  return { user, uid, group: groupName!, gid };
}

function readLines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n");
  } catch {
    return [];
  }
}

/** The libc calls used, replaceable for tests. */
export interface PrivilegeCalls {
  setgroups(): number;
  setgid(gid: number): number;
  setuid(uid: number): number;
  getuid(): number;
  geteuid(): number;
  errno(): number;
}

function realCalls(): PrivilegeCalls {
  const s = libc().symbols;
  return {
    setgroups: () => s.setgroups(0n, null),
    setgid: (gid) => s.setgid(gid),
    setuid: (uid) => s.setuid(uid),
    getuid: () => s.getuid(),
    geteuid: () => s.geteuid(),
    errno,
  };
}

/**
 * Switches the whole process to `id` for good: setgroups(0), setgid, setuid, then verifies that
 * getuid/geteuid report the new user and that setuid(0) fails. Throws {@linkcode OsError} if a
 * step fails, or an Error if root could be regained (the caller must then exit).
 */
export function dropPrivileges(id: Identity, calls: PrivilegeCalls = realCalls()): void {
  if (calls.setgroups() !== 0) throw new OsError("setgroups", calls.errno());
  if (calls.setgid(id.gid) !== 0) throw new OsError("setgid", calls.errno());
  if (calls.setuid(id.uid) !== 0) throw new OsError("setuid", calls.errno());
  if (calls.getuid() !== id.uid || calls.geteuid() !== id.uid) {
    throw new Error(`privilege drop incomplete: uid ${calls.getuid()}/${calls.geteuid()}`);
  }
  if (calls.setuid(0) === 0) {
    throw new Error("privilege drop failed: setuid(0) succeeded after dropping to " + id.user);
  }
}
