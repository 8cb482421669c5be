/**
 * The single binary: `deno task compile` (flags read from deno.json) builds
 * `spool` into a temporary directory, once per run, and the binary runs a
 * server with an upload and a download, and a transport receive/send round
 * trip whose send loop is the embedded worker.
 *
 * `deno compile` needs `denort`, the runtime the binary is built on: it is
 * downloaded once per Deno version into `$DENO_DIR/dl/` or taken from
 * `$DENORT_BIN`. Where neither is there and nothing can be downloaded (our
 * machines and CI), the binary test is ignored with the reason in its name;
 * the build itself is still checked with the `deno` executable standing in for
 * `denort` (the list of embedded files must hold the worker), and the same
 * round trip runs from source.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { randomBytes, sha256 } from "./_helpers.ts";
import { Lines } from "./_lines.ts";

const REPO = new URL("../", import.meta.url);
const SPOOL = new URL("../spool.ts", import.meta.url).pathname;

/** Where `deno compile` takes `denort` from without a network, if anywhere. */
async function findDenort(): Promise<string | null> {
  const override = Deno.env.get("DENORT_BIN");
  if (override) return override;
  let denoDir = Deno.env.get("DENO_DIR");
  if (!denoDir) {
    const info = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    denoDir = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
  }
  const zip =
    `${denoDir}/dl/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;
  try {
    await Deno.stat(zip);
    return zip;
  } catch {
    return null;
  }
}

const denort = await findDenort();

/** `deno task compile`'s arguments, writing the binary to `output` instead. */
async function compileArgs(output: string): Promise<string[]> {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", REPO)),
  );
  const words: string[] = config.tasks.compile.split(/\s+/);
  assertEquals(words.slice(0, 2), ["deno", "compile"]);
  const at = words.findIndex((word) => word === "-o" || word === "--output");
  assert(at > 0, "the compile task names its output with -o");
  words[at + 1] = output;
  return words.slice(1);
}

interface Build {
  binary: string;
  seconds: number;
  bytes: number;
  log: string;
}

/** Runs the compile task into `dir`; `env` may stand in a `DENORT_BIN`. */
async function build(
  dir: string,
  env?: Record<string, string>,
): Promise<Build> {
  const binary = `${dir}/spool${Deno.build.os === "windows" ? ".exe" : ""}`;
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: await compileArgs(binary),
    cwd: REPO,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const decoder = new TextDecoder();
  const log = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  assertEquals(output.code, 0, log);
  const bytes = (await Deno.stat(binary)).size;
  console.log(
    `compiled ${binary} in ${seconds.toFixed(1)} s, ${
      (bytes / 2 ** 20).toFixed(1)
    } MiB`,
  );
  return { binary, seconds, bytes, log };
}

interface Service {
  url: URL;
  lines: Lines;
  stop(): Promise<number>;
}

/** Starts a long-running command; resolves once it printed "Listening on". */
async function serve(command: string[]): Promise<Service> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = new Lines(child.stdout);
  const first = await lines.next();
  const match = first?.match(/^Listening on (http:\/\/127\.0\.0\.1:\d+\/\S*)$/);
  if (!match) {
    child.kill("SIGKILL");
    await child.status;
    await lines.done;
    throw new Error(`${command.join(" ")}: unexpected first line ${first}`);
  }
  return {
    url: new URL(match[1]),
    lines,
    async stop() {
      child.kill("SIGTERM");
      const { code } = await child.status;
      await lines.done;
      return code;
    },
  };
}

async function run(
  command: string[],
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const output = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: output.stdout,
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/**
 * With `spool` (a command prefix): a server, an upload and a download of a
 * file compared by sha256, and `receive` + `send` of a few files compared by
 * sha256 of what was written.
 */
async function roundTrips(spool: string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spool-compile-" });
  const services: Service[] = [];
  try {
    const server = await serve([
      ...spool,
      "server",
      "--port",
      "0",
      "--data-dir",
      `${dir}/data`,
    ]);
    services.push(server);
    const upload = randomBytes(1_200_000, 5);
    await Deno.writeFile(`${dir}/upload.bin`, upload);
    const uploaded = await run([
      ...spool,
      "upload",
      "--server",
      server.url.href,
      `${dir}/upload.bin`,
    ]);
    assertEquals(uploaded.code, 0, uploaded.stderr);
    const reference = new TextDecoder().decode(uploaded.stdout).split("\n")[0];
    assertMatch(reference, /^ws:\/\/127\.0\.0\.1:\d+\/resources\/\S+$/);
    const downloaded = await run([...spool, "download", reference]);
    assertEquals(downloaded.code, 0, downloaded.stderr);
    assertEquals(await sha256(downloaded.stdout), await sha256(upload));

    const receiver = await serve([
      ...spool,
      "receive",
      "--port",
      "0",
      "--dir",
      `${dir}/received`,
    ]);
    services.push(receiver);
    await Deno.mkdir(`${dir}/send`);
    const files = new Map<string, Uint8Array>([
      ["one.bin", randomBytes(700_000, 1)],
      ["two.txt", new TextEncoder().encode("two\n")],
      ["three.bin", randomBytes(65_537, 3)],
    ]);
    for (const [name, bytes] of files) {
      await Deno.writeFile(`${dir}/send/${name}`, bytes);
    }
    const sent = await run([
      ...spool,
      "send",
      receiver.url.href,
      ...[...files.keys()].map((name) => `${dir}/send/${name}`),
    ]);
    assertEquals(sent.code, 0, sent.stderr);
    assertMatch(new TextDecoder().decode(sent.stdout), /^sent 3 objects, /);
    for (const [name, bytes] of files) {
      const line = JSON.parse((await receiver.lines.next())!);
      const sha = await sha256(bytes);
      assertEquals(line, { name, size: bytes.byteLength, sha256: sha });
      assertEquals(
        await sha256(await Deno.readFile(`${dir}/received/${name}`)),
        sha,
      );
    }
  } finally {
    const codes = [];
    for (const service of services) codes.push(await service.stop());
    await Deno.remove(dir, { recursive: true });
    assertEquals(codes, services.map(() => 0), "clean shutdowns");
  }
}

Deno.test("spool.ts from source: server, upload + download, receive + send", async () => {
  await roundTrips([Deno.execPath(), "run", "-A", "--quiet", SPOOL]);
});

Deno.test({
  name: denort === null
    ? `compile: the binary runs server, upload + download, receive + send (IGNORED: no denort for Deno ${Deno.version.deno} ${Deno.build.target}: not in $DENO_DIR/dl and $DENORT_BIN unset, and it cannot be downloaded offline)`
    : "compile: the binary runs server, upload + download, receive + send",
  ignore: denort === null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spool-bin-" });
    try {
      const { binary, log } = await build(dir);
      assertMatch(log, /workers/, "the send-loop worker is embedded");
      const version = await run([binary, "--version"]);
      assertEquals(version.code, 0, version.stderr);
      assertMatch(new TextDecoder().decode(version.stdout), /^spool \d+\.\d+/);
      await roundTrips([binary]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "compile: without denort, the compile task still builds and embeds the send-loop worker (deno standing in for denort; the result is not run)",
  ignore: denort !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spool-bin-" });
    try {
      const { log } = await build(dir, { DENORT_BIN: Deno.execPath() });
      // The embedded-files tree of the compile log: transport/ and workers/
      // (which only --include brings in) next to the entry point. Deno prints
      // a folder as `name (size)` or, collapsed, `name/* (size)`.
      assertMatch(log, /^\S+ spool\.ts \(/m);
      assertMatch(log, /^\S+ transport(\/\*)? \(/m);
      assertMatch(log, /^\S+ workers(\/\*)? \(/m);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
