/**
 * The piece publisher against a real nats-server: the parts of a piece are
 * stored joined, byte-identical, with their headers, and written in order
 * with what nats.js sends around them; acknowledgements come to the right
 * publish, a repeated message id is a duplicate; a
 * subject no stream takes, a stream refusing the size and an engine that
 * does not answer each reject with what was wrong.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { headers } from "@nats-io/transport-node";
import { concat } from "@std/bytes/concat";
import { OFFSET_HEADER, STREAM } from "../server/nats/subjects.ts";
import { randomBytes, sha256 } from "./_helpers.ts";
import { startEngine } from "./_nats.ts";
import { within } from "./_fault_actors.ts";

function offsetHeader(offset: number) {
  const header = headers();
  header.set(OFFSET_HEADER, String(offset));
  return header;
}

Deno.test("piece publisher: parts are stored joined and byte-identical with their headers; each publish gets its own acknowledgement; a repeated id is a duplicate", async () => {
  await using setup = await startEngine();
  const { engine } = setup;
  const parts = [
    randomBytes(70_000, 1),
    randomBytes(1, 2),
    randomBytes(300_000, 3),
  ];
  const whole = new Uint8Array(370_001);
  whole.set(parts[0]);
  whole.set(parts[1], 70_000);
  whole.set(parts[2], 70_001);
  const acks = await Promise.all([
    engine.pieces.publish("spool.d.pub.0", offsetHeader(0), parts, {
      msgID: "pub:0:370001",
      timeoutMs: 5000,
    }),
    engine.pieces.publish("spool.d.pub.0", offsetHeader(370_001), [
      parts[1],
    ], { msgID: "pub:370001:1", timeoutMs: 5000 }),
  ]);
  assertEquals(acks.map((ack) => ack.stream), [STREAM, STREAM]);
  assertEquals(acks[1].seq, acks[0].seq + 1);
  assertEquals(acks.map((ack) => ack.duplicate), [false, false]);
  const stored = await engine.jsm.streams.getMessage(STREAM, {
    seq: acks[0].seq,
  });
  assertEquals(await sha256(stored!.data), await sha256(whole));
  assertEquals(stored!.header.get(OFFSET_HEADER), "0");
  assertEquals(stored!.header.get("Nats-Msg-Id"), "pub:0:370001");
  const again = await engine.pieces.publish(
    "spool.d.pub.0",
    offsetHeader(0),
    parts,
    { msgID: "pub:0:370001", timeoutMs: 5000 },
  );
  assertEquals([again.seq, again.duplicate], [acks[0].seq, true]);
});

Deno.test("piece publisher: many small parts are stored joined; a piece goes out between the messages published before and after it, in order", async () => {
  await using setup = await startEngine();
  const { engine } = setup;
  const parts = [
    ...Array.from({ length: 200 }, (_, i) => randomBytes(100 + i, 10 + i)),
    randomBytes(20_000, 9),
    randomBytes(16 * 1024 - 1, 8),
    randomBytes(16 * 1024, 7),
  ];
  const whole = concat(parts);
  const seen: string[] = [];
  const sub = engine.nc.subscribe("spool.d.ord.*", { max: 3 });
  const reading = (async () => {
    for await (const msg of sub) {
      seen.push(`${msg.subject} ${await sha256(msg.data)}`);
    }
  })();
  const before = randomBytes(10, 1);
  const after = randomBytes(10, 2);
  // One tick: nats.js queues the first and last, the piece goes between.
  engine.nc.publish("spool.d.ord.1", before);
  const ack = engine.pieces.publish("spool.d.ord.2", offsetHeader(0), parts, {
    msgID: "ord:0",
    timeoutMs: 5000,
  });
  engine.nc.publish("spool.d.ord.3", after);
  // Bounded: a piece sent ahead of the subscription is never seen.
  await within(10_000, "three messages on spool.d.ord.*", reading);
  assertEquals(seen, [
    `spool.d.ord.1 ${await sha256(before)}`,
    `spool.d.ord.2 ${await sha256(whole)}`,
    `spool.d.ord.3 ${await sha256(after)}`,
  ]);
  const stored = await engine.jsm.streams.getMessage(STREAM, {
    seq: (await ack).seq,
  });
  assertEquals(await sha256(stored!.data), await sha256(whole));
});

Deno.test("piece publisher: no stream for the subject, a stream refusing the size, and a silent engine each reject saying so", async () => {
  await using setup = await startEngine();
  const { nats, engine } = setup;
  await assertRejects(
    () =>
      engine.pieces.publish("nostream.x", offsetHeader(0), [
        new Uint8Array(5),
      ], {
        msgID: "x:0:5",
        timeoutMs: 5000,
      }),
    Error,
    "no responders",
  );
  await engine.jsm.streams.add({
    name: "SMALL",
    subjects: ["small.>"],
    max_msg_size: 1000,
  });
  await assertRejects(
    () =>
      engine.pieces.publish("small.x", offsetHeader(0), [
        randomBytes(2000, 4),
      ], {
        msgID: "s:0:2000",
        timeoutMs: 5000,
      }),
    Error,
    "message size exceeds maximum",
  );
  Deno.kill(nats.pid, "SIGSTOP");
  try {
    const started = performance.now();
    await assertRejects(
      () =>
        engine.pieces.publish("spool.d.pub.0", offsetHeader(0), [
          new Uint8Array(5),
        ], { msgID: "pub:0:5", timeoutMs: 300 }),
      Error,
      "no acknowledgement of the message on spool.d.pub.0 within 300 ms",
    );
    assert(performance.now() - started < 5000);
  } finally {
    Deno.kill(nats.pid, "SIGCONT");
  }
  // The connection carries on: the next publish is acknowledged.
  const ack = await engine.pieces.publish(
    "spool.d.pub.0",
    offsetHeader(0),
    [new Uint8Array(5)],
    { msgID: "pub:0:5", timeoutMs: 5000 },
  );
  assertEquals(ack.stream, STREAM);
});
