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
import { CpuMeter } from "../testing/process_cpu.ts";
import { type Serving, spawnServing } from "./_process.ts";
import { type BenchRow, spreadOf } from "./_row.ts";
import {
  type ReceiverCounters,
  STAMP_BYTES,
  WS_ACK_EVERY,
} from "./_transport_receiver.ts";

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
  /** Runs of each side, interleaved; each side's median counts. */
  runs: number;
}

/** What one run sent, all of it confirmed by the receiver. */
interface Sent {
  objects: number;
  bytes: number;
  ms: number;
}

/** A run and the CPU seconds its sender and receiver processes used. */
interface Measured extends Sent {
  cpuSeconds: number;
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
): Promise<Sent> {
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
): Promise<Sent> {
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
): Promise<Sent> {
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
): Promise<Sent> {
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

/** Objects a WebSocket sender may have sent beyond the receiver's last `ack`. */
const WS_WINDOW = 16 * WS_ACK_EVERY;

/**
 * The WebSocket peer: one message per object over one Deno `WebSocket`
 * (the body, or the name of a header-only object), at most
 * {@linkcode WS_WINDOW} objects beyond the receiver's last `ack`, then
 * `fin`; done when the receiver's `done N` counts every object.
 */
async function sendWebSocket(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Sent> {
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  const socket = new WebSocket(url);
  let acked = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    wake?.();
  };
  const done = Promise.withResolvers<number>();
  socket.onmessage = ({ data }) => {
    const [word, count] = String(data).split(" ");
    if (word === "ack") acked = Number(count);
    else if (word === "done") done.resolve(Number(count));
    wake?.();
  };
  socket.onclose = (event) => {
    const error = new BenchError(
      `WebSocket peer closed with ${event.code} ${
        JSON.stringify(event.reason)
      } after ${acked} acknowledged objects`,
    );
    fail(error);
    done.reject(error);
  };
  const onAbort = () => socket.close();
  signal.addEventListener("abort", onAbort, { once: true });
  let sent = 0;
  try {
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () =>
        reject(new BenchError(`WebSocket peer: cannot connect to ${url}`));
    });
    socket.onerror = null;
    while (sent < limits.objects) {
      while (sent - acked >= WS_WINDOW && failure === undefined) {
        await new Promise<void>((resolve) => wake = resolve);
      }
      if (failure !== undefined) throw failure;
      socket.send(pool.size === 0 ? String(sent) : plainBodyOf(pool, sent)!);
      sent++;
      if (checkClock(pool, sent) && performance.now() >= stopAt) break;
    }
    socket.send("fin");
    const count = await done.promise;
    if (count !== sent) {
      throw new BenchError(
        `WebSocket peer: ${sent} objects sent, the receiver counted ${count}`,
      );
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    socket.onclose = null;
    socket.close();
  }
  const ms = performance.now() - started;
  return { objects: sent, bytes: sent * pool.size, ms };
}

/** What this file uses of `bench/_grpc_peer.ts`. */
interface GrpcPeer {
  GRPC_PACKAGE: string;
  openGrpc(port: number): Promise<GrpcChannel>;
}

/** What this file uses of `GrpcChannel` in `bench/_grpc_peer.ts`. */
interface GrpcChannel {
  stream(next: () => Uint8Array | null, signal: AbortSignal): Promise<number>;
  close(): void;
}

/**
 * The open channel to each gRPC receiver, by its URL: one for all of its
 * runs, closed only once it has exited (see {@linkcode GrpcReceiver}).
 */
const grpcChannels = new Map<string, GrpcChannel>();

/** The npm package the gRPC peer needs (as `bench/_grpc_peer.ts` says). */
const GRPC_PACKAGE = "@grpc/grpc-js";

let grpcPeer: Promise<GrpcPeer | string> | undefined;

/**
 * `bench/_grpc_peer.ts`, or why it cannot be loaded (its npm package is
 * missing): loaded on first use through a computed specifier, so nothing
 * else in the bench needs the package.
 */
function loadGrpcPeer(): Promise<GrpcPeer | string> {
  const module = new URL("_grpc_peer.ts", import.meta.url).href;
  grpcPeer ??= (import(module) as Promise<GrpcPeer>).catch((error) =>
    `npm ${GRPC_PACKAGE} cannot be loaded (${describe(error)})`
  );
  return grpcPeer;
}

/**
 * The gRPC peer: one client-streaming call of `@grpc/grpc-js` with retries
 * off, one message per header-only object (its name); done when the
 * server's answer counts every message.
 */
async function sendGrpc(
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
): Promise<Sent> {
  const channel = grpcChannels.get(url.href);
  if (channel === undefined) {
    throw new BenchError(`gRPC peer: no channel open to ${url.href}`);
  }
  if (pool.size !== 0) {
    throw new BenchError(
      `gRPC peer: sends header-only objects, got ${pool.size}-byte bodies`,
    );
  }
  const encoder = new TextEncoder();
  const started = performance.now();
  const stopAt = started + limits.seconds * 1000;
  let sent = 0;
  const count = await channel.stream(() => {
    if (
      sent >= limits.objects ||
      (checkClock(pool, sent) && sent > 0 && performance.now() >= stopAt)
    ) {
      return null;
    }
    return encoder.encode(String(sent++));
  }, signal);
  if (count !== sent) {
    throw new BenchError(
      `gRPC peer: ${sent} messages sent, the server counted ${count}`,
    );
  }
  const ms = performance.now() - started;
  return { objects: sent, bytes: 0, ms };
}

type Sender = (
  url: URL,
  pool: Pool,
  limits: RunLimits,
  signal: AbortSignal,
) => Promise<Sent>;

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

/** One side of a comparison: what it is, how it sends, where, how much. */
interface Side {
  what: string;
  sender: Sender;
  receiver: Serving;
  limits: RunLimits;
  /**
   * For a peer whose receiver may die of a bug not ours: after a failed
   * run, resolves with why its receiver died if it did (a new one then
   * serves as `receiver`, and the run is made again, once), else `null`
   * (the failure stands).
   */
  revive?: () => Promise<string | null>;
}

/** Senders whose receiver counts one object per object (not per request). */
const PER_OBJECT: ReadonlySet<Sender> = new Set([
  sendTransport,
  sendFetchEach,
  sendWebSocket,
  sendGrpc,
]);

/** What the receiver's counters say went wrong in a run, if anything. */
function receiverProblems(
  side: Side,
  measured: Sent,
  before: ReceiverCounters,
  after: ReceiverCounters,
): string[] {
  const got = {
    objects: after.objects - before.objects,
    bytes: after.bytes - before.bytes,
    errors: after.errors - before.errors,
    misordered: after.misordered - before.misordered,
    corrupt: after.corrupt - before.corrupt,
  };
  // The stream baselines send one request per run.
  const expectedObjects = PER_OBJECT.has(side.sender) ? measured.objects : 1;
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
    side.sender === sendTransport &&
    (after.receiverObjects - before.receiverObjects !== measured.objects ||
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
  return problems;
}

/**
 * Runs `side` once and checks, from the receiver's own counters, that every
 * object and byte arrived whole and in order. Its CPU is that of this
 * process (the sender, its workers included) and of the receiver's.
 */
async function measure(side: Side, pool: Pool): Promise<Measured> {
  const before = await counters(side.receiver);
  const cpu = await CpuMeter.start([Deno.pid, side.receiver.process.pid]);
  const measured = await bounded(
    side.what,
    side.limits.seconds * 1000 + FINISH_MS,
    (signal) => side.sender(side.receiver.url, pool, side.limits, signal),
  );
  const cpuSeconds = await cpu.stop();
  const after = await counters(side.receiver);
  const problems = receiverProblems(side, measured, before, after);
  if (problems.length > 0) {
    throw new BenchError(
      `${side.what}: the receiver did not get what was sent: ${
        problems.join("; ")
      }`,
    );
  }
  return { ...measured, cpuSeconds };
}

/** Arguments of `bench/_transport_receiver.ts` for each receiver. */
const RECEIVER_ARGS = {
  /** A transport `Receiver`; its handler reads with a BYOB reader. */
  transport: ["--mode", "transport", "--read", "byob"],
  /** `Deno.serve` draining bodies with their default reader. */
  drain: ["--mode", "drain", "--read", "default"],
  /** `Deno.serve` draining bodies with a BYOB reader into reused buffers. */
  drainByob: ["--mode", "drain", "--read", "byob"],
  /** A `Deno.serve` WebSocket, one message per object. */
  ws: ["--mode", "ws"],
  /** A `@grpc/grpc-js` server, one client-streaming message per object. */
  grpc: ["--mode", "grpc"],
};

type ReceiverKind = keyof typeof RECEIVER_ARGS;

/** Runs `run` with the `kinds` receivers, each in its own process. */
async function withReceivers<K extends ReceiverKind, T>(
  kinds: K[],
  run: (receivers: Record<K, Serving>) => Promise<T>,
): Promise<T> {
  const started: Serving[] = [];
  try {
    const receivers = {} as Record<K, Serving>;
    for (const kind of kinds) {
      const serving = await spawnServing(
        "_transport_receiver.ts",
        RECEIVER_ARGS[kind],
      );
      started.push(serving);
      receivers[kind] = serving;
    }
    return await run(receivers);
  } finally {
    for (const serving of started) await serving.stop();
  }
}

/**
 * Runs every side `runs` times, interleaved (side 1 run 1, side 2 run 1, …,
 * side 1 run 2, …) so that a noisy moment does not hit only one side;
 * returns every run of each side.
 */
async function interleavedRuns(
  sides: Side[],
  pool: Pool,
  runs: number,
): Promise<Measured[][]> {
  const measured: Measured[][] = sides.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [index, side] of sides.entries()) {
      measured[index].push(await measureOrRevive(side, pool));
    }
  }
  return measured;
}

/**
 * {@linkcode measure}, and once more if the run failed because `side`'s
 * receiver died and {@linkcode Side.revive} started a new one.
 */
async function measureOrRevive(side: Side, pool: Pool): Promise<Measured> {
  try {
    return await measure(side, pool);
  } catch (error) {
    const died = await side.revive?.();
    if (died === undefined || died === null) throw error;
    console.error(
      `bench: ${side.what}: the run failed (${
        describe(error)
      }): ${died}; that run again, once, with a new receiver`,
    );
    try {
      return await measure(side, pool);
    } catch (again) {
      const diedAgain = await side.revive?.();
      throw diedAgain === null || diedAgain === undefined
        ? again
        : new PeerDied(`${died}, and again in the same run: ${diedAgain}`);
    }
  }
}

/** A peer's receiver died twice in one run: the peer is dropped. */
class PeerDied extends Error {}

/** How `process` ended, if it has ended or does within `ms`; else `null`. */
async function exitedWithin(
  process: Deno.ChildProcess,
  ms: number,
): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const alive = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  const status = await Promise.race([process.status, alive]);
  clearTimeout(timer);
  if (status === null) return null;
  return status.signal !== null
    ? `signal ${status.signal}`
    : `exit code ${status.code}`;
}

/**
 * The gRPC peer's receiver process and the one channel the bench keeps open
 * to it (see `GrpcChannel` in bench/_grpc_peer.ts: no GOAWAY reaches a live
 * process of either side). If it dies (Deno's `node:http2` has aborted in
 * nghttp2), {@linkcode GrpcReceiver.revive} starts another, and
 * {@linkcode GrpcReceiver.deaths} says why, for the row's note.
 */
class GrpcReceiver {
  serving!: Serving;
  readonly deaths: string[] = [];
  private constructor(private readonly peer: GrpcPeer) {}

  static async start(peer: GrpcPeer): Promise<GrpcReceiver> {
    const receiver = new GrpcReceiver(peer);
    await receiver.spawn();
    return receiver;
  }

  private async spawn(): Promise<void> {
    const serving = await spawnServing(
      "_transport_receiver.ts",
      RECEIVER_ARGS.grpc,
    );
    try {
      grpcChannels.set(
        serving.url.href,
        await this.peer.openGrpc(Number(serving.url.port)),
      );
    } catch (error) {
      await serving.stop();
      throw error;
    }
    this.serving = serving;
  }

  /** See {@linkcode Side.revive}. */
  async revive(): Promise<string | null> {
    // A receiver whose pipes broke is gone or going: 5 s is ample.
    const how = await exitedWithin(this.serving.process, 5_000);
    if (how === null) return null;
    const why = `the gRPC receiver process died (${how})`;
    this.deaths.push(why);
    await this.stop();
    await this.spawn();
    return why;
  }

  /** Stops the receiver, then closes the channel: no GOAWAY reaches it. */
  async stop(): Promise<void> {
    await this.serving.stop();
    grpcChannels.get(this.serving.url.href)?.close();
    grpcChannels.delete(this.serving.url.href);
  }
}

const megabytesPerSecond = (run: Measured): number =>
  run.bytes / 1e6 / (run.ms / 1000);
const objectsPerSecond = (run: Measured): number =>
  run.objects / (run.ms / 1000);
const cpuMicrosPerObject = (run: Measured): number =>
  (run.cpuSeconds / run.objects) * 1e6;
const cpuSecondsPerGigabyte = (run: Measured): number =>
  run.cpuSeconds / (run.bytes / 1e9);

/** The figures of a row: medians, spreads and CPU of two sides' runs. */
function compared(
  ours: Measured[],
  theirs: Measured[] | null,
  rate: (run: Measured) => number,
  cpu: { unit: string; per: (run: Measured) => number },
): Pick<BenchRow, "value" | "spread" | "cpu"> & { baselineValue: number } {
  const value = spreadOf(ours.map(rate));
  const baseline = theirs === null ? undefined : spreadOf(theirs.map(rate));
  return {
    value: value.median,
    baselineValue: baseline?.median ?? NaN,
    spread: { value, baseline },
    cpu: {
      unit: cpu.unit,
      value: spreadOf(ours.map(cpu.per)).median,
      baseline: theirs === null
        ? undefined
        : spreadOf(theirs.map(cpu.per)).median,
    },
  };
}

const PER_OBJECT_CPU = { unit: "CPU-µs/object", per: cpuMicrosPerObject };
const PER_GB_CPU = { unit: "CPU-s/GB", per: cpuSecondsPerGigabyte };

function limitsText(limits: RunLimits): string {
  return `at most ${limits.objects} objects or ${limits.seconds} s per run`;
}

/** The largest object count of `runs`, for the notes. */
function mostObjects(runs: Measured[]): number {
  return Math.max(...runs.map((run) => run.objects));
}

function runsText(runs: number): string {
  return `median of ${runs} interleaved runs per side (min–max in the cell)`;
}

const RECEIVER_NOTE =
  "receivers run in their own process on 127.0.0.1; every run checks the receiver's counts of objects and bytes, order and body stamps; CPU is user + system seconds of the sending process (the bench, its send-loop worker included) and of the receiver process over each run, from /proc/PID/stat, the median per unit of work";

/**
 * 1 MiB objects over one `Stream`, in MB/s, next to the ingest ceiling (a
 * chunked PUT written by hand over `Deno.connect`) and a streaming `fetch`
 * PUT of the same bytes, both into a `Deno.serve` that drains the body.
 */
export async function benchTransportLarge(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const pool = makePool(MIB);
  return await withReceivers(
    ["transport", "drain", "drainByob"],
    async ({ transport, drain, drainByob }) => {
      const peer = options.baseline;
      const [raw, rawByob, fetched, ours] = await interleavedRuns(
        [
          {
            what: "raw chunked PUT of 1 MiB chunks",
            sender: sendRawChunked,
            receiver: drain,
            limits: peer,
          },
          {
            what: "raw chunked PUT of 1 MiB chunks, BYOB drain",
            sender: sendRawChunked,
            receiver: drainByob,
            limits: peer,
          },
          {
            what: "fetch streaming PUT of 1 MiB chunks",
            sender: sendFetchStream,
            receiver: drain,
            limits: peer,
          },
          {
            what: "transport, 1 MiB objects",
            sender: sendTransport,
            receiver: transport,
            limits: options.transport,
          },
        ],
        pool,
        options.runs,
      );
      const note = `${runsText(options.runs)}; transport ${
        limitsText(options.transport)
      } (largest run: ${mostObjects(ours)} objects), baselines ${
        limitsText(options.baseline)
      }; every side writes the same ${pool.slots.length} distinct 1 MiB buffers of shared memory without copying them (\`send\` reads shared memory in place); the transport receiver's handler reads every body with a BYOB reader into a reused 64 KiB buffer (as docs/transport.md advises for large bodies); ${RECEIVER_NOTE}`;
      const rate = megabytesPerSecond;
      return [
        {
          figure: "transport 1 MiB objects, one Stream, vs the ingest ceiling",
          ...compared(ours, raw, rate, PER_GB_CPU),
          unit: "MB/s",
          baseline:
            "chunked HTTP/1.1 PUT by hand over Deno.connect into Deno.serve draining request.body",
          goal: 0.9,
          note,
        },
        {
          figure:
            "transport 1 MiB objects, one Stream, vs the ingest ceiling drained with a BYOB reader",
          ...compared(ours, rawByob, rate, PER_GB_CPU),
          unit: "MB/s",
          baseline:
            "the same PUT into Deno.serve reading request.body with a BYOB reader into one reused 64 KiB buffer",
          goal: "info",
          note,
        },
        {
          figure: "transport 1 MiB objects, one Stream, vs fetch",
          ...compared(ours, fetched, rate, PER_GB_CPU),
          unit: "MB/s",
          baseline: "fetch PUT with a streaming body into the same receiver",
          goal: 2,
          note,
        },
      ];
    },
  );
}

/** Every run of each side of a small-object comparison. */
interface ObjectRuns {
  ours: Measured[];
  fetched: Measured[];
  ws: Measured[];
  /** The gRPC peer's runs, or why it was skipped; `null` if not asked for. */
  grpc: Measured[] | string | null;
  /** Why a gRPC run was made again, one entry per run made again. */
  grpcDeaths: string[];
}

/**
 * Objects of `size` bytes over one `Stream`, interleaved with one `fetch`
 * per object, the WebSocket peer and (if `withGrpc` and its package loads)
 * the gRPC peer.
 */
async function objectRuns(
  size: number,
  options: TransportBenchOptions,
  withGrpc: boolean,
): Promise<ObjectRuns> {
  const pool = makePool(size);
  const label = size === 0 ? "header-only" : `${size / KIB} KiB`;
  const peer = withGrpc ? await loadGrpcPeer() : null;
  if (typeof peer === "string") {
    console.error(`bench: skipping gRPC peer: ${peer}`);
  }
  const kinds: ReceiverKind[] = ["transport", "drain", "ws"];
  return await withReceivers(kinds, async (receivers) => {
    const sides: Side[] = [
      {
        what: `fetch PUT per ${label} object`,
        sender: sendFetchEach,
        receiver: receivers.drain,
        limits: options.baseline,
      },
      {
        what: `WebSocket, one message per ${label} object`,
        sender: sendWebSocket,
        receiver: receivers.ws,
        limits: options.transport,
      },
      {
        what: `transport, ${label} objects`,
        sender: sendTransport,
        receiver: receivers.transport,
        limits: options.transport,
      },
    ];
    const grpc = peer !== null && typeof peer !== "string"
      ? await GrpcReceiver.start(peer)
      : null;
    try {
      if (grpc !== null) sides.push(grpcSide(label, grpc, options));
      const [fetched, ws, ours, grpcRuns] = await interleavedRuns(
        sides,
        pool,
        options.runs,
      );
      return {
        ours,
        fetched,
        ws,
        grpc: withGrpc ? (grpcRuns ?? peer as string) : null,
        grpcDeaths: grpc?.deaths ?? [],
      };
    } finally {
      await grpc?.stop();
    }
  });
}

/** The gRPC peer's side of {@linkcode objectRuns}. */
function grpcSide(
  label: string,
  grpc: GrpcReceiver,
  options: TransportBenchOptions,
): Side {
  const side: Side = {
    what: `gRPC client streaming, one message per ${label} object`,
    sender: sendGrpc,
    receiver: grpc.serving,
    // grpc-js takes writes without pushing back and buffers them: past
    // ~100k buffered messages a stream took 10-38 s to drain here, so
    // its runs are capped like fetch's.
    limits: options.baseline,
    async revive() {
      const why = await grpc.revive();
      side.receiver = grpc.serving;
      return why;
    },
  };
  return side;
}

const WS_BASELINE =
  "a Deno WebSocket into Deno.serve, one message per object, acknowledged every 256";

/** 1 KiB objects per second over one `Stream`, next to one `fetch` per object. */
export async function benchTransportSmall(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const { ours, fetched, ws } = await objectRuns(KIB, options, false);
  const note = `${runsText(options.runs)}; transport and WebSocket ${
    limitsText(options.transport)
  } (largest transport run: ${mostObjects(ours)} objects), fetch ${
    limitsText(options.baseline)
  }, one request at a time; the time includes \`fin\`, so every completion fired (the WebSocket's: until the receiver's count of every object came back); ${RECEIVER_NOTE}`;
  const rate = objectsPerSecond;
  return [
    {
      figure: "transport 1 KiB objects, one Stream, vs fetch per object",
      ...compared(ours, fetched, rate, PER_OBJECT_CPU),
      unit: "objects/s",
      baseline: "one fetch PUT per object over keep-alive, into Deno.serve",
      goal: 30,
      note,
    },
    {
      figure: "transport 1 KiB objects, one Stream, vs 100k objects/s",
      ...compared(ours, null, rate, PER_OBJECT_CPU),
      baselineValue: 100_000,
      unit: "objects/s",
      baseline: "goal",
      goal: 1,
      note,
    },
    {
      figure:
        "transport 1 KiB objects, one Stream, vs a Deno WebSocket, one message per object",
      ...compared(ours, ws, rate, PER_OBJECT_CPU),
      unit: "objects/s",
      baseline: WS_BASELINE,
      goal: 1,
      note,
    },
  ];
}

/**
 * The header-only row against the gRPC peer, or the row saying it was
 * skipped; its note says which runs were made again after the peer's
 * receiver died (`deaths`).
 */
function grpcRow(
  ours: Measured[],
  grpc: Measured[] | string,
  deaths: string[],
  note: string,
): BenchRow {
  const figure =
    "transport header-only objects, completions included, vs gRPC client streaming (@grpc/grpc-js, retries off)";
  if (typeof grpc === "string") {
    return {
      figure: `${figure}: SKIPPED`,
      value: NaN,
      unit: "objects/s",
      baseline: `skipped: ${grpc}`,
      baselineValue: NaN,
      goal: "info",
      note,
    };
  }
  return {
    figure,
    ...compared(ours, grpc, objectsPerSecond, PER_OBJECT_CPU),
    unit: "objects/s",
    baseline:
      "one client-streaming call, one message (the object's name) per object, the server's count as the answer",
    goal: 4,
    note: deaths.length === 0 ? note : `${note}; ${deathsText(deaths, grpc)}`,
  };
}

/** The note on gRPC runs made again after its receiver died. */
function deathsText(deaths: string[], runs: Measured[]): string {
  return `${deaths.length} of the ${runs.length} gRPC runs ${
    deaths.length === 1 ? "was" : "were"
  } made again, once each, with a new receiver, because ${
    deaths.join("; ")
  } (Deno's node:http2 has aborted in nghttp2 on a GOAWAY, see bench/ANALYSIS.md; the receiver's own message is in the bench's stderr); the failed attempts are not counted`;
}

/**
 * {@linkcode objectRuns} of header-only objects with the gRPC peer; if the
 * peer's receiver process dies (Deno's `node:http2` has aborted on an
 * nghttp2 assertion under this load), the runs are made again without it and
 * its row says why: a peer's crash is not a Spool failure.
 */
async function objectRunsPeerMayFail(
  options: TransportBenchOptions,
): Promise<ObjectRuns> {
  try {
    return await objectRuns(0, options, true);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // PeerDied: twice in one run; the message: while starting.
    if (!(error instanceof PeerDied) && !message.includes("--mode grpc")) {
      throw error;
    }
    console.error(`bench: the gRPC peer failed (${message}); again without it`);
    const runs = await objectRuns(0, options, false);
    return { ...runs, grpc: `the gRPC peer's receiver died (${message})` };
  }
}

/**
 * Header-only objects per second over one `Stream`, completions included,
 * next to one `fetch` per object, the WebSocket peer and gRPC client
 * streaming.
 */
export async function benchTransportHeaderOnly(
  options: TransportBenchOptions,
): Promise<BenchRow[]> {
  const { ours, fetched, ws, grpc, grpcDeaths } = await objectRunsPeerMayFail(
    options,
  );
  const note = `${runsText(options.runs)}; transport and WebSocket ${
    limitsText(options.transport)
  } (largest transport run: ${mostObjects(ours)} objects), fetch and gRPC ${
    limitsText(options.baseline)
  } (fetch: one bodiless PUT at a time; gRPC: grpc-js accepts writes without pushing back, and a stream of 100k+ buffered messages took 10–38 s to drain on this machine, so its runs are capped); the transport's count is of \`onSent\` completions, all fired before \`fin\` resolved; the WebSocket and gRPC peers send each object's name and end when the receiver's count of every object came back; ${RECEIVER_NOTE}`;
  const rate = objectsPerSecond;
  return [
    {
      figure:
        "transport header-only objects, completions included, vs fetch per object",
      ...compared(ours, fetched, rate, PER_OBJECT_CPU),
      unit: "objects/s",
      baseline: "one bodiless fetch PUT per object over keep-alive",
      goal: "info",
      note,
    },
    {
      figure:
        "transport header-only objects, completions included, vs 300k objects/s",
      ...compared(ours, null, rate, PER_OBJECT_CPU),
      baselineValue: 300_000,
      unit: "objects/s",
      baseline: "goal",
      goal: 1,
      note,
    },
    {
      figure:
        "transport header-only objects, completions included, vs a Deno WebSocket, one message per object",
      ...compared(ours, ws, rate, PER_OBJECT_CPU),
      unit: "objects/s",
      baseline: WS_BASELINE,
      goal: 1.5,
      note,
    },
    grpcRow(ours, grpc!, grpcDeaths, note),
  ];
}
