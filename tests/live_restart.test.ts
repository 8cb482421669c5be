import { assert, assertEquals } from "@std/assert";
import {
  openDownload,
  ResourceFailedError,
  startUpload,
  upload,
} from "../mod.ts";
import { INTERRUPTED_REASON } from "../server/mod.ts";
import { SHUTDOWN_REASON } from "../server/mod.ts";
import {
  randomBytes,
  readAll,
  sha256,
  spawnServer,
  startTestServer,
} from "./_helpers.ts";

Deno.test("a killed server restarts with completed resources intact and interrupted ones FAILED", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-restart-" });
  try {
    const first = await spawnServer(dataDir, {
      args: ["--resume-grace-ms", "200"],
    });
    const completeData = randomBytes(2 * 1024 * 1024 + 5, 21);
    let completedRef = "";
    await upload(first.url, completeData, {
      name: "done.bin",
      onReady: (u) => completedRef = u.reference,
    });

    const live = await startUpload(first.url, { name: "live.bin" });
    const partial = randomBytes(300_000, 22);
    await live.write(partial);
    const watcher = await openDownload(live.reference);
    await watcher.waitForStatus((s) => s.size === partial.byteLength);
    const followed = readAll(watcher.follow()).catch((e) => e);

    first.process.kill("SIGKILL");
    await first.process.status;
    await live.closed();
    // The follower learns the connection is gone, not a silent end.
    assert(
      !((await followed) instanceof Uint8Array),
      "follower must not end cleanly",
    );
    await watcher.close();

    const second = await spawnServer(dataDir, {
      args: ["--resume-grace-ms", "200"],
    });
    const completed = await openDownload(
      completedRef.replace(first.url.host, second.url.host),
    );
    assertEquals(completed.status.status, "COMPLETED");
    assertEquals(completed.status.sha256, await sha256(completeData));
    assertEquals(
      await sha256(await readAll(completed.read(0, completed.status.size))),
      await sha256(completeData),
    );
    await completed.close();

    const interrupted = await openDownload(
      live.reference.replace(first.url.host, second.url.host),
    );
    assertEquals(interrupted.status.status, "FAILED");
    assertEquals(interrupted.status.error, INTERRUPTED_REASON);
    assertEquals(interrupted.status.size, partial.byteLength);
    assertEquals(
      await readAll(interrupted.read(0, partial.byteLength)),
      partial,
    );
    const error = await readAll(interrupted.follow()).catch((e) => e);
    assert(error instanceof ResourceFailedError);
    await interrupted.close();

    second.process.kill("SIGTERM");
    assertEquals(
      (await second.process.status).code,
      0,
      "SIGTERM shuts down cleanly",
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("closing a server fails live uploads and a new server keeps them FAILED", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-close-" });
  try {
    const server = await startTestServer({ dataDir });
    const live = await startUpload(server.url, { name: "cut.bin" });
    await live.write(randomBytes(1000));
    const watcher = await openDownload(live.reference);
    const statuses = readAll(watcher.follow()).catch((e) => e);
    await server.close();
    await live.closed();
    const error = await statuses;
    assert(error instanceof ResourceFailedError, `follower got ${error}`);
    assertEquals(error.reason, SHUTDOWN_REASON);
    await watcher.close();

    await using again = await startTestServer({ dataDir });
    const status = again.registry.get(live.id)!.status;
    assertEquals(status.status, "FAILED");
    assertEquals(status.error, SHUTDOWN_REASON);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
