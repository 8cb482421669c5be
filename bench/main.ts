/**
 * `deno task bench`: runs every benchmark, prints the table and writes it to
 * `bench/RESULTS.md` with the machine, the Deno version, the date and the
 * command. Run with `--help` for the options.
 *
 * Every benchmark reports figures next to baselines measured in the same
 * run, runs on 127.0.0.1, is bounded in objects, bytes and time, and closes
 * the processes, sockets and workers it started.
 *
 * @module
 */

import { type ParsedFlags, parseFlags, UsageError } from "../cli/args.ts";
import { BenchError, BenchTimeout, bounded } from "./_bounded.ts";
import { killRunning } from "./_process.ts";
import { benchBigObject } from "./big_object.ts";
import { benchCrossNode, crossNodeRows } from "./cross_node.ts";
import { benchHttp2Reads, type Http2ReadsOptions } from "./http2_reads.ts";
import { type BenchRow, markdownTable } from "./_row.ts";
import { benchFanOut, type FanOutOptions } from "./fan_out.ts";
import { benchSmallWrites } from "./small_writes.ts";
import {
  benchCostGrowth,
  benchFollowLatency,
  benchIdleFollowers,
  benchTransfer,
} from "./live.ts";
import {
  benchTransportHeaderOnly,
  benchTransportLarge,
  benchTransportSmall,
  type TransportBenchOptions,
} from "./transport.ts";

const USAGE = `Usage: deno task bench [options]
       deno run -A bench/main.ts [options]

Runs every benchmark (live resources and object transport, each next to
baselines and peers measured in the same run: medians of interleaved runs
with their min–max, and CPU per unit of work), prints a Markdown table and
writes it to bench/RESULTS.md with the machine, Deno version, date and
command. Peers whose service or package is missing (redis-server, npm
ioredis, npm @grpc/grpc-js) are skipped, and their rows say so.

Options:
  --quick           a smoke run of every benchmark with tiny sizes (seconds);
                    does not write bench/RESULTS.md unless --out is given
  --only TEXT       run only the benchmarks whose name or row names contain
                    TEXT (case-insensitive) and print only their matching
                    rows; does not write bench/RESULTS.md unless --out is given
  --out PATH        write the results to PATH instead of bench/RESULTS.md
  --list            print the benchmark names and row names, run nothing
  -h, --help        print this help

Exit codes: 0 every benchmark ran (a goal not met is not an error); 1 a
benchmark failed (lost data, a crash, a hang past its time bound); 2 bad usage.`;

/** The default results file. */
export const RESULTS_PATH = new URL("RESULTS.md", import.meta.url);

/** One benchmark: its name, the rows it reports and how to run it. */
export interface BenchGroup {
  /** Short name, matched by `--only`. */
  name: string;
  /**
   * How each row's figure starts, in the order the benchmark reports them
   * (the rest of a figure may hold measured values).
   */
  rows: string[];
  /** Longest the benchmark may run before the whole run gives up. */
  timeoutMs: number;
  /**
   * Throws a {@linkcode BenchError} if the rows tell of lost data (for
   * benchmarks that report it in a figure rather than failing).
   */
  verify?(rows: BenchRow[]): void;
  /** Runs it. */
  run(): Promise<BenchRow[]>;
}

function transferGroup(mib: number, runs: number): BenchGroup {
  return {
    name: "live transfer",
    rows: [
      `live upload, ${mib} MiB`,
      `live download of a finished ${mib} MiB resource`,
    ],
    // Four transfers per run, each well under 30 s even at 50 MiB/s.
    timeoutMs: 60_000 + runs * 4 * Math.max(30_000, (mib / 50) * 1000),
    run: () => benchTransfer(mib, runs),
  };
}

function latencyGroup(intervalMs: number, writes: number): BenchGroup {
  return {
    name: `live follow latency, checkpoint ${intervalMs} ms`,
    rows: [
      `follow latency p50, checkpoint ${intervalMs} ms`,
      `follow latency p99, checkpoint ${intervalMs} ms`,
    ],
    timeoutMs: 120_000,
    run: () => benchFollowLatency(intervalMs, writes),
  };
}

function smallWritesGroup(writes: number, runs: number): BenchGroup {
  const label = "4 KiB writes every 5 ms, checkpoint 0, follower latency";
  return {
    name: "live small writes",
    rows: [`${label} p50`, `${label} p99`],
    timeoutMs: 60_000 + runs * writes * 40,
    run: () => benchSmallWrites(writes, runs),
  };
}

function fanOutGroup(options: FanOutOptions): BenchGroup {
  const label = `fan-out: ${options.followers} followers, ${
    options.rate / 1e6
  } MB/s for ${options.seconds} s`;
  return {
    name: "live fan-out",
    rows: options.checkpoints.flatMap((ms) => [
      `${label}, checkpoint ${ms} ms: p99 write→follower vs Redis pub/sub`,
      `${label}, checkpoint ${ms} ms: lag of the last follower vs Redis pub/sub, followers complete`,
      `${label}, checkpoint ${ms} ms: server peak RSS vs the bare broadcast server`,
    ]),
    // Every run of every side: followers connect, the log grows, it drains.
    timeoutMs: 60_000 +
      options.runs * (2 + options.checkpoints.length) *
        (130_000 + options.seconds * 1000),
    run: () => benchFanOut(options),
    verify(rows) {
      for (const row of rows) {
        const complete = row.figure.match(/complete \((\d+)\/(\d+)\)/);
        if (complete !== null && complete[1] !== complete[2]) {
          throw new BenchError(
            `fan-out: not every follower got every byte: ${
              JSON.stringify(row.figure)
            }, expected "complete (${complete[2]}/${complete[2]})"`,
          );
        }
      }
    },
  };
}

function idleGroup(count: number): BenchGroup {
  return {
    name: "live idle followers",
    rows: [`${count} idle followers: server memory each`],
    timeoutMs: 240_000,
    run: () => benchIdleFollowers(count),
  };
}

function costGroup(levels: number[], mib: number): BenchGroup {
  return {
    name: "live cost growth",
    rows: levels.map((level) => `cost growth: ${level} concurrent resources`),
    timeoutMs: 240_000,
    run: () => benchCostGrowth(levels, mib),
    verify(rows) {
      const short = rows.find((row) => row.figure.includes("BYTES MISSING"));
      if (short !== undefined) {
        throw new BenchError(
          `cost growth: an upload or a follower did not get every byte: ${
            JSON.stringify(short.figure)
          }`,
        );
      }
    },
  };
}

function http2Group(options: Http2ReadsOptions): BenchGroup {
  const load =
    `${options.clients} clients × ${options.streams} streams, ${options.requests} GETs of a 2-byte resource`;
  return {
    name: "live HTTP/2 reads",
    rows: [
      `HTTP/2 over TLS, ${load}: server peak RSS growth vs its bound`,
      `HTTP/2 over TLS, ${load}: server peak RSS growth vs HTTP/1.1`,
      `HTTP/2 over TLS, ${load}: server RSS growth left once idle`,
    ],
    timeoutMs: 180_000,
    run: () => benchHttp2Reads(options),
    verify(rows) {
      const failed = rows.find((row) => row.figure.includes("FAILED"));
      if (failed !== undefined) {
        throw new BenchError(
          `HTTP/2 reads: some answers were not 200 with the resource's bytes: ${
            JSON.stringify(failed.figure)
          }`,
        );
      }
    },
  };
}

function crossNodeGroup(
  mib: number,
  runs: number,
  lineWrites: number,
): BenchGroup {
  return {
    name: "live cross-node follow",
    rows: crossNodeRows(mib),
    // Per run three uploads, each bounded by its follower's timeout, and
    // five latency runs of 4 KiB every 5 ms (generously 20 ms per write).
    timeoutMs: 60_000 +
      runs * 3 * (Math.max(30_000, (mib / 10) * 1000) + 30_000 +
          lineWrites * 20) +
      runs * 2 * (30_000 + lineWrites * 20),
    run: () => benchCrossNode(mib, { runs, lineWrites }),
  };
}

function bigObjectGroup(mib: number, runs: number): BenchGroup {
  return {
    name: "transport one big object",
    rows: [
      `one ${mib} MiB object, spool send → spool receive vs cp + sync of the same file`,
    ],
    // Generous: a receiver that slows down with size shows as a timeout.
    timeoutMs: 60_000 + runs * 60_000,
    run: () => benchBigObject({ mib, runs }),
  };
}

/**
 * Worst case of a transport benchmark: every run of its `transportLike`
 * sides (the transport and its peers) and `baselines` at their time limits,
 * plus slack.
 */
function transportTimeout(
  options: TransportBenchOptions,
  transportLike: number,
  baselines: number,
): number {
  const perRun = (transportLike * options.transport.seconds +
        baselines * options.baseline.seconds) * 1000 +
    (transportLike + baselines) * 30_000;
  return options.runs * perRun + 60_000;
}

function transportGroups(
  large: TransportBenchOptions,
  small: TransportBenchOptions,
  headerOnly: TransportBenchOptions,
): BenchGroup[] {
  return [
    {
      name: "transport 1 MiB",
      rows: [
        "transport 1 MiB objects, one Stream, vs the ingest ceiling",
        "transport 1 MiB objects, one Stream, vs the ingest ceiling drained with a BYOB reader",
        "transport 1 MiB objects, one Stream, vs fetch",
      ],
      timeoutMs: transportTimeout(large, 1, 3),
      run: () => benchTransportLarge(large),
    },
    {
      name: "transport 1 KiB",
      rows: [
        "transport 1 KiB objects, one Stream, vs fetch per object",
        "transport 1 KiB objects, one Stream, vs 100k objects/s",
        "transport 1 KiB objects, one Stream, vs a Deno WebSocket, one message per object",
      ],
      timeoutMs: transportTimeout(small, 2, 1),
      run: () => benchTransportSmall(small),
    },
    {
      name: "transport header-only",
      rows: [
        "transport header-only objects, completions included, vs fetch per object",
        "transport header-only objects, completions included, vs 300k objects/s",
        "transport header-only objects, completions included, vs a Deno WebSocket, one message per object",
        "transport header-only objects, completions included, vs gRPC client streaming (@grpc/grpc-js, retries off)",
      ],
      timeoutMs: transportTimeout(headerOnly, 2, 2),
      run: () => benchTransportHeaderOnly(headerOnly),
    },
  ];
}

/**
 * Every benchmark, with the full parameters (about five minutes in all on
 * two cores) or the `--quick` ones (a smoke run of seconds).
 */
export function benchmarks(quick: boolean): BenchGroup[] {
  if (quick) {
    return [
      transferGroup(4, 2),
      latencyGroup(0, 20),
      latencyGroup(250, 20),
      smallWritesGroup(20, 3),
      fanOutGroup({
        followers: 20,
        rate: 100_000,
        seconds: 1,
        runs: 2,
        checkpoints: [250, 0],
      }),
      idleGroup(50),
      costGroup([1, 4], 4),
      http2Group({
        clients: 4,
        streams: 10,
        requests: 400,
        peakBoundMib: 320,
      }),
      ...transportGroups(
        {
          transport: { objects: 16, seconds: 1 },
          baseline: { objects: 16, seconds: 1 },
          runs: 3,
        },
        {
          transport: { objects: 5_000, seconds: 1 },
          baseline: { objects: 200, seconds: 1 },
          runs: 3,
        },
        {
          transport: { objects: 5_000, seconds: 1 },
          baseline: { objects: 200, seconds: 1 },
          runs: 3,
        },
      ),
      bigObjectGroup(8, 2),
      crossNodeGroup(4, 2, 40),
    ];
  }
  return [
    // The issue's sizes: 1 GiB transfers, 10,000 idle followers, and 1 to
    // 1,000 concurrent resources.
    transferGroup(1024, 5),
    latencyGroup(0, 1_000),
    latencyGroup(250, 1_000),
    smallWritesGroup(400, 5),
    fanOutGroup({
      followers: 1_000,
      rate: 1_000_000,
      seconds: 10,
      runs: 3,
      checkpoints: [250, 0],
    }),
    idleGroup(10_000),
    costGroup([1, 10, 100, 1_000], 256),
    // Issue 17's load: 2,000 streams in flight over 20 connections.
    http2Group({
      clients: 20,
      streams: 100,
      requests: 13_820,
      peakBoundMib: 320,
    }),
    ...transportGroups(
      {
        transport: { objects: 2_048, seconds: 4 },
        baseline: { objects: 2_048, seconds: 4 },
        runs: 3,
      },
      {
        transport: { objects: 1_000_000, seconds: 3 },
        baseline: { objects: 50_000, seconds: 3 },
        runs: 3,
      },
      {
        transport: { objects: 2_000_000, seconds: 3 },
        baseline: { objects: 50_000, seconds: 3 },
        runs: 3,
      },
    ),
    bigObjectGroup(256, 5),
    // Five rounds, not three: with three, the A→B ratio's median moved
    // between 0.56 and 0.70 from one group run to the next.
    crossNodeGroup(64, 5, 400),
  ];
}

/** Whether `group` is selected by `--only text`. */
function selected(group: BenchGroup, text: string | undefined): boolean {
  if (text === undefined) return true;
  const needle = text.toLowerCase();
  return [group.name, ...group.rows].some((name) =>
    name.toLowerCase().includes(needle)
  );
}

/** Whether row `figure` of `group` is printed under `--only text`. */
function shown(
  group: BenchGroup,
  figure: string,
  text: string | undefined,
): boolean {
  if (text === undefined) return true;
  const needle = text.toLowerCase();
  return group.name.toLowerCase().includes(needle) ||
    figure.toLowerCase().includes(needle);
}

/** Checks that `rows` are the rows `group` declares, in order. */
function checkRows(group: BenchGroup, rows: BenchRow[]): void {
  const matches = rows.length === group.rows.length &&
    rows.every((row, i) => row.figure.startsWith(group.rows[i]));
  if (!matches) {
    throw new BenchError(
      `benchmark ${JSON.stringify(group.name)} reported rows ${
        JSON.stringify(rows.map((row) => row.figure))
      }, expected rows starting with ${JSON.stringify(group.rows)}`,
    );
  }
}

async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = info.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? cpu;
  } catch (error) {
    cpu = `unknown CPU (/proc/cpuinfo: ${(error as Error).message})`;
  }
  let load = "";
  try {
    const average = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
    load = `, load average ${average} at start`;
  } catch {
    // Not Linux: no load average to report.
  }
  return `${cpu}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os} ${Deno.build.arch}${load}`;
}

function resultsFile(
  options: { command: string; date: Date; machine: string; mode: string },
  table: string,
): string {
  return `# Spool benchmark results

- Command: \`${options.command}\`
- Mode: ${options.mode}
- Date: ${options.date.toISOString()}
- Machine: ${options.machine}
- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})

Each figure is next to a baseline measured in the same run: where a row has
several runs, value and baseline are the medians of interleaved runs (one side,
then the other, run after run), with their min–max after them, and "ratio"
(value / baseline) and the goal use the medians. "CPU per unit of work" is the
user + system CPU seconds of the processes involved (servers, receivers, load
generators, the bench as sender or producer; read from /proc/PID/stat) per
object or per GB, both sides' medians: steadier than rates on a loaded machine.
Peers (Redis pub/sub, gRPC) are bench-only dependencies (see README); a row
whose peer is missing says so. Servers, receivers and load generators run as
separate processes on 127.0.0.1. Where a goal is not met,
[ANALYSIS.md](ANALYSIS.md) has the profile evidence and what was tried.

${table}
`;
}

/**
 * `text` as `deno fmt` formats Markdown (aligned tables, wrapped prose), so
 * a written results file passes `deno fmt --check`. Falls back to `text` if
 * the formatter fails.
 */
async function formatMarkdown(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    console.error(
      `bench: deno fmt failed on the results (exit ${code}), keeping them unformatted: ${
        new TextDecoder().decode(stderr)
      }`,
    );
    return text;
  }
  return new TextDecoder().decode(stdout);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Runs the benchmark command with `args`; resolves with the exit code.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await main(["--quick"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let flags: ParsedFlags;
  try {
    flags = parseFlags(args, {
      string: ["only", "out"],
      boolean: ["quick", "list", "help"],
      alias: { h: "help" },
    });
    if (flags.positional.length > 0) {
      throw new UsageError(
        `unexpected argument ${
          JSON.stringify(flags.positional[0])
        }; expected only options`,
      );
    }
    if (flags.strings.only === "") {
      throw new UsageError("--only is empty; expected some text to match");
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags.booleans.help) {
    console.log(USAGE);
    return 0;
  }
  const quick = flags.booleans.quick;
  const only = flags.strings.only;
  const all = benchmarks(quick);
  const groups = all.filter((group) => selected(group, only));
  if (flags.booleans.list) {
    for (const group of groups) {
      console.log(
        `${group.name}\n${group.rows.map((r) => `  ${r}`).join("\n")}`,
      );
    }
    return 0;
  }
  if (groups.length === 0) {
    console.error(
      `bench: --only ${JSON.stringify(only)} matches no benchmark; names: ${
        all.map((group) => group.name).join(", ")
      }`,
    );
    return 2;
  }
  const out = flags.strings.out ??
    (quick || only !== undefined ? undefined : RESULTS_PATH.pathname);
  const command = ["deno run -A bench/main.ts", ...args].join(" ");
  const date = new Date();
  const host = await machine();
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  const started = performance.now();
  for (const [index, group] of groups.entries()) {
    const label = `[${index + 1}/${groups.length}] ${group.name}`;
    console.error(`${label} …`);
    const groupStarted = performance.now();
    try {
      const reported = await bounded(
        `benchmark ${JSON.stringify(group.name)}`,
        group.timeoutMs,
        () => group.run(),
      );
      checkRows(group, reported);
      group.verify?.(reported);
      rows.push(...reported.filter((row) => shown(group, row.figure, only)));
      console.error(
        `${label}: done in ${seconds(performance.now() - groupStarted)}`,
      );
    } catch (error) {
      const message = error instanceof Error
        ? `${error.message}${
          error.cause instanceof Error ? ` (cause: ${error.cause.message})` : ""
        }`
        : String(error);
      failures.push(`${group.name}: ${message}`);
      console.error(`${label}: FAILED: ${message}`);
      if (error instanceof BenchTimeout) {
        // A hang: what it started may still be running, so stop here.
        const killed = killRunning();
        console.error(
          `bench: giving up after a hang; killed ${killed} subprocess(es)`,
        );
        break;
      }
    }
  }
  const table = await formatMarkdown(markdownTable(rows) + "\n");
  console.log(table.trimEnd());
  console.error(`bench: ran for ${seconds(performance.now() - started)}`);
  if (failures.length > 0) {
    console.error(
      `bench: ${failures.length} benchmark(s) failed${
        out === undefined ? "" : `; not writing ${out}`
      }:\n${failures.map((f) => `  - ${f}`).join("\n")}`,
    );
    return 1;
  }
  if (out === undefined) {
    console.error(
      "bench: not writing bench/RESULTS.md (--quick or --only; --out PATH writes the results)",
    );
    return 0;
  }
  await Deno.writeTextFile(
    out,
    await formatMarkdown(resultsFile({
      command,
      date,
      machine: host,
      mode: quick ? "quick (smoke sizes, not for comparison)" : "full",
    }, table.trimEnd())),
  );
  console.error(`bench: wrote ${out}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
