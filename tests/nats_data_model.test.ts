/**
 * A node checks that the engine can take its data as it lays it out: a
 * `max_payload` that holds a whole piece, and a stream of its own data
 * model (an earlier Spool's 256 KiB segments would be misread as today's).
 */

import { assertEquals, assertRejects } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { EngineMismatchError, NatsEngine } from "../server/nats/engine.ts";
import {
  DATA_MODEL,
  SEGMENT_BYTES,
  STREAM,
  STREAM_SUBJECTS,
} from "../server/nats/subjects.ts";
import { startNats } from "./_nats.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { newResourceId } from "../server/resource_id.ts";
import { randomBytes, readAll, testStatus } from "./_helpers.ts";

/** Makes the stream as an operator (or an earlier Spool) would, with `messages` in it. */
async function makeStream(
  url: string,
  options: { description?: string; messages: number; maxMessage?: number },
): Promise<void> {
  const nc = await connect({ servers: [url] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: STREAM,
      subjects: [STREAM_SUBJECTS],
      storage: StorageType.File,
      max_age: 3600 * 1e9,
      // An operator's stream need not have what Spool relies on.
      allow_direct: false,
      duplicate_window: 10 * 1e9,
      ...(options.maxMessage ? { max_msg_size: options.maxMessage } : {}),
      ...(options.description ? { description: options.description } : {}),
    });
    for (let i = 0; i < options.messages; i++) {
      await jsm.jetstream().publish(`spool.d.AAAAAAAAAAAAAAAAAAAAAA.${i}`, "x");
    }
  } finally {
    await nc.close();
  }
}

Deno.test("a node refuses a stream laid out by an earlier Spool (no data model named, messages in it), saying what it found and what to do", async () => {
  await using nats = await startNats();
  await makeStream(nats.url, { messages: 2 });
  await assertRejects(
    () => NatsEngine.connect({ servers: [nats.url] }),
    EngineMismatchError,
    `stream ${STREAM} holds 2 messages laid out by an earlier Spool (no data model named: 256 KiB segments); expected "${DATA_MODEL}": run the Spool that wrote them, or remove the stream once nothing in it is needed (nats stream rm ${STREAM})`,
  );
});

Deno.test("a node refuses a stream of another data model, even an empty one", async () => {
  await using nats = await startNats();
  const other = "spool data model 3: segments of 4194304 bytes";
  await makeStream(nats.url, { description: other, messages: 0 });
  await assertRejects(
    () => NatsEngine.connect({ servers: [nats.url] }),
    EngineMismatchError,
    `holds 0 messages laid out as "${other}"`,
  );
});

Deno.test("an empty stream the operator made is taken and marked with the data model, direct get and the duplicate window made so, its other settings kept, and it carries an upload", async () => {
  await using nats = await startNats();
  await makeStream(nats.url, { messages: 0 });
  const store = new JetStreamStore(
    await NatsEngine.connect({ servers: [nats.url] }),
    { ownsEngine: true },
  );

  try {
    const info = await store.engine.jsm.streams.info(STREAM);
    assertEquals(info.config.description, DATA_MODEL);
    assertEquals(info.config.allow_direct, true);
    assertEquals(info.config.duplicate_window, 120 * 1e9);
    assertEquals(info.config.max_age, 3600 * 1e9);
    // Read by direct get: without allow_direct this read never ended.
    const status = testStatus("adopted.bin", { id: newResourceId() });
    const writer = await store.create(status);
    const data = randomBytes(5000, 3);
    await writer.append(data);
    await writer.sync();
    await store.save({ ...status, status: "COMPLETED", size: data.length });
    assertEquals(await readAll(store.read(status.id, 0, data.length)), data);
    await writer.close();
  } finally {
    await store.close();
  }
  // The next node (or this one restarted) takes it as its own.
  const again = await NatsEngine.connect({ servers: [nats.url] });
  await again.close();
});

Deno.test("a stream whose max_msg_size cannot hold a piece is refused at start, naming the setting", async () => {
  await using nats = await startNats();
  await makeStream(nats.url, { messages: 0, maxMessage: 65536 });
  await assertRejects(
    () => NatsEngine.connect({ servers: [nats.url] }),
    EngineMismatchError,
    `stream ${STREAM} takes messages of at most 65536 bytes (max_msg_size); expected at least ${
      SEGMENT_BYTES + 4096
    }`,
  );
});

Deno.test("a server whose max_payload cannot hold a piece is refused at start, naming the setting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-nats-conf-" });
  const config = `${dir}/small.conf`;
  await Deno.writeTextFile(config, "max_payload: 65536\n");
  try {
    await using nats = await startNats({ args: ["-c", config] });
    await assertRejects(
      () => NatsEngine.connect({ servers: [nats.url] }),
      EngineMismatchError,
      `its max_payload is 65536 bytes; expected at least ${
        SEGMENT_BYTES + 4096
      }`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
