/**
 * The checkpoint log behind the viewer's line times: `/resources/{id}/checkpoints`
 * gives the size and time of every checkpoint of an upload (each status it
 * published), bounded in memory; a resource loaded after a restart has none.
 */

import { assert, assertEquals } from "@std/assert";
import { startUpload } from "../mod.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { CheckpointLog } from "../server/checkpoint_log.ts";
import { startTestServer } from "./_helpers.ts";

const encoder = new TextEncoder();

Deno.test("checkpoint log: past its bound it keeps every other entry and the newest; no byte gets an earlier time", () => {
  const log = new CheckpointLog(5, 8);
  const truth: { size: number; time: number }[] = [];
  for (let i = 1; i <= 100; i++) {
    const entry = { size: 5 + i * 3, time: Date.UTC(2026, 0, 1) + i * 1000 };
    truth.push(entry);
    log.record(entry.size, entry.time);
    log.record(entry.size, entry.time + 1); // the same size again: ignored
    log.record(entry.size - 1, entry.time + 2); // smaller: ignored
    const entries = log.entries();
    assert(entries.length <= 8, `${entries.length} entries`);
    assertEquals(entries.at(-1)!.size, entry.size, "the newest is kept");
  }
  const entries = log.entries();
  for (const { size, time } of truth) {
    // The time a byte at `size` gets: that of the first entry covering it.
    const covering = entries.find((entry) => entry.size >= size)!;
    assert(Date.parse(covering.time) >= time, `byte ${size}`);
  }
  assertEquals(log.from, 5);
});

Deno.test("checkpoints: /checkpoints lists each checkpoint of an upload with its status time, from byte 0; after a restart it has none", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-checkpoints-" });
  try {
    let id = "";
    const published: ResourceStatus[] = [];
    {
      await using server = await startTestServer({ dataDir, checkpointMs: 0 });
      const upload = await startUpload(server.url, {
        name: "times.log",
        mimeType: "text/plain",
      });
      id = upload.id;
      const resource = server.registry.get(id)!;
      resource.watch((status) => published.push(status));
      for (let i = 0; i < 5; i++) {
        await upload.write(encoder.encode(`line ${i}\n`));
        const size = "line 0\n".length * (i + 1);
        // One checkpoint per write: wait until it is published.
        await new Promise<void>((resolve) => {
          const stop = resource.watch((status) => {
            if (status.size < size) return;
            queueMicrotask(() => stop());
            resolve();
          });
        });
      }
      await upload.finish();
      await upload.closed();
      const response = await fetch(
        new URL(`resources/${id}/checkpoints`, server.url),
      );
      assertEquals(response.status, 200);
      assertEquals(response.headers.get("cache-control"), "no-cache");
      const body = await response.json();
      assertEquals(Object.keys(body), ["from", "checkpoints"]);
      assertEquals(body.from, 0);
      // Every status that grew the resource, with its time.
      const grew = published.filter((status, i) =>
        status.size > (published[i - 1]?.size ?? 0)
      );
      assertEquals(grew.length, 5, "a checkpoint per write");
      assertEquals(
        body.checkpoints,
        grew.map((status) => ({ size: status.size, time: status.updatedAt })),
      );
      assertEquals(body.checkpoints.at(-1).size, "line 0\n".length * 5);
    }
    await using restarted = await startTestServer({ dataDir });
    const after = await fetch(
      new URL(`resources/${id}/checkpoints`, restarted.url),
    );
    assertEquals(await after.json(), {
      from: "line 0\n".length * 5,
      checkpoints: [],
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
