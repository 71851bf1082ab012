import assert from "node:assert/strict";
import { writeFileAtomic } from "./atomic_file.ts";

Deno.test("writeFileAtomic replaces the content with the given mode and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state`;
    await writeFileAtomic(path, new TextEncoder().encode("old"), 0o600);
    await writeFileAtomic(path, new TextEncoder().encode("new content"), 0o600);
    assert.equal(await Deno.readTextFile(path), "new content");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["state"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic keeps the old file when the write fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state`;
    await writeFileAtomic(path, new TextEncoder().encode("old"), 0o600);
    // A directory where the file should go makes the rename fail after the temp file exists.
    await assert.rejects(writeFileAtomic(dir, new TextEncoder().encode("x"), 0o600));
    assert.equal(await Deno.readTextFile(path), "old");
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["state"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
