/**
 * Pipelined appends on the JetStream store: pieces go out without waiting
 * for each acknowledgement, within a bounded window; `stored` resolves in
 * offset order and `sync` waits for every acknowledgement. The engine is a
 * real nats-server, paused with SIGSTOP so that no acknowledgement can come.
 */

import { assert, assertEquals } from "@std/assert";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { newResourceId } from "../server/resource_id.ts";
import type { ResourceStore } from "../server/store.ts";
import { randomBytes, readAll, sha256, testStatus } from "./_helpers.ts";
import { startNats } from "./_nats.ts";

/** The writer's window, in pieces (`MAX_PIECES_IN_FLIGHT`). */
const WINDOW = 16;
const PIECE = 64 * 1024;

/** Spins until `pid` is stopped (state T in /proc), bounded in reads. */
function waitStopped(pid: number): void {
  for (let i = 0; i < 100_000; i++) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
  }
  throw new Error(`nats-server ${pid} did not stop after SIGSTOP`);
}

Deno.test("pipelined appends: a window of pieces goes out with no acknowledgement, the next waits for the oldest one's, and each is stored in offset order", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  const store: ResourceStore = new JetStreamStore(engine, {
    ownsEngine: true,
  });
  await store.open?.();
  try {
    const id = newResourceId();
    const status = testStatus("pipeline.bin", { id });
    const writer = await store.create(status);
    if (writer.enqueue === undefined) {
      throw new Error(
        "the JetStream writer has no enqueue; expected it to pipeline",
      );
    }
    const enqueue = writer.enqueue.bind(writer);
    const data = randomBytes((WINDOW + 1) * PIECE, 14);
    const events: string[] = [];
    Deno.kill(nats.pid, "SIGSTOP");
    waitStopped(nats.pid);
    let paused = true;
    try {
      const stored: Promise<void>[] = [];
      for (let i = 0; i < WINDOW; i++) {
        const piece = data.subarray(i * PIECE, (i + 1) * PIECE);
        const queued = await enqueue(piece);
        stored.push(queued.stored.then(() => void events.push(`stored ${i}`)));
      }
      // Every enqueue returned while the engine could not answer one.
      assertEquals(events, []);
      const last = enqueue(data.subarray(WINDOW * PIECE)).then(
        (queued) => {
          events.push(`enqueued ${WINDOW}`);
          return queued.stored;
        },
      );
      Deno.kill(nats.pid, "SIGCONT");
      paused = false;
      await Promise.all([...stored, last]);
      // The 17th piece went out only once the oldest one was acknowledged.
      assertEquals(events[0], "stored 0");
      assert(events.indexOf(`enqueued ${WINDOW}`) > 0, events.join(", "));
      assertEquals(
        events.filter((event) => event.startsWith("stored")),
        Array.from({ length: WINDOW }, (_, i) => `stored ${i}`),
      );
    } finally {
      if (paused) Deno.kill(nats.pid, "SIGCONT");
    }
    await writer.sync();
    await store.save({ ...status, status: "COMPLETED", size: data.length });
    assertEquals(await store.dataSize(id), data.length);
    assertEquals(
      await sha256(await readAll(store.read(id, 0, data.length))),
      await sha256(data),
    );
    await writer.close();
  } finally {
    await store.close?.();
  }
});
