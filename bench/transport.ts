/**
 * Object-transport benchmarks, each figure next to baselines measured in the
 * same run. The receiver is always another process
 * (`bench/_transport_receiver.ts`) on 127.0.0.1, so sender and receiver never
 * share an event loop, and every run checks that the receiver got every
 * object and byte (a run that lost data throws a {@linkcode BenchError}).
 *
 * @module
 */

import { Stream, type TransportError } from "../transport/mod.ts";
import { BenchError, bounded } from "./_bounded.ts";
import { type Serving, spawnServing } from "./_process.ts";
import type { BenchRow } from "./_row.ts";
import { type ReceiverCounters, STAMP_BYTES } from "./_transport_receiver.ts";

const KIB = 1024;
const MIB = 1024 * 1024;
/** Pool of distinct bodies the senders cycle through. */
const POOL_BYTES = 16 * MIB;
/** Past its send limit, how long a run may take to finish. */
const FINISH_MS = 30_000;

/** How long one measured run may send: whichever limit comes first. */
export interface RunLimits {
  /** Most objects to send. */
  objects: number;
  /** Stop sending after this many seconds. */
  seconds: number;
}

/** Parameters of a transport benchmark. */
export interface TransportBenchOptions {
  /** Limits of each transport run. */
  transport: RunLimits;
  /** Limits of each baseline run. */
  baseline: RunLimits;
  /** Runs of each side; each side's best counts. */
  runs: number;
}

/** What one run sent, all of it confirmed by the receiver. */
interface Measured {
  objects: number;
  bytes: number;
  ms: number;
}

/**
 * `size`-byte bodies, distinct and stamped for the receiver's checks, in
 * shared memory: a `Stream` sends such views without copying them (the
 * bytes never change, so a slot may be in flight twice).
 */
interface Pool {
  size: number;
  slots: Uint8Array<SharedArrayBuffer>[];
  /** The same bytes in plain memory, for `fetch` (which refuses shared). */
  plain: Uint8Array<ArrayBuffer>[];
}

function makePool(size: number): Pool {
  if (size === 0) return { size, slots: [], plain: [] };
  const count = Math.max(1, Math.min(4096, Math.floor(POOL_BYTES / size)));
  const backing = new Uint8Array(new SharedArrayBuffer(size * count));
  const random = new Uint8Array(65536);
  for (let at = 0; at < backing.byteLength; at += random.byteLength) {
    backing.set(
      crypto.getRandomValues(random).subarray(0, backing.byteLength - at),
      at,
    );
  }
  const slots: Uint8Array<SharedArrayBuffer>[] = [];
  for (let slot = 0; slot < count; slot++) {
    const body = backing.subarray(slot * size, (slot + 1) * size);
    if (size >= STAMP_BYTES) {
      const view = new DataView(body.buffer, body.byteOffset, STAMP_BYTES);
      view.setUint32(0, slot, true);
      view.setUint32(4, count, true);
    }
    slots.push(body);
  }
  return { size, slots, plain: slots.map((slot) => slot.slice()) };
}

function bodyOf(
  pool: Pool,
  index: number,
): Uint8Array<SharedArrayBuffer> | null {
  return pool.size === 0 ? null : pool.slots[index % pool.slots.length];
}

/** Body `index` in plain memory (for `fetch`). */
function plainBodyOf(
  pool: Pool,
  index: number,
): Uint8Array<ArrayBuffer> | null {
  return pool.size === 0 ? null : pool.plain[index % pool.plain.length];
}

/** Whether to look at the clock after sending object `index`. */
function checkClock(pool: Pool, index: number): boolean {
  return pool.size >= 64 * KIB || (index & 255) === 0;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The transport: one `Stream`, one `send` per object, then `fin`. */
async function sendTransport(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Measured> {
  let completed = 0;
  let failed = 0;
  let firstError: TransportError | undefined;
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  const stream = new Stream(url, {
    signal,
    onSent(_header, error) {
      if (error === undefined) completed++;
      else {
        failed++;
        firstError ??= error;
      }
    },
  });
  let sent = 0;
  try {
    while (sent < limits.objects) {
      await stream.send({ name: String(sent) }, bodyOf(pool, sent));
      sent++;
      if (checkClock(pool, sent) && performance.now() >= stopAt) break;
    }
    await stream.fin();
  } catch (error) {
    await stream.abort(error);
    throw new BenchError(
      `transport stream failed after ${sent} sends (${completed} completed, ${failed} failed): ${
        describe(error)
      }`,
      { cause: error },
    );
  }
  const ms = performance.now() - started;
  if (completed !== sent || failed !== 0) {
    throw new BenchError(
      `transport: ${sent} objects sent but ${completed} completed without error and ${failed} with one${
        firstError ? ` (first: ${firstError.code}: ${firstError.message})` : ""
      }`,
    );
  }
  const stats = stream.stats();
  if (stats.objects !== sent || stats.bytes !== sent * pool.size) {
    throw new BenchError(
      `transport: Stream.stats() counts ${stats.objects} objects and ${stats.bytes} bytes, expected ${sent} and ${
        sent * pool.size
      }`,
    );
  }
  return { objects: sent, bytes: sent * pool.size, ms };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
    at += await conn.write(bytes.subarray(at));
  }
}

/** Reads one HTTP/1.1 response with a `content-length` body from `conn`. */
async function readResponse(
  conn: Deno.Conn,
): Promise<{ status: number; body: string }> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * KIB);
  let text = "";
  let headEnd = -1;
  let length = -1;
  for (;;) {
    if (headEnd < 0) {
      headEnd = text.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const match = text.slice(0, headEnd).match(
          /^content-length:\s*(\d+)\s*$/im,
        );
        if (match === null) {
          throw new BenchError(
            `raw PUT: response has no content-length: ${
              JSON.stringify(text.slice(0, headEnd))
            }`,
          );
        }
        length = Number(match[1]);
      }
    }
    // The answer is ASCII JSON, so characters count bytes.
    if (headEnd >= 0 && text.length >= headEnd + 4 + length) break;
    const n = await conn.read(buffer);
    if (n === null) {
      throw new BenchError(
        `raw PUT: connection closed after ${text.length} response bytes: ${
          JSON.stringify(text.slice(0, 200))
        }`,
      );
    }
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  const status = Number(text.match(/^HTTP\/1\.1 (\d{3}) /)?.[1] ?? NaN);
  return { status, body: text.slice(headEnd + 4, headEnd + 4 + length) };
}

function checkDrainAnswer(what: string, body: string, bytes: number): void {
  let answered: number;
  try {
    answered = Number(JSON.parse(body).bytes);
  } catch (error) {
    throw new BenchError(
      `${what}: receiver answered ${
        JSON.stringify(body)
      }, expected {"bytes":N}`,
      { cause: error },
    );
  }
  if (answered !== bytes) {
    throw new BenchError(
      `${what}: receiver drained ${answered} bytes, expected ${bytes}`,
    );
  }
}

/**
 * The ingest ceiling: one chunked HTTP/1.1 PUT written by hand over
 * `Deno.connect`, one chunk per object, no framing and no copies.
 */
async function sendRawChunked(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Measured> {
  const encoder = new TextEncoder();
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  const onAbort = () => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  let sent = 0;
  try {
    await writeAll(
      conn,
      encoder.encode(
        `PUT ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n` +
          "content-type: application/octet-stream\r\n" +
          "transfer-encoding: chunked\r\n\r\n",
      ),
    );
    const chunkHead = encoder.encode(`${pool.size.toString(16)}\r\n`);
    const crlf = encoder.encode("\r\n");
    while (sent < limits.objects) {
      await writeAll(conn, chunkHead);
      await writeAll(conn, bodyOf(pool, sent)!);
      await writeAll(conn, crlf);
      sent++;
      if (checkClock(pool, sent) && performance.now() >= stopAt) break;
    }
    await writeAll(conn, encoder.encode("0\r\n\r\n"));
    const response = await readResponse(conn);
    if (response.status !== 200) {
      throw new BenchError(
        `raw PUT: receiver answered HTTP ${response.status}: ${response.body}`,
      );
    }
    checkDrainAnswer("raw PUT", response.body, sent * pool.size);
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!signal.aborted) conn.close();
  }
  const ms = performance.now() - started;
  return { objects: sent, bytes: sent * pool.size, ms };
}

/**
 * One `fetch` PUT into the drain receiver; checks its answer against
 * `expectedBytes()` (asked once the response is in).
 */
async function fetchDrained(
  what: string,
  url: URL,
  init: Omit<RequestInit, "method">,
  expectedBytes: () => number,
): Promise<void> {
  const response = await fetch(url, { ...init, method: "PUT" });
  const text = await response.text();
  if (!response.ok) {
    throw new BenchError(
      `${what}: receiver answered HTTP ${response.status}: ${text}`,
    );
  }
  checkDrainAnswer(what, text, expectedBytes());
}

/** `fetch` with a streaming request body: one chunk per object. */
async function sendFetchStream(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Measured> {
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (
        sent >= limits.objects ||
        (sent > 0 && checkClock(pool, sent) && performance.now() >= stopAt)
      ) {
        controller.close();
        return;
      }
      controller.enqueue(plainBodyOf(pool, sent)!);
      sent++;
    },
  });
  await fetchDrained("fetch streaming PUT", url, {
    body,
    headers: { "content-type": "application/octet-stream" },
    signal,
  }, () => sent * pool.size);
  const ms = performance.now() - started;
  return { objects: sent, bytes: sent * pool.size, ms };
}

/** One `fetch` PUT per object, one after another, over keep-alive. */
async function sendFetchEach(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Measured> {
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  let sent = 0;
  while (sent < limits.objects) {
    await fetchDrained(`fetch PUT #${sent}`, url, {
      body: plainBodyOf(pool, sent),
      headers: {
        "content-type": "application/octet-stream",
        "x-object-name": String(sent),
      },
      signal,
    }, () => pool.size);
    sent++;
    if (checkClock(pool, sent) && performance.now() >= stopAt) break;
  }
  const ms = performance.now() - started;
  return { objects: sent, bytes: sent * pool.size, ms };
}

type Sender = (
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
) => Promise<Measured>;

async function counters(receiver: Serving): Promise<ReceiverCounters> {
  const answer = await receiver.ask("stats");
  if (typeof answer.objects !== "number") {
    throw new BenchError(
      `receiver answered stats with ${
        JSON.stringify(answer)
      }, expected its counters`,
    );
  }
  return answer as unknown as ReceiverCounters;
}

/**
 * Runs `sender` once against `receiver` and checks, from the receiver's own
 * counters, that every object and byte arrived whole and in order.
 */
async function measure(
  what: string,
  sender: Sender,
  receiver: Serving,
  pool: Pool,
  limits: RunLimits,
): Promise<Measured> {
  const before = await counters(receiver);
  const measured = await bounded(
    what,
    limits.seconds * 1000 + FINISH_MS,
    (signal) => sender(receiver.url, pool, limits, signal),
  );
  const after = await counters(receiver);
  const got = {
    objects: after.objects - before.objects,
    bytes: after.bytes - before.bytes,
    errors: after.errors - before.errors,
    misordered: after.misordered - before.misordered,
    corrupt: after.corrupt - before.corrupt,
  };
  const transport = sender === sendTransport;
  // The baselines send one request per run (streams) or per object.
  const expectedObjects = transport || sender === sendFetchEach
    ? measured.objects
    : 1;
  const problems: string[] = [];
  if (got.objects !== expectedObjects) {
    problems.push(
      `${got.objects} objects arrived, expected ${expectedObjects}`,
    );
  }
  if (got.bytes !== measured.bytes) {
    problems.push(
      `${got.bytes} body bytes arrived, expected ${measured.bytes}`,
    );
  }
  if (got.errors + got.misordered + got.corrupt > 0) {
    problems.push(
      `${got.errors} errors, ${got.misordered} out of order, ${got.corrupt} corrupt (first: ${after.firstProblem})`,
    );
  }
  if (
    transport && (after.receiverObjects - before.receiverObjects !==
        measured.objects ||
      after.receiverBytes - before.receiverBytes !== measured.bytes)
  ) {
    problems.push(
      `Receiver.stats() counted ${
        after.receiverObjects - before.receiverObjects
      } objects and ${
        after.receiverBytes - before.receiverBytes
      } bytes, expected ${measured.objects} and ${measured.bytes}`,
    );
  }
  if (problems.length > 0) {
    throw new BenchError(
      `${what}: the receiver did not get what was sent: ${problems.join("; ")}`,
    );
  }
  return measured;
}

/** The receivers the transport benchmarks use, each in its own process. */
interface Receivers {
  /** A transport `Receiver`; its handler reads with a BYOB reader. */
  transport: Serving;
  /** `Deno.serve` draining bodies with their default reader. */
  drain: Serving;
  /** `Deno.serve` draining bodies with a BYOB reader into reused buffers. */
  drainByob: Serving;
}

async function withReceivers<T>(
  run: (receivers: Receivers) => Promise<T>,
): Promise<T> {
  const started: Serving[] = [];
  const spawn = async (args: string[]) => {
    const serving = await spawnServing("_transport_receiver.ts", args);
    started.push(serving);
    return serving;
  };
  try {
    return await run({
      transport: await spawn(["--mode", "transport", "--read", "byob"]),
      drain: await spawn(["--mode", "drain", "--read", "default"]),
      drainByob: await spawn(["--mode", "drain", "--read", "byob"]),
    });
  } finally {
    for (const serving of started) await serving.stop();
  }
}

/** The best run so far of one side, by `rate`. */
interface Best {
  rate: number;
  objects: number;
}

function better(best: Best, run: Measured, rate: number): Best {
  return rate > best.rate ? { rate, objects: run.objects } : best;
}

/** One side of a comparison: what it is, how it sends, where to. */
type Side = [what: string, sender: Sender, receiver: Serving];

/**
 * Runs every side `options.runs` times, interleaved so that a noisy moment
 * does not hit only one, and returns each side's best run by `rate`. The
 * transport side (`sendTransport`) gets the transport limits.
 */
async function bestOfRuns(
  sides: Side[],
  pool: Pool,
  options: TransportBenchOptions,
  rate: (run: Measured) => number,
): Promise<Best[]> {
  const best: Best[] = sides.map(() => ({ rate: 0, objects: 0 }));
  for (let i = 0; i < options.runs; i++) {
    for (const [index, [what, sender, receiver]] of sides.entries()) {
      const limits = sender === sendTransport
        ? options.transport
        : options.baseline;
      const run = await measure(what, sender, receiver, pool, limits);
      best[index] = better(best[index], run, rate(run));
    }
  }
  return best;
}

const megabytesPerSecond = (run: Measured): number =>
  run.bytes / 1e6 / (run.ms / 1000);
const objectsPerSecond = (run: Measured): number =>
  run.objects / (run.ms / 1000);

function limitsText(limits: RunLimits): string {
  return `at most ${limits.objects} objects or ${limits.seconds} s per run`;
}

const RECEIVER_NOTE =
  "receivers run in their own process on 127.0.0.1; every run checks the receiver's counts of objects and bytes, order and body stamps";

/**
 * 1 MiB objects over one `Stream`, in MB/s, next to the ingest ceiling (a
 * chunked PUT written by hand over `Deno.connect`) and a streaming `fetch`
 * PUT of the same bytes, both into a `Deno.serve` that drains the body.
 */
export async function benchTransportLarge(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const pool = makePool(MIB);
  return await withReceivers(async ({ transport, drain, drainByob }) => {
    const [raw, rawByob, fetched, ours] = await bestOfRuns(
      [
        ["raw chunked PUT of 1 MiB chunks", sendRawChunked, drain],
        [
          "raw chunked PUT of 1 MiB chunks, BYOB drain",
          sendRawChunked,
          drainByob,
        ],
        ["fetch streaming PUT of 1 MiB chunks", sendFetchStream, drain],
        ["transport, 1 MiB objects", sendTransport, transport],
      ],
      pool,
      options,
      megabytesPerSecond,
    );
    const note =
      `best of ${options.runs} runs per side; transport ${
        limitsText(options.transport)
      } (best run: ${ours.objects} objects), baselines ${
        limitsText(options.baseline)
      }; every side writes the same ${pool.slots.length} distinct 1 MiB buffers of shared memory without copying them (\`send\` reads shared memory in place); the transport receiver's handler reads every body with a BYOB reader into a reused 64 KiB buffer (as docs/transport.md advises for large bodies); ` +
      RECEIVER_NOTE;
    return [
      {
        figure: "transport 1 MiB objects, one Stream, vs the ingest ceiling",
        value: ours.rate,
        unit: "MB/s",
        baseline:
          "chunked HTTP/1.1 PUT by hand over Deno.connect into Deno.serve draining request.body",
        baselineValue: raw.rate,
        goal: 0.9,
        note,
      },
      {
        figure:
          "transport 1 MiB objects, one Stream, vs the ingest ceiling drained with a BYOB reader",
        value: ours.rate,
        unit: "MB/s",
        baseline:
          "the same PUT into Deno.serve reading request.body with a BYOB reader into one reused 64 KiB buffer",
        baselineValue: rawByob.rate,
        goal: "info",
        note,
      },
      {
        figure: "transport 1 MiB objects, one Stream, vs fetch",
        value: ours.rate,
        unit: "MB/s",
        baseline: "fetch PUT with a streaming body into the same receiver",
        baselineValue: fetched.rate,
        goal: 2,
        note,
      },
    ];
  });
}

async function objectRates(
  size: number,
  options: TransportBenchOptions,
): Promise<{ ours: Best; fetched: Best }> {
  const pool = makePool(size);
  const label = size === 0 ? "header-only" : `${size / KIB} KiB`;
  return await withReceivers(async ({ transport, drain }) => {
    const [fetched, ours] = await bestOfRuns(
      [
        [`fetch PUT per ${label} object`, sendFetchEach, drain],
        [`transport, ${label} objects`, sendTransport, transport],
      ],
      pool,
      options,
      objectsPerSecond,
    );
    return { ours, fetched };
  });
}

/** 1 KiB objects per second over one `Stream`, next to one `fetch` per object. */
export async function benchTransportSmall(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const { ours, fetched } = await objectRates(KIB, options);
  const note = `best of ${options.runs} runs per side; transport ${
    limitsText(options.transport)
  } (best run: ${ours.objects} objects), fetch ${
    limitsText(options.baseline)
  }, one request at a time; the time includes \`fin\`, so every completion fired; ${RECEIVER_NOTE}`;
  return [
    {
      figure: "transport 1 KiB objects, one Stream, vs fetch per object",
      value: ours.rate,
      unit: "objects/s",
      baseline: "one fetch PUT per object over keep-alive, into Deno.serve",
      baselineValue: fetched.rate,
      goal: 30,
      note,
    },
    {
      figure: "transport 1 KiB objects, one Stream, vs 100k objects/s",
      value: ours.rate,
      unit: "objects/s",
      baseline: "goal",
      baselineValue: 100_000,
      goal: 1,
      note,
    },
  ];
}

/**
 * Header-only objects per second over one `Stream`, completions included,
 * next to one `fetch` per object.
 */
export async function benchTransportHeaderOnly(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const { ours, fetched } = await objectRates(0, options);
  const note = `best of ${options.runs} runs per side; transport ${
    limitsText(options.transport)
  } (best run: ${ours.objects} objects), fetch ${
    limitsText(options.baseline)
  }, one bodiless PUT at a time; the transport's count is of \`onSent\` completions, all fired before \`fin\` resolved; ${RECEIVER_NOTE}`;
  return [
    {
      figure:
        "transport header-only objects, completions included, vs fetch per object",
      value: ours.rate,
      unit: "objects/s",
      baseline: "one bodiless fetch PUT per object over keep-alive",
      baselineValue: fetched.rate,
      goal: "info",
      note,
    },
    {
      figure:
        "transport header-only objects, completions included, vs 300k objects/s",
      value: ours.rate,
      unit: "objects/s",
      baseline: "goal",
      baselineValue: 300_000,
      goal: 1,
      note,
    },
  ];
}
