import assert from "node:assert/strict";
import { x25519 } from "@noble/curves/ed25519";
import { generatePrivateKey, loadOrCreateState, readPublicKey } from "./state_file.ts";
import { decodeBase64 } from "../util/base64.ts";
import { UserError } from "../util/cli_error.ts";

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!, (h) => parseInt(h, 16));
}

/** RFC 7748 §6.1: Alice's X25519 key pair. */
const RFC7748_PRIVATE = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const RFC7748_PUBLIC = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "meshub_state_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeState(path: string, text: string, mode = 0o600): Promise<void> {
  await Deno.writeTextFile(path, text, { mode });
  await Deno.chmod(path, mode); // the umask may have masked writeTextFile's mode
}

async function rejection(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(() => undefined, (e) => e);
  assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
  assert.ok(!err.message.includes("\n"), `message must be one line: ${err.message}`);
  return err;
}

Deno.test("loadOrCreateState() creates the key file 0600 in a new 0700 directory", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/lib/meshub/alice.key`;
    const state = await loadOrCreateState(path);
    assert.equal(state.created, true);
    assert.equal(state.privateKey.length, 32);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/lib/meshub`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${dir}/lib`)).mode! & 0o777, 0o700);
    // Only the key file remains: the temporary file was renamed, not copied.
    const names = [];
    for await (const entry of Deno.readDir(`${dir}/lib/meshub`)) names.push(entry.name);
    assert.deepEqual(names, ["alice.key"]);

    const text = await Deno.readTextFile(path);
    assert.match(text, /^# .*meshub node state/);
    assert.match(text, /SECRET/);
    const line = text.split("\n").find((l) => l.startsWith("private_key = "));
    assert.ok(line, "private_key line expected");
    assert.deepEqual(decodeBase64(line.slice('private_key = "'.length, -1)), state.privateKey);
  });
});

Deno.test("loadOrCreateState() reuses the key on the second load", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/alice.key`;
    const first = await loadOrCreateState(path);
    const second = await loadOrCreateState(path);
    assert.equal(second.created, false);
    assert.deepEqual(second.privateKey, first.privateKey);
    assert.deepEqual(second.publicKey, first.publicKey);
    assert.deepEqual(await readPublicKey(path), first.publicKey);
  });
});

Deno.test("loadOrCreateState() leaves an existing directory's mode alone", async () => {
  await withTempDir(async (dir) => {
    await Deno.chmod(dir, 0o755);
    await loadOrCreateState(`${dir}/alice.key`);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o755);
  });
});

Deno.test("loadOrCreateState() refuses a key file readable by others, like ssh", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/alice.key`;
    await loadOrCreateState(path);
    await Deno.chmod(path, 0o644);
    const err = await rejection(loadOrCreateState(path));
    assert.equal(
      err.message,
      `${path}: permissions 0644 are too open for a file holding a private key; run \`chmod 600 ${path}\``,
    );
    await rejection(readPublicKey(path));
    await Deno.chmod(path, 0o640);
    assert.match((await rejection(loadOrCreateState(path))).message, /permissions 0640/);
  });
});

Deno.test("loadOrCreateState() names the file when it is corrupt, without echoing it", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/alice.key`;
    const cases: [string, string][] = [
      ['private_key = "secretsecret', "TOML syntax error on line 1"],
      ["# nothing here\n", "no `private_key`"],
      ["private_key = 42\n", "`private_key` is not a string"],
      ['private_key = "not base64!"\n', "`private_key` is not valid base64"],
      [`private_key = "${btoa("x".repeat(31))}"\n`, "`private_key` must be 32 bytes, got 31"],
    ];
    for (const [content, detail] of cases) {
      await writeState(path, content);
      const err = await rejection(loadOrCreateState(path));
      assert.equal(
        err.message,
        `${path}: corrupt node state file: ${detail} (move it away to generate a new key)`,
      );
      assert.ok(!err.message.includes("secret"));
    }
    // A corrupt file is never silently replaced by a new key.
    assert.equal(await Deno.readTextFile(path), cases.at(-1)![0]);
  });
});

Deno.test("loadOrCreateState() rejects a directory in place of the file", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/alice.key`, { mode: 0o700 });
    const err = await rejection(loadOrCreateState(`${dir}/alice.key`));
    assert.equal(err.message, `${dir}/alice.key: the node state file is not a regular file`);
  });
});

Deno.test("readPublicKey() reports a missing file without creating it", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/alice.key`;
    const err = await rejection(readPublicKey(path));
    assert.equal(
      err.message,
      `${path}: no such node state file (the client creates it on first start)`,
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});

Deno.test("readPublicKey() derives the public key as RFC 7748 does", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/alice.key`;
    // Written the way `wg genkey` would: standard base64 with padding.
    await writeState(path, `private_key = "${btoa(String.fromCharCode(...RFC7748_PRIVATE))}"\n`);
    assert.deepEqual(await readPublicKey(path), RFC7748_PUBLIC);
    const state = await loadOrCreateState(path);
    assert.deepEqual(state.privateKey, RFC7748_PRIVATE);
    assert.deepEqual(state.publicKey, RFC7748_PUBLIC);
  });
});

Deno.test("loadOrCreateState() returns a public key that matches x25519 of the private key", async () => {
  await withTempDir(async (dir) => {
    const state = await loadOrCreateState(`${dir}/alice.key`);
    assert.deepEqual(state.publicKey, x25519.getPublicKey(state.privateKey));
    // And the pair works for Diffie-Hellman with another key.
    const other = generatePrivateKey();
    assert.deepEqual(
      x25519.getSharedSecret(state.privateKey, x25519.getPublicKey(other)),
      x25519.getSharedSecret(other, state.publicKey),
    );
  });
});

Deno.test("generatePrivateKey() returns clamped, distinct keys", () => {
  const a = generatePrivateKey();
  const b = generatePrivateKey();
  assert.notDeepEqual(a, b);
  for (const key of [a, b]) {
    assert.equal(key.length, 32);
    assert.equal(key[0]! & 7, 0);
    assert.equal(key[31]! & 0x80, 0);
    assert.equal(key[31]! & 0x40, 0x40);
  }
});
