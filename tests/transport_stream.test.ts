import { assertEquals, assertGreaterOrEqual } from "@std/assert";
import {
  type ObjectBody,
  type ObjectHeader,
  Stream,
  type StreamOptions,
  type TransportError,
} from "../transport/mod.ts";
import {
  chunked,
  prng,
  randomBytes,
  type Received,
  recordInto,
  sha256,
  startTestReceiver,
} from "./_transport_helpers.ts";

interface Planned {
  header: ObjectHeader;
  body: ObjectBody;
  sha: string;
  length: number;
}

/**
 * Object `i` of the mixed workload: header-only every 7th, a few MiB-sized,
 * unknown sizes, stream and file bodies, empty and large opaque.
 */
async function plan(i: number, dir: string): Promise<Planned> {
  const rand = prng(i + 1);
  const opaque = i % 5 === 0
    ? new Uint8Array(0)
    : i % 997 === 6
    ? randomBytes(40_000, i)
    : new Uint8Array([i >>> 24, i >>> 16, i >>> 8, i]);
  const header: ObjectHeader = { name: `obj-${i}`, opaque };
  if (i % 3 === 0) header.custom = { index: String(i), kind: "mixed" };
  if (i % 4 === 0) header.contentType = "application/octet-stream";
  if (i % 7 === 0) {
    return {
      header,
      body: null,
      sha: await sha256(new Uint8Array(0)),
      length: 0,
    };
  }
  const length = i % 500 === 1
    ? (1 << 20) + rand(3 << 20)
    : i % 50 === 3
    ? rand(300_000)
    : rand(8192);
  const bytes = randomBytes(length, i);
  const sha = await sha256(bytes);
  header.checksum = { type: "sha256", value: sha };
  const unknown = i % 11 === 2;
  if (unknown) header.size = -1;
  let body: ObjectBody = bytes;
  if (i % 101 === 9) {
    const path = `${dir}/obj-${i}`;
    await Deno.writeFile(path, bytes);
    body = { path };
  } else if (i % 13 === 4) {
    body = chunked(bytes, 1 + rand(100_000));
  }
  return { header, body, sha, length };
}

async function runMixed(
  count: number,
  options: StreamOptions,
  pauses: Set<number>,
): Promise<void> {
  await using rx = await startTestReceiver();
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "mixed", received);
  const dir = await Deno.makeTempDir({ prefix: "spool-transport-" });
  const completions: string[] = [];
  const errors: TransportError[] = [];
  const stream = new Stream(url, {
    ...options,
    onSent: (header, error) => {
      completions.push(header.name);
      if (error) errors.push(error);
    },
  });
  const expected: { name: string; sha: string; length: number }[] = [];
  try {
    for (let i = 0; i < count; i++) {
      if (pauses.has(i)) {
        // Nothing to send for longer than the idle timeout: the worker ends
        // the request; the next send reopens it.
        await rx.nextRequestEnd((e) => e.sessionId === stream.sessionId);
      }
      const { header, body, sha, length } = await plan(i, dir);
      expected.push({ name: header.name, sha, length });
      await stream.send(
        header,
        body,
        i % 17 === 0
          ? {
            onSent: (h, error) => {
              completions.push(`${h.name}!`);
              if (error) errors.push(error);
            },
          }
          : undefined,
      );
    }
    await stream.fin();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(errors, []);
  assertEquals(
    completions,
    expected.map((e, i) => i % 17 === 0 ? `${e.name}!` : e.name),
  );
  assertEquals(received.length, count);
  for (let i = 0; i < count; i++) {
    const got = received[i];
    assertEquals(got.error, undefined);
    assertEquals(got.header.name, expected[i].name, `order at ${i}`);
    assertEquals(got.header.seq, i);
    assertEquals(got.header.sessionId, stream.sessionId);
    assertEquals(
      got.length,
      expected[i].length,
      `length of ${got.header.name}`,
    );
    assertEquals(got.header.size, expected[i].length);
    if (expected[i].length > 0) {
      assertEquals(got.sha, expected[i].sha, `sha of ${got.header.name}`);
      assertEquals(got.header.checksum?.value, expected[i].sha);
    }
  }
  assertEquals(received[0].header.opaque.length, 0);
  assertEquals(received[6].header.opaque.length, 40_000);
  assertEquals(received[6].header.opaque, randomBytes(40_000, 6));
  assertEquals(received[3].header.custom, { index: "3", kind: "mixed" });
  const stats = stream.stats();
  assertEquals(stats.objects, count);
  assertEquals(stats.failed, 0);
  assertEquals(stats.bytes, expected.reduce((n, e) => n + e.length, 0));
  // Each pause forces a reconnect; a slow machine may add idle teardowns of
  // its own, so both sides must simply agree on the count.
  assertGreaterOrEqual(stats.requests, pauses.size + 1);
  const session = rx.receiver.stats().data.mixed.sessions[stream.sessionId];
  assertEquals(session.objects, count);
  assertEquals(session.bytes, stats.bytes);
  assertEquals(session.requests, stats.requests);
  assertEquals(session.finished, true);
  assertEquals(session.errors, 0);
  if (options.compression === undefined) {
    assertEquals(session.offset, stats.offset);
  }
}

Deno.test("transport stream: 10,000 mixed objects arrive byte-identical and in order, across idle reconnects", async () => {
  await runMixed(10_000, { idleTimeoutMs: 100 }, new Set([2500, 5000, 7500]));
});

Deno.test("transport stream: compression round trip (gzip, deflate-raw)", async () => {
  await runMixed(
    600,
    { compression: "gzip", idleTimeoutMs: 100 },
    new Set([300]),
  );
  await runMixed(300, { compression: "deflate-raw", sizePdu: 1024 }, new Set());
});

Deno.test("transport stream: 16 streams at once to one endpoint", async () => {
  await using rx = await startTestReceiver();
  const bySession = new Map<string, Received[]>();
  rx.receiver.register("data", "many", async (header, body, error) => {
    const list = bySession.get(header.sessionId) ?? [];
    bySession.set(header.sessionId, list);
    if (error) return void list.push({ header, length: 0, error });
    const bytes = body ? await new Response(body).bytes() : new Uint8Array(0);
    list.push({ header, length: bytes.length, sha: await sha256(bytes) });
  });
  const url = rx.receiver.url("data", "many");
  const streams = Array.from(
    { length: 16 },
    () => new Stream(url, { burst: 32 }),
  );
  const perStream = 250;
  await Promise.all(streams.map(async (stream, s) => {
    for (let i = 0; i < perStream; i++) {
      const length = i % 7 === 0
        ? 0
        : prng(s * 1000 + i + 1)(i % 25 === 1 ? 500_000 : 4096);
      const body = length === 0 ? null : randomBytes(length, s * 1000 + i);
      await stream.send({
        name: `s${s}-${i}`,
        size: i % 9 === 2 && body ? -1 : undefined,
      }, body);
    }
    await stream.fin();
  }));
  assertEquals(bySession.size, 16);
  for (const [s, stream] of streams.entries()) {
    const list = bySession.get(stream.sessionId)!;
    assertEquals(list.length, perStream);
    for (let i = 0; i < perStream; i++) {
      assertEquals(list[i].header.name, `s${s}-${i}`);
      const length = i % 7 === 0
        ? 0
        : prng(s * 1000 + i + 1)(i % 25 === 1 ? 500_000 : 4096);
      assertEquals(list[i].length, length);
      if (length > 0) {
        assertEquals(
          list[i].sha,
          await sha256(randomBytes(length, s * 1000 + i)),
        );
      }
    }
    assertEquals(stream.stats().objects, perStream);
  }
  assertEquals(rx.receiver.stats().data.many.objects, 16 * perStream);
});

Deno.test("transport stream: 20,000 small objects over many batches, plain and gzip, arrive byte-identical (batch buffers are reused)", async () => {
  for (const compression of ["none", "gzip"] as const) {
    await using rx = await startTestReceiver();
    const received: Received[] = [];
    const url = recordInto(rx.receiver, "small", received);
    const stream = new Stream(url, { compression });
    const shas: string[] = [];
    const rand = prng(42);
    for (let i = 0; i < 20_000; i++) {
      const bytes = randomBytes(rand(3000), i);
      shas.push(await sha256(bytes));
      // Every 5th object waits for room first: both ways of queueing.
      if (i % 5 === 0) await stream.send({ name: `s${i}` }, bytes);
      else void stream.send({ name: `s${i}` }, bytes);
    }
    await stream.fin();
    assertEquals(received.length, shas.length);
    for (let i = 0; i < shas.length; i++) {
      assertEquals(received[i].header.name, `s${i}`, `order at ${i}`);
      if (received[i].length > 0) {
        assertEquals(
          received[i].sha,
          shas[i],
          `bytes of s${i} (${compression})`,
        );
      }
    }
  }
});
