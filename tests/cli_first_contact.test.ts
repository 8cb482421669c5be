/**
 * What a new user meets first, through the real command line: progress on a
 * terminal (driven under `script`, which gives the command a pseudo
 * terminal), per-command help, bad usage with a hint, refusals before a
 * reference is printed, clear start-up failures, TLS and token hints,
 * prompt exits on signals, and docs that lint and link.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { join } from "node:path";
import { startUpload } from "../mod.ts";
import { spawnServer, startTestServer } from "./_helpers.ts";
import { within } from "./_fault_actors.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CLIENT = join(ROOT, "client/main.ts");
const SERVER = join(ROOT, "server/main.ts");
const SPOOL = join(ROOT, "spool.ts");
const FIXTURES = join(ROOT, "tests/fixtures");

/** Runs `deno run -A ARGS`; resolves with its exit code and output. */
async function deno(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/**
 * Runs `deno run -A ARGS` on a pseudo terminal (`script`), its stdout
 * redirected to `stdoutFile` if given; resolves with what the terminal
 * showed, carriage returns and all.
 */
async function onTerminal(
  args: string[],
  stdoutFile?: string,
): Promise<string> {
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  const command = [Deno.execPath(), "run", "-A", ...args].map(quote).join(" ") +
    (stdoutFile ? ` > ${quote(stdoutFile)}` : "");
  const { code, stdout, stderr } = await new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const shown = new TextDecoder().decode(stdout);
  assertEquals(
    code,
    0,
    `${command}: ${shown}${new TextDecoder().decode(stderr)}`,
  );
  return shown;
}

Deno.test("first contact: a follow on the terminal shows the log alone; redirected, progress has rounded figures and the total; an upload ends COMPLETED", async () => {
  await using server = await startTestServer();
  const up = await startUpload(server.url, {
    name: "tty.log",
    mimeType: "text/plain",
  });
  await up.send(new TextEncoder().encode("line 1\nline 2\n"));
  await up.closed();
  const shown = await onTerminal([
    CLIENT,
    "download",
    "--follow",
    up.reference,
  ]);
  assertEquals(shown, "line 1\r\nline 2\r\n");

  const dir = await Deno.makeTempDir({ prefix: "spool-tty-" });
  try {
    const copy = join(dir, "copy.log");
    const progress = await onTerminal([CLIENT, "download", up.reference], copy);
    assertEquals(await Deno.readTextFile(copy), "line 1\nline 2\n");
    // The terminal turns "\n" into "\r\n"; a bare "\r" starts a redraw.
    const last = progress.replaceAll("\r\n", "\n").split("\r").at(-1)!;
    assertMatch(
      last,
      // deno-lint-ignore no-control-regex -- the line starts by clearing the terminal line
      /^\x1b\[Kdownload: 14 B of 14 B \(100%\), [\d.]+ (B|KiB|MiB)\/s in \d+\.\d s: COMPLETED\n$/,
    );
    assert(
      !/\d\.\d{2,}/.test(progress),
      `unrounded figures: ${JSON.stringify(progress)}`,
    );

    const file = join(dir, "up.log");
    await Deno.writeTextFile(file, "x".repeat(3000));
    const uploaded = await onTerminal([
      CLIENT,
      "upload",
      "--server",
      server.url.href,
      file,
    ]);
    assertMatch(
      uploaded,
      /^ws:\/\/127\.0\.0\.1:\d+\/resources\/[\w-]{22}\r\n/,
    );
    assertMatch(
      uploaded.replaceAll("\r\n", "\n").split("\r").at(-1)!,
      /upload: 2\.9 KiB of 2\.9 KiB \(100%\), [\d.]+ (B|KiB|MiB)\/s in \d+\.\d s: COMPLETED\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("first contact: each command has its own --help, with every option", async () => {
  const upload = await deno([CLIENT, "upload", "--help"]);
  const download = await deno([SPOOL, "download", "--help"]);
  const status = await deno([CLIENT, "status", "-h"]);
  assertEquals([upload.code, download.code, status.code], [0, 0, 0]);
  assert(
    upload.stdout.startsWith(
      "Usage: deno run -A client/main.ts upload [options] FILE|-\n",
    ),
  );
  assert(download.stdout.startsWith("Usage: spool download [options] REF\n"));
  for (
    const option of [
      "--server",
      "--name",
      "--type",
      "--upload-token",
      "--ca",
      "--quiet",
      "--json",
      "--timeout-ms",
    ]
  ) {
    assertStringIncludes(upload.stdout, `  ${option} `);
  }
  for (
    const option of [
      "--follow",
      "--start",
      "--end",
      "--token",
      "--ca",
      "--quiet",
      "--timeout-ms",
    ]
  ) {
    assertStringIncludes(download.stdout, `  ${option} `);
  }
  assert(
    !upload.stdout.includes("--follow"),
    "upload's help lists download's options",
  );
  assert(
    !status.stdout.includes("--follow") && !status.stdout.includes("--name"),
  );
  const send = await deno([SPOOL, "send", "--help"]);
  const receive = await deno([SPOOL, "receive", "--help"]);
  assert(send.stdout.startsWith("Usage: spool send URL FILE... [options]\n"));
  assert(
    receive.stdout.startsWith("Usage: spool receive --port P [options]\n"),
  );
  for (const option of ["--prefix", "--secret", "--burst", "--quiet"]) {
    assertStringIncludes(send.stdout, `  ${option} `);
  }
  for (
    const option of [
      "--port",
      "--hostname",
      "--dir",
      "--name",
      "--secret",
      "--quiet",
    ]
  ) {
    assertStringIncludes(receive.stdout, `  ${option} `);
  }
  assert(!send.stdout.includes("--dir") && !receive.stdout.includes("--burst"));
  const server = await deno([SERVER, "--help"]);
  for (
    const route of [
      "/upload",
      "/resources/{id}/status",
      "/resources/{id}/events",
      "/resources/{id}/lines",
      "/view/",
      "/view/{id}",
    ]
  ) {
    assertStringIncludes(server.stdout, route);
  }
});

Deno.test("first contact: bad usage exits 2 with a hint, and creates nothing", async () => {
  await using server = await startTestServer();
  const id = "abcdefghijklmnopqrstuv";
  const cases: [string[], RegExp][] = [
    [
      ["download", id],
      /^spool: REF "abcdefghijklmnopqrstuv" is a resource id, not its reference; expected the URL the uploader printed, e\.g\. ws:\/\/127\.0\.0\.1:8787\/resources\/abcdefghijklmnopqrstuv\n/,
    ],
    [
      ["status", "ws://[bad"],
      /^spool: REF "ws:\/\/\[bad" is not a URL; expected the reference the uploader printed/,
    ],
    [
      ["download", "ftp://host/resources/x"],
      /^spool: REF "ftp:\/\/host\/resources\/x" has scheme ftp:; expected ws:, wss:, http: or https:/,
    ],
    [
      ["download", "--start", "-5", `ws://127.0.0.1:1/resources/${id}`],
      /^spool: --start is "-5"; expected an integer >= 0\n/,
    ],
    [
      ["upload", "--server", server.url.href, FIXTURES],
      /^spool: FILE ".*fixtures" is a directory; expected a file, or - for stdin\n/,
    ],
  ];
  for (const [args, expected] of cases) {
    const run = await deno([CLIENT, ...args]);
    assertEquals(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assertMatch(run.stderr, expected);
    assertMatch(
      run.stderr,
      /\nTry deno run -A client\/main\.ts (download|status|upload) --help\.\n$/,
    );
    assertEquals(run.stdout, "");
  }
  assertEquals([...server.registry.all()].length, 0, "a resource was created");
});

Deno.test("first contact: a file over --max-resource-bytes is refused before a reference is printed", async () => {
  await using server = await startTestServer({
    limits: { maxResourceBytes: 1000 },
  });
  const big = await Deno.makeTempFile({ prefix: "spool-big-" });
  await Deno.writeFile(big, new Uint8Array(5000));
  const run = await deno([CLIENT, "upload", "--server", server.url.href, big]);
  await Deno.remove(big);
  assertEquals(run.code, 1);
  assertEquals(run.stdout, "");
  assertMatch(
    run.stderr,
    /^spool: an upload of \d+ bytes exceeds the server's limit of 1000 \(limit maxResourceBytes\) \(the server's --max-resource-bytes sets it\)\n$/,
  );
  assertEquals([...server.registry.all()].length, 0);
});

Deno.test("first contact: a busy port and an unusable data dir fail at start, naming them", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = await Deno.makeTempDir({ prefix: "spool-start-" });
  try {
    const taken = await deno([
      SERVER,
      "--port",
      String(busy.addr.port),
      "--data-dir",
      dir,
    ]);
    assertEquals(taken.code, 1);
    assertEquals(
      taken.stderr,
      `spool server: cannot listen on 127.0.0.1:${busy.addr.port}: the address is in use (another Spool server?); choose another --port\n`,
    );
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "not a directory");
    const unusable = await deno([SERVER, "--port", "0", "--data-dir", file]);
    assertEquals(unusable.code, 1);
    assertMatch(
      unusable.stderr,
      /^spool server: the data dir .*a-file cannot be used: .*; expected a directory this user can create files in\n$/,
    );
    assertEquals(unusable.stdout, "", "it listened before failing");
  } finally {
    busy.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("first contact: a missing token and TLS mix-ups get a one-line hint", async () => {
  await using guarded = await startTestServer({
    uploadToken: "a-long-enough-token",
  });
  const file = join(FIXTURES, "README.md");
  const noToken = await deno([
    CLIENT,
    "upload",
    "--server",
    guarded.url.href,
    file,
  ]);
  assertEquals(noToken.code, 1);
  assertMatch(
    noToken.stderr,
    /\(pass the server's upload token with --upload-token T, or SPOOL_UPLOAD_TOKEN=T\)\n$/,
  );

  await using tls = await startTestServer({
    cert: await Deno.readTextFile(join(FIXTURES, "cert.pem")),
    key: await Deno.readTextFile(join(FIXTURES, "key.pem")),
  });
  const https = tls.url.href;
  const http = https.replace("https:", "http:");
  const hints: [string[], RegExp][] = [
    [
      ["upload", "--server", https, file],
      /UnknownIssuer \(the server's certificate is not signed by a CA this client trusts: pass that CA with --ca FILE \(or SPOOL_CA_FILE\)\)\n$/,
    ],
    [
      ["upload", "--server", http, file],
      /\(the server speaks TLS: use https:\/\/ or wss:\/\/\)\n$/,
    ],
    [
      ["upload", "--server", guarded.url.href.replace("http:", "https:"), file],
      /\(the server does not speak TLS: use http:\/\/ or ws:\/\/\)\n$/,
    ],
  ];
  for (const [args, expected] of hints) {
    const run = await deno([CLIENT, ...args]);
    assertEquals(run.code, 1, run.stderr);
    assertEquals(run.stderr.split("\n").length, 2, `one line: ${run.stderr}`);
    assertMatch(run.stderr, expected);
  }
  const trusted = await deno([
    CLIENT,
    "upload",
    "--server",
    https,
    "--ca",
    join(FIXTURES, "ca.pem"),
    file,
  ]);
  assertEquals(trusted.code, 0, trusted.stderr);
});

Deno.test("first contact: SIGINT and SIGTERM stop the server with a follower attached", async () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const dir = await Deno.makeTempDir({ prefix: "spool-signal-" });
    const server = await spawnServer(dir);
    try {
      const up = await startUpload(server.url, { name: "held.log" });
      const follower = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLIENT,
          "download",
          "--follow",
          "--quiet",
          up.reference,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await up.write(new TextEncoder().encode("x\n"));
      server.process.kill(signal);
      const status = await within(
        10_000,
        `the server after ${signal}`,
        server.process.status,
      );
      assertEquals(status.code, 0);
      assertEquals(
        (await within(10_000, "the follower", follower.status)).code,
        1,
      );
      await up.closed();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("first contact: every export entry passes deno doc --lint, and README's links are in the package", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  for (const entry of Object.values(config.exports) as string[]) {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["doc", "--lint", entry],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(
      code,
      0,
      `deno doc --lint ${entry}: ${new TextDecoder().decode(stderr)}`,
    );
  }
  const dryRun = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  // The file list goes to stderr or stdout depending on the version.
  const published = new TextDecoder().decode(dryRun.stdout) +
    new TextDecoder().decode(dryRun.stderr);
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  for (const [, target] of readme.matchAll(/\]\(((?:bench|docs)\/[^)#]+)/g)) {
    assertStringIncludes(
      published,
      join(ROOT, target),
      `README links to ${target}, which is not published`,
    );
  }
});

Deno.test("first contact: .ts, .log and .json uploads are typed as text the viewer follows", async () => {
  await using server = await startTestServer();
  const dir = await Deno.makeTempDir({ prefix: "spool-mime-" });
  try {
    for (
      const [name, type] of [
        ["build.ts", "text/typescript"],
        ["run.log", "text/plain"],
        ["data.json", "application/json"],
        ["blob.bin", "application/octet-stream"],
      ]
    ) {
      const file = join(dir, name);
      await Deno.writeTextFile(file, "x\n");
      const run = await deno([
        CLIENT,
        "upload",
        "--json",
        "--server",
        server.url.href,
        file,
      ]);
      assertEquals(run.code, 0, run.stderr);
      const final = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
      assertEquals(final.mimeType, type, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
