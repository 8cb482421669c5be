/**
 * The hash of a taken-over upload against a real nats-server: the stored
 * bytes are read back while appends come; the appends kept meanwhile stay
 * within the bound (the oldest stored ones are read back instead); the
 * digest covers every byte in order; a gap in the stored bytes makes the
 * digest fail naming it; a released hash stops reading.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { CatchUpHash } from "../server/nats/_catch_up_hash.ts";
import { readRange } from "../server/nats/_range_reader.ts";
import { SEGMENT_BYTES } from "../server/nats/subjects.ts";
import { newResourceId } from "../server/resource_id.ts";
import { randomBytes, sha256 } from "./_helpers.ts";
import { publishPieces, startEngine } from "./_nats.ts";
import { within } from "./_fault_actors.ts";

/** Spans of `[from, to)` in pieces of at most `size` bytes, within segments. */
function spans(from: number, to: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = from; at < to;) {
    const segmentEnd = (Math.floor(at / SEGMENT_BYTES) + 1) * SEGMENT_BYTES;
    const end = Math.min(to, at + size, segmentEnd);
    out.push([at, end]);
    at = end;
  }
  return out;
}

Deno.test("catch-up hash: appends that come while the stored bytes are read back are kept within the bound, and the digest covers every byte in order", async () => {
  await using setup = await startEngine();
  const { nats, engine } = setup;
  const id = newResourceId();
  const start = 3 * SEGMENT_BYTES + 5000;
  const data = randomBytes(start + 2 * 1024 * 1024, 4242);
  // Every byte is in the engine: what the hash lets go it reads back.
  await publishPieces(engine, id, data, spans(0, data.byteLength, 200_000));
  const limit = 256 * 1024;
  // The engine paused: the reading back cannot get ahead of the appends.
  Deno.kill(nats.pid, "SIGSTOP");
  let hash: CatchUpHash;
  try {
    hash = new CatchUpHash(
      start,
      (from, to) => readRange(engine.jsm, id, from, to),
      limit,
    );
    let most = 0;
    for (let at = start; at < data.byteLength; at += 64 * 1024) {
      const chunk = data.subarray(
        at,
        Math.min(data.byteLength, at + 64 * 1024),
      );
      hash.update(chunk);
      hash.stored(at + chunk.byteLength);
      most = Math.max(most, hash.pendingBytes);
    }
    assert(
      most <= limit,
      `kept ${most} bytes of appends; expected at most ${limit}`,
    );
    assert(hash.pendingBytes > 0, "the latest appends are kept");
  } finally {
    Deno.kill(nats.pid, "SIGCONT");
  }
  assertEquals(await hash.digest(), await sha256(data));
  assertEquals(hash.pendingBytes, 0);
});

Deno.test("catch-up hash: a gap in the stored bytes fails the digest, naming the byte", async () => {
  await using setup = await startEngine();
  const { engine } = setup;
  const id = newResourceId();
  const data = randomBytes(3000, 17);
  await publishPieces(engine, id, data, [[0, 1000], [2000, 3000]]);
  const hash = new CatchUpHash(
    3000,
    (from, to) => readRange(engine.jsm, id, from, to),
  );
  await assertRejects(() => hash.digest(), Error, "no piece holds byte 1000");
});

Deno.test("catch-up hash: released while the engine does not answer, it stops at the read under way instead of retrying for the read deadline", async () => {
  await using setup = await startEngine();
  const { nats, engine } = setup;
  const id = newResourceId();
  const data = randomBytes(2 * SEGMENT_BYTES, 99);
  await publishPieces(engine, id, data, spans(0, data.byteLength, 200_000));
  Deno.kill(nats.pid, "SIGSTOP");
  try {
    const hash = new CatchUpHash(
      data.byteLength,
      (from, to, signal) => readRange(engine.jsm, id, from, to, signal),
    );
    hash.release();
    // One direct get times out (5 s); retrying would go on for 30 s.
    await within(
      15_000,
      "the released hash's digest",
      assertRejects(() => hash.digest(), Error, "ended before its hash did"),
    );
  } finally {
    Deno.kill(nats.pid, "SIGCONT");
  }
});
