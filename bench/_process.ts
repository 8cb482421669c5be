/** Subprocess plumbing for benchmarks: servers, load generators, RSS. */

const HERE = new URL(".", import.meta.url);

/** A subprocess that printed where it listens. */
export interface Listening {
  process: Deno.ChildProcess;
  url: URL;
  /** Resident memory of the process in bytes, from /proc. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

/** Resident set size of `pid` in bytes (Linux /proc). */
export async function rssOf(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = Number(status.match(/^VmRSS:\s+(\d+) kB$/m)?.[1] ?? NaN);
  return kib * 1024;
}

/** Spawns `deno run -A SCRIPT ARGS` and waits for its `Listening on URL` line. */
export async function spawnListening(
  script: string,
  args: string[],
): Promise<Listening> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(Deno.env.get("BENCH_V8_FLAGS")
        ? [`--v8-flags=${Deno.env.get("BENCH_V8_FLAGS")}`]
        : []),
      new URL(script, HERE).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before listening`);
    text += value;
  }
  const url = new URL(text.split("\n")[0].replace(/^Listening on /, ""));
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
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("_load.ts", HERE).pathname, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  return {
    process,
    async next() {
      while (!buffered.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`load ${args[0]} exited without a result`);
        buffered += value;
      }
      const index = buffered.indexOf("\n");
      const line = buffered.slice(0, index);
      buffered = buffered.slice(index + 1);
      return JSON.parse(line);
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
