/**
 * Live-resource benchmarks: each figure next to a baseline measured in the
 * same run. Servers and load generators are separate processes.
 */

import { openDownload, startUpload } from "../mod.ts";
import { runLoad, spawnListening, spawnSpool, startLoad } from "./_process.ts";
import type { BenchRow } from "./_row.ts";

const MIB = 1024 * 1024;

function mibPerSecond(result: Record<string, unknown>): number {
  return (Number(result.bytes) / MIB) / (Number(result.ms) / 1000);
}

/** CPU-seconds per GB (1e9 bytes) of a load's run. */
function cpuPerGb(result: Record<string, unknown>): number {
  return Number(result.cpuSeconds) / (Number(result.bytes) / 1e9);
}

function cpuRange(values: number[]): string {
  return `${Math.min(...values).toFixed(2)}/${Math.max(...values).toFixed(2)}`;
}

/** Writes dirty pages back (`sync`), so one run's writes do not slow the next. */
async function flushDirtyPages(): Promise<void> {
  try {
    await new Deno.Command("sync").output();
  } catch (error) {
    // No `sync` binary (not Unix): runs are then only interleaved.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Upload and download of `mib` MiB: Spool vs a plain WebSocket blast. */
export async function benchTransfer(
  mib: number,
  runs: number,
): Promise<BenchRow[]> {
  const spool = await spawnSpool();
  const baseline = await spawnListening("_ws_baseline_server.ts", []);
  try {
    let reference = "";
    const upWs = new URL("up", baseline.url);
    upWs.protocol = "ws:";
    const downWs = new URL(`down?bytes=${mib * MIB}`, baseline.url);
    downWs.protocol = "ws:";
    // Interleaved, each run after a `sync`: whoever writes second would
    // otherwise pay for the first one's dirty pages (writeback throttling
    // moved the same upload between 307 and 885 MiB/s on this disk).
    let baseUp = 0, spoolUp = 0, baseDown = 0, spoolDown = 0;
    // Client CPU-seconds per GB of each run: steadier than MiB/s on a busy machine.
    const baseCpu: number[] = [], spoolCpu: number[] = [];
    for (let i = 0; i < runs; i++) {
      await flushDirtyPages();
      const blast = await runLoad(["ws-upload", upWs.href, String(mib)]);
      baseUp = Math.max(baseUp, mibPerSecond(blast));
      baseCpu.push(cpuPerGb(blast));
      await flushDirtyPages();
      const result = await runLoad([
        "spool-upload",
        spool.url.href,
        String(mib),
      ]);
      reference = String(result.reference);
      spoolUp = Math.max(spoolUp, mibPerSecond(result));
      spoolCpu.push(cpuPerGb(result));
    }
    await flushDirtyPages();
    for (let i = 0; i < runs; i++) {
      baseDown = Math.max(
        baseDown,
        mibPerSecond(await runLoad(["ws-download", downWs.href])),
      );
      spoolDown = Math.max(
        spoolDown,
        mibPerSecond(await runLoad(["spool-download", reference])),
      );
    }
    return [
      {
        figure: `live upload, ${mib} MiB (client CPU-s/GB min/max ${
          cpuRange(spoolCpu)
        }, blast ${cpuRange(baseCpu)})`,
        value: spoolUp,
        unit: "MiB/s",
        baseline: "plain WebSocket blast, bufferedAmount pacing",
        baselineValue: baseUp,
        goal: 0.8,
      },
      {
        figure: `live download of a finished ${mib} MiB resource`,
        value: spoolDown,
        unit: "MiB/s",
        baseline: "plain WebSocket blast, bufferedAmount pacing",
        baselineValue: baseDown,
        goal: 0.8,
      },
    ];
  } finally {
    await spool.stop();
    await baseline.stop();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ];
}

/**
 * Producer write → follower has the bytes. The producer and the follower
 * share this process (one clock); the server is a subprocess.
 */
export async function benchFollowLatency(
  intervalMs: number,
  writes: number,
): Promise<BenchRow[]> {
  const spool = await spawnSpool(["--checkpoint-ms", String(intervalMs)]);
  try {
    const upload = await startUpload(spool.url, { name: "latency.log" });
    const follower = await openDownload(upload.reference);
    const sentAt: number[] = [];
    const latencies: number[] = [];
    const reading = (async () => {
      let received = 0;
      for await (const chunk of follower.follow()) {
        const now = performance.now();
        const before = received;
        received += chunk.byteLength;
        // Every 8-byte record is one write; all records in this chunk arrived now.
        for (
          let index = Math.ceil(before / 8);
          index * 8 + 8 <= received;
          index++
        ) {
          latencies.push(now - sentAt[index]);
        }
      }
    })();
    const record = new Uint8Array(8);
    for (let i = 0; i < writes; i++) {
      sentAt.push(performance.now());
      await upload.write(record);
      // Spread writes over time, like a log being produced.
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    await upload.finish();
    await reading;
    await Promise.all([upload.closed(), follower.close()]);
    latencies.sort((a, b) => a - b);
    const limit = intervalMs + 10;
    return [
      {
        figure: `follow latency p50, checkpoint ${intervalMs} ms`,
        value: percentile(latencies, 50),
        unit: "ms",
        baseline: "checkpoint interval + 10 ms",
        baselineValue: limit,
        goal: "lower",
      },
      {
        figure: `follow latency p99, checkpoint ${intervalMs} ms`,
        value: percentile(latencies, 99),
        unit: "ms",
        baseline: "checkpoint interval + 10 ms",
        baselineValue: limit,
        goal: "lower",
      },
    ];
  } finally {
    await spool.stop();
  }
}

interface FanOutRun {
  complete: number;
  lagMs: number;
  peakRss: number;
}

/** Writes `rate` bytes/s for `seconds` with `write`, sampling `rss` as it goes. */
async function produce(
  write: (chunk: Uint8Array) => Promise<void>,
  rss: () => Promise<number>,
  rate: number,
  seconds: number,
): Promise<number> {
  const tick = 50;
  const chunk = new Uint8Array(Math.round((rate * tick) / 1000));
  let peak = await rss();
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    await write(chunk);
    peak = Math.max(peak, await rss());
    await new Promise((resolve) => setTimeout(resolve, tick));
  }
  return peak;
}

async function fanOutSpool(
  followers: number,
  rate: number,
  seconds: number,
): Promise<FanOutRun> {
  const spool = await spawnSpool();
  try {
    const upload = await startUpload(spool.url, { name: "fanout.log" });
    const load = startLoad(["followers", upload.reference, String(followers)]);
    await load.next(); // every follower connected
    const peakRss = await produce(
      (chunk) => upload.write(chunk),
      spool.rss,
      rate,
      seconds,
    );
    const ended = performance.now();
    await upload.finish();
    await upload.closed();
    const result = await load.next();
    const lagMs = performance.now() - ended;
    await load.process.status;
    return { complete: Number(result.complete), lagMs, peakRss };
  } finally {
    await spool.stop();
  }
}

async function fanOutBare(
  followers: number,
  rate: number,
  seconds: number,
): Promise<FanOutRun> {
  const baseline = await spawnListening("_ws_baseline_server.ts", []);
  try {
    const fan = new URL("fan", baseline.url);
    fan.protocol = "ws:";
    const load = startLoad(["ws-followers", fan.href, String(followers)]);
    await load.next();
    const produceUrl = new URL("produce", baseline.url);
    produceUrl.protocol = "ws:";
    const producer = new WebSocket(produceUrl);
    await new Promise((resolve) => producer.onopen = resolve);
    const peakRss = await produce(
      (chunk) => {
        producer.send(chunk);
        return Promise.resolve();
      },
      baseline.rss,
      rate,
      seconds,
    );
    const ended = performance.now();
    producer.send("end");
    const result = await load.next();
    const lagMs = performance.now() - ended;
    const closed = new Promise((resolve) => producer.onclose = resolve);
    producer.close();
    await closed;
    await load.process.status;
    return { complete: Number(result.complete), lagMs, peakRss };
  } finally {
    await baseline.stop();
  }
}

/**
 * `followers` followers of one resource growing at `rate` bytes/s for
 * `seconds`, next to a bare WebSocket broadcast of the same bytes to as many
 * plain sockets (no protocol, no store, no flow control: the runtime's floor).
 */
export async function benchFanOut(
  followers: number,
  rate: number,
  seconds: number,
): Promise<BenchRow[]> {
  const bare = await fanOutBare(followers, rate, seconds);
  const spool = await fanOutSpool(followers, rate, seconds);
  const label = `${followers} followers, ${rate / 1e6} MB/s for ${seconds} s`;
  return [
    {
      figure:
        `fan-out: ${label}: followers complete (${spool.complete}/${followers})`,
      value: spool.lagMs,
      unit: "ms after the last write until all had every byte",
      baseline: "bare WebSocket broadcast lag",
      baselineValue: bare.lagMs,
      goal: "info",
    },
    {
      figure: `fan-out: ${label}: server peak RSS`,
      value: spool.peakRss / MIB,
      unit: "MiB",
      baseline: `goal 300 MB (bare broadcast server: ${
        (bare.peakRss / MIB).toFixed(0)
      } MiB)`,
      baselineValue: 300e6 / MIB,
      goal: "lower",
    },
  ];
}

/**
 * RSS once it stops falling: the handshakes leave garbage that V8 collects
 * when idle, and counting it would blame idle sockets for it.
 */
async function settledRss(rss: () => Promise<number>): Promise<number> {
  let low = await rss();
  for (let quiet = 0; quiet < 5;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = await rss();
    if (now < low - 64 * 1024) {
      low = now;
      quiet = 0;
    } else quiet++;
  }
  return low;
}

async function idleCost(
  server: { rss(): Promise<number> },
  loadArgs: string[],
  count: number,
): Promise<number> {
  const before = await settledRss(server.rss);
  const load = startLoad(loadArgs);
  await load.next();
  const after = await settledRss(server.rss);
  await load.release();
  await load.next();
  await load.process.status;
  return (after - before) / count;
}

/** Server memory per idle follower, next to a bare WebSocket's. */
export async function benchIdleFollowers(count: number): Promise<BenchRow[]> {
  const baseline = await spawnListening("_ws_baseline_server.ts", []);
  let bare: number;
  try {
    const fan = new URL("fan", baseline.url);
    fan.protocol = "ws:";
    bare = await idleCost(
      baseline,
      ["ws-idle", fan.href, String(count)],
      count,
    );
  } finally {
    await baseline.stop();
  }
  const spool = await spawnSpool();
  try {
    const upload = await startUpload(spool.url, { name: "idle.log" });
    await upload.write(new Uint8Array(1000));
    const each = await idleCost(spool, [
      "idle",
      upload.reference,
      String(count),
    ], count);
    await upload.finish();
    await upload.closed();
    return [{
      figure: `${count} idle followers: server memory each (goal 20 KB)`,
      value: each / 1024,
      unit: "KiB",
      baseline: "a bare Deno.serve WebSocket",
      baselineValue: bare / 1024,
      goal: "info",
    }];
  } finally {
    await spool.stop();
  }
}

/** Aggregate throughput and server memory at growing concurrency. */
export async function benchCostGrowth(
  levels: number[],
  mib: number,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  let single = 0;
  for (const level of levels) {
    const spool = await spawnSpool();
    try {
      const load = startLoad([
        "mixed",
        spool.url.href,
        String(level),
        String(mib),
      ]);
      await load.release();
      let peak = await spool.rss();
      let result: Record<string, unknown> | undefined;
      const done = load.next().then((r) => result = r);
      while (!result) {
        peak = Math.max(peak, await spool.rss());
        await Promise.race([done, new Promise((r) => setTimeout(r, 20))]);
      }
      await load.process.status;
      const rate = mibPerSecond(result);
      if (level === levels[0]) single = rate;
      rows.push({
        figure:
          `cost growth: ${level} concurrent resources (upload + follower each), peak RSS ${
            (peak / MIB).toFixed(0)
          } MiB${result.ok ? "" : ", BYTES MISSING"}`,
        value: rate,
        unit: "MiB/s",
        baseline: `${levels[0]} resource(s)`,
        baselineValue: single,
        goal: "info",
      });
    } finally {
      await spool.stop();
    }
  }
  return rows;
}
