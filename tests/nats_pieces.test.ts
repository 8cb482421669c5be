/**
 * Readers of the JetStream store take a segment's pieces by their offset
 * header, not by stream sequence: a pipelined writer's retry lands after
 * later pieces, a leader change can store a piece twice, and a node that
 * lost an upload may store bytes the new holder writes again. The pieces
 * are published straight through the engine in such orders, on a real
 * nats-server; range reads and a takeover's hash rebuild must still give
 * the exact bytes, and stop at a gap.
 */

import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { createHash } from "node:crypto";
import type { ResourceStatus } from "../protocol/status.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { SEGMENT_BYTES } from "../server/nats/subjects.ts";
import { newResourceId } from "../server/resource_id.ts";
import { Resource } from "../server/resource.ts";
import { CatchUpHash } from "../server/nats/_catch_up_hash.ts";
import { readRange } from "../server/nats/_range_reader.ts";
import { Lease } from "../server/nats/lease.ts";
import { randomBytes, readAll, sha256, testStatus } from "./_helpers.ts";
import { publishPieces, startNats } from "./_nats.ts";

/** A piece to store: `[from, to)` of the data. */
type Span = [from: number, to: number];

const S = SEGMENT_BYTES;
/** A sixteenth of a segment: the pieces below are laid out in these. */
const U = S / 16;
/** Three whole segments and part of a fourth. */
const SIZE = 3 * S + 5000;

/**
 * Every byte of `[0, SIZE)`, in pieces stored out of offset order within
 * each segment, some twice, one overlapping two others at other boundaries.
 */
const SHUFFLED: Span[] = [
  [12 * U, S],
  [3 * U, 9 * U],
  [6 * U, 12 * U],
  [0, 6 * U],
  [0, 6 * U],
  [6 * U, 12 * U],
  [S + 8 * U, 2 * S],
  [S + 2 * U, S + 8 * U],
  [S + 2 * U, S + 8 * U],
  [S, S + 2 * U],
  [2 * S, 3 * S],
  [2 * S, 3 * S],
  [3 * S + 2000, SIZE],
  [3 * S, 3 * S + 2000],
];

function statusOf(id: string, size: number): ResourceStatus {
  return testStatus("pieces.bin", { id, status: "IN_PROGRESS", size });
}

/** Reads `[start, end)` through a BYOB reader with a small buffer (as a follower's cursor does). */
async function readByob(
  store: JetStreamStore,
  id: string,
  start: number,
  end: number,
): Promise<Uint8Array> {
  const reader = store.read(id, start, end).getReader({ mode: "byob" });
  const out = new Uint8Array(end - start);
  let at = 0;
  for (;;) {
    const room = Math.min(7_777, out.length - at);
    if (room === 0) break;
    const { value, done } = await reader.read(new Uint8Array(room));
    if (done || !value) break;
    out.set(value, at);
    at += value.byteLength;
  }
  reader.releaseLock();
  assertEquals(at, end - start, `read ${at} bytes of [${start}, ${end})`);
  return out;
}

/** Two stores (two nodes) on one nats-server; node A holds a new upload. */
async function twoNodes(): Promise<{
  a: JetStreamStore;
  b: JetStreamStore;
  id: string;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const nats = await startNats();
  const connect = async () => {
    const engine = await NatsEngine.connect({ servers: [nats.url] });
    const store = new JetStreamStore(engine, { ownsEngine: true });
    return store;
  };
  const a = await connect(), b = await connect();
  const id = newResourceId();
  const writer = await a.create({ ...statusOf(id, 0), status: "INITIATED" });
  await writer.close();
  return {
    a,
    b,
    id,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
      await nats[Symbol.asyncDispose]();
    },
  };
}

Deno.test("JetStream readers: pieces stored out of offset order and twice within a segment read back as the exact bytes, whole and in ranges", async () => {
  await using nodes = await twoNodes();
  const { a, b, id } = nodes;
  const data = randomBytes(SIZE, 41);
  await publishPieces(a.engine, id, data, SHUFFLED);
  await a.save(statusOf(id, SIZE));
  assertEquals(
    await sha256(await readAll(b.read(id, 0, SIZE))),
    await sha256(data),
  );
  for (
    const [start, end] of [
      [0, 1],
      [6 * U - 1, 12 * U + 1],
      [S - 1, 2 * S + 1],
      [9 * U, SIZE],
      [SIZE - 1, SIZE],
    ]
  ) {
    assertEquals(
      await sha256(await readByob(b, id, start, end)),
      await sha256(data.subarray(start, end)),
      `bytes [${start}, ${end})`,
    );
  }
});

Deno.test("JetStream takeover and dataSize: the hash rebuilt from pieces stored out of order and twice is the upload's, at the exact durable offset", async () => {
  await using nodes = await twoNodes();
  const { a, b, id } = nodes;
  const data = randomBytes(SIZE, 42);
  await publishPieces(a.engine, id, data, SHUFFLED);
  await a.save(statusOf(id, 2 * S));
  // The last segment's last stored piece is not its furthest.
  assertEquals(await b.dataSize(id), SIZE);
  const taken = await b.takeOver(id);
  if (taken === undefined) {
    throw new Error("expected node B to take the live upload over");
  }
  assertEquals(taken.written, SIZE);
  assertEquals(await taken.hash.digest(), await sha256(data));
  await taken.writer.close();
});

Deno.test("JetStream readers: a gap below a segment's later pieces ends the stored bytes there; a read across it fails naming it", async () => {
  await using nodes = await twoNodes();
  const { a, b, id } = nodes;
  const data = randomBytes(SIZE, 43);
  // [6U, 12U) is missing; pieces after it are stored, before it too.
  const spans: Span[] = [[12 * U, S], [S, 2 * S], [0, 6 * U], [3 * U, 5 * U]];
  await publishPieces(a.engine, id, data, spans);
  await a.save(statusOf(id, 6 * U));
  assertEquals(
    await sha256(await readByob(b, id, 0, 6 * U)),
    await sha256(data.subarray(0, 6 * U)),
  );
  await assertRejects(
    () => readAll(b.read(id, 3 * U, S + 2 * U)),
    Error,
    `has a gap: no piece holds byte ${6 * U}, the next one stored starts at ${
      12 * U
    }`,
  );
  const taken = await b.takeOver(id);
  if (taken === undefined) {
    throw new Error("expected node B to take the live upload over");
  }
  assertEquals(taken.written, 6 * U);
  const expected = createHash("sha256").update(data.subarray(0, 6 * U));
  assertEquals(await taken.hash.digest(), expected.digest("hex"));
  await taken.writer.close();
});

Deno.test("JetStream takeover reads only past the last checkpoint: it answers without the bytes below it, whose gap the hash finds and names", async () => {
  await using nodes = await twoNodes();
  const { a, b, id } = nodes;
  const data = randomBytes(SIZE, 44);
  // Below the checkpoint [6U, 12U) is missing (no real writer leaves that);
  // past it, the pieces join up to SIZE.
  await publishPieces(a.engine, id, data, [
    [0, 6 * U],
    [12 * U, S],
    [S, 2 * S],
    [2 * S, 3 * S],
    [3 * S, SIZE],
  ]);
  await a.save(statusOf(id, 2 * S));
  const taken = await b.takeOver(id);
  if (taken === undefined) {
    throw new Error("expected node B to take the live upload over");
  }
  assertEquals(taken.written, SIZE);
  // The upload's end on node B: FAILED, naming the missing byte.
  const resource = new Resource(b, taken.status, {
    checkpointMs: 0,
    writer: taken.writer,
    resumed: { written: taken.written, hash: taken.hash },
  });
  // Found while the upload goes on: it fails without waiting for its end.
  const final = await resource.finished;
  assertEquals(final.status, "FAILED");
  assertStringIncludes(
    final.error ?? "",
    `could not hash the bytes stored before this node took the upload over: resource ${id} has a gap: no piece holds byte ${
      6 * U
    }`,
  );
});

Deno.test("JetStream takeover: another node taking the upload while its completion waits for the hash leaves the upload as that node makes it, not FAILED here", async () => {
  await using nodes = await twoNodes();
  const { a, b, id } = nodes;
  const data = randomBytes(SIZE, 45);
  await publishPieces(a.engine, id, data, SHUFFLED);
  await a.save(statusOf(id, SIZE));
  const taken = await b.takeOver(id);
  if (taken === undefined) {
    throw new Error("expected node B to take the live upload over");
  }
  taken.hash.release();
  // B's reading back waits for the gate: the completion waits with it.
  const gate = Promise.withResolvers<void>();
  const hash = new CatchUpHash(taken.written, (start, end, signal) => {
    const stream = readRange(b.engine.jsm, id, start, end, signal);
    return stream.pipeThrough(
      new TransformStream({
        async transform(bytes, controller) {
          await gate.promise;
          controller.enqueue(bytes);
        },
      }),
    );
  });
  const resource = new Resource(b, taken.status, {
    checkpointMs: 0,
    writer: taken.writer,
    resumed: { written: taken.written, hash },
  });
  const completing = resource.complete(await sha256(data));
  // Node A takes it back (its fence would come next); B learns it.
  const back = await Lease.takeOver(a.engine, id, {
    node: a.engine.node,
    leaseMs: a.leaseMs,
  });
  assertEquals(await resource.stillHeld(), false);
  gate.resolve();
  const final = await completing;
  assertEquals(final.status, "IN_PROGRESS", final.error);
  assertEquals((await a.lastStatus(id))?.status, "IN_PROGRESS");
  await back.lease.release();
});
