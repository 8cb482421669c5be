/**
 * Fan-out: many followers of one log growing at a steady rate, Spool next
 * to its peers in the same run, interleaved run by run: Redis pub/sub
 * (Debian `redis-server`, npm `ioredis`) and a bare WebSocket broadcast
 * (`_ws_baseline_server.ts`: the runtime's floor). Every write is stamped
 * (`_stamps.ts`), so each follower measures write → follower latency; the
 * lag of the last follower is the time from the last write until every
 * follower had every byte. Servers and followers are subprocesses; the
 * producer is this process.
 *
 * @module
 */

import { startUpload } from "../mod.ts";
import { CpuMeter } from "../testing/process_cpu.ts";
import { BenchError, bounded } from "./_bounded.ts";
import {
  type Load,
  spawnListening,
  spawnSpool,
  startLoad,
} from "./_process.ts";
import { type BenchRow, type Spread, spreadOf } from "./_row.ts";
import { type LatencySummary, stampedWrite } from "./_stamps.ts";

const MIB = 1024 * 1024;
/** The producer writes every this many ms. */
const TICK_MS = 50;

/** Parameters of {@linkcode benchFanOut}. */
export interface FanOutOptions {
  /** Followers (subscribers) of the one log. */
  followers: number;
  /** Bytes per second the log grows by. */
  rate: number;
  /** How long it grows. */
  seconds: number;
  /** Interleaved runs of each side. */
  runs: number;
  /** Spool's `--checkpoint-ms` values to run, each a side of its own. */
  checkpoints: number[];
}

/** One run of one side. */
interface FanOutRun {
  /** Followers that got every byte. */
  complete: number;
  /** How many followers failed and the first one's error, if any did. */
  firstFailure?: string;
  /** From the last write until every follower had every byte. */
  lagMs: number;
  latency: LatencySummary;
  peakRss: number;
  /** Server + followers + producer, while the log grew and drained. */
  cpuSeconds: number;
  /** The same CPU seconds process by process. */
  cpuOf: { server: number; followers: number; producer: number };
  /** Bytes written (each follower should get them all). */
  bytes: number;
}

/** A side's server, as the producer sees it. */
interface SideServer {
  pid: number;
  rss(): Promise<number>;
}

/** How one side connects its followers, writes and ends. */
interface SideRun {
  server: SideServer;
  loadArgs: (writeSize: number) => string[];
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the log after `bytes` bytes. */
  end(bytes: number): Promise<void>;
}

/** Bytes of each write at `rate` bytes/s, one write per tick. */
function writeSize(rate: number): number {
  return Math.round((rate * TICK_MS) / 1000);
}

/**
 * Writes stamped writes at `rate` for `seconds` with `write`, sampling the
 * server's RSS as it goes; resolves with the peak and the bytes written.
 */
async function produce(
  side: SideRun,
  rate: number,
  seconds: number,
): Promise<{ peak: number; bytes: number }> {
  const size = writeSize(rate);
  let peak = await side.server.rss();
  let bytes = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    await side.write(stampedWrite(size));
    bytes += size;
    peak = Math.max(peak, await side.server.rss());
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  return { peak, bytes };
}

/** Reads a load's next line; fails naming the side if it is not a number field. */
async function nextLine(
  load: Load,
  what: string,
  field: string,
): Promise<Record<string, unknown>> {
  let line: Record<string, unknown>;
  try {
    line = await load.next();
  } catch (error) {
    throw new BenchError(
      `fan-out ${what}: waiting for the followers' "${field}" line: ${
        (error as Error).message
      } (their stderr above says why)`,
      { cause: error },
    );
  }
  if (typeof line[field] !== "number") {
    throw new BenchError(
      `fan-out ${what}: the followers printed ${
        JSON.stringify(line)
      }, expected a line with "${field}"`,
    );
  }
  return line;
}

/** Longest a run may take beyond its writing time (connecting, draining). */
const RUN_SLACK_MS = 120_000;

/**
 * One run of a side: followers connect, the log grows, then ends; a run
 * that has not finished {@linkcode RUN_SLACK_MS} after its writing time
 * fails as a hang.
 */
function runSide(
  what: string,
  side: SideRun,
  options: FanOutOptions,
): Promise<FanOutRun> {
  return bounded(
    `fan-out ${what}`,
    options.seconds * 1000 + RUN_SLACK_MS,
    () => unboundedRun(what, side, options),
  );
}

async function unboundedRun(
  what: string,
  side: SideRun,
  options: FanOutOptions,
): Promise<FanOutRun> {
  const load = startLoad(side.loadArgs(writeSize(options.rate)));
  const ready = await nextLine(load, what, "cpu");
  const serverCpu = await CpuMeter.start([side.server.pid]);
  const producerCpu = await CpuMeter.start([Deno.pid]);
  const { peak, bytes } = await produce(side, options.rate, options.seconds);
  const ended = performance.now();
  await side.end(bytes);
  const result = await nextLine(load, what, "complete");
  const lagMs = performance.now() - ended;
  const cpuOf = {
    server: await serverCpu.stop(),
    followers: Number(result.cpu) - Number(ready.cpu),
    producer: await producerCpu.stop(),
  };
  const status = await load.process.status;
  if (!status.success) {
    throw new BenchError(`fan-out ${what}: followers exited ${status.code}`);
  }
  const p99 = (result.latency as LatencySummary).p99;
  // Process by process, so that a run shows which one the 2 cores went to.
  console.error(
    `bench: fan-out ${what}: p99 ${p99.toFixed(0)} ms, lag ${
      lagMs.toFixed(0)
    } ms, peak RSS ${(peak / MIB).toFixed(0)} MiB, CPU-s server ${
      cpuOf.server.toFixed(2)
    } followers ${cpuOf.followers.toFixed(2)} producer ${
      cpuOf.producer.toFixed(2)
    }`,
  );
  return {
    complete: Number(result.complete),
    firstFailure: typeof result.firstFailure === "string"
      ? `${result.failed} followers failed, first: ${result.firstFailure}`
      : undefined,
    lagMs,
    latency: result.latency as LatencySummary,
    peakRss: peak,
    cpuSeconds: cpuOf.server + cpuOf.followers + cpuOf.producer,
    cpuOf,
    bytes,
  };
}

async function spoolRun(
  options: FanOutOptions,
  checkpointMs: number,
): Promise<FanOutRun> {
  const spool = await spawnSpool(["--checkpoint-ms", String(checkpointMs)]);
  try {
    const upload = await startUpload(spool.url, { name: "fanout.log" });
    return await runSide(`Spool, checkpoint ${checkpointMs} ms`, {
      server: { pid: spool.process.pid, rss: spool.rss },
      loadArgs: (size) => [
        "followers",
        upload.reference,
        String(options.followers),
        String(size),
      ],
      write: (chunk) => upload.write(chunk),
      async end() {
        await upload.finish();
        await upload.closed();
      },
    }, options);
  } finally {
    await spool.stop();
  }
}

async function bareRun(options: FanOutOptions): Promise<FanOutRun> {
  const baseline = await spawnListening("_ws_baseline_server.ts", []);
  let producer: WebSocket | undefined;
  try {
    const fan = new URL("fan", baseline.url);
    fan.protocol = "ws:";
    const produceUrl = new URL("produce", baseline.url);
    produceUrl.protocol = "ws:";
    return await runSide("bare broadcast", {
      server: { pid: baseline.process.pid, rss: baseline.rss },
      loadArgs: (size) => [
        "ws-followers",
        fan.href,
        String(options.followers),
        String(size),
      ],
      async write(chunk) {
        if (producer === undefined) {
          producer = new WebSocket(produceUrl);
          await new Promise((resolve) => producer!.onopen = resolve);
        }
        producer.send(chunk);
      },
      end(bytes) {
        producer!.send(`end ${bytes}`);
        return Promise.resolve();
      },
    }, options);
  } finally {
    if (producer !== undefined) {
      const closed = new Promise((resolve) => producer!.onclose = resolve);
      producer.close();
      await closed;
    }
    await baseline.stop();
  }
}

/** What this file uses of `bench/_redis_peer.ts`. */
interface RedisPeer {
  REDIS_SERVER: string;
  startRedis(maxClients: number): Promise<
    SideServer & { port: number; stop(): Promise<void> }
  >;
  connectPublisher(port: number): Promise<{
    publish(message: Uint8Array | string): Promise<void>;
    close(): Promise<void>;
  }>;
}

/**
 * `bench/_redis_peer.ts`, or why the Redis peer cannot run (npm `ioredis`
 * cannot be loaded, or `redis-server` is not installed). Loaded through a
 * computed specifier, so nothing else in the bench needs the package.
 */
async function loadRedisPeer(): Promise<RedisPeer | string> {
  const module = new URL("_redis_peer.ts", import.meta.url).href;
  let peer: RedisPeer;
  try {
    peer = await import(module) as RedisPeer;
  } catch (error) {
    return `npm ioredis cannot be loaded (${(error as Error).message})`;
  }
  try {
    await Deno.stat(peer.REDIS_SERVER);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return `${peer.REDIS_SERVER} is missing (Debian package redis-server)`;
  }
  return peer;
}

async function redisRun(
  peer: RedisPeer,
  options: FanOutOptions,
): Promise<FanOutRun> {
  const redis = await peer.startRedis(options.followers + 64);
  try {
    const publisher = await peer.connectPublisher(redis.port);
    try {
      return await runSide("Redis pub/sub", {
        server: redis,
        loadArgs: (size) => [
          "redis-subscribers",
          String(redis.port),
          String(options.followers),
          String(size),
        ],
        write: (chunk) => publisher.publish(chunk),
        end: (bytes) => publisher.publish(`end ${bytes}`),
      }, options);
    } finally {
      await publisher.close();
    }
  } finally {
    await redis.stop();
  }
}

/**
 * A side whose followers did not all get every byte: lost data for Spool,
 * a void comparison for a peer. Fails at once, naming the side and why.
 */
function checkComplete(
  what: string,
  run: FanOutRun,
  followers: number,
): void {
  if (run.complete !== followers) {
    throw new BenchError(
      `fan-out ${what}: ${run.complete} of ${followers} followers got all ${run.bytes} bytes, expected every one${
        run.firstFailure === undefined ? "" : ` (${run.firstFailure})`
      }`,
    );
  }
}

/** Every run of each side. */
interface FanOutRuns {
  bare: FanOutRun[];
  redis: FanOutRun[] | string;
  spool: Map<number, FanOutRun[]>;
}

async function interleavedRuns(options: FanOutOptions): Promise<FanOutRuns> {
  const peer = await loadRedisPeer();
  if (typeof peer === "string") {
    console.error(`bench: skipping the Redis pub/sub peer: ${peer}`);
  }
  const runs: FanOutRuns = {
    bare: [],
    redis: typeof peer === "string" ? peer : [],
    spool: new Map(options.checkpoints.map((ms) => [ms, []])),
  };
  for (let i = 0; i < options.runs; i++) {
    const bare = await bareRun(options);
    checkComplete("bare broadcast", bare, options.followers);
    runs.bare.push(bare);
    if (typeof peer !== "string" && typeof runs.redis !== "string") {
      const redis = await redisRun(peer, options);
      checkComplete("Redis pub/sub", redis, options.followers);
      runs.redis.push(redis);
    }
    for (const ms of options.checkpoints) {
      const spool = await spoolRun(options, ms);
      checkComplete(`Spool, checkpoint ${ms} ms`, spool, options.followers);
      runs.spool.get(ms)!.push(spool);
    }
  }
  return runs;
}

function spread(
  runs: FanOutRun[],
  figure: (run: FanOutRun) => number,
): Spread {
  return spreadOf(runs.map(figure));
}

function format(spread: Spread, unit: string): string {
  const fixed = (n: number) => n.toFixed(n >= 100 ? 0 : 1);
  return `${fixed(spread.median)} ${unit}, ${fixed(spread.min)}–${
    fixed(spread.max)
  }`;
}

/** CPU seconds per GB delivered to the followers (every byte to every one). */
const cpuPerGb = (followers: number) => (run: FanOutRun): number =>
  run.cpuSeconds / ((run.bytes * followers) / 1e9);

/** The three rows of one checkpoint: p99 latency, lag, peak RSS. */
function checkpointRows(
  options: FanOutOptions,
  checkpointMs: number,
  runs: FanOutRuns,
  note: string,
): BenchRow[] {
  const label = `fan-out: ${options.followers} followers, ${
    options.rate / 1e6
  } MB/s for ${options.seconds} s, checkpoint ${checkpointMs} ms`;
  const ours = runs.spool.get(checkpointMs)!;
  const redis = typeof runs.redis === "string" ? null : runs.redis;
  const peer = redis ?? runs.bare;
  const peerName = redis === null
    ? `bare WebSocket broadcast (Redis pub/sub skipped: ${runs.redis})`
    : "Redis pub/sub (ioredis)";
  const perGb = cpuPerGb(options.followers);
  const cpu = {
    unit: "CPU-s/GB delivered",
    value: spread(ours, perGb).median,
    baseline: spread(peer, perGb).median,
  };
  const p99 = (run: FanOutRun) => run.latency.p99;
  const lag = (run: FanOutRun) => run.lagMs;
  const rss = (run: FanOutRun) => run.peakRss / MIB;
  /** The bare broadcast's figure, where Redis is the baseline. */
  const bare = (figure: (run: FanOutRun) => number, unit: string) =>
    redis === null
      ? ""
      : ` (bare WebSocket broadcast: ${
        format(spread(runs.bare, figure), unit)
      })`;
  const complete = Math.min(...ours.map((run) => run.complete));
  const row = (
    figure: string,
    value: (run: FanOutRun) => number,
    against: FanOutRun[],
    baseline: string,
  ): Pick<
    BenchRow,
    | "figure"
    | "value"
    | "baseline"
    | "baselineValue"
    | "spread"
    | "cpu"
    | "note"
  > => {
    const valueSpread = spread(ours, value);
    const baselineSpread = spread(against, value);
    return {
      figure: `${label}: ${figure}`,
      value: valueSpread.median,
      baseline,
      baselineValue: baselineSpread.median,
      spread: { value: valueSpread, baseline: baselineSpread },
      cpu,
      note,
    };
  };
  return [
    {
      ...row(
        `p99 write→follower vs Redis pub/sub${bare(p99, "ms")}`,
        p99,
        peer,
        peerName,
      ),
      unit: "ms",
      goal: checkpointMs > 0
        ? { valueAtMost: checkpointMs + 50 }
        : redis === null
        ? "info"
        : { atMost: 2 },
    },
    {
      ...row(
        `lag of the last follower vs Redis pub/sub, followers complete (${complete}/${options.followers})${
          bare(lag, "ms")
        }`,
        lag,
        peer,
        peerName,
      ),
      unit: "ms after the last write until all had every byte",
      goal: checkpointMs === 0 && redis !== null ? { atMost: 2 } : "info",
    },
    {
      ...row(
        `server peak RSS vs the bare broadcast server${
          redis === null ? "" : ` (Redis: ${format(spread(redis, rss), "MiB")})`
        }`,
        rss,
        runs.bare,
        "bare WebSocket broadcast server",
      ),
      unit: "MiB",
      goal: { atMost: 1.1 },
    },
  ];
}

/**
 * `followers` followers of one log growing at `rate` bytes/s for
 * `seconds`, Spool at each of `checkpoints` next to Redis pub/sub and a
 * bare WebSocket broadcast, `runs` interleaved runs of each.
 */
export async function benchFanOut(options: FanOutOptions): Promise<BenchRow[]> {
  const runs = await interleavedRuns(options);
  const note =
    `median of ${options.runs} interleaved runs per side (min–max in the cell): bare broadcast, Redis, then Spool at each checkpoint; ${
      writeSize(options.rate)
    }-byte writes every ${TICK_MS} ms, each stamped with the time it was written, so every follower measures write → follower latency (producer and followers are separate processes on one clock); p99 is over every write at every follower; Redis runs with no persistence and no output-buffer limit for subscribers (none is dropped: each must get every byte, as a Spool follower does); peak RSS is sampled every write; CPU is user + system seconds of the server, the followers' process and the producer (this process) from the first write until every follower had every byte, per GB delivered (bytes × followers), from /proc/PID/stat`;
  return options.checkpoints.flatMap((ms) =>
    checkpointRows(options, ms, runs, note)
  );
}
