/**
 * Cross-node benchmark: two Spool nodes on one NATS JetStream engine. An
 * upload on node A followed on node B, next to the same upload followed on
 * node A, interleaved run by run.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { openDownload, startUpload } from "../mod.ts";
import { type Listening, spawnSpool, track } from "./_process.ts";
import { type BenchRow, spreadOf } from "./_row.ts";
import { BenchError } from "./_bounded.ts";

const MIB = 1024 * 1024;
/** Debian's nats-server; `NATS_SERVER` overrides it. */
const NATS_SERVER = Deno.env.get("NATS_SERVER") ?? "/usr/sbin/nats-server";
/** Bytes per upload write. */
const WRITE_BYTES = 256 * 1024;
/** Longest one upload + follow may take before the run gives up, in ms. */
const RUN_TIMEOUT_MS = 120_000;

/** The rows' figures for `mib` MiB: against node A, and against a lone node on its file store. */
export function crossNodeRows(mib: number): [string, string] {
  const figure =
    `cross-node follow, ${mib} MiB: upload on node A, follower on node B`;
  return [
    `${figure}, vs both on node A`,
    `${figure}, vs a single node on its file store (no --nats)`,
  ];
}

/** A nats-server with JetStream on a free loopback port; stopped by pid. */
async function startNats(): Promise<
  { url: string; stop(): Promise<void> }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir({ prefix: "spool-bench-nats-" });
  // Tracked: a benchmark that gives up kills it with the Spool nodes.
  const child = track(new Deno.Command(NATS_SERVER, {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    env: { GOMEMLIMIT: "256MiB" },
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

/**
 * Uploads `data` `mib` times to `uploadNode` while a follower on
 * `followNode` reads it; MiB/s from the first write to the follower's last
 * byte. Throws if the follower's bytes differ from the upload's.
 */
async function followRun(
  uploadNode: URL,
  followNode: URL,
  data: Uint8Array,
  mib: number,
): Promise<number> {
  const upload = await startUpload(uploadNode, { name: "cross-node.bin" });
  const follower = await openDownload(onNode(upload.reference, followNode));
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
  const writes = (mib * MIB) / WRITE_BYTES;
  for (let i = 0; i < writes; i++) {
    const at = (i * WRITE_BYTES) % data.byteLength;
    await upload.write(data.subarray(at, at + WRITE_BYTES));
  }
  const status = await upload.finish();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = await Promise.race([
    reading,
    new Promise<never>((_, reject) =>
      timer = setTimeout(
        () =>
          reject(
            new BenchError(
              `cross-node: the follower on ${followNode.host} did not end within ${RUN_TIMEOUT_MS} ms of the upload's end`,
            ),
          ),
        RUN_TIMEOUT_MS,
      )
    ),
  ]).finally(() => clearTimeout(timer));
  await Promise.all([upload.closed(), follower.close()]);
  if (read.bytes !== status.size || read.sha256 !== status.sha256) {
    throw new BenchError(
      `cross-node: the follower on ${followNode.host} read ${read.bytes} bytes (SHA-256 ${read.sha256}); expected the upload's ${status.size} bytes (SHA-256 ${status.sha256})`,
    );
  }
  return mib / ((read.at - started) / 1000);
}

/** The row saying why the benchmark did not run. */
function skippedRow(mib: number, why: string): BenchRow {
  console.error(`bench: skipping cross-node follow: ${why}`);
  return {
    figure: crossNodeRows(mib)[0],
    value: NaN,
    unit: "MiB/s",
    baseline: `skipped: ${why}`,
    baselineValue: NaN,
    goal: "info",
  };
}

/**
 * Throughput of an upload on node A followed on node B, next to the same
 * upload followed on node A: `runs` interleaved runs of each.
 */
export async function benchCrossNode(
  mib: number,
  runs: number,
): Promise<BenchRow[]> {
  try {
    await Deno.stat(NATS_SERVER);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return [
      skippedRow(mib, `${NATS_SERVER} is missing (apt install nats-server)`),
    ];
  }
  const nats = await startNats();
  const secretDir = await Deno.makeTempDir({ prefix: "spool-bench-secret-" });
  const nodes: Listening[] = [];
  try {
    const secret = `${secretDir}/secret.key`;
    const key = crypto.getRandomValues(new Uint8Array(32));
    await Deno.writeTextFile(
      secret,
      Array.from(key, (b) => b.toString(16).padStart(2, "0")).join(""),
      { mode: 0o600 },
    );
    const args = ["--nats", nats.url, "--secret-file", secret];
    nodes.push(
      await spawnSpool(args),
      await spawnSpool(args),
      await spawnSpool(),
    );
    const [a, b, alone] = nodes;
    const data = new Uint8Array(MIB);
    // getRandomValues fills at most 64 KiB per call.
    for (let at = 0; at < MIB; at += 65536) {
      crypto.getRandomValues(data.subarray(at, at + 65536));
    }
    const cross: number[] = [], single: number[] = [], files: number[] = [];
    for (let i = 0; i < runs; i++) {
      cross.push(await followRun(a.url, b.url, data, mib));
      single.push(await followRun(a.url, a.url, data, mib));
      files.push(await followRun(alone.url, alone.url, data, mib));
    }
    const value = spreadOf(cross), baseline = spreadOf(single);
    const fileStore = spreadOf(files);
    const [vsNodeA, vsFileStore] = crossNodeRows(mib);
    const note =
      `two Spool nodes on one nats-server (JetStream, file store), default checkpoint interval; MiB/s from the first write (${
        WRITE_BYTES / 1024
      } KiB each) to the follower's last byte, follower's SHA-256 checked; median of ${runs} interleaved runs per side (min–max in the cell); the file-store node is a third server without --nats`;
    return [{
      figure: vsNodeA,
      value: value.median,
      unit: "MiB/s",
      baseline: "the same upload followed on node A",
      baselineValue: baseline.median,
      spread: { value, baseline },
      goal: "info",
      note,
    }, {
      figure: vsFileStore,
      value: value.median,
      unit: "MiB/s",
      baseline: "the same upload and follow on one node with its file store",
      baselineValue: fileStore.median,
      spread: { value, baseline: fileStore },
      // Issue 14: throughput A→B at least 0.6× a single node.
      goal: 0.6,
      note,
    }];
  } finally {
    for (const node of nodes) await node.stop();
    await nats.stop();
    await Deno.remove(secretDir, { recursive: true });
  }
}
