/**
 * The secret read tokens are derived from never changes by surprise: a
 * missing, dangling or malformed key file refuses to start with the
 * reason; a new one is made only for an empty data dir; a key shared with
 * `--secret-file` keeps references valid across servers.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "node:path";
import { encodeHex } from "@std/encoding/hex";
import { startServer, startUpload } from "../mod.ts";
import { SecretFileError } from "../server/secret.ts";

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

/** A data dir holding one COMPLETED resource made with read tokens; its reference. */
async function dataDirWithResource(
  options: { secretFile?: string } = {},
): Promise<{ dataDir: string; reference: string }> {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-secret-" });
  await using server = await startServer({
    port: 0,
    dataDir,
    readTokens: true,
    ...options,
  });
  const up = await startUpload(server.url, { name: "kept.log" });
  await up.send(new TextEncoder().encode("kept\n"));
  await up.closed();
  return { dataDir, reference: up.reference };
}

/** The HTTP status of reading `reference` from a server on `dataDir`. */
async function readStatus(
  dataDir: string,
  reference: string,
  options: { secretFile?: string } = {},
): Promise<number> {
  await using server = await startServer({
    port: 0,
    dataDir,
    readTokens: true,
    ...options,
  });
  const url = new URL(reference);
  const response = await fetch(
    new URL(`${url.pathname}${url.search}`, server.url),
  );
  await response.arrayBuffer();
  return response.status;
}

Deno.test("secret: a dangling symlink (a volume not mounted) refuses to start and is left as it is", async () => {
  const { dataDir, reference } = await dataDirWithResource();
  try {
    const path = join(dataDir, "secret.key");
    await Deno.rename(path, join(dataDir, "elsewhere.key"));
    await Deno.symlink(join(dataDir, "mnt", "secret.key"), path);
    const error = await assertRejects(
      () => startServer({ port: 0, dataDir, readTokens: true }),
      SecretFileError,
    ) as SecretFileError;
    assertMatch(
      error.message,
      /^the secret file .*secret\.key is a symbolic link to .*mnt\/secret\.key, which does not exist \(a secret volume not mounted yet\?\)/,
    );
    assert((await Deno.lstat(path)).isSymlink, "the symlink was replaced");
    // Mounted, it works, and the old reference too.
    await Deno.mkdir(join(dataDir, "mnt"));
    await Deno.rename(
      join(dataDir, "elsewhere.key"),
      join(dataDir, "mnt", "secret.key"),
    );
    assertEquals(await readStatus(dataDir, reference), 200);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("secret: a missing key with resources, or a malformed one, refuses to start, naming the file and what was wrong", async () => {
  const { dataDir, reference } = await dataDirWithResource();
  const path = join(dataDir, "secret.key");
  const key = await Deno.readFile(path);
  try {
    await Deno.remove(path);
    const missing = await assertRejects(
      () => startServer({ port: 0, dataDir, readTokens: true }),
      SecretFileError,
    ) as SecretFileError;
    assertEquals(
      missing.message,
      `the secret file ${path} is missing, but the data dir holds 1 resources whose references were signed with it; restore it (a new one would make every reference handed out fail with 403)`,
    );
    await assertRejects(() => Deno.stat(path), Deno.errors.NotFound);
    for (
      const bad of [
        key.subarray(0, 20),
        new Uint8Array(1 << 20),
        new TextEncoder().encode("zz".repeat(32)),
      ]
    ) {
      await Deno.writeFile(path, bad);
      const error = await assertRejects(
        () => startServer({ port: 0, dataDir, readTokens: true }),
        SecretFileError,
      ) as SecretFileError;
      assertMatch(
        error.message,
        new RegExp(
          `^the secret file .*secret\\.key holds ${bad.byteLength} bytes( that are not a key)?; expected 32 random bytes, or 64 hex digits`,
        ),
      );
    }
    // The same key as raw bytes and as hex text with a newline: one secret.
    const hex = new TextDecoder().decode(key).trim();
    const raw = Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
    await Deno.writeFile(path, raw, { mode: 0o600 });
    assertEquals(await readStatus(dataDir, reference), 200);
    await Deno.writeTextFile(path, `${encodeHex(raw)}\n`, { mode: 0o600 });
    assertEquals(await readStatus(dataDir, reference), 200);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("secret: a new secret only for an empty data dir, said on stderr; a readable key is warned about", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-secret-" });
  try {
    const run = async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          SERVER_MAIN,
          "--port",
          "0",
          "--data-dir",
          dataDir,
          "--read-tokens",
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const lines = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let out = "";
      while (!out.includes("\n")) out += (await lines.read()).value ?? "";
      child.kill("SIGTERM");
      await lines.cancel();
      await child.status;
      return await stderr;
    };
    const first = await run();
    assertMatch(
      first,
      new RegExp(
        `spool: made a new secret in ${dataDir}/secret\\.key \\(read tokens are derived from it: keep it with the data\\)`,
      ),
    );
    assertEquals(
      (await Deno.stat(join(dataDir, "secret.key"))).mode! & 0o777,
      0o600,
    );
    await Deno.chmod(join(dataDir, "secret.key"), 0o644);
    const second = await run();
    assert(!second.includes("made a new secret"), second);
    assertMatch(
      second,
      new RegExp(
        `spool: warning: the secret file ${dataDir}/secret\\.key can be read by others \\(mode 0644\\); expected 0600: chmod 600 `,
      ),
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("secret: --secret-file must exist, and a shared key keeps references valid on another server", async () => {
  const keyDir = await Deno.makeTempDir({ prefix: "spool-key-" });
  const secretFile = join(keyDir, "shared.key");
  try {
    const dataDir = await Deno.makeTempDir({ prefix: "spool-secret-" });
    const error = await assertRejects(
      () => startServer({ port: 0, dataDir, readTokens: true, secretFile }),
      SecretFileError,
    ) as SecretFileError;
    assertEquals(
      error.message,
      `the secret file ${secretFile} (secretFile) does not exist; expected a key there: make one with openssl rand -hex 32 > ${secretFile}`,
    );
    await Deno.remove(dataDir, { recursive: true });
    await Deno.writeTextFile(
      secretFile,
      encodeHex(crypto.getRandomValues(new Uint8Array(32))),
      { mode: 0o600 },
    );
    const made = await dataDirWithResource({ secretFile });
    try {
      // Without the shared key the data dir's own would be needed: refused.
      await assertRejects(
        () => readStatus(made.dataDir, made.reference),
        SecretFileError,
      );
      assertEquals(
        await readStatus(made.dataDir, made.reference, { secretFile }),
        200,
      );
      assertEquals(
        await Deno.stat(join(made.dataDir, "secret.key")).then(
          () => true,
          () => false,
        ),
        false,
        "a key was made in the data dir though --secret-file named one",
      );
    } finally {
      await Deno.remove(made.dataDir, { recursive: true });
    }
  } finally {
    await Deno.remove(keyDir, { recursive: true });
  }
});
