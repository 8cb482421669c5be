import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  StreamBundle,
  type TransportError,
  type TransportErrorCode,
} from "../transport/mod.ts";
import {
  chunked,
  randomBytes,
  type Received,
  recordInto,
  sha256,
  startTestReceiver,
  type TestReceiver,
} from "./_transport_helpers.ts";

async function receivers(n: number): Promise<{
  all: TestReceiver[];
  urls: URL[];
  logs: Received[][];
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const all: TestReceiver[] = [];
  const urls: URL[] = [];
  const logs: Received[][] = [];
  for (let i = 0; i < n; i++) {
    const rx = await startTestReceiver();
    const log: Received[] = [];
    urls.push(recordInto(rx.receiver, "fan", log));
    all.push(rx);
    logs.push(log);
  }
  return {
    all,
    urls,
    logs,
    async [Symbol.asyncDispose]() {
      await Promise.all(all.map((rx) => rx.receiver.close()));
    },
  };
}

Deno.test("transport bundle: broadcast to 5 receivers with multiplier 3, unicast with to", async () => {
  await using rx = await receivers(5);
  const completions: string[] = [];
  const errors: TransportError[] = [];
  const bundle = new StreamBundle(rx.urls, {
    multiplier: 3,
    onSent: (header, error) => {
      completions.push(header.name);
      if (error) errors.push(error);
    },
  });
  assertEquals(bundle.destinations.length, 5);
  const count = 600;
  const shas: string[] = [];
  const lengths: number[] = [];
  const unicast = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const bytes = i % 7 === 0 ? null : randomBytes((i * 7919) % 200_000, i);
    shas.push(await sha256(bytes ?? new Uint8Array(0)));
    lengths.push(bytes?.length ?? 0);
    const name = `b${i}`;
    if (i % 10 === 5) {
      // Unicast: one destination, chosen by index.
      const target = i % 5;
      unicast.set(name, target);
      await bundle.send({ name }, bytes, { to: [rx.urls[target]] });
    } else if (i % 4 === 1 && bytes !== null) {
      // Stream bodies need a factory: one stream per replica.
      await bundle.send({ name, size: -1 }, () => chunked(bytes, 10_000));
    } else {
      await bundle.send({ name }, bytes);
    }
  }
  await bundle.fin();
  assertEquals(errors, []);
  assertEquals(completions, shas.map((_, i) => `b${i}`));
  for (const [r, log] of rx.logs.entries()) {
    const names = new Set(log.map((got) => got.header.name));
    const expected = shas.map((_, i) => `b${i}`).filter((name) =>
      !unicast.has(name) || unicast.get(name) === r
    );
    assertEquals(log.length, expected.length, `objects at receiver ${r}`);
    assertEquals(names.size, expected.length);
    for (const got of log) {
      assertEquals(got.error, undefined);
      const i = Number(got.header.name.slice(1));
      assertEquals(got.length, lengths[i], `length of ${got.header.name}`);
      if (got.length > 0) {
        assertEquals(got.sha, shas[i], `sha of ${got.header.name} at ${r}`);
      }
    }
    // Three sessions per receiver (multiplier 3), each in send order.
    const sessions = Map.groupBy(log, (got) => got.header.sessionId);
    assertEquals(sessions.size, 3, `sessions at receiver ${r}`);
    for (const list of sessions.values()) {
      const order = list.map((got) => Number(got.header.name.slice(1)));
      assertEquals(order, order.toSorted((a, b) => a - b));
    }
  }
  const stats = bundle.stats();
  assertEquals(Object.keys(stats).length, 5);
  for (const [r, url] of rx.urls.entries()) {
    const sent = stats[url.href].reduce((n, s) => n + s.objects, 0);
    assertEquals(sent, rx.logs[r].length);
  }
});

Deno.test("transport bundle: one dead destination fails each object's single completion", async () => {
  await using rx = await receivers(2);
  // A port that refuses connections: bind, note the port, close.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dead = `http://127.0.0.1:${closed.addr.port}/v1/objstream/fan`;
  closed.close();
  const outcomes = new Map<string, (TransportErrorCode | "ok")[]>();
  const bundle = new StreamBundle([...rx.urls, dead], {
    onSent: (header, error) => {
      const list = outcomes.get(header.name) ?? [];
      list.push(error?.code ?? "ok");
      outcomes.set(header.name, list);
    },
  });
  let rejected = 0;
  for (let i = 0; i < 50; i++) {
    await bundle.send({ name: `d${i}` }, randomBytes(1000, i)).catch(() =>
      rejected++
    );
  }
  await bundle.send({ name: "live-only" }, new Uint8Array(10), {
    to: [rx.urls[0]],
  }).catch(() => rejected++);
  const finError = await assertRejects(() => bundle.fin(), Error);
  assert(finError.message.length > 0);
  assertEquals(outcomes.size, 51);
  for (const [name, list] of outcomes) {
    assertEquals(list.length, 1, `completions of ${name}`);
    if (name !== "live-only") assert(list[0] !== "ok", `${name} ${list[0]}`);
  }
  // The live destinations still got every object sent before the end.
  for (const log of rx.logs) {
    assert(log.every((got) => got.error === undefined));
  }
  await assertRejects(
    () => bundle.send({ name: "late" }),
    Error,
    "terminated",
  );
});

Deno.test("transport bundle: bad arguments get typed errors", async () => {
  await using rx = await receivers(2);
  const bundle = new StreamBundle(rx.urls, { multiplier: 2 });
  let completion: TransportError | undefined;
  const stream = new ReadableStream<Uint8Array>();
  const error = await assertRejects(
    () =>
      bundle.send({ name: "one-stream" }, stream, {
        onSent: (_h, e) => completion = e,
      }),
    Error,
    "expected a factory",
  );
  assertEquals((error as TransportError).code, "invalid-argument");
  assertEquals(completion?.code, "invalid-argument");
  const missing = await assertRejects(
    () =>
      bundle.send({ name: "x" }, null, {
        to: ["http://127.0.0.1:1/v1/objstream/nowhere"],
      }),
    Error,
    "not in the bundle",
  );
  assertEquals((missing as TransportError).code, "destination-missing");
  await bundle.fin();
});
