/**
 * Live-resource benchmarks: each figure next to a baseline measured in the
 * same run. Servers and load generators are separate processes.
 */

import { openDownload, startUpload } from "../mod.ts";
import { CpuMeter } from "../testing/process_cpu.ts";
import {
  flushDirtyPages,
  runLoad,
  spawnListening,
  spawnSpool,
  startLoad,
} from "./_process.ts";
import { type BenchRow, spreadOf } from "./_row.ts";

const MIB = 1024 * 1024;

function mibPerSecond(result: Record<string, unknown>): number {
  return (Number(result.bytes) / MIB) / (Number(result.ms) / 1000);
}

/** One transfer: its rate and the CPU seconds per GB of server and client. */
interface TransferRun {
  mibPerSecond: number;
  cpuPerGb: number;
  reference?: string;
}

/**
 * Runs load `args` against `server`: its MiB/s, and the CPU of the server
 * (from /proc) and of the load process (its own report) per GB moved.
 */
async function transferRun(
  server: { process: Deno.ChildProcess },
  args: string[],
): Promise<TransferRun> {
  const cpu = await CpuMeter.start([server.process.pid]);
  const result = await runLoad(args);
  const seconds = await cpu.stop() + Number(result.cpuSeconds);
  return {
    mibPerSecond: mibPerSecond(result),
    cpuPerGb: seconds / (Number(result.bytes) / 1e9),
    reference: result.reference === undefined
      ? undefined
      : String(result.reference),
  };
}

/** The row fields of Spool's runs next to the baseline's. */
function transferFigures(
  ours: TransferRun[],
  theirs: TransferRun[],
): Pick<BenchRow, "value" | "baselineValue" | "spread" | "cpu"> {
  const value = spreadOf(ours.map((run) => run.mibPerSecond));
  const baseline = spreadOf(theirs.map((run) => run.mibPerSecond));
  return {
    value: value.median,
    baselineValue: baseline.median,
    spread: { value, baseline },
    cpu: {
      unit: "CPU-s/GB",
      value: spreadOf(ours.map((run) => run.cpuPerGb)).median,
      baseline: spreadOf(theirs.map((run) => run.cpuPerGb)).median,
    },
  };
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
    // moved the same upload between 307 and 885 MiB/s on this disk). And
    // the order alternates: the upload right after the baseline's (whose
    // server buffers the whole upload) cost its server 1.3-1.45x the CPU
    // of the same upload run first (medians, bench/ANALYSIS.md).
    const baseUp: TransferRun[] = [], spoolUp: TransferRun[] = [];
    const baseDown: TransferRun[] = [], spoolDown: TransferRun[] = [];
    const uploadBaseline = async () => {
      await flushDirtyPages();
      baseUp.push(
        await transferRun(baseline, ["ws-upload", upWs.href, String(mib)]),
      );
    };
    const uploadSpool = async () => {
      await flushDirtyPages();
      const up = await transferRun(spool, [
        "spool-upload",
        spool.url.href,
        String(mib),
      ]);
      reference = up.reference!;
      spoolUp.push(up);
    };
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) await uploadBaseline().then(uploadSpool);
      else await uploadSpool().then(uploadBaseline);
    }
    await flushDirtyPages();
    for (let i = 0; i < runs; i++) {
      baseDown.push(await transferRun(baseline, ["ws-download", downWs.href]));
      spoolDown.push(await transferRun(spool, ["spool-download", reference]));
    }
    const note =
      `median of ${runs} interleaved runs per side (min–max in the cell), each upload after a \`sync\`, which side goes first alternating; both upload sides hash the bytes (SHA-256) on both ends and check the hashes; CPU is user + system seconds of the server (from /proc/PID/stat) and of the client process (its own report) over each transfer, per GB moved`;
    return [
      {
        figure: `live upload, ${mib} MiB`,
        ...transferFigures(spoolUp, baseUp),
        unit: "MiB/s",
        baseline:
          "plain WebSocket blast, bufferedAmount pacing, SHA-256 on both ends",
        // Issue 15: the median of 5 interleaved runs at least 0.9×.
        goal: 0.9,
        note,
      },
      {
        figure: `live download of a finished ${mib} MiB resource`,
        ...transferFigures(spoolDown, baseDown),
        unit: "MiB/s",
        baseline: "plain WebSocket blast, bufferedAmount pacing",
        goal: 0.8,
        note,
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
