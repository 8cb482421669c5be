/**
 * `spool receive` and `spool send` (cli/transport_cli.ts) run from source as
 * subprocesses (`deno run -A spool.ts …`), on 127.0.0.1.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { Stream, type TransportError } from "../transport/mod.ts";
import { objectPathSegments } from "../cli/transport_cli.ts";
import { randomBytes, sha256 } from "./_helpers.ts";
import { Lines } from "./_lines.ts";
import { listTree, withTempDir } from "../testing/files.ts";

const SPOOL = new URL("../spool.ts", import.meta.url).pathname;
const SECRET = "0123456789abcdef-test-secret";

interface Receiving {
  url: string;
  lines: Lines;
  /** Sends SIGTERM; resolves with the exit code, stderr and unread lines. */
  stop(): Promise<{ code: number; stderr: string; rest: string[] }>;
}

/** Runs `spool receive --port 0 …` and waits for its "Listening on" line. */
async function receive(
  args: string[],
  env?: Record<string, string>,
): Promise<Receiving> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", SPOOL, "receive", "--port", "0", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = new Lines(child.stdout);
  const stderr = new Response(child.stderr).text();
  const first = await lines.next();
  const match = first?.match(/^Listening on (http:\/\/127\.0\.0\.1:\d+\/\S+)$/);
  if (!match) {
    child.kill("SIGKILL");
    await child.status;
    await lines.done;
    throw new Error(`unexpected first line ${first}; stderr: ${await stderr}`);
  }
  return {
    url: match[1],
    lines,
    async stop() {
      child.kill("SIGTERM");
      const { code } = await child.status;
      await lines.done;
      const rest: string[] = [];
      for (let line = await lines.next(); line !== null;) {
        rest.push(line);
        line = await lines.next();
      }
      return { code, stderr: await stderr, rest };
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function spool(
  args: string[],
  env?: Record<string, string>,
): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", SPOOL, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Files of `sizes` bytes in a new directory: name → bytes. */
async function makeFiles(
  dir: string,
  sizes: Record<string, number>,
): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  let seed = 7;
  for (const [name, size] of Object.entries(sizes)) {
    const bytes = randomBytes(size, seed++);
    await Deno.writeFile(`${dir}/${name}`, bytes);
    files.set(name, bytes);
  }
  return files;
}

Deno.test("transport cli: receive + send round trip; files, JSON lines and sha256 match", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    const files = await makeFiles(`${dir}/src`, {
      "big.bin": 2_500_000,
      "small.txt": 100,
      "empty": 0,
    });
    const receiving = await receive(["--dir", `${dir}/out`]);
    assertMatch(receiving.url, /\/v1\/objstream\/spool$/);
    const names = [...files.keys()];
    const sent = await spool([
      "send",
      receiving.url,
      ...names.map((name) => `${dir}/src/${name}`),
    ]);
    assertEquals(sent.code, 0, sent.stderr);
    assertEquals(sent.stderr, "");
    assertMatch(
      sent.stdout,
      /^sent 3 objects, 2\.4 MiB in \d+\.\d\d s \(\S+ \S+\/s\)\n$/,
    );
    // A second sender, with a prefix that makes a subdirectory.
    const prefixed = await spool([
      "send",
      "--prefix",
      "batch-2/",
      "--burst",
      "1",
      receiving.url,
      `${dir}/src/small.txt`,
    ]);
    assertEquals(prefixed.code, 0, prefixed.stderr);

    const lines = [];
    for (let i = 0; i < 4; i++) {
      lines.push(JSON.parse((await receiving.lines.next())!));
    }
    const expected = [];
    for (const [name, bytes] of files) {
      expected.push({
        name,
        size: bytes.byteLength,
        sha256: await sha256(bytes),
      });
    }
    expected.push({ ...expected[1], name: "batch-2/small.txt" });
    assertEquals(lines, expected);
    for (const { name, sha256: sha } of expected) {
      assertEquals(
        await sha256(await Deno.readFile(`${dir}/out/${name}`)),
        sha,
      );
    }
    assertEquals(await listTree(`${dir}/out`), [
      "batch-2/small.txt",
      "big.bin",
      "empty",
      "small.txt",
    ]);
    const stopped = await receiving.stop();
    assertEquals(stopped.code, 0, stopped.stderr);
    assertEquals(stopped.rest, []);
    assertEquals(stopped.stderr, "");
  });
});

Deno.test("transport cli: object names that could escape the directory are refused, nothing is written outside", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await makeFiles(`${dir}/src`, { "a.txt": 10 });
    const receiving = await receive(["--dir", `${dir}/out`]);
    // Through the CLI: a prefix that climbs out.
    const climbing = await spool([
      "send",
      "--prefix",
      "../",
      receiving.url,
      `${dir}/src/a.txt`,
    ]);
    assertEquals(climbing.code, 1);
    assertEquals(climbing.stdout, "");
    assertMatch(
      climbing.stderr,
      /^spool send: not delivered: "\.\.\/a\.txt" \([^)]+\), 1 of 1 objects \(0 delivered\): receiver-error: .*handler-failed.*"\.\.\/a\.txt" has a "\.\." segment[^\n]*\n$/,
    );
    // Straight from the transport API: names the CLI would never make.
    for (
      const name of [
        "/etc/passwd",
        "..",
        "a/../../b",
        "nul\0byte",
        "back\\slash",
        "C:evil",
        "a//b",
        "",
      ]
    ) {
      const stream = new Stream(receiving.url);
      await stream.send({ name }, new TextEncoder().encode("evil"));
      const error = await assertRejects(() => stream.fin()) as TransportError;
      assertEquals(error.code, "receiver-error", name);
      assertEquals(error.remoteCode, "handler-failed", name);
    }
    // The receiver is still fine, and only the good object is stored.
    const good = await spool(["send", receiving.url, `${dir}/src/a.txt`]);
    assertEquals(good.code, 0, good.stderr);
    assertEquals(JSON.parse((await receiving.lines.next())!).name, "a.txt");
    assertEquals(await listTree(`${dir}/out`), ["a.txt"]);
    assertEquals(await listTree(dir), ["out/a.txt", "src/a.txt"]);
    const stopped = await receiving.stop();
    assertEquals(stopped.code, 0);
    assertEquals(stopped.rest, []);
    const refusals = stopped.stderr.trim().split("\n");
    assertEquals(refusals.length, 9, stopped.stderr);
    assert(refusals.every((line) => line.startsWith("spool receive: refused")));
  });
});

Deno.test("transport cli: objectPathSegments accepts relative paths only", () => {
  assertEquals(objectPathSegments("a.txt"), ["a.txt"]);
  assertEquals(objectPathSegments("d/e/f.bin"), ["d", "e", "f.bin"]);
  assertEquals(objectPathSegments("..a/b.."), ["..a", "b.."]);
  for (
    const name of [
      "",
      ".",
      "..",
      "../x",
      "x/..",
      "x/./y",
      "/abs",
      "x/",
      "a\0b",
      "a\nb",
      "a\\b",
      "c:\\x",
      "c:x",
    ]
  ) {
    assertThrows(() => objectPathSegments(name), Error, "object name");
  }
});

Deno.test("transport cli: send to a receiver that is gone exits 1 with a one-line reason", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    await makeFiles(dir, { "a.bin": 1000, "b.bin": 2000 });
    const receiving = await receive(["--dir", `${dir}/out`]);
    const taken = await spool([
      "receive",
      "--port",
      new URL(receiving.url).port,
      "--dir",
      `${dir}/out`,
    ]);
    assertEquals(taken.code, 1);
    assertMatch(
      taken.stderr,
      /^spool receive: cannot listen on 127\.0\.0\.1:\d+: /,
    );
    const { code } = await receiving.stop();
    assertEquals(code, 0);
    const sent = await spool([
      "send",
      receiving.url,
      `${dir}/a.bin`,
      `${dir}/b.bin`,
    ]);
    assertEquals(sent.code, 1);
    assertEquals(sent.stdout, "");
    assertMatch(sent.stderr, /^spool send: [^\n]*receiver-gone[^\n]*\n$/);
  });
});

Deno.test("transport cli: SIGTERM mid-object: receive exits 0 and leaves no partial file", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    const receiving = await receive(["--dir", dir]);
    const stream = new Stream(receiving.url);
    let more!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        more = controller;
        controller.enqueue(randomBytes(200_000));
      },
    });
    await stream.send({ name: "slow.bin" }, body);
    // Wait for the receiver's temporary file to show up.
    for (let i = 0; (await listTree(dir)).length === 0; i++) {
      assert(i < 500, "the receiver never started writing");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertMatch((await listTree(dir))[0], /^\.slow\.bin\.[0-9a-f]{8}\.part$/);
    const stopped = await receiving.stop();
    assertEquals(stopped.code, 0, stopped.stderr);
    assertEquals(stopped.rest, []);
    assertMatch(
      stopped.stderr,
      /^spool receive: stream \S+ failed in object "slow\.bin": receiver-closed/,
    );
    assertEquals(await listTree(dir), []);
    try {
      more.close();
    } catch {
      // The failed stream already cancelled the body.
    }
    await assertRejects(() => stream.fin());
  });
});

Deno.test("transport cli: a shared secret; --quiet receive prints only its URL", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    await makeFiles(dir, { "s.bin": 5000 });
    const receiving = await receive(["--dir", `${dir}/out`, "--quiet"], {
      SPOOL_TRANSPORT_SECRET: SECRET,
    });
    const withSecret = await spool([
      "send",
      "--secret",
      SECRET,
      "--quiet",
      receiving.url,
      `${dir}/s.bin`,
    ]);
    assertEquals(withSecret.code, 0, withSecret.stderr);
    assertEquals(withSecret.stdout, "");
    const wrong = await spool([
      "send",
      receiving.url,
      `${dir}/s.bin`,
    ], { SPOOL_TRANSPORT_SECRET: SECRET.replace("0", "1") });
    assertEquals(wrong.code, 1);
    assertMatch(wrong.stderr, /^spool send: [^\n]*unauthorized[^\n]*\n$/);
    const none = await spool(["send", receiving.url, `${dir}/s.bin`]);
    assertEquals(none.code, 1);
    assertMatch(none.stderr, /^spool send: [^\n]*unauthorized[^\n]*\n$/);
    assertEquals(
      await sha256(await Deno.readFile(`${dir}/out/s.bin`)),
      await sha256(await Deno.readFile(`${dir}/s.bin`)),
    );
    const stopped = await receiving.stop();
    assertEquals(stopped.code, 0);
    assertEquals(stopped.rest, []);
  });
});

Deno.test("transport cli: usage errors exit 2, unreadable files exit 1 before sending", async () => {
  await withTempDir("spool-tcli-", async (dir) => {
    await Deno.mkdir(`${dir}/x`);
    await Deno.mkdir(`${dir}/y`);
    await makeFiles(dir, { "x/same": 1, "y/same": 1 });
    const url = "http://127.0.0.1:9/v1/objstream/spool";
    const cases: [string[], number, string][] = [
      [["send", url], 2, "spool send: send takes a URL and at least one FILE"],
      [
        ["send", "--burst", "0", url, `${dir}/x/same`],
        2,
        "spool send: --burst",
      ],
      [
        ["send", "--secret", "short", url, `${dir}/x/same`],
        2,
        "spool send: --secret has 5 characters",
      ],
      [["send", "ftp://h/x", `${dir}/x/same`], 2, "spool send: receiver URL"],
      [["send", url, `${dir}/x/same`, `${dir}/y/same`], 2, "spool send: "],
      [
        ["send", url, `${dir}/missing`],
        1,
        `spool send: cannot read ${dir}/missing`,
      ],
      [
        ["send", url, dir],
        1,
        `spool send: cannot read ${dir}: not a regular file`,
      ],
      [["receive"], 2, "spool receive: receive needs --port P"],
      [["receive", "--port", "70000"], 2, "spool receive: --port"],
      [
        ["receive", "--port", "0", "extra"],
        2,
        "spool receive: unexpected argument",
      ],
      [
        ["receive", "--port", "0", "--name", "a/b"],
        2,
        "spool receive: endpoint name",
      ],
      [["frobnicate"], 2, 'spool: unknown command "frobnicate"'],
      [[], 2, "Usage: spool COMMAND"],
    ];
    for (const [args, code, stderr] of cases) {
      const run = await spool(args);
      assertEquals(run.code, code, `${args.join(" ")}: ${run.stderr}`);
      assert(run.stderr.startsWith(stderr), `${args.join(" ")}: ${run.stderr}`);
    }
    const duplicate = await spool([
      "send",
      url,
      `${dir}/x/same`,
      `${dir}/y/same`,
    ]);
    assertMatch(duplicate.stderr, /would both be sent as "same"/);
  });
});

Deno.test("spool: --version from deno.json, --help lists every command", async () => {
  const { version } = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  const shown = await spool(["--version"]);
  assertEquals(shown.code, 0);
  assertEquals(shown.stdout, `spool ${version}\n`);
  const help = await spool(["--help"]);
  assertEquals(help.code, 0);
  for (
    const command of [
      "server",
      "upload",
      "download",
      "status",
      "receive",
      "send",
    ]
  ) {
    assertMatch(help.stdout, new RegExp(`^  ${command} `, "m"));
  }
  const sendHelp = await spool(["send", "--help"]);
  assertEquals(sendHelp.code, 0);
  assert(sendHelp.stdout.includes("spool send URL FILE..."));
  const serverHelp = await spool(["server", "--help"]);
  assertEquals(serverHelp.code, 0);
  assert(serverHelp.stdout.includes("--checkpoint-ms N"));
  const clientHelp = await spool(["upload", "--help"]);
  assertEquals(clientHelp.code, 0);
  assert(clientHelp.stdout.startsWith("Usage: spool upload [options] FILE|-"));
});
