/**
 * Status message ids on the JetStream store: a status's id names the status
 * it follows, so two publishes after the same one look alike to the
 * stream, which acknowledges the second as a duplicate without storing it.
 * A node failing another's upload (the lease sweeper) must not share the
 * owner's id, and one node's own publishes for a resource (a checkpoint
 * timer's and the final sync's) must not run after the same status at
 * once. Real nats-server.
 */

import { assertEquals, assertRejects } from "@std/assert";
import { delay } from "@std/async/delay";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { LeaseSweeper } from "../server/nats/lease_sweeper.ts";
import { newResourceId } from "../server/resource_id.ts";
import { TakenOverError } from "../server/store.ts";
import { startNats } from "./_nats.ts";
import { testStatus } from "./_helpers.ts";

/** Bounds the wait for the sweeper's `FAILED`. */
const WAIT_MS = 10_000;

Deno.test("a node's FAILED for an upload whose lease stopped moving has its own message id: the owner's later COMPLETED is fenced out, not acknowledged as its duplicate", async () => {
  await using nats = await startNats();
  const connect = async (leaseMs: number) =>
    new JetStreamStore(
      await NatsEngine.connect({ servers: [nats.url] }),
      { leaseMs },
    );
  const a = await connect(60_000), b = await connect(100);
  const id = newResourceId();
  const status = testStatus("ids.bin", { id });
  const writer = await a.create(status);
  await writer.append(new Uint8Array(1000).fill(7));
  await writer.sync();
  const live = (await b.lastStatus(id))!;
  assertEquals([live.status, live.size], ["IN_PROGRESS", 1000]);
  // A's lease key goes (as when its node stalls): B's sweeper fails the upload.
  await a.close();
  const sweeper = new LeaseSweeper(b, {
    graceMs: 0,
    sweepMs: 20,
    uploads: () => [live],
  });
  try {
    const deadline = performance.now() + WAIT_MS;
    while ((await b.lastStatus(id))?.status !== "FAILED") {
      if (performance.now() > deadline) {
        throw new Error(`B's sweeper did not fail ${id} within ${WAIT_MS} ms`);
      }
      // Waiting on the stored status, bounded by the deadline.
      await delay(20);
    }
  } finally {
    await sweeper.stop();
  }
  await assertRejects(
    () => a.save({ ...live, status: "COMPLETED", size: 1000 }),
    TakenOverError,
  );
  assertEquals((await b.lastStatus(id))?.status, "FAILED");
  await writer.close();
  await a.engine.close();
  await b.close();
  await b.engine.close();
});

Deno.test("a node's status publishes for one resource made at once are stored one after the other, each counted: none is acknowledged as a duplicate of another", async () => {
  await using nats = await startNats();
  const store = new JetStreamStore(
    await NatsEngine.connect({ servers: [nats.url] }),
    { ownsEngine: true },
  );
  const id = newResourceId();
  const status = testStatus("ids.bin", { id });
  const writer = await store.create(status);
  // As a checkpoint timer's sync and the final one may overlap in a stall.
  const seqs = await Promise.all(
    [100, 200, 300].map((size) =>
      store.statuses.publish({ ...status, status: "IN_PROGRESS", size })
    ),
  );
  assertEquals(new Set(seqs).size, 3, `sequences ${seqs.join(", ")}`);
  const last = (await store.lastStatus(id))!;
  assertEquals([last.status, last.size], ["IN_PROGRESS", 300]);
  await writer.close();
  await store.close();
});
