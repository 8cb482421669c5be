/**
 * Pipelined appends on the JetStream store: pieces go out without waiting
 * for each acknowledgement, within a bounded window, appends joined into
 * pieces while others are in flight; `stored` resolves in offset order and
 * `sync` waits for every acknowledgement. The engine is a
 * real nats-server, paused with SIGSTOP so that no acknowledgement can come.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { newResourceId } from "../server/resource_id.ts";
import type { ResourceStore, ResourceWriter } from "../server/store.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { randomBytes, readAll, sha256, testStatus } from "./_helpers.ts";
import { type NatsServer, startNats } from "./_nats.ts";
import {
  dataSubjects,
  SEGMENT_BYTES,
  STREAM,
} from "../server/nats/subjects.ts";

/** The writer's window, in bytes (`MAX_BYTES_IN_FLIGHT`). */
const WINDOW_BYTES = 4 * 1024 * 1024;
/** Appends of this size, as an uploader's frames. */
const APPEND = 64 * 1024;
const S = SEGMENT_BYTES;

/** Pieces stored per data subject of `id`, by segment number. */
async function piecesBySegment(
  engine: NatsEngine,
  id: string,
): Promise<Record<string, number>> {
  const info = await engine.jsm.streams.info(STREAM, {
    subjects_filter: dataSubjects(id),
  });
  const counts: Record<string, number> = {};
  for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
    counts[subject.slice(subject.lastIndexOf(".") + 1)] = count;
  }
  return counts;
}

/** Spins until `pid` is stopped (state T in /proc), bounded in reads. */
function waitStopped(pid: number): void {
  for (let i = 0; i < 100_000; i++) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
  }
  throw new Error(`nats-server ${pid} did not stop after SIGSTOP`);
}

/** What a test of one upload's writer gets. */
interface WriterCase {
  nats: NatsServer;
  engine: NatsEngine;
  store: ResourceStore;
  status: ResourceStatus;
  writer: ResourceWriter;
  enqueue(chunk: Uint8Array): Promise<{ stored: Promise<void> }>;
}

/**
 * Runs `body` with a new upload `name` on a JetStream store of its own
 * nats-server; then checks that the store holds `body`'s bytes once the
 * upload is completed.
 */
async function withWriter(
  name: string,
  body: (test: WriterCase) => Promise<Uint8Array>,
): Promise<void> {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  const store: ResourceStore = new JetStreamStore(engine, {
    ownsEngine: true,
  });
  await store.open?.();
  try {
    const status = testStatus(name, { id: newResourceId() });
    const writer = await store.create(status);
    const enqueue = writer.enqueue?.bind(writer);
    if (enqueue === undefined) {
      throw new Error(
        "the JetStream writer has no enqueue; expected it to pipeline",
      );
    }
    const data = await body({ nats, engine, store, status, writer, enqueue });
    await writer.sync();
    await store.save({ ...status, status: "COMPLETED", size: data.length });
    assertEquals(await store.dataSize(status.id), data.length);
    assertEquals(
      await sha256(await readAll(store.read(status.id, 0, data.length))),
      await sha256(data),
    );
    await writer.close();
  } finally {
    await store.close?.();
  }
}

Deno.test("pipelined appends: with no acknowledgement the first append goes at once, later ones are joined into pieces that end at segment ends, the window holds the next piece until the oldest is acknowledged, and every byte is stored in offset order", async () => {
  await withWriter(
    "pipeline.bin",
    async ({ nats, engine, status, enqueue }) => {
      // Pieces of [0, 64K), [64K, S), then whole segments: the fifth whole
      // one no longer fits the window beside the four before it.
      const appends = Math.ceil(5 * S / APPEND);
      const blocked = Math.floor(5 * S / APPEND);
      assert(4 * S <= WINDOW_BYTES && 5 * S > WINDOW_BYTES);
      const data = randomBytes(appends * APPEND, 14);
      const events: string[] = [];
      Deno.kill(nats.pid, "SIGSTOP");
      waitStopped(nats.pid);
      let paused = true;
      try {
        const stored: Promise<void>[] = [];
        for (let i = 0; i < blocked; i++) {
          const queued = await enqueue(
            data.subarray(i * APPEND, (i + 1) * APPEND),
          );
          stored.push(
            queued.stored.then(() => void events.push(`stored ${i}`)),
          );
        }
        // Every enqueue returned while the engine could not answer one.
        assertEquals(events, []);
        const last = enqueue(data.subarray(blocked * APPEND)).then((queued) => {
          events.push(`enqueued ${blocked}`);
          return queued.stored;
        });
        Deno.kill(nats.pid, "SIGCONT");
        paused = false;
        await Promise.all([...stored, last]);
        // The append that fills the fifth segment waited for an acknowledgement.
        assertEquals(events[0], "stored 0");
        assert(events.indexOf(`enqueued ${blocked}`) > 0, events.join(", "));
        assertEquals(
          events.filter((event) => event.startsWith("stored")),
          Array.from({ length: blocked }, (_, i) => `stored ${i}`),
        );
      } finally {
        if (paused) Deno.kill(nats.pid, "SIGCONT");
      }
      // Segment 0: the first append alone, then the rest of the segment.
      assertEquals(await piecesBySegment(engine, status.id), {
        "0": 2,
        "1": 1,
        "2": 1,
        "3": 1,
        "4": 1,
        "5": 1,
      });
      return data;
    },
  );
});

Deno.test("pipelined appends: an engine that acknowledges each append before the next gets each as a piece of its own, at once", async () => {
  await withWriter("idle.log", async ({ engine, status, enqueue }) => {
    const data = randomBytes(3000, 15);
    for (let at = 0; at < data.length; at += 1000) {
      const { stored } = await enqueue(data.subarray(at, at + 1000));
      // Not held back for company: stored without a checkpoint.
      await stored;
    }
    assertEquals(await piecesBySegment(engine, status.id), { "0": 3 });
    return data;
  });
});

Deno.test("pipelined appends: once the stream refuses a piece, the appends joined behind it are never published, and they, the refused one and the checkpoint all fail naming the refusal", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  const store = new JetStreamStore(engine, { ownsEngine: true });

  try {
    const status = testStatus("refused.bin", { id: newResourceId() });
    const writer = await store.create(status);
    // An operator lowers the stream's message size while the upload runs.
    const info = await engine.jsm.streams.info(STREAM);
    await engine.jsm.streams.update(STREAM, {
      ...info.config,
      max_msg_size: 1000,
    });
    const refused = await writer.enqueue!(randomBytes(2000, 16));
    // Joined while the first is in flight; alone it would fit the limit.
    const behind = await writer.enqueue!(randomBytes(100, 17));
    for (const stored of [refused.stored, behind.stored]) {
      await assertRejects(() => stored, Error, "message size exceeds maximum");
    }
    await assertRejects(
      () => writer.sync(),
      Error,
      "message size exceeds maximum",
    );
    assertEquals(await piecesBySegment(engine, status.id), {});
    await writer.close();
  } finally {
    await store.close();
  }
});
