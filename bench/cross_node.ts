/**
 * Cross-node benchmark: two Spool nodes on one NATS JetStream engine, next
 * to a third node on its file store (no `--nats`), run by run interleaved:
 * - throughput: an upload on node A followed on node B, next to the same
 *   upload followed on node A and on the lone node;
 * - follow latency: small stamped writes at a steady rate on node A,
 *   write → follower p50 and p99 on node B, on node A and on the lone node;
 * - memory: the peak RSS of nats-server and of each node during the
 *   throughput run, next to the lone node's during its own.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { openDownload, startUpload } from "../mod.ts";
import { DEFAULT_CHECKPOINT_MS } from "../server/defaults.ts";
import {
  flushDirtyPages,
  type Listening,
  sampleRss,
  spawnSpool,
  track,
} from "./_process.ts";
import { type BenchRow, type Spread, spreadOf } from "./_row.ts";
import { BenchError } from "./_bounded.ts";
import { cpuSecondsOf } from "../testing/process_cpu.ts";
import { stampedWrite, summarize, WriteLatencies } from "./_stamps.ts";

const MIB = 1024 * 1024;
/** Debian's nats-server; `NATS_SERVER` overrides it. */
const NATS_SERVER = Deno.env.get("NATS_SERVER") ?? "/usr/sbin/nats-server";
/** Memory limit of nats-server, as docs/cluster.md advises. */
const NATS_GOMEMLIMIT = "256MiB";
/** Bytes per upload write of the throughput runs. */
const WRITE_BYTES = 256 * 1024;
/** Bytes per write of the latency runs: a small log line's batch. */
const LINE_BYTES = 4096;
/** Milliseconds between writes of the latency runs. */
const LINE_EVERY_MS = 5;
/** Every node's checkpoint interval: the default, given explicitly. */
const CHECKPOINT_MS = DEFAULT_CHECKPOINT_MS;
/** Issue 14's goal for the p99 across nodes: the interval + 20 ms. */
const LATENCY_GOAL_MS = CHECKPOINT_MS + 20;
/** Issue 14's goal for the p99 across nodes at checkpoint 0, in ms. */
const LATENCY_GOAL_AT_ZERO_MS = 20;
/** Longest one upload + follow may take before the run gives up, in ms. */
const RUN_TIMEOUT_MS = 120_000;

/** Each row's figure, in the order {@linkcode benchCrossNode} reports them. */
export function crossNodeRows(mib: number): string[] {
  const figure =
    `cross-node follow, ${mib} MiB: upload on node A, follower on node B`;
  const latency = (p: string, interval = CHECKPOINT_MS) =>
    `cross-node follow latency ${p}, ${
      LINE_BYTES / 1024
    } KiB writes every ${LINE_EVERY_MS} ms, checkpoint ${interval} ms: upload on node A, follower on node B`;
  const memory = (who: string) =>
    `cross-node follow, ${mib} MiB: ${who} peak RSS, vs a single node on its file store`;
  return [
    `${figure}, vs both on node A`,
    `${figure}, vs a single node on its file store (no --nats)`,
    `${latency("p50")}, vs the follower on node A`,
    `${latency("p99")}, vs the follower on node A`,
    `${latency("p50")}, vs a single node on its file store`,
    `${latency("p99")}, vs a single node on its file store`,
    memory("nats-server"),
    memory("node A (uploader's)"),
    memory("node B (follower's)"),
    `${latency("p50", 0)}, vs the follower on node A`,
    `${latency("p99", 0)}, vs the follower on node A`,
  ];
}

/** A nats-server with JetStream on a free loopback port; stopped by pid. */
async function startNats(): Promise<
  { url: string; pid: number; stop(): Promise<void> }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir({ prefix: "spool-bench-nats-" });
  // Tracked: a benchmark that gives up kills it with the Spool nodes.
  const child = track(new Deno.Command(NATS_SERVER, {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    env: { GOMEMLIMIT: NATS_GOMEMLIMIT },
    stdout: "null",
    stderr: "piped",
  }).spawn());
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("Server is ready")) {
    const { value, done } = await lines.read();
    if (done) {
      await child.status;
      throw new BenchError(`nats-server exited before it was ready: ${said}`);
    }
    said += value;
  }
  // Its later log lines are read and dropped so that it never blocks on them.
  const draining = (async () => {
    while (!(await lines.read()).done) { /* drain */ }
  })();
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      Deno.kill(child.pid, "SIGTERM");
      await child.status;
      await draining;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `reference` with node's host. */
function onNode(reference: string, node: URL): string {
  const url = new URL(reference);
  url.host = node.host;
  return url.href;
}

/** `work`, or a BenchError naming `what` if it takes over RUN_TIMEOUT_MS. */
async function withinRunTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return await Promise.race([
    work,
    new Promise<never>((_, reject) =>
      timer = setTimeout(
        () =>
          reject(
            new BenchError(
              `cross-node: ${what} did not end within ${RUN_TIMEOUT_MS} ms of the upload's end`,
            ),
          ),
        RUN_TIMEOUT_MS,
      )
    ),
  ]).finally(() => clearTimeout(timer));
}

/** What one throughput run measured. */
interface ThroughputRun {
  mibPerSecond: number;
  /** Peak RSS in bytes of each process sampled, from first write to last byte. */
  peaks: number[];
  /** CPU-seconds per GB uploaded of the processes metered (this one included). */
  cpuPerGb: number;
}

/**
 * Uploads `data` `mib` times to `uploadNode` while a follower on
 * `followNode` reads it; MiB/s from the first write to the follower's last
 * byte, and the peak RSS of the processes `sampled` meanwhile. Throws if
 * the follower's bytes differ from the upload's.
 */
async function followRun(
  uploadNode: URL,
  followNode: URL,
  data: Uint8Array,
  options: { mib: number; sampled: number[]; metered: number[] },
): Promise<ThroughputRun> {
  // The lone node writes a file, nats-server its stream's blocks: each side
  // starts with the earlier runs' pages written back, not paying for them.
  await flushDirtyPages();
  const upload = await startUpload(uploadNode, { name: "cross-node.bin" });
  const follower = await openDownload(onNode(upload.reference, followNode));
  const sampler = sampleRss(options.sampled);
  const metered = [Deno.pid, ...options.metered];
  const cpuBefore = await Promise.all(metered.map(cpuSecondsOf));
  const started = performance.now();
  const reading = (async () => {
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of follower.follow()) {
      hash.update(chunk);
      bytes += chunk.byteLength;
    }
    return { bytes, sha256: hash.digest("hex"), at: performance.now() };
  })();
  const writes = (options.mib * MIB) / WRITE_BYTES;
  for (let i = 0; i < writes; i++) {
    const at = (i * WRITE_BYTES) % data.byteLength;
    await upload.write(data.subarray(at, at + WRITE_BYTES));
  }
  const status = await upload.finish();
  const read = await withinRunTimeout(
    reading,
    `the follower on ${followNode.host}`,
  );
  const cpuOf = (await Promise.all(metered.map(cpuSecondsOf))).map((
    seconds,
    i,
  ) => seconds - cpuBefore[i]);
  const peaks = await sampler.stop();
  await Promise.all([upload.closed(), follower.close()]);
  if (read.bytes !== status.size || read.sha256 !== status.sha256) {
    throw new BenchError(
      `cross-node: the follower on ${followNode.host} read ${read.bytes} bytes (SHA-256 ${read.sha256}); expected the upload's ${status.size} bytes (SHA-256 ${status.sha256})`,
    );
  }
  const mibPerSecond = options.mib / ((read.at - started) / 1000);
  // Process by process (this one first), to show where the cores went.
  console.error(
    `bench: cross-node ${uploadNode.host} → ${followNode.host}: ${
      mibPerSecond.toFixed(1)
    } MiB/s, CPU-s ${cpuOf.map((seconds) => seconds.toFixed(2)).join(" ")}`,
  );
  return {
    mibPerSecond,
    peaks,
    cpuPerGb: cpuOf.reduce((sum, seconds) => sum + seconds, 0) /
      (options.mib * MIB / 1e9),
  };
}

/** Write → follower latency percentiles of one run, in ms. */
interface LatencyRun {
  p50: number;
  p99: number;
}

/**
 * `writes` stamped writes of LINE_BYTES every LINE_EVERY_MS to `uploadNode`,
 * followed on `followNode`; the percentiles of write → follower latency.
 * Throws unless the follower got every write, and no byte more.
 */
async function latencyRun(
  uploadNode: URL,
  followNode: URL,
  writes: number,
): Promise<LatencyRun> {
  const upload = await startUpload(uploadNode, { name: "cross-node.log" });
  const follower = await openDownload(onNode(upload.reference, followNode));
  const latencies = new WriteLatencies(LINE_BYTES);
  const reading = (async () => {
    for await (const chunk of follower.follow()) latencies.add(chunk);
  })();
  for (let i = 0; i < writes; i++) {
    await upload.write(stampedWrite(LINE_BYTES));
    await new Promise((resolve) => setTimeout(resolve, LINE_EVERY_MS));
  }
  await upload.finish();
  await withinRunTimeout(reading, `the follower on ${followNode.host}`);
  await Promise.all([upload.closed(), follower.close()]);
  if (
    latencies.values.length !== writes ||
    latencies.bytes !== writes * LINE_BYTES
  ) {
    throw new BenchError(
      `cross-node: the follower on ${followNode.host} got ${latencies.values.length} writes (${latencies.bytes} bytes); expected ${writes} (${
        writes * LINE_BYTES
      } bytes)`,
    );
  }
  const { p50, p99 } = summarize([latencies.values]);
  return { p50, p99 };
}

/** The rows saying why the benchmark did not run. */
function skippedRows(mib: number, why: string): BenchRow[] {
  console.error(`bench: skipping cross-node follow: ${why}`);
  return crossNodeRows(mib).map((figure) => ({
    figure,
    value: NaN,
    unit: "",
    baseline: `skipped: ${why}`,
    baselineValue: NaN,
    goal: "info",
  }));
}

/** Every side's runs, interleaved. */
interface Runs {
  cross: ThroughputRun[];
  nodeA: ThroughputRun[];
  alone: ThroughputRun[];
  latencyB: LatencyRun[];
  latencyA: LatencyRun[];
  latencyAlone: LatencyRun[];
  /** The same at checkpoint 0, on nodes A0 and B0. */
  latencyB0: LatencyRun[];
  latencyA0: LatencyRun[];
}

/** Three Spool nodes: two on one nats-server (A, B) and one on its file store. */
interface Cluster {
  natsPid: number;
  a: Listening;
  b: Listening;
  alone: Listening;
  /** Two more nodes on the same nats-server, at checkpoint 0. */
  a0: Listening;
  b0: Listening;
}

/** `runs` rounds, each one run of every side in turn. */
async function runAll(
  cluster: Cluster,
  options: { mib: number; runs: number; lineWrites: number },
): Promise<Runs> {
  const { a, b, alone, a0, b0 } = cluster;
  const data = new Uint8Array(MIB);
  // getRandomValues fills at most 64 KiB per call.
  for (let at = 0; at < MIB; at += 65536) {
    crypto.getRandomValues(data.subarray(at, at + 65536));
  }
  const mib = options.mib;
  const all: Runs = {
    cross: [],
    nodeA: [],
    alone: [],
    latencyB: [],
    latencyA: [],
    latencyAlone: [],
    latencyB0: [],
    latencyA0: [],
  };
  const crossPids = [cluster.natsPid, a.process.pid, b.process.pid];
  const alonePids = [alone.process.pid];
  for (let i = 0; i < options.runs; i++) {
    all.cross.push(
      await followRun(a.url, b.url, data, {
        mib,
        sampled: crossPids,
        metered: crossPids,
      }),
    );
    all.nodeA.push(
      await followRun(a.url, a.url, data, {
        mib,
        sampled: [],
        metered: crossPids.slice(0, 2),
      }),
    );
    all.alone.push(
      await followRun(alone.url, alone.url, data, {
        mib,
        sampled: alonePids,
        metered: alonePids,
      }),
    );
    all.latencyB.push(await latencyRun(a.url, b.url, options.lineWrites));
    all.latencyA.push(await latencyRun(a.url, a.url, options.lineWrites));
    all.latencyAlone.push(
      await latencyRun(alone.url, alone.url, options.lineWrites),
    );
    all.latencyB0.push(await latencyRun(a0.url, b0.url, options.lineWrites));
    all.latencyA0.push(await latencyRun(a0.url, a0.url, options.lineWrites));
  }
  return all;
}

/** The two throughput rows: A → B against A → A and against the lone node. */
function throughputRows(mib: number, runs: number, all: Runs): BenchRow[] {
  const mibs = (side: ThroughputRun[]) =>
    spreadOf(side.map((run) => run.mibPerSecond));
  const value = mibs(all.cross), baseline = mibs(all.nodeA);
  const fileStore = mibs(all.alone);
  const [vsNodeA, vsFileStore] = crossNodeRows(mib);
  const cpu = (side: ThroughputRun[]) =>
    spreadOf(side.map((run) => run.cpuPerGb)).median;
  const unit = "CPU-s/GB";
  const note =
    `two Spool nodes on one nats-server (JetStream, file store, GOMEMLIMIT=${NATS_GOMEMLIMIT}), checkpoint ${CHECKPOINT_MS} ms (the default); MiB/s from the first write (${
      WRITE_BYTES / 1024
    } KiB each) to the follower's last byte, follower's SHA-256 checked; median of ${runs} interleaved runs per side (min–max in the cell); the file-store node is a third server without --nats; CPU is user + system seconds from the first write to the last byte, per GB uploaded, of this process (uploader and follower) and the servers of the side: nats-server, A and B (A → A: nats-server and A; the lone node: itself)`;
  return [{
    figure: vsNodeA,
    value: value.median,
    unit: "MiB/s",
    baseline: "the same upload followed on node A",
    baselineValue: baseline.median,
    spread: { value, baseline },
    cpu: { unit, value: cpu(all.cross), baseline: cpu(all.nodeA) },
    goal: "info",
    note,
  }, {
    figure: vsFileStore,
    value: value.median,
    unit: "MiB/s",
    baseline: "the same upload and follow on one node with its file store",
    baselineValue: fileStore.median,
    spread: { value, baseline: fileStore },
    cpu: { unit, value: cpu(all.cross), baseline: cpu(all.alone) },
    // Issue 14: throughput A→B at least 0.6× a single node.
    goal: 0.6,
    note,
  }];
}

/** The four latency rows: B's p50 and p99 against A's, then the lone node's. */
function latencyRows(
  mib: number,
  options: { runs: number; lineWrites: number },
  all: Runs,
): BenchRow[] {
  const figures = crossNodeRows(mib).slice(2, 6);
  const note =
    `the throughput rows' nodes; ${options.lineWrites} writes of ${LINE_BYTES} bytes every ${LINE_EVERY_MS} ms on node A, each stamped with the time it was written (bench/_stamps.ts), write → follower latency of every write; p50 and p99 per run, median of ${options.runs} runs per side interleaved with the throughput runs (min–max in the cell); goal: issue 14's p99 across nodes ≤ the checkpoint interval + 20 ms`;
  const baselines = [
    { name: "the same follower on node A", runs: all.latencyA },
    {
      name: "upload and follower on one node without --nats",
      runs: all.latencyAlone,
    },
  ];
  return baselines.flatMap((side, i) =>
    latencyPair(figures.slice(i * 2, i * 2 + 2), all.latencyB, side, {
      goalMs: LATENCY_GOAL_MS,
      note,
    })
  );
}

/**
 * A p50 row and a p99 row (`figures`, in that order) of `runs` against
 * `side`'s runs; the p99 row has the goal `goalMs`.
 */
function latencyPair(
  figures: string[],
  runs: LatencyRun[],
  side: { name: string; runs: LatencyRun[] },
  options: { goalMs: number; note: string },
): BenchRow[] {
  return (["p50", "p99"] as const).map((key, j): BenchRow => {
    const value = spreadOf(runs.map((run) => run[key]));
    const baseline = spreadOf(side.runs.map((run) => run[key]));
    return {
      figure: figures[j],
      value: value.median,
      unit: "ms",
      baseline: side.name,
      baselineValue: baseline.median,
      spread: { value, baseline },
      goal: key === "p99" ? { valueAtMost: options.goalMs } : "info",
      note: options.note,
    };
  });
}

/** The two latency rows at checkpoint 0: B's p50 and p99 against A's. */
function latencyRowsAtZero(
  mib: number,
  options: { runs: number; lineWrites: number },
  all: Runs,
): BenchRow[] {
  const figures = crossNodeRows(mib).slice(9, 11);
  const note =
    `two more nodes A0 and B0 on the same nats-server with --checkpoint-ms 0 (every write is checkpointed at once); ${options.lineWrites} writes of ${LINE_BYTES} bytes every ${LINE_EVERY_MS} ms on A0, stamped (bench/_stamps.ts); p50 and p99 per run, median of ${options.runs} runs per side interleaved with the other runs (min–max in the cell); goal: issue 14's p99 across nodes ≤ ${LATENCY_GOAL_AT_ZERO_MS} ms at checkpoint 0`;
  return latencyPair(figures, all.latencyB0, {
    name: "the same follower on node A0",
    runs: all.latencyA0,
  }, { goalMs: LATENCY_GOAL_AT_ZERO_MS, note });
}

/** The three memory rows: nats-server, A and B against the lone node. */
function memoryRows(mib: number, runs: number, all: Runs): BenchRow[] {
  const figures = crossNodeRows(mib).slice(6, 9);
  const peaks = (side: ThroughputRun[], at: number): Spread =>
    spreadOf(side.map((run) => run.peaks[at] / MIB));
  const baseline = peaks(all.alone, 0);
  const note =
    `RSS (VmRSS from /proc/PID/status) sampled every 20 ms from the first write to the follower's last byte of the ${mib} MiB throughput run A → B, the highest sample per run; baseline: the lone node's during its own run; median of ${runs} runs (min–max in the cell); nats-server runs with GOMEMLIMIT=${NATS_GOMEMLIMIT}; the nodes also served the other sides' runs before, so a peak includes what a node kept from them`;
  return figures.map((figure, at) => {
    const value = peaks(all.cross, at);
    return {
      figure,
      value: value.median,
      unit: "MiB",
      baseline:
        "a single node without --nats, during the same upload and follow",
      baselineValue: baseline.median,
      spread: { value, baseline },
      goal: "info",
      note,
    };
  });
}

/** Writes a random 32-byte hex secret shared by the nodes; returns its path. */
async function writeSecret(dir: string): Promise<string> {
  const secret = `${dir}/secret.key`;
  const key = crypto.getRandomValues(new Uint8Array(32));
  await Deno.writeTextFile(
    secret,
    Array.from(key, (b) => b.toString(16).padStart(2, "0")).join(""),
    { mode: 0o600 },
  );
  return secret;
}

/**
 * Throughput, follow latency and memory of an upload on node A followed on
 * node B, next to the same followed on node A and on a lone node without
 * `--nats`: `runs` interleaved runs of each side; the latency runs make
 * `lineWrites` small writes each.
 */
export async function benchCrossNode(
  mib: number,
  options: { runs: number; lineWrites: number },
): Promise<BenchRow[]> {
  try {
    await Deno.stat(NATS_SERVER);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return skippedRows(
      mib,
      `${NATS_SERVER} is missing (apt install nats-server)`,
    );
  }
  const nats = await startNats();
  const secretDir = await Deno.makeTempDir({ prefix: "spool-bench-secret-" });
  const nodes: Listening[] = [];
  try {
    const interval = ["--checkpoint-ms", String(CHECKPOINT_MS)];
    const args = [
      ...interval,
      "--nats",
      nats.url,
      "--secret-file",
      await writeSecret(secretDir),
    ];
    const atZero = ["--checkpoint-ms", "0", ...args.slice(interval.length)];
    nodes.push(
      await spawnSpool(args),
      await spawnSpool(args),
      await spawnSpool(interval),
      await spawnSpool(atZero),
      await spawnSpool(atZero),
    );
    const [a, b, alone, a0, b0] = nodes;
    const all = await runAll({ natsPid: nats.pid, a, b, alone, a0, b0 }, {
      mib,
      ...options,
    });
    return [
      ...throughputRows(mib, options.runs, all),
      ...latencyRows(mib, options, all),
      ...memoryRows(mib, options.runs, all),
      ...latencyRowsAtZero(mib, options, all),
    ];
  } finally {
    for (const node of nodes) await node.stop();
    await nats.stop();
    await Deno.remove(secretDir, { recursive: true });
  }
}
