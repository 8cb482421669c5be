/**
 * Small writes: 4 KiB every 5 ms through a Spool server at checkpoint 0,
 * write → follower latency, next to the same writes over Deno's built-in
 * WebSocket through a bare relay (one message per write, no protocol, no
 * store). Runs interleave; each side reports min/median/max over them.
 */

import { openDownload, startUpload } from "../mod.ts";
import { spawnListening, spawnSpool } from "./_process.ts";
import { type BenchRow, spreadOf } from "./_row.ts";

/** Bytes per write. */
const WRITE_BYTES = 4096;
/** Milliseconds between writes. */
const WRITE_EVERY_MS = 5;

/** What one run measured, in ms. */
interface Percentiles {
  p50: number;
  p99: number;
}

function percentiles(latencies: number[]): Percentiles {
  const sorted = latencies.toSorted((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One Spool run: `writes` writes, each timed until the follower has it. */
async function spoolRun(server: URL, writes: number): Promise<Percentiles> {
  const upload = await startUpload(server, { name: "small-writes.log" });
  const follower = await openDownload(upload.reference);
  const sentAt: number[] = [];
  const latencies: number[] = [];
  const reading = (async () => {
    let received = 0;
    for await (const chunk of follower.follow()) {
      const now = performance.now();
      const before = Math.floor(received / WRITE_BYTES);
      received += chunk.byteLength;
      // Every write this chunk completes arrived now.
      for (let i = before; i < Math.floor(received / WRITE_BYTES); i++) {
        latencies.push(now - sentAt[i]);
      }
    }
  })();
  const bytes = new Uint8Array(WRITE_BYTES);
  for (let i = 0; i < writes; i++) {
    sentAt.push(performance.now());
    await upload.write(bytes.fill(i & 0xff));
    await pause(WRITE_EVERY_MS);
  }
  await upload.finish();
  await reading;
  await Promise.all([upload.closed(), follower.close()]);
  if (latencies.length !== writes) {
    throw new Error(
      `the follower got ${latencies.length} of ${writes} writes`,
    );
  }
  return percentiles(latencies);
}

function opened(socket: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`cannot open ${socket.url}`));
  });
}

/** One baseline run: built-in WebSockets, producer → bare relay → follower. */
async function bareRun(relay: URL, writes: number): Promise<Percentiles> {
  const fanUrl = new URL("fan", relay);
  fanUrl.protocol = "ws:";
  const follower = new WebSocket(fanUrl);
  follower.binaryType = "arraybuffer";
  const ready = new Promise((resolve) => follower.onmessage = resolve);
  await opened(follower);
  await ready;
  const produceUrl = new URL("produce", relay);
  produceUrl.protocol = "ws:";
  const producer = new WebSocket(produceUrl);
  await opened(producer);
  const sentAt: number[] = [];
  const latencies: number[] = [];
  const all = Promise.withResolvers<void>();
  follower.onmessage = () => {
    latencies.push(performance.now() - sentAt[latencies.length]);
    if (latencies.length === writes) all.resolve();
  };
  const bytes = new Uint8Array(WRITE_BYTES);
  for (let i = 0; i < writes; i++) {
    sentAt.push(performance.now());
    producer.send(bytes.fill(i & 0xff));
    await pause(WRITE_EVERY_MS);
  }
  await all.promise;
  await Promise.all([producer, follower].map((socket) => {
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    return closed;
  }));
  return percentiles(latencies);
}

/**
 * 4 KiB writes every 5 ms at checkpoint 0: write → follower latency p50
 * and p99 (median of `runs`), next to Deno's WebSocket through a bare relay.
 */
export async function benchSmallWrites(
  writes: number,
  runs: number,
): Promise<BenchRow[]> {
  const spool = await spawnSpool(["--checkpoint-ms", "0"]);
  const relay = await spawnListening("_ws_baseline_server.ts", []);
  const ours: Percentiles[] = [];
  const bare: Percentiles[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      bare.push(await bareRun(relay.url, writes));
      ours.push(await spoolRun(spool.url, writes));
    }
  } finally {
    await spool.stop();
    await relay.stop();
  }
  const label = "4 KiB writes every 5 ms, checkpoint 0, follower latency";
  const note =
    `${writes} writes per run, ${runs} interleaved runs; the value and baseline are the medians over the runs (min–max in the cell). Baseline: the same writes from a Deno WebSocket through a bare relay (bench/_ws_baseline_server.ts /produce → /fan) to a Deno WebSocket.`;
  return (["p50", "p99"] as const).map((key) => {
    const value = spreadOf(ours.map((run) => run[key]));
    const baseline = spreadOf(bare.map((run) => run[key]));
    return {
      figure: `${label} ${key}`,
      value: value.median,
      unit: "ms",
      baseline: "Deno WebSocket, one message per write, via a bare relay",
      baselineValue: baseline.median,
      spread: { value, baseline },
      goal: { valueAtMost: key === "p50" ? 1 : 5 },
      note,
    };
  });
}
