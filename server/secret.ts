/**
 * The server secret read tokens are derived from. Every reference handed
 * out carries a token made with it, so the secret must never change by
 * surprise: a missing, dangling or malformed key file stops the server
 * with the reason, and a new secret is made only for an empty data dir.
 *
 * A key file holds 32 random bytes, raw or as 64 hex digits (one newline
 * after them is fine), e.g. `openssl rand -hex 32 > secret.key`. Several
 * servers share one with `--secret-file`.
 *
 * @module
 */

import { join } from "node:path";
import { decodeHex, encodeHex } from "@std/encoding/hex";

/** Bytes of a server secret. */
export const SECRET_BYTES = 32;
/** The key file in a data dir, when no other is named. */
export const SECRET_FILE = "secret.key";
/** Largest key file read: anything longer is not a key. */
const MAX_KEY_FILE_BYTES = 1024;

/**
 * The key file cannot be used; the message names it and says what was wrong.
 *
 * @example
 * ```ts
 * import { SecretFileError } from "./secret.ts";
 * const error = new SecretFileError("/data/secret.key", "is missing");
 * console.log(error.message); // "the secret file /data/secret.key is missing"
 * ```
 */
export class SecretFileError extends Error {
  /** The error's code. */
  readonly code = "secret-file";
  /** The key file. */
  readonly path: string;

  /** Creates the error for `path`; `problem` completes "the secret file PATH …". */
  constructor(path: string, problem: string) {
    super(`the secret file ${path} ${problem}`);
    this.name = "SecretFileError";
    this.path = path;
  }
}

/**
 * Where the secret comes from.
 *
 * @example
 * ```ts
 * import type { SecretSource } from "./secret.ts";
 * const source: SecretSource = { dataDir: "./spool-data", resources: 0 };
 * ```
 */
export interface SecretSource {
  /** The data dir (its `secret.key` is the default key file). */
  dataDir: string;
  /** A key file named by the operator (`--secret-file`): it must exist. */
  secretFile?: string;
  /** Resources the data dir holds: a new secret is made only when it is 0. */
  resources: number;
}

/**
 * The secret, and what the operator should hear about it.
 *
 * @example
 * ```ts
 * import type { LoadedSecret } from "./secret.ts";
 * const report = (loaded: LoadedSecret) => loaded.notes.forEach((n) => console.error(n));
 * ```
 */
export interface LoadedSecret {
  /** The 32 bytes. */
  secret: Uint8Array;
  /** Lines for stderr: a new secret was made, the file is readable by others. */
  notes: string[];
}

/**
 * Loads the key file, or makes one where that is safe (see the module
 * documentation); throws {@linkcode SecretFileError} otherwise.
 *
 * @example
 * ```ts
 * import { loadSecret } from "./secret.ts";
 * const dataDir = await Deno.makeTempDir();
 * const made = await loadSecret({ dataDir, resources: 0 });
 * const again = await loadSecret({ dataDir, resources: 1 });
 * console.log(made.secret.length, made.notes.length, again.notes.length); // 32 1 0
 * ```
 */
export async function loadSecret(source: SecretSource): Promise<LoadedSecret> {
  const path = source.secretFile ?? join(source.dataDir, SECRET_FILE);
  const link = await lstatOrNull(path);
  if (link === null) return await makeSecret(path, source);
  if (link.isSymlink && await statOrNull(path) === null) {
    throw new SecretFileError(
      path,
      `is a symbolic link to ${await Deno.readLink(
        path,
      )}, which does not exist (a secret volume not mounted yet?); expected the key there: a new one would break every reference handed out`,
    );
  }
  const info = await Deno.stat(path);
  if (!info.isFile) {
    throw new SecretFileError(path, "is not a regular file; expected the key");
  }
  if (info.size > MAX_KEY_FILE_BYTES) {
    throw new SecretFileError(path, `holds ${info.size} bytes; ${EXPECTED}`);
  }
  const secret = parseKey(await Deno.readFile(path), path);
  const notes: string[] = [];
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    notes.push(
      `spool: warning: the secret file ${path} can be read by others (mode ${
        (info.mode & 0o777).toString(8).padStart(4, "0")
      }); expected 0600: chmod 600 ${path}`,
    );
  }
  return { secret, notes };
}

const EXPECTED = `expected ${SECRET_BYTES} random bytes, or ${
  SECRET_BYTES * 2
} hex digits (e.g. openssl rand -hex ${SECRET_BYTES})`;

/** The 32 bytes of a key file's content. */
function parseKey(bytes: Uint8Array, path: string): Uint8Array {
  if (bytes.byteLength === SECRET_BYTES) return bytes;
  const text = new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
  if (/^[0-9a-fA-F]+$/.test(text) && text.length === SECRET_BYTES * 2) {
    return decodeHex(text);
  }
  throw new SecretFileError(
    path,
    `holds ${bytes.byteLength} bytes that are not a key; ${EXPECTED}`,
  );
}

/** Makes a new key file at `path`, if the source allows it. */
async function makeSecret(
  path: string,
  source: SecretSource,
): Promise<LoadedSecret> {
  if (source.secretFile !== undefined) {
    throw new SecretFileError(
      path,
      `(secretFile) does not exist; expected a key there: make one with openssl rand -hex ${SECRET_BYTES} > ${path}`,
    );
  }
  if (source.resources > 0) {
    throw new SecretFileError(
      path,
      `is missing, but the data dir holds ${source.resources} resources whose references were signed with it; restore it (a new one would make every reference handed out fail with 403)`,
    );
  }
  const secret = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  await Deno.mkdir(source.dataDir, { recursive: true });
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temporary, `${encodeHex(secret)}\n`, {
    mode: 0o600,
  });
  await Deno.rename(temporary, path);
  return {
    secret,
    notes: [
      `spool: made a new secret in ${path} (read tokens are derived from it: keep it with the data)`,
    ],
  };
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
