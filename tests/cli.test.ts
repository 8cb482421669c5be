import { assert, assertEquals, assertMatch } from "@std/assert";
import { randomBytes, sha256, spawnServer } from "./_helpers.ts";

const CLIENT_MAIN = new URL("../client/main.ts", import.meta.url).pathname;
const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

async function run(args: string[], stdin?: Uint8Array): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLIENT_MAIN, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: output.stdout,
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Reads the first stdout line of a running child; the rest is collected. */
async function firstLine(
  child: Deno.ChildProcess,
): Promise<{ line: string; rest: Promise<Uint8Array> }> {
  const reader = child.stdout.getReader();
  const chunks: Uint8Array[] = [];
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stdout ended before the first line");
    chunks.push(value);
    text += new TextDecoder().decode(value);
  }
  const rest = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    return new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
  })();
  return { line: text.split("\n")[0], rest };
}

async function withServer(fn: (server: URL) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-cli-" });
  // A killed uploader's resource fails after the resume grace period: keep it short.
  const server = await spawnServer(dataDir, {
    args: ["--resume-grace-ms", "100"],
  });
  try {
    await fn(server.url);
  } finally {
    server.process.kill("SIGTERM");
    await server.process.status;
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("cli: upload a file, then status and downloads of whole and partial ranges", async () => {
  await withServer(async (server) => {
    const file = await Deno.makeTempFile({ suffix: ".log" });
    const data = randomBytes(1_500_000, 31);
    await Deno.writeFile(file, data);
    const uploaded = await run(["upload", "--server", server.href, file]);
    assertEquals(uploaded.code, 0, uploaded.stderr);
    const reference = new TextDecoder().decode(uploaded.stdout).split("\n")[0];
    assertMatch(
      reference,
      /^ws:\/\/127\.0\.0\.1:\d+\/resources\/[A-Za-z0-9_-]{22}$/,
    );

    const status = await run(["status", reference]);
    assertEquals(status.code, 0, status.stderr);
    const parsed = JSON.parse(new TextDecoder().decode(status.stdout));
    assertEquals(parsed.status, "COMPLETED");
    assertEquals(parsed.size, data.byteLength);
    assertEquals(parsed.mimeType, "text/plain");
    assertEquals(parsed.sha256, await sha256(data));

    const whole = await run(["download", reference]);
    assertEquals(whole.code, 0, whole.stderr);
    assertEquals(await sha256(whole.stdout), await sha256(data));
    const part = await run([
      "download",
      "--start",
      "1000",
      "--end",
      "5000",
      reference,
    ]);
    assertEquals(part.stdout, data.subarray(1000, 5000));

    // --json: the reference first, the final status last, both as JSON.
    const json = await run(["upload", "--json", "--server", server.href, file]);
    assertEquals(json.code, 0, json.stderr);
    const lines = new TextDecoder().decode(json.stdout).trim().split("\n");
    assertEquals(lines.length, 2);
    const first = JSON.parse(lines[0]);
    assert(first.reference.endsWith(`/resources/${first.id}`));
    const last = JSON.parse(lines[1]);
    assertEquals(last.status, "COMPLETED");
    assertEquals(last.sha256, await sha256(data));
    await Deno.remove(file);
  });
});

Deno.test("cli: stdin upload followed live by download --follow", async () => {
  await withServer(async (server) => {
    const uploader = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLIENT_MAIN,
        "upload",
        "--server",
        server.href,
        "--name",
        "live.log",
        "-",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = uploader.stdin.getWriter();
    const { line: reference, rest } = await firstLine(uploader);
    assertMatch(reference, /^ws:\/\//);
    const follower = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLIENT_MAIN, "download", "--follow", reference],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const data = new TextEncoder().encode(
      Array.from({ length: 20_000 }, (_, i) => `log line ${i}\n`).join(""),
    );
    for (let offset = 0; offset < data.byteLength; offset += 50_000) {
      await stdin.write(data.subarray(offset, offset + 50_000));
    }
    await stdin.close();
    const [uploaded, uploadErrors, followed] = await Promise.all([
      uploader.status,
      new Response(uploader.stderr).text(),
      follower.output(),
    ]);
    await rest;
    assertEquals(uploaded.code, 0, uploadErrors);
    assertEquals(followed.code, 0, new TextDecoder().decode(followed.stderr));
    assertEquals(await sha256(followed.stdout), await sha256(data));
  });
});

Deno.test("cli: refused ranges, unknown and FAILED resources exit 1 with a one-line reason", async () => {
  await withServer(async (server) => {
    const uploaded = await run([
      "upload",
      "--server",
      server.href,
      "--name",
      "small",
      "-",
    ], randomBytes(100));
    const reference = new TextDecoder().decode(uploaded.stdout).split("\n")[0];

    const refused = await run(["download", "--end", "101", reference]);
    assertEquals(refused.code, 1);
    assertEquals(
      refused.stderr,
      "spool: range [0, 101) ends past the checkpointed size 100; expected end <= 100\n",
    );
    const unknown = await run([
      "download",
      reference.replace(/[^/]{22}$/, "A".repeat(22)),
    ]);
    assertEquals(unknown.code, 1);
    assertMatch(
      unknown.stderr,
      /^spool: no resource with id "A{22}"; expected the id of a reference this server returned\n$/,
    );

    // An uploader killed mid-way leaves a FAILED resource.
    const uploader = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLIENT_MAIN, "upload", "--server", server.href, "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const { line: failedRef, rest } = await firstLine(uploader);
    const stdin = uploader.stdin.getWriter();
    await stdin.write(randomBytes(1000));
    uploader.kill("SIGKILL");
    await uploader.status;
    await rest;
    await stdin.close().catch(
      () => {/* the child is gone; its pipe is broken */},
    );
    const failed = await run(["download", "--follow", failedRef]);
    assertEquals(failed.code, 1);
    assertMatch(
      failed.stderr,
      /^spool: resource \S+ FAILED: the uploader disconnected before end-of-input\n$/,
    );
    const failedPlain = await run(["download", failedRef]);
    assertEquals(failedPlain.code, 1);
  });
});

Deno.test("cli: help, bad usage and unreachable servers", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  assert(
    new TextDecoder().decode(help.stdout).includes(
      "Usage: deno run -A client/main.ts COMMAND",
    ),
  );
  const bad = await run(["download", "--bogus", "x"]);
  assertEquals(bad.code, 2);
  assert(
    bad.stderr.startsWith("spool: unknown option --bogus; expected one of"),
  );
  const noCommand = await run(["frobnicate"]);
  assertEquals(noCommand.code, 2);
  assert(noCommand.stderr.startsWith('spool: unknown command "frobnicate"'));
  const missing = await run([
    "upload",
    "--server",
    "http://127.0.0.1:9/",
    "/nonexistent/file",
  ]);
  assertEquals(missing.code, 1);
  assert(missing.stderr.startsWith("spool: cannot read /nonexistent/file"));
  const unreachable = await run([
    "upload",
    "--server",
    "http://127.0.0.1:9/",
    "-",
  ], new Uint8Array(1));
  assertEquals(unreachable.code, 1);
  assert(
    unreachable.stderr.startsWith(
      "spool: cannot connect to ws://127.0.0.1:9/upload",
    ),
    unreachable.stderr,
  );

  const serverHelp = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVER_MAIN, "--help"],
  }).output();
  assertEquals(serverHelp.code, 0);
  assert(
    new TextDecoder().decode(serverHelp.stdout).includes("--checkpoint-ms N"),
  );
});
