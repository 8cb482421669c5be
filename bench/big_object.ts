/**
 * One big object through the command line, as a user runs it: `spool send`
 * of one file to a `spool receive` (both subprocesses, on 127.0.0.1), next
 * to `cp` and `sync` of the same file, interleaved run by run on the same
 * disk. Every run checks the stored file's size and sha256.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BenchError } from "./_bounded.ts";
import { spawnListening } from "./_process.ts";
import { type BenchRow, spreadOf } from "./_row.ts";
import { fileSha256 } from "../testing/files.ts";
import { CpuMeter, exitedChildrenCpuSeconds } from "../testing/process_cpu.ts";

const MIB = 1024 * 1024;
const SPOOL = new URL("../spool.ts", import.meta.url).pathname;

/** Parameters of {@linkcode benchBigObject}. */
export interface BigObjectOptions {
  /** Size of the object, in MiB. */
  mib: number;
  /** Runs of each side, interleaved; the medians count. */
  runs: number;
}

/** Runs a command to its end; throws a {@linkcode BenchError} if it fails. */
async function run(command: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new BenchError(
      `${command} ${args.join(" ")} exited with ${code}: ${
        new TextDecoder().decode(stderr).trim()
      }`,
    );
  }
}

/**
 * Seconds `fn` takes, `sync` included (the bytes are on the disk at the
 * end), and the CPU seconds of the subprocesses it ran and of `pids`.
 */
async function timed(
  fn: () => Promise<void>,
  pids: number[],
): Promise<{ seconds: number; cpu: number }> {
  await run("sync", []);
  const meter = await CpuMeter.start(pids);
  const children = exitedChildrenCpuSeconds();
  const started = performance.now();
  await fn();
  await run("sync", []);
  const seconds = (performance.now() - started) / 1000;
  const cpu = await meter.stop() + exitedChildrenCpuSeconds() - children;
  return { seconds, cpu };
}

/** Writes `mib` MiB of distinct pseudo-random bytes to `path`; returns their sha256. */
async function writeSource(path: string, mib: number): Promise<string> {
  const block = new Uint8Array(MIB);
  for (let at = 0; at < MIB; at += 65536) {
    crypto.getRandomValues(block.subarray(at, at + 65536));
  }
  const view = new DataView(block.buffer);
  const hash = createHash("sha256");
  using file = await Deno.open(path, { write: true, createNew: true });
  for (let i = 0; i < mib; i++) {
    // Each MiB differs, so a misplaced one changes the hash.
    view.setFloat64(0, i);
    hash.update(block);
    for (let at = 0; at < MIB;) at += await file.write(block.subarray(at));
  }
  return hash.digest("hex");
}

/** Peak resident memory of `pid` in bytes (Linux /proc). */
async function peakRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/^VmHWM:\s+(\d+) kB$/m)?.[1] ?? NaN) * 1024;
}

/**
 * One `mib` MiB object, `spool send` → `spool receive`, in seconds until
 * the stored file is on the disk (send's exit, then `sync`), next to `cp`
 * + `sync` of the same file.
 */
export async function benchBigObject(
  options: BigObjectOptions,
): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "spool-bench-big-" });
  try {
    const source = `${dir}/object.bin`;
    const sha = await writeSource(source, options.mib);
    await Deno.mkdir(`${dir}/in`);
    const stored = `${dir}/in/object.bin`;
    const copy = `${dir}/copy.bin`;
    const receiver = await spawnListening(SPOOL, [
      "receive",
      "--port",
      "0",
      "--dir",
      `${dir}/in`,
      "--quiet",
    ]);
    const tiny = `${dir}/tiny.bin`;
    await Deno.writeFile(tiny, new Uint8Array([1]));
    const send = (file: string) =>
      run(Deno.execPath(), [
        "run",
        "-A",
        SPOOL,
        "send",
        "--quiet",
        receiver.url.href,
        file,
      ]);
    const spool: { seconds: number; cpu: number }[] = [];
    const cp: { seconds: number; cpu: number }[] = [];
    /** A 1-byte send: what a send costs whatever its size (start, handshake). */
    const fixed: { seconds: number; cpu: number }[] = [];
    let peak: number;
    try {
      for (let i = 0; i < options.runs; i++) {
        spool.push(await timed(() => send(source), [receiver.process.pid]));
        const got = await fileSha256(stored);
        if (got !== sha) {
          throw new BenchError(
            `spool receive stored a file with sha256 ${got}, expected ${sha} (the sent file's)`,
          );
        }
        await Deno.remove(stored);
        cp.push(await timed(() => run("cp", [source, copy]), []));
        await Deno.remove(copy);
        fixed.push(await timed(() => send(tiny), [receiver.process.pid]));
      }
      peak = await peakRss(receiver.process.pid);
    } finally {
      await receiver.stop();
    }
    const figure =
      `one ${options.mib} MiB object, spool send → spool receive vs cp + sync of the same file`;
    const value = spreadOf(spool.map((run) => run.seconds));
    const baseline = spreadOf(cp.map((run) => run.seconds));
    const gb = (options.mib * MIB) / 1e9;
    const start = spreadOf(fixed.map((run) => run.seconds));
    const startCpu = spreadOf(fixed.map((run) => run.cpu));
    return [{
      figure,
      value: value.median,
      unit: "s",
      baseline: "cp + sync",
      baselineValue: baseline.median,
      spread: { value, baseline },
      cpu: {
        unit: "CPU-s/GB",
        value: spreadOf(spool.map((run) => run.cpu / gb)).median,
        baseline: spreadOf(cp.map((run) => run.cpu / gb)).median,
      },
      goal: { atMost: 1.5 },
      note:
        `median of ${options.runs} runs per side (min–max in the cell), interleaved, each from a sync to a sync; a new \`spool send\` process per run, its start included (a 1-byte \`spool send\` to the same receiver, sync to sync, interleaved: ${
          start.median.toFixed(2)
        } s (${start.min.toFixed(2)}–${start.max.toFixed(2)}), ${
          startCpu.median.toFixed(2)
        } CPU-s: two isolates, the send loop's worker, connecting, the confirmation); each run checks the stored file's sha256 against the sent file's; CPU is user + system seconds of \`spool send\`, \`cp\` and \`sync\` (waited-for children of the bench, from /proc/self/stat) and of the receiver (from /proc/PID/stat), per GB; the receiver's peak RSS over all runs: ${
          (peak / MIB).toFixed(0)
        } MiB`,
    }];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
