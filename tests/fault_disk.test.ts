/**
 * A full disk and a shared data dir: the data dir lives on a small tmpfs
 * that the upload fills for real (ENOSPC), and a second server is started
 * on a dir that one already uses.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "node:path";
import {
  openDownload,
  ResourceFailedError,
  SpoolError,
  startServer,
  startUpload,
} from "../mod.ts";
import { StoreInUseError } from "../server/mod.ts";

import { randomBytes, readAll, spawnServer } from "./_helpers.ts";
import { within } from "./_fault_actors.ts";

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

/** Runs a command; throws with its output if it fails. */
async function run(command: string, args: string[]): Promise<void> {
  const sudo = Deno.uid() === 0 ? [] : ["sudo", "-n"];
  const { success, stderr } = await new Deno.Command(sudo[0] ?? command, {
    args: [...sudo.slice(1), ...(sudo.length ? [command] : []), ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${
        new TextDecoder().decode(stderr).trim()
      } (this test fills a real disk: it mounts a ${
        args.includes("tmpfs") ? "tmpfs" : "filesystem"
      }, which needs root or passwordless sudo, as CI has)`,
    );
  }
}

/** A tmpfs of `bytes` mounted on a new temporary dir; unmounted on dispose. */
async function smallDisk(
  bytes: number,
): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "spool-full-" });
  await run("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir]);
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await run("umount", [dir]);
      await Deno.remove(dir);
    },
  };
}

/** Files under `dir`, with their sizes. */
async function files(dir: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      for (const [name, size] of await files(path)) found.set(name, size);
    } else found.set(path, (await Deno.stat(path)).size);
  }
  return found;
}

Deno.test("disk full: the upload FAILS with ENOSPC for uploader and followers; the status is saved once space is freed; a refused upload leaves no file", async () => {
  await using disk = await smallDisk(4 * 1024 * 1024);
  const dataDir = join(disk.dir, "data");
  const filler = join(disk.dir, "filler");
  await Deno.writeFile(filler, new Uint8Array(1024 * 1024));
  const server = await spawnServer(dataDir, { stderr: "lines" });
  try {
    const up = await startUpload(server.url, { name: "fills.bin" });
    await using follower = await openDownload(up.reference);
    const following = readAll(follower.follow()).then(
      () => undefined,
      (error) => error,
    );
    const chunk = randomBytes(256 * 1024, 5);
    const writeError = await within(
      20_000,
      "writing until the disk is full",
      assertRejects(async () => {
        for (let i = 0; i < 64; i++) await up.write(chunk);
        await up.finish();
      }, SpoolError),
    ) as SpoolError;
    assertEquals(writeError.code, "upload-failed");
    assertMatch(
      writeError.message,
      /^the store could not write the upload: No space left on device/,
    );
    const followError = await within(20_000, "the follower", following);
    assert(followError instanceof ResourceFailedError, String(followError));
    assertMatch(
      followError.reason,
      /^store write failed: No space left on device/,
    );
    assertEquals(follower.status.status, "FAILED");
    await up.closed();
    await within(
      10_000,
      "the server saying it could not save",
      server.stderr!.until((line) =>
        line.includes(`could not save the FAILED status of ${up.id}`)
      ),
    );

    // A new upload is refused while the disk is full, and leaves nothing.
    const before = await files(dataDir);
    const refused = await assertRejects(
      () => startUpload(server.url, { name: "refused.bin" }),
      SpoolError,
    ) as SpoolError;
    assertMatch(refused.message, /No space left on device/);
    assertEquals(await files(dataDir), before);
    for (const [path, size] of before) {
      assert(!path.endsWith(".tmp"), `a temporary file is left: ${path}`);
      assert(size > 0 || path.endsWith(".lock"), `an empty file: ${path}`);
    }

    await Deno.remove(filler);
    await within(
      10_000,
      "the server saving the status once space is back",
      server.stderr!.until((line) =>
        line.includes(`saved the FAILED status of ${up.id}`)
      ),
    );
  } finally {
    server.process.kill("SIGTERM");
    await within(10_000, "the server exiting", server.process.status);
    await server.stderr!.rest();
  }
  // After a restart the resource is FAILED with the same reason.
  const again = await startServer({ port: 0, dataDir });
  try {
    const [status] = [...again.registry.all()].map((r) => r.status);
    assertEquals(status.status, "FAILED");
    assertMatch(status.error!, /^store write failed: No space left on device/);
  } finally {
    await again.close();
  }
});

Deno.test("data dir lock: a second server on a data dir in use is refused, naming the dir and the holder", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-lock-" });
  try {
    const first = await startServer({ port: 0, dataDir });
    const error = await assertRejects(
      () => startServer({ port: 0, dataDir }),
      StoreInUseError,
    ) as StoreInUseError;
    assertEquals(
      error.message,
      `the data dir ${dataDir} is in use by another Spool server (pid ${Deno.pid}, since ${
        error.message.match(/since (\S+)\)/)![1]
      }); expected one server per data dir: stop that one or choose another --data-dir`,
    );
    // The command line says so and exits 1, before listening.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SERVER_MAIN, "--port", "0", "--data-dir", dataDir],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(code, 1);
    assertMatch(
      new TextDecoder().decode(stderr),
      new RegExp(
        `^spool server: the data dir ${dataDir} is in use by another Spool server \\(pid ${Deno.pid}, since `,
      ),
    );
    // A live upload on the first server is untouched by the attempts.
    const up = await startUpload(first.url, { name: "kept.log" });
    await up.write(new TextEncoder().encode("still mine\n"));
    assertEquals((await up.finish()).status, "COMPLETED");
    await up.closed();
    await first.close();
    // Once the first is gone, the dir is free again.
    const second = await startServer({ port: 0, dataDir });
    const [kept] = [...second.registry.all()].map((r) => r.status);
    assertEquals(kept.status, "COMPLETED");
    await second.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("data dir lock: a server that cannot listen lets its data dir go", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-lock-" });
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assertRejects(
      () => startServer({ port: busy.addr.port, dataDir }),
      Deno.errors.AddrInUse,
    );
    await using server = await startServer({ port: 0, dataDir });
    assertEquals([...server.registry.all()].length, 0);
  } finally {
    busy.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
