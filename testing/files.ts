/**
 * Files for the tests and the bench: a temporary directory that is always
 * removed, every file of a tree, and a file's sha256 read in pieces (for
 * files too large to read whole).
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Bytes read at a time by {@linkcode fileSha256}. */
const READ_SIZE = 1024 * 1024;

/**
 * Runs `fn` with a new temporary directory and removes the directory after,
 * whether `fn` resolved or threw.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { withTempDir } from "./files.ts";
 * let kept = "";
 * await withTempDir("spool-doc-", async (dir) => {
 *   kept = dir;
 *   await Deno.writeTextFile(`${dir}/a.txt`, "a");
 * });
 * assertEquals(await Deno.stat(kept).catch((error) => error.name), "NotFound");
 * ```
 */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Every file under `dir`, as paths relative to it, sorted.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { listTree, withTempDir } from "./files.ts";
 * await withTempDir("spool-doc-", async (dir) => {
 *   await Deno.mkdir(`${dir}/sub`);
 *   await Deno.writeTextFile(`${dir}/sub/b.txt`, "b");
 *   await Deno.writeTextFile(`${dir}/a.txt`, "a");
 *   assertEquals(await listTree(dir), ["a.txt", "sub/b.txt"]);
 * });
 * ```
 */
export async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      names.push(
        ...await listTree(`${dir}/${entry.name}`, `${prefix}${entry.name}/`),
      );
    } else names.push(prefix + entry.name);
  }
  return names.sort();
}

/**
 * The sha256 of the file at `path` in lowercase hex, read in 1 MiB pieces.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { fileSha256, withTempDir } from "./files.ts";
 * await withTempDir("spool-doc-", async (dir) => {
 *   await Deno.writeTextFile(`${dir}/empty`, "");
 *   assertEquals(
 *     await fileSha256(`${dir}/empty`),
 *     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
 *   );
 * });
 * ```
 */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(READ_SIZE);
  for (
    let n = await file.read(buffer);
    n !== null;
    n = await file.read(buffer)
  ) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}
