/**
 * How a live resource's end is decided when two ends come at once, on the
 * file store: the completion asked for first stands against a failure
 * asked for in the same tick (the completion computes its hash at once).
 */

import { assertEquals } from "@std/assert";
import { FileStore } from "../server/file_store.ts";
import { Resource } from "../server/resource.ts";
import { testStatus } from "./_helpers.ts";

Deno.test("resource end: complete() then fail() in the same tick: COMPLETED stands, for both callers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-end-" });
  const store = new FileStore(dir);
  await store.open();
  try {
    const status = { ...testStatus("end.bin"), status: "IN_PROGRESS" as const };
    const resource = new Resource(store, status, {
      checkpointMs: 0,
      writer: await store.create(status),
    });
    resource.append(new TextEncoder().encode("abc"));
    await resource.settled();
    const completing = resource.complete();
    const failing = resource.fail("closing");
    const [completed, failed] = await Promise.all([completing, failing]);
    assertEquals([completed.status, failed.status], ["COMPLETED", "COMPLETED"]);
    assertEquals(
      completed.sha256,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
