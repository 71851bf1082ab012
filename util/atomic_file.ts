/**
 * Replacing a file so that readers see the old content or the new one, never a torn mix: a
 * crash or a full disk mid-write must not destroy a node key or a peer cache.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";

/**
 * Writes `data` to `path` with `mode`: a temporary file in the same directory (so the rename
 * stays on one file system and is atomic), fsync, rename. The temporary file is removed when
 * anything fails, and the error is rethrown as is.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode: number): Promise<void> {
  const suffix = Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const temp = join(dirname(path), `.${basename(path)}.${suffix}.tmp`);
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode });
    try {
      for (let n = 0; n < data.length;) n += await file.write(data.subarray(n));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}
