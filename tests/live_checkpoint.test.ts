/**
 * Checkpoints reach every byte written, even when writes land while a
 * checkpoint is being published; a follower of a FAILED resource gets the
 * bytes it kept.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { openDownload, ResourceFailedError, startUpload } from "../mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";
import { FileStore, type ResourceWriter } from "../server/mod.ts";
import type { ResourceStatus } from "../protocol/mod.ts";
import { within } from "./_fault_actors.ts";

/**
 * The file store behind a disk that completes operations in batches, as a
 * completion queue does: every append and sync waiting when a batch is due
 * completes in one go, in the order they were issued. A write then lands
 * in the same turn as a checkpoint's sync, between its last look at the
 * written size and its end: the race that lost the last checkpoint.
 */
class BatchedDisk extends FileStore {
  #waiting: { done: Promise<void>; resolve: () => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  #complete(done: Promise<void>): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ done, resolve });
    this.#timer ??= setTimeout(async () => {
      this.#timer = undefined;
      const batch = this.#waiting.splice(0);
      await Promise.all(batch.map((entry) => entry.done));
      for (const entry of batch) entry.resolve();
    }, 1);
    return promise;
  }

  override async create(status: ResourceStatus): Promise<ResourceWriter> {
    const writer = await super.create(status);
    return {
      append: (chunk) => this.#complete(writer.append(chunk)),
      sync: () => this.#complete(writer.sync()),
      close: () => writer.close(),
    };
  }
}

Deno.test("checkpoint 0: on a disk completing in batches every written byte is checkpointed, the last one too", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-ckpt-" });
  try {
    await using server = await startTestServer({
      store: new BatchedDisk(dataDir),
      dataDir,
      checkpointMs: 0,
    });
    const up = await startUpload(server.url, { name: "batched-disk.log" });
    await using watcher = await openDownload(up.reference);
    const data = randomBytes(409_600, 9);
    for (let offset = 0; offset < data.length; offset += 4096) {
      await up.write(data.subarray(offset, offset + 4096));
    }
    // No finish: the checkpoints alone must cover the last write.
    const status = await within(
      10_000,
      `a checkpoint of all ${data.length} bytes (before the fix: stuck at ${
        data.length - 4096
      })`,
      watcher.waitForStatus((s) => s.size === data.length),
    );
    assertEquals(status.status, "IN_PROGRESS");
    const bytes = await readAll(watcher.read(0, data.length));
    assertEquals(await sha256(bytes), await sha256(data));
    up.abort("test over");
    await up.closed();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("follow: a socket follow of an already FAILED resource gets its kept bytes, then the failure", async () => {
  await using server = await startTestServer();
  const up = await startUpload(server.url, { name: "broken.log" });
  const data = randomBytes(100_000, 4);
  await up.write(data);
  await using early = await openDownload(up.reference);
  await early.waitForStatus((s) => s.size === data.length);
  up.abort("the build crashed");
  await up.closed();
  await early.waitForStatus((s) => s.status === "FAILED");
  await using late = await openDownload(up.reference);
  assertEquals(late.status.status, "FAILED");
  const chunks: Uint8Array[] = [];
  const error = await assertRejects(async () => {
    for await (const chunk of late.follow()) chunks.push(chunk);
  }, ResourceFailedError) as ResourceFailedError;
  assert(error.reason.includes("disconnected"), error.reason);
  const kept = await new Blob(chunks as BlobPart[]).bytes();
  assertEquals(await sha256(kept), await sha256(data));
});
