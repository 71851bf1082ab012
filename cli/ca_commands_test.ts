import assert from "node:assert/strict";
import { caCommand } from "./ca_commands.ts";
import { UserError } from "../util/cli_error.ts";
import {
  dearmor,
  decodeCertificate,
  decodeRevocationList,
  fingerprintOf,
  toHex,
} from "../protocol/cert.ts";

async function quietly<T>(fn: () => Promise<T>): Promise<{ result: T; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { result: await fn(), out: lines.join("\n") };
  } finally {
    console.log = log;
  }
}

async function rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(fn, (err: unknown) => err instanceof UserError && re.test(err.message));
}

Deno.test("meshub ca/cert: init, sign, show and revoke; keys 0600; nothing overwritten without --force", async () => {
  const dir = await Deno.makeTempDir({ prefix: "meshub-ca-cli-" });
  try {
    const ca = `${dir}/ca`;
    await quietly(() => caCommand("ca", ["init", "--out", ca, "--name", "test-ca"]));
    assert.equal((await Deno.stat(`${ca}/ca.key`)).mode! & 0o777, 0o600);
    await rejects(
      () => caCommand("ca", ["init", "--out", ca]),
      /ca\.key exists; not overwriting it \(use --force\)/,
    );
    const key = btoa(String.fromCharCode(...new Uint8Array(32).fill(0x42)));
    const sign = (out: string, ...extra: string[]) =>
      caCommand("cert", [
        "sign",
        "--ca",
        ca,
        "--name",
        "alice",
        "--public-key",
        key,
        "--ipv6",
        "fd12:3456:789a::1",
        "--ipv4",
        "100.64.0.1/24",
        "--groups",
        "web,db",
        "--valid",
        "30d",
        "--out",
        out,
        ...extra,
      ]);
    await quietly(() => sign(`${dir}/alice.crt`));
    await rejects(() => sign(`${dir}/alice.crt`), /alice\.crt exists; not overwriting it/);
    await quietly(() => sign(`${dir}/alice.crt`, "--force"));
    const cert = decodeCertificate(
      dearmor("CERTIFICATE", await Deno.readFile(`${dir}/alice.crt`)) as Uint8Array,
    ).cert!;
    assert.equal(cert.notAfter - cert.notBefore, 30 * 86400);
    const { out } = await quietly(() => caCommand("cert", ["show", `${dir}/alice.crt`]));
    const fp = toHex(fingerprintOf(cert));
    assert.match(out, /^node certificate: alice$/m);
    assert.match(out, new RegExp(`fingerprint +${fp}`));
    assert.match(out, /addresses +fd12:3456:789a::1\/48, 100\.64\.0\.1\/24/);
    assert.match(out, /groups +web, db/);
    assert.match(out, /status +valid \(30 days left\)/);
    await quietly(() => caCommand("ca", ["revoke", "--ca", ca, fp, "--out", `${dir}/crl`]));
    await quietly(() =>
      caCommand("ca", ["revoke", "--ca", ca, "00".repeat(16), "--out", `${dir}/crl`])
    );
    const crl = decodeRevocationList(
      dearmor("REVOCATION LIST", await Deno.readFile(`${dir}/crl`)) as Uint8Array,
    ).crl!;
    assert.deepEqual(crl.fingerprints.map(toHex), [fp, "00".repeat(16)]);
    const shown = await quietly(() => caCommand("cert", ["show", `${dir}/crl`]));
    assert.match(shown.out, /revocation list: 2 revoked/);
    await rejects(
      () => caCommand("ca", ["revoke", "--ca", ca, "xyz", "--out", `${dir}/crl`]),
      /"xyz" is not a fingerprint/,
    );
    await rejects(
      () =>
        caCommand("cert", [
          "sign",
          "--ca",
          ca,
          "--name",
          "bob",
          "--public-key",
          key,
          "--out",
          `${dir}/b.crt`,
        ]),
      /--ipv6 ADDR\[\/LEN\] is required/,
    );
    await rejects(
      () =>
        caCommand("cert", [
          "sign",
          "--ca",
          `${dir}/nope`,
          "--name",
          "bob",
          "--public-key",
          key,
          "--ipv6",
          "fd00::1",
          "--out",
          `${dir}/b.crt`,
        ]),
      /cannot read .*nope\/ca\.key: no such file/,
    );
    await Deno.chmod(`${ca}/ca.key`, 0o644);
    await rejects(
      () => sign(`${dir}/x.crt`),
      /ca\.key is readable by others \(mode 644\); run chmod 600/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
