import assert from "node:assert/strict";
import { dropPrivileges, type PrivilegeCalls, resolveIdentity } from "./privileges.ts";
import { parseClientConfig } from "./config.ts";

const PSK = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

async function files(): Promise<{ passwd: string; group: string }> {
  const dir = await Deno.makeTempDir({ prefix: "meshub-priv-" });
  const passwd = `${dir}/passwd`;
  const group = `${dir}/group`;
  await Deno.writeTextFile(
    passwd,
    "root:x:0:0:root:/root:/bin/sh\nmeshub:x:990:991::/nonexistent:/usr/sbin/nologin\n",
  );
  await Deno.writeTextFile(group, "root:x:0:\nmeshub:x:991:\nnogroup:x:65534:\n");
  return { passwd, group };
}

Deno.test("privileges: names and numbers resolve; the primary group is the default", async () => {
  const f = await files();
  assert.deepEqual(resolveIdentity("meshub", undefined, f), {
    user: "meshub",
    uid: 990,
    group: "991",
    gid: 991,
  });
  assert.deepEqual(resolveIdentity("meshub", "nogroup", f).gid, 65534);
  assert.deepEqual(resolveIdentity("4242", "4343", f), {
    user: "4242",
    uid: 4242,
    group: "4343",
    gid: 4343,
  });
  assert.throws(() => resolveIdentity("nosuch", undefined, f), /no such user "nosuch"/);
  assert.throws(() => resolveIdentity("meshub", "nosuch", f), /no such group "nosuch"/);
  assert.throws(() => resolveIdentity("root", undefined, f), /is root/);
  assert.throws(() => resolveIdentity("4242", undefined, f), /no primary group/);
});

function fakeCalls(regain: boolean): { calls: PrivilegeCalls; log: string[] } {
  const log: string[] = [];
  let uid = 0;
  const calls: PrivilegeCalls = {
    setgroups: () => (log.push("setgroups"), 0),
    setgid: (gid) => (log.push(`setgid ${gid}`), 0),
    setuid: (u) => {
      log.push(`setuid ${u}`);
      if (uid !== 0 && u === 0 && !regain) return -1;
      uid = u;
      return 0;
    },
    getuid: () => uid,
    geteuid: () => uid,
    errno: () => 1,
  };
  return { calls, log };
}

Deno.test("privileges: groups, then gid, then uid, then a failed setuid(0)", () => {
  const { calls, log } = fakeCalls(false);
  dropPrivileges({ user: "nobody", uid: 65534, group: "nogroup", gid: 65534 }, calls);
  assert.deepEqual(log, ["setgroups", "setgid 65534", "setuid 65534", "setuid 0"]);
});

Deno.test("privileges: a process that could regain root is an error", () => {
  const { calls } = fakeCalls(true);
  assert.throws(
    () => dropPrivileges({ user: "nobody", uid: 65534, group: "nogroup", gid: 65534 }, calls),
    /setuid\(0\) succeeded/,
  );
});

Deno.test("privileges: a failing step stops the drop with its errno", () => {
  const { calls, log } = fakeCalls(false);
  calls.setgid = () => -1;
  assert.throws(
    () => dropPrivileges({ user: "nobody", uid: 65534, group: "nogroup", gid: 65534 }, calls),
    (e: Error) => e.name === "OsError" || /setgid/.test(e.message),
  );
  assert.deepEqual(log, ["setgroups"]);
});

Deno.test("config: node.user and node.group", () => {
  const base = `[encryption]\npsk = "${PSK}"\n[node]\nname = "a"\nstate_file = "a.key"\n`;
  const c = parseClientConfig(base + 'user = "nobody"\ngroup = "nogroup"\n', "c.toml");
  assert.equal(c.node.user, "nobody");
  assert.equal(c.node.group, "nogroup");
  assert.equal(parseClientConfig(base, "c.toml").node.user, undefined);
  assert.throws(() => parseClientConfig(base + 'group = "nogroup"\n', "c.toml"), /needs node.user/);
  assert.throws(() => parseClientConfig(base + 'user = "a b"\n', "c.toml"), /node.user: must be/);
});
