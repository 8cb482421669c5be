/**
 * The zero-copy paths of the transport: handlers that read bodies with a
 * BYOB reader (the receive loop reads the request straight into their
 * buffer), and senders that pass views of shared memory (the worker writes
 * them in place).
 */

import { assert, assertEquals, assertInstanceOf } from "@std/assert";
import { type ReceivedHeader, Stream } from "../transport/mod.ts";
import {
  chunked,
  randomBytes,
  type Received,
  recordInto,
  sha256,
  startTestReceiver,
} from "./_transport_helpers.ts";

/** How the handler reads the body of an object, by the object's name. */
type ReadPlan =
  | { kind: "byob"; view: number }
  | { kind: "default" }
  | { kind: "uint16" }
  | { kind: "cancel-after"; bytes: number }
  | { kind: "ignore" };

function planOf(header: ReceivedHeader): ReadPlan {
  return JSON.parse(header.custom.plan);
}

/** Reads `body` with a BYOB reader whose buffer holds `view` bytes. */
async function readByob(
  body: ReadableStream<Uint8Array>,
  view: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const reader = body.getReader({ mode: "byob" });
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let buffer = new Uint8Array(view);
  for (;;) {
    const { value, done } = await reader.read(buffer);
    if (done) break;
    parts.push(value.slice());
    buffer = new Uint8Array(value.buffer as ArrayBuffer);
  }
  return new Uint8Array(await new Blob(parts).arrayBuffer());
}

Deno.test("transport zero copy: handlers reading with BYOB readers of any buffer size get every byte", async () => {
  await using rx = await startTestReceiver();
  const got: Received[] = [];
  const notes: string[] = [];
  rx.receiver.register("data", "byob", async (header, body, error) => {
    if (error !== undefined) {
      got.push({ header, length: 0, error });
      return;
    }
    const plan = planOf(header);
    let bytes = new Uint8Array(0);
    if (body !== null) {
      switch (plan.kind) {
        case "byob":
          bytes = await readByob(body, plan.view);
          break;
        case "default":
          bytes = await new Response(body).bytes();
          break;
        case "uint16": {
          // An odd body cannot fill the last element of a Uint16Array.
          const reader = body.getReader({ mode: "byob" });
          try {
            for (;;) {
              const { done } = await reader.read(new Uint16Array(8));
              if (done) break;
            }
            notes.push(`${header.name}: no error`);
          } catch (cause) {
            notes.push(`${header.name}: ${(cause as Error).name}`);
          }
          got.push({ header, length: -1 });
          return;
        }
        case "cancel-after": {
          const reader = body.getReader({ mode: "byob" });
          const { value } = await reader.read(new Uint8Array(plan.bytes));
          await reader.cancel("seen enough");
          got.push({ header, length: value!.byteLength });
          return;
        }
        case "ignore":
          got.push({ header, length: -2 });
          return;
      }
    }
    got.push({ header, length: bytes.length, sha: await sha256(bytes) });
  });
  const url = rx.receiver.url("data", "byob");

  const sizes = [0, 1, 15, 16_383, 16_384, 65_536, 100_001, (1 << 20) + 7];
  const views = [1, 3, 100, 4096, 16_384, 65_536, 70_000, 1 << 20];
  const objects: { name: string; bytes: Uint8Array; plan: ReadPlan }[] = [];
  let n = 0;
  for (const size of sizes) {
    for (const view of views) {
      // Byte-sized reads of big bodies only cost time.
      if (view < 100 && size > 20_000) continue;
      objects.push({
        name: `o${n}`,
        bytes: randomBytes(size, n++),
        plan: { kind: "byob", view },
      });
    }
  }
  // Between them: default readers, a reader that stops early, one that
  // ignores its body, and an odd body read into 16-bit elements.
  const extras: ReadPlan[] = [
    { kind: "default" },
    { kind: "cancel-after", bytes: 30_000 },
    { kind: "ignore" },
    { kind: "uint16" },
  ];
  for (const plan of extras) {
    const size = plan.kind === "uint16" ? 5 : 300_001;
    objects.splice(7 + 11 * objects.length % 50, 0, {
      name: `x${n}`,
      bytes: randomBytes(size, n++),
      plan,
    });
  }

  const stream = new Stream(url);
  const completions: string[] = [];
  for (const [i, object] of objects.entries()) {
    const custom = { plan: JSON.stringify(object.plan) };
    // Every third body of unknown size: it arrives as PDUs.
    const body = i % 3 === 2 && object.bytes.length > 0
      ? chunked(object.bytes, 10_000)
      : object.bytes.slice();
    await stream.send({ name: object.name, custom }, body, {
      onSent: (header, error) =>
        completions.push(error ? `${header.name}: ${error.code}` : header.name),
    });
  }
  await stream.fin();

  assertEquals(completions, objects.map((o) => o.name));
  assertEquals(got.map((r) => r.header.name), objects.map((o) => o.name));
  for (const [i, object] of objects.entries()) {
    const record = got[i];
    assertEquals(record.error, undefined, `${object.name} failed`);
    const plan = object.plan;
    if (plan.kind === "cancel-after") {
      assert(
        record.length > 0 && record.length <= plan.bytes,
        `${object.name}: first read gave ${record.length} bytes`,
      );
    } else if (plan.kind === "byob" || plan.kind === "default") {
      assertEquals(record.length, object.bytes.length, object.name);
      assertEquals(
        record.sha,
        await sha256(object.bytes),
        `${object.name}: ${JSON.stringify(plan)}`,
      );
    }
  }
  const odd = objects.find((o) => o.plan.kind === "uint16")!;
  assertEquals(notes, [`${odd.name}: TypeError`]);
});

Deno.test("transport zero copy: views of shared memory are sent in place and stay usable", async () => {
  await using rx = await startTestReceiver();
  const got: Received[] = [];
  const url = recordInto(rx.receiver, "shared", got);
  const shared = new SharedArrayBuffer(3 << 20);
  const memory = new Uint8Array(shared);
  memory.set(randomBytes(shared.byteLength, 7));
  const views = [
    memory, // the whole buffer
    memory.subarray(0, 1 << 20),
    memory.subarray(5, 5 + 200_000),
    memory.subarray(1 << 20, (1 << 20) + 70_000),
    memory.subarray(100, 140), // small: packed into the batch
  ];
  const expected = await Promise.all(views.map((view) => sha256(view.slice())));
  const stream = new Stream(url);
  const sent: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (const [i, view] of views.entries()) {
      await stream.send({ name: `r${round}v${i}` }, view, {
        // `copy: true` still copies (through the ring or a slice).
        copy: round === 2,
        onSent: (header, error) => sent.push(error?.code ?? header.name),
      });
    }
  }
  await stream.fin();
  assertInstanceOf(memory.buffer, SharedArrayBuffer);
  assertEquals(memory.byteLength, 3 << 20, "the shared buffer is intact");
  assertEquals(sent.length, 15);
  assertEquals(got.map((r) => r.error?.code), got.map(() => undefined));
  assertEquals(
    got.map((r) => r.sha),
    [...expected, ...expected, ...expected],
  );
  assertEquals(
    stream.stats().bytes,
    3 * views.reduce((a, v) => a + v.length, 0),
  );
});
