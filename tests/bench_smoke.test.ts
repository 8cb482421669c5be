import { assert, assertEquals } from "@std/assert";
import { benchmarks, RESULTS_PATH } from "../bench/main.ts";

/** The results file's bytes, or `null` if there is none. */
async function readResults(): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(RESULTS_PATH);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Runs `bench/main.ts ARGS` to its end, with `env` added to its environment. */
async function runBench(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../bench/main.ts", import.meta.url).pathname,
      ...args,
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}

Deno.test("bench --quick runs every benchmark and leaves RESULTS.md alone", async () => {
  const before = await readResults();
  const { code, stdout, stderr } = await runBench(["--quick"]);
  assertEquals(code, 0, `bench --quick exited with ${code}:\n${stderr}`);
  assert(/^\| figure +\| value +\|/.test(stdout), `no table:\n${stdout}`);
  const missing = benchmarks(true).flatMap((group) => group.rows)
    .filter((row) => !stdout.includes(`| ${row}`));
  assertEquals(missing, [], `rows missing from the table:\n${stdout}`);
  // A peer whose service or package is missing is skipped, and says so.
  for (const line of stderr.split("\n")) {
    if (line.startsWith("bench: skipping")) console.log(line);
  }
  assertEquals(await readResults(), before, "bench/RESULTS.md changed");
});

Deno.test("bench --only runs the matching rows; --out writes them with the machine", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-bench-test-" });
  try {
    const out = `${dir}/results.md`;
    const { code, stdout, stderr } = await runBench([
      "--quick",
      "--only",
      "header-only",
      "--out",
      out,
    ]);
    assertEquals(code, 0, `bench exited with ${code}:\n${stderr}`);
    const figures = stdout.split("\n").filter((line) =>
      line.startsWith("| ") && !/^\| (figure|-)/.test(line)
    );
    const expected = benchmarks(true).flatMap((group) => group.rows)
      .filter((row) => row.includes("header-only"));
    assertEquals(
      figures.length,
      expected.length,
      `expected the ${expected.length} header-only rows:\n${stdout}`,
    );
    for (const line of figures) assert(line.includes("header-only"), line);
    const written = await Deno.readTextFile(out);
    assert(written.includes(`Deno ${Deno.version.deno}`), written);
    assert(written.includes("--only header-only"), written);
    assert(/Machine: .+, \d+ cores/.test(written), written);
    assert(written.includes(figures[0]), written);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench --help prints the usage and runs nothing", async () => {
  const { code, stdout } = await runBench(["--help"]);
  assertEquals(code, 0);
  for (const flag of ["--quick", "--only", "--out"]) {
    assert(stdout.includes(flag), `usage does not mention ${flag}:\n${stdout}`);
  }
});

Deno.test("bench rejects an unknown option with exit code 2", async () => {
  const { code, stderr } = await runBench(["--quik"]);
  assertEquals(code, 2);
  assert(stderr.includes("--quik"), stderr);
});

Deno.test("bench cross-node without nats-server reports every row as skipped and succeeds", async () => {
  const { code, stdout, stderr } = await runBench(
    ["--quick", "--only", "cross-node"],
    { NATS_SERVER: "/nonexistent/nats-server" },
  );
  assertEquals(code, 0, `bench exited with ${code}:\n${stderr}`);
  assert(stderr.includes("bench: skipping cross-node follow"), stderr);
  const rows =
    benchmarks(true).find((group) => group.name === "live cross-node follow")!
      .rows;
  for (const row of rows) {
    const line = stdout.split("\n").find((l) => l.startsWith(`| ${row}`));
    assert(
      line?.includes("skipped: /nonexistent/nats-server is missing"),
      `row ${row} is not skipped:\n${stdout}`,
    );
  }
});

/** Why the gRPC peer cannot run here (its npm package), or `null` if it can. */
const grpcMissing = await import("../bench/_grpc_peer.ts").then(
  () => null,
  (error) => String(error),
);

/** The header-only row against the gRPC peer in `stdout`'s table. */
function grpcRowOf(stdout: string): string {
  const line = stdout.split("\n").find((l) =>
    l.startsWith("| transport header-only") && l.includes("vs gRPC")
  );
  if (line === undefined) throw new Error(`no gRPC row:\n${stdout}`);
  return line;
}

Deno.test({
  name:
    "bench header-only: a gRPC receiver that dies is replaced, that run is made again once, and the row's note says so",
  ignore: grpcMissing !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spool-bench-test-" });
    try {
      const { code, stdout, stderr } = await runBench(
        ["--quick", "--only", "header-only"],
        { BENCH_GRPC_ABORT: `${dir}/aborted` },
      );
      assertEquals(code, 0, `bench exited with ${code}:\n${stderr}`);
      const row = grpcRowOf(stdout);
      assert(!row.includes("SKIPPED"), row);
      assert(/\d+ objects\/s \(\d+–\d+, 3 runs\)/.test(row), row);
      // The notes below the table are wrapped.
      assert(
        stdout.replace(/\s+/g, " ").includes(
          "1 of the 3 gRPC runs was made again, once each, with a new receiver, because the gRPC receiver process died (signal SIGABRT)",
        ),
        stdout,
      );
      assert(stderr.includes("that run again, once"), stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "bench header-only: a gRPC receiver that dies again in the run made again drops the peer, and its row says why",
  ignore: grpcMissing !== null,
  async fn() {
    const { code, stdout, stderr } = await runBench(
      ["--quick", "--only", "header-only"],
      { BENCH_GRPC_ABORT: "always" },
    );
    assertEquals(code, 0, `bench exited with ${code}:\n${stderr}`);
    const row = grpcRowOf(stdout);
    assert(row.includes("SKIPPED"), row);
    assert(
      row.includes(
        "the gRPC receiver process died (signal SIGABRT), and again in the same run",
      ),
      row,
    );
    // The other rows still come from their own runs.
    assert(/vs a Deno WebSocket.*\d+ objects\/s \(/.test(stdout), stdout);
  },
});
