/** Subprocess plumbing for benchmarks: servers, load generators, RSS. */

import { TextLineStream } from "@std/streams";
import { rssOf } from "../testing/process_memory.ts";

const HERE = new URL(".", import.meta.url);

/** Every subprocess started here that has not exited yet. */
const running = new Set<Deno.ChildProcess>();

/**
 * Adds `process` to those {@linkcode killRunning} kills: every subprocess a
 * benchmark starts must be tracked.
 */
export function track(process: Deno.ChildProcess): Deno.ChildProcess {
  running.add(process);
  process.status.finally(() => running.delete(process));
  return process;
}

/**
 * Kills every subprocess started by this module that is still running: for
 * a benchmark run that gives up (a hang), so that no server outlives it.
 * Returns how many were killed.
 */
export function killRunning(): number {
  let killed = 0;
  for (const process of running) {
    try {
      process.kill("SIGKILL");
      killed++;
    } catch {
      // It exited on its own meanwhile.
    }
  }
  return killed;
}

/** The lines `process` prints on stdout, without their line ends. */
function stdoutLines(
  process: Deno.ChildProcess,
): ReadableStreamDefaultReader<string> {
  return process.stdout.pipeThrough(new TextDecoderStream())
    .pipeThrough<string>(new TextLineStream()).getReader();
}

/**
 * `--cpu-prof` flags for servers and load generators when
 * `BENCH_CPU_PROF_DIR` is set: each writes a V8 CPU profile there as it
 * exits, to find where a benchmark's CPU goes process by process.
 */
function profileFlags(): string[] {
  const dir = Deno.env.get("BENCH_CPU_PROF_DIR");
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/**
 * Writes dirty pages back (`sync`), so that one run's writes do not slow the
 * next: writeback throttling moved the same upload between 307 and 885 MiB/s
 * on this disk, whoever wrote second paying for the first.
 *
 * @example
 * ```ts ignore
 * await flushDirtyPages();
 * await oneRun();
 * ```
 */
export async function flushDirtyPages(): Promise<void> {
  try {
    await new Deno.Command("sync").output();
  } catch (error) {
    // No `sync` binary (not Unix): runs are then only interleaved.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** A subprocess that printed where it listens. */
export interface Listening {
  process: Deno.ChildProcess;
  url: URL;
  /** Resident memory of the process in bytes, from /proc. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

/** Peaks of resident memory sampled while some work runs. */
export interface RssSampler {
  /**
   * Stops sampling; resolves with the highest RSS in bytes seen of each
   * process, in the order of the pids given (a final sample included).
   * Rejects if a process could not be read (it exited meanwhile).
   */
  stop(): Promise<number[]>;
}

/**
 * Samples the RSS (`VmRSS`) of every process in `pids` every `everyMs` until
 * {@linkcode RssSampler.stop}: the peak while some work runs, which
 * `VmHWM` cannot give for one run of several in a process's life.
 *
 * @example
 * ```ts ignore
 * const sampler = sampleRss([server.process.pid]);
 * // … the work …
 * const [peak] = await sampler.stop();
 * ```
 */
export function sampleRss(pids: number[], everyMs = 20): RssSampler {
  const peaks = pids.map(() => 0);
  let stopped = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const sample = async () => {
    const now = await Promise.all(pids.map((pid) => rssOf(pid)));
    now.forEach((rss, i) => peaks[i] = Math.max(peaks[i], rss));
  };
  const sampling = (async () => {
    while (!stopped) {
      await sample();
      // A timer that stop() cuts short, so stopping never waits a period.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, everyMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })().catch((error) => {
    // Kept for stop(): a rejection nobody awaits yet would end the bench.
    failure = error;
  });
  return {
    async stop() {
      stopped = true;
      wake?.();
      await sampling;
      if (failure !== undefined) throw failure;
      await sample();
      return peaks;
    },
  };
}

/** Spawns `deno run -A SCRIPT ARGS` and waits for its `Listening on URL` line. */
export async function spawnListening(
  script: string,
  args: string[],
): Promise<Listening> {
  const process = track(new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(Deno.env.get("BENCH_V8_FLAGS")
        ? [`--v8-flags=${Deno.env.get("BENCH_V8_FLAGS")}`]
        : []),
      ...profileFlags(),
      new URL(script, HERE).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn());
  const reader = stdoutLines(process);
  const { value: first, done } = await reader.read();
  if (done) throw new Error(`${script} exited before listening`);
  const url = new URL(first.replace(/^Listening on /, ""));
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return {
    process,
    url,
    rss: () => rssOf(process.pid),
    async stop() {
      process.kill("SIGTERM");
      await process.status;
    },
  };
}

/** Starts a Spool server subprocess on a fresh data directory. */
export async function spawnSpool(
  args: string[] = [],
): Promise<Listening & { dataDir: string }> {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-bench-" });
  const server = await spawnListening("../server/main.ts", [
    "--port",
    "0",
    "--data-dir",
    dataDir,
    ...args,
  ]);
  return {
    ...server,
    dataDir,
    async stop() {
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** A running load generator: its JSON lines as they come. */
export interface Load {
  process: Deno.ChildProcess;
  /** The next JSON line the generator prints. */
  next(): Promise<Record<string, unknown>>;
  /** Closes its stdin (the signal for `idle` to end). */
  release(): Promise<void>;
}

/** Starts `bench/_load.ts` with `args`. */
export function startLoad(args: string[]): Load {
  const process = track(new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...profileFlags(),
      new URL("_load.ts", HERE).pathname,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn());
  const reader = stdoutLines(process);
  return {
    process,
    async next() {
      const { value, done } = await reader.read();
      if (done) throw new Error(`load ${args[0]} exited without a result`);
      return JSON.parse(value);
    },
    async release() {
      await process.stdin.close();
    },
  };
}

/** Runs a load generator to its single result line. */
export async function runLoad(
  args: string[],
): Promise<Record<string, unknown>> {
  const load = startLoad(args);
  await load.release();
  const result = await load.next();
  const status = await load.process.status;
  if (!status.success) {
    throw new Error(`load ${args.join(" ")} exited with ${status.code}`);
  }
  return result;
}

/** A subprocess that listens and answers commands: a line in, a JSON line out. */
export interface Serving {
  process: Deno.ChildProcess;
  /** The URL from its `Listening on URL` line. */
  url: URL;
  /** Writes `command` as a line to its stdin; resolves to its JSON answer. */
  ask(command: string): Promise<Record<string, unknown>>;
  /**
   * Closes its stdin (its signal to shut down) and waits for it to exit;
   * kills it if it is still running after `graceMs` (default 10 s).
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns `deno run -A SCRIPT ARGS` with piped stdin and waits for its
 * `Listening on URL` line. Then every line written to its stdin is a command
 * and every line it prints is the JSON answer to one; closing its stdin asks
 * it to shut down.
 */
export async function spawnServing(
  script: string,
  args: string[],
): Promise<Serving> {
  const process = track(new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, HERE).pathname, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn());
  const stdin = process.stdin.getWriter();
  const reader = stdoutLines(process);
  const nextLine = async (waitingFor: string): Promise<string> => {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(
        `${script} ${args.join(" ")} exited while we waited for ${waitingFor}`,
      );
    }
    return value;
  };
  let first: string;
  try {
    first = await nextLine("its Listening line");
  } catch (error) {
    await stdin.close().catch(() => {/* it is gone already */});
    await process.status;
    throw error;
  }
  if (!first.startsWith("Listening on ")) {
    process.kill("SIGKILL");
    await process.status;
    throw new Error(
      `${script} printed ${JSON.stringify(first)}, expected "Listening on URL"`,
    );
  }
  const url = new URL(first.slice("Listening on ".length));
  let turn: Promise<unknown> = Promise.resolve();
  const encoder = new TextEncoder();
  return {
    process,
    url,
    ask(command) {
      const answer = turn.then(async () => {
        await stdin.write(encoder.encode(command + "\n"));
        const line = await nextLine(`its answer to ${command}`);
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          throw new Error(
            `${script} answered ${command} with ${
              JSON.stringify(line)
            }, expected one JSON line`,
          );
        }
      });
      turn = answer.catch(() => {/* the caller sees the failure */});
      return answer;
    },
    async stop(graceMs = 10_000) {
      await turn;
      // Read whatever it still prints, so it never blocks on a full pipe.
      const drained = (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      await stdin.close().catch(() => {/* it exited already */});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          console.error(
            `${script} did not exit ${graceMs} ms after its stdin closed; killing it`,
          );
          try {
            process.kill("SIGKILL");
          } catch {
            // It exited just now.
          }
          resolve();
        }, graceMs);
      });
      await Promise.race([process.status, killed]);
      clearTimeout(timer);
      await process.status;
      await drained;
    },
  };
}
