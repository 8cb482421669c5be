/**
 * `deno task soak`: minutes of mixed load on a Spool server and a transport
 * receiver (both subprocesses), verifying every byte, with a progress line
 * every few seconds and a summary of bytes moved, bytes lost and RSS over
 * time. Exits 1 if any byte was lost or corrupted or anything failed.
 *
 * Load: concurrent uploads, each with followers and range reads while it
 * grows and a full read once it is COMPLETED; object streams with mixed
 * sizes and body kinds (bytes and streams, known and unknown size), some
 * pausing past the idle teardown; every so often an idle pause of all
 * workers.
 *
 * `--receiver` runs the receiver role (used by the driver itself).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { delay } from "@std/async/delay";
import { equals } from "@std/bytes/equals";
import { TextLineStream } from "@std/streams";
import { integerFlag, parseFlags, UsageError } from "../cli/args.ts";
import { formatBytes } from "../cli/progress.ts";
import { openDownload, startUpload } from "../client/mod.ts";
import { isTerminal } from "../protocol/status.ts";
import { Receiver, Stream } from "../transport/mod.ts";
import { rssOf } from "../testing/process_memory.ts";
import { prng, randomBytes } from "../testing/seeded_random.ts";

const USAGE = `Usage: deno task soak [options]
       deno run -A soak/main.ts [options]

Runs mixed load against a Spool server and an object-transport receiver
(both subprocesses) and verifies every byte: uploads with live followers
and range reads, object streams of mixed sizes, periodic idle pauses.
Prints a progress line every few seconds, then a summary: bytes moved,
bytes lost (must be 0), bytes corrupted, errors, and RSS over time.

Options:
  --minutes N            run for N minutes (default 10)
  --seconds N            run for N seconds instead
  --quick                small resources and objects, progress every 2 s,
                         20 s unless --minutes/--seconds is given
  --uploaders N          concurrent uploads (default 3)
  --streams N            concurrent object streams (default 2)
  --progress-seconds N   seconds between progress lines (default 10)
  --seed N               seed of sizes and contents (default: random)
  -h, --help             show this help

Exit codes: 0 every byte verified; 1 bytes lost or corrupted, or errors;
2 bad usage.`;

const MiB = 1024 * 1024;
const TRNAME = "soak";

// ---------------------------------------------------------------- helpers

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Reads a stream, hashing it; keeps the length and the first error. */
async function hashStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ length: number; sha: string; error?: unknown }> {
  const hash = createHash("sha256");
  let length = 0;
  try {
    for await (const chunk of stream) {
      hash.update(chunk);
      length += chunk.byteLength;
    }
  } catch (error) {
    return { length, sha: hash.digest("hex"), error };
  }
  return { length, sha: hash.digest("hex") };
}

/** Lines of a child's stdout. */
function lines(
  stream: ReadableStream<Uint8Array>,
): AsyncIterableIterator<string> {
  return stream.pipeThrough(new TextDecoderStream())
    .pipeThrough<string>(new TextLineStream())[Symbol.asyncIterator]();
}

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  quick: boolean;
  uploaders: number;
  streams: number;
  progressSeconds: number;
  seed: number;
}

/** Reads the soak's flags (`--receiver` aside, which picks the role). */
function parseOptions(args: string[]): Options | "help" {
  const { strings, booleans, positional } = parseFlags(args, {
    string: [
      "minutes",
      "seconds",
      "uploaders",
      "streams",
      "progress-seconds",
      "seed",
    ],
    boolean: ["quick", "help"],
    alias: { h: "help" },
  });
  if (booleans.help) return "help";
  if (positional.length > 0) {
    throw new UsageError(
      `unexpected argument ${positional[0]}; the soak takes options only`,
    );
  }
  const quick = booleans.quick;
  const count = (name: string, fallback: number, min = 0) =>
    integerFlag(strings, name, { min, fallback })!;
  const seconds = strings.seconds !== undefined
    ? count("seconds", 0)
    : strings.minutes !== undefined
    ? count("minutes", 10) * 60
    : quick
    ? 20
    : 600;
  return {
    seconds,
    quick,
    uploaders: count("uploaders", 3),
    streams: count("streams", 2),
    progressSeconds: count("progress-seconds", quick ? 2 : 10, 1),
    seed: integerFlag(strings, "seed", {
      max: 0xffff_ffff,
      fallback: crypto.getRandomValues(new Uint32Array(1))[0],
    })!,
  };
}

// ---------------------------------------------------------------- receiver role

/** The receiver subprocess: verifies each object against its header checksum. */
async function receiverRole(): Promise<void> {
  const receiver = new Receiver();
  await receiver.listen("data");
  receiver.register("data", TRNAME, async (header, body, error) => {
    if (error) {
      console.log(`e ${header.name || "-"} ${error.code}`);
      return;
    }
    const hash = createHash("sha256");
    let length = 0;
    if (body !== null) {
      for await (const chunk of body) {
        hash.update(chunk);
        length += chunk.byteLength;
      }
    }
    const ok = header.checksum?.value === hash.digest("hex");
    console.log(`r ${header.name} ${length} ${ok ? "ok" : "bad"}`);
  });
  Deno.addSignalListener("SIGTERM", async () => {
    await receiver.close();
    Deno.exit(0);
  });
  console.log(`url ${receiver.url("data", TRNAME).href}`);
}

// ---------------------------------------------------------------- driver

interface Totals {
  uploads: number;
  uploadBytes: number;
  followerBytes: number;
  rangeReads: number;
  rangeBytes: number;
  finalReadBytes: number;
  streams: number;
  objects: number;
  objectBytes: number;
  lost: number;
  corrupted: number;
  errors: number;
}

interface Sample {
  t: number;
  server: number;
  receiver: number;
  driver: number;
}

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

/** Runs a child and resolves once its first stdout line matches `pattern`. */
async function startChild(
  args: string[],
  pattern: RegExp,
): Promise<
  {
    child: Deno.ChildProcess;
    match: RegExpMatchArray;
    rest: AsyncIterableIterator<string>;
  }
> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const rest = lines(child.stdout);
  const first = await rest.next();
  const match = first.done ? null : first.value.match(pattern);
  if (!match) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error(
      `unexpected first line of ${args.join(" ")}: ${first.value}`,
    );
  }
  return { child, match, rest };
}

async function driver(options: Options): Promise<number> {
  const start = performance.now();
  const deadline = start + options.seconds * 1000;
  const elapsed = () => (performance.now() - start) / 1000;
  const totals: Totals = {
    uploads: 0,
    uploadBytes: 0,
    followerBytes: 0,
    rangeReads: 0,
    rangeBytes: 0,
    finalReadBytes: 0,
    streams: 0,
    objects: 0,
    objectBytes: 0,
    lost: 0,
    corrupted: 0,
    errors: 0,
  };
  const errorMessages: string[] = [];
  const fail = (what: string, error: unknown) => {
    totals.errors++;
    if (errorMessages.length < 20) {
      errorMessages.push(
        `${what}: ${error instanceof Error ? error.message : String(error)}`,
      );
      console.error(`soak: ${errorMessages.at(-1)}`);
    }
  };
  const moved = () =>
    totals.uploadBytes + totals.followerBytes + totals.rangeBytes +
    totals.finalReadBytes + totals.objectBytes;

  console.log(
    `soak: ${options.seconds} s, ${options.uploaders} uploaders, ${options.streams} streams, seed ${options.seed}${
      options.quick ? ", quick" : ""
    }`,
  );
  const dataDir = await Deno.makeTempDir({ prefix: "spool-soak-" });
  const server = await startChild([
    "run",
    "-A",
    SERVER_MAIN,
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--checkpoint-ms",
    "50",
    // Finished resources go after 30 s: disk use stays bounded.
    "--retention-ms",
    "30000",
  ], /^Listening on (http:\/\/\S+)$/);
  const serverUrl = new URL(server.match[1]);
  (async () => {
    for await (const _ of server.rest) { /* drain */ }
  })();
  const receiver = await startChild(
    ["run", "-A", new URL(import.meta.url).pathname, "--receiver"],
    /^url (\S+)$/,
  );
  const receiverUrl = receiver.match[1];

  // Receipts from the receiver, by object name.
  const receipts = new Map<string, { length: number; ok: boolean }>();
  const receiptWaiters = new Map<string, () => void>();
  const receiverErrors: string[] = [];
  const receiverDone = (async () => {
    for await (const line of receiver.rest) {
      const [kind, name, value, verdict] = line.split(" ");
      if (kind === "r") {
        receipts.set(name, { length: Number(value), ok: verdict === "ok" });
        receiptWaiters.get(name)?.();
      } else if (kind === "e") {
        receiverErrors.push(line);
      }
    }
  })();

  // RSS samples and progress. A child gone is a failure, and the run goes
  // on to its summary.
  const rss = (what: string, pid: number) =>
    rssOf(pid).catch((error) => {
      fail(`RSS of the ${what}`, error);
      return 0;
    });
  const samples: Sample[] = [];
  const sample = async () => {
    const s = {
      t: elapsed(),
      server: await rss("server", server.child.pid),
      receiver: await rss("receiver", receiver.child.pid),
      driver: Deno.memoryUsage().rss,
    };
    samples.push(s);
    return s;
  };
  await sample();
  let lastMoved = 0;
  let lastT = 0;
  const progress = async () => {
    const s = await sample();
    const rate = (moved() - lastMoved) / Math.max(0.001, s.t - lastT);
    lastMoved = moved();
    lastT = s.t;
    console.log(
      `[${s.t.toFixed(0).padStart(5)} s] moved ${formatBytes(moved())} (${
        formatBytes(rate)
      }/s), uploads ${totals.uploads}, objects ${totals.objects}, bytes lost: ${totals.lost}, corrupted: ${totals.corrupted}, errors: ${totals.errors}, RSS server ${
        formatBytes(s.server)
      }, receiver ${formatBytes(s.receiver)}, driver ${formatBytes(s.driver)}`,
    );
  };
  const progressTimer = setInterval(
    () => void progress(),
    options.progressSeconds * 1000,
  );

  // Idle pauses: every so often every worker stops at its next step.
  const pauseEvery = options.quick ? 8_000 : 60_000;
  const pauseFor = options.quick ? 1_500 : 6_000;
  let pauseUntil = 0;
  let nextPause = start + pauseEvery;
  let pauses = 0;
  const idle = async () => {
    const now = performance.now();
    if (now >= nextPause && now < deadline) {
      pauseUntil = now + pauseFor;
      nextPause = now + pauseEvery;
      pauses++;
    }
    if (now < pauseUntil) await delay(pauseUntil - now);
  };

  const maxUpload = options.quick ? 2 * MiB : 24 * MiB;
  const maxObject = options.quick ? 512 * 1024 : 8 * MiB;
  let nextSeed = options.seed;

  const uploadSize = (r: (n: number) => number) => {
    const kind = r(10);
    if (kind === 0) return r(4096);
    if (kind < 6) return 64 * 1024 + r(2 * MiB - 64 * 1024);
    return Math.min(maxUpload, 2 * MiB + r(maxUpload));
  };
  const objectSize = (r: (n: number) => number) => {
    const kind = r(20);
    if (kind === 0) return 0;
    if (kind < 10) return 1 + r(4096);
    if (kind < 18) return 4096 + r(256 * 1024);
    return Math.min(maxObject, 256 * 1024 + r(maxObject));
  };

  /** One upload with followers, range reads and a final read. */
  const uploadOnce = async (worker: number, iteration: number) => {
    const seed = nextSeed++;
    const r = prng(seed);
    const size = uploadSize(r);
    const source = randomBytes(size, seed);
    const expected = sha256(source);
    const up = await startUpload(serverUrl, {
      name: `u${worker}-${iteration}`,
    });
    // Watchers connect before the first byte (a status right behind the
    // first one can be lost by openDownload).
    const watchers = await Promise.all(
      Array.from({ length: 1 + r(2) }, () => openDownload(up.reference)),
    );
    try {
      const followed = watchers.map((w) => hashStream(w.follow()));
      let writing = true;
      // Range reads of whatever is checkpointed while the upload grows.
      let rangeError: unknown;
      const ranges = (async () => {
        const w = watchers[0];
        let seen = 0;
        while (writing) {
          const status = await w.waitForStatus((s) =>
            s.size > seen || isTerminal(s) || !writing
          );
          if (isTerminal(status) || status.size === 0) break;
          seen = status.size;
          const a = r(status.size);
          const b = a + 1 + r(Math.min(status.size - a, MiB));
          const bytes = new Uint8Array(
            await new Response(w.read(a, b)).arrayBuffer(),
          );
          totals.rangeReads++;
          totals.rangeBytes += bytes.byteLength;
          if (!equals(bytes, source.subarray(a, b))) {
            totals.corrupted += b - a;
            fail(
              `range [${a}, ${b}) of ${up.id}`,
              "bytes differ from the source",
            );
          }
        }
      })().catch((error) => rangeError = error);
      // A quarter of the uploads trickle (small writes, short pauses: a
      // live log); the others go as fast as the window allows, with now and
      // then a longer stall.
      const trickle = r(4) === 0;
      for (let at = 0; at < size;) {
        const end = Math.min(size, at + 1 + r(trickle ? 64 * 1024 : MiB));
        await up.write(source.subarray(at, end));
        totals.uploadBytes += end - at;
        at = end;
        if (trickle ? r(4) === 0 : r(100) === 0) {
          await delay(trickle ? 5 + r(45) : 100 + r(1500));
        }
      }
      const final = await up.finish();
      writing = false;
      await up.closed();
      if (final.status !== "COMPLETED" || final.sha256 !== expected) {
        totals.corrupted += size;
        fail(`upload ${up.id}`, `final status ${JSON.stringify(final)}`);
      }
      for (const result of await Promise.all(followed)) {
        totals.followerBytes += result.length;
        if (result.error !== undefined) {
          totals.lost += size - result.length;
          fail(`follower of ${up.id}`, result.error);
        } else if (result.length !== size) {
          totals.lost += Math.max(0, size - result.length);
          fail(`follower of ${up.id}`, `${result.length} of ${size} bytes`);
        } else if (result.sha !== expected) {
          totals.corrupted += size;
          fail(`follower of ${up.id}`, "sha256 differs");
        }
      }
      await ranges;
      if (rangeError !== undefined) fail(`range reads of ${up.id}`, rangeError);
      // A fresh reader of the finished resource gets every byte.
      await using reader = await openDownload(up.reference);
      const whole = await hashStream(reader.read(0, reader.status.size));
      totals.finalReadBytes += whole.length;
      for (let k = 0; k < 2 && size > 0; k++) {
        const a = r(size);
        const b = a + 1 + r(Math.min(size - a, MiB));
        const bytes = new Uint8Array(
          await new Response(reader.read(a, b)).arrayBuffer(),
        );
        totals.rangeReads++;
        totals.rangeBytes += bytes.byteLength;
        if (!equals(bytes, source.subarray(a, b))) {
          totals.corrupted += b - a;
          fail(
            `range [${a}, ${b}) of ${up.id}`,
            "bytes differ from the source",
          );
        }
      }
      if (whole.length !== size || whole.sha !== expected) {
        totals.lost += Math.max(0, size - whole.length);
        if (whole.length === size) totals.corrupted += size;
        fail(
          `final read of ${up.id}`,
          `${whole.length} bytes, sha ${whole.sha}`,
        );
      }
      totals.uploads++;
    } finally {
      await Promise.all(watchers.map((w) => w.close()));
    }
  };

  /** One object stream: mixed objects, then fin, then every receipt checked. */
  const streamOnce = async (worker: number, iteration: number) => {
    const seed = nextSeed++;
    const r = prng(seed);
    const count = 20 + r(options.quick ? 100 : 400);
    const sent = new Map<string, { length: number }>();
    let failedCompletions = 0;
    const stream = new Stream(receiverUrl, {
      burst: 1 + r(256),
      idleTimeoutMs: 1000,
      onSent: (header, error) => {
        if (error) {
          failedCompletions++;
          fail(`object ${header.name}`, error);
        }
      },
    });
    try {
      for (let i = 0; i < count; i++) {
        const name = `o${worker}-${iteration}-${i}`;
        const size = objectSize(r);
        const body = randomBytes(size, seed * 31 + i);
        const checksum = { type: "sha256", value: sha256(body) };
        sent.set(name, { length: size });
        const kind = r(4);
        await stream.send(
          { name, checksum, custom: { i: String(i) } },
          size === 0 ? null : kind === 0
            ? ReadableStream.from(
              Array.from(
                { length: Math.ceil(size / 50_000) },
                (_, k) => body.subarray(k * 50_000, (k + 1) * 50_000),
              ),
            )
            : body,
        );
        // Now and then a pause past the idle teardown: the next object
        // reconnects with the same session.
        if (r(150) === 0) await delay(1_200 + r(800));
      }
      await stream.fin();
    } finally {
      if (!stream.terminated) await stream.abort("soak worker failed");
    }
    // Every object must come back whole from the receiver.
    const waitFor = async (name: string) => {
      if (receipts.has(name)) return;
      const arrived = new Promise<void>((resolve) =>
        receiptWaiters.set(name, resolve)
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        arrived,
        new Promise<void>((resolve) => timer = setTimeout(resolve, 60_000)),
      ]);
      clearTimeout(timer);
      receiptWaiters.delete(name);
    };
    for (const [name, { length }] of sent) {
      await waitFor(name);
      const receipt = receipts.get(name);
      receipts.delete(name);
      if (receipt === undefined) {
        totals.lost += length;
        fail(`object ${name}`, "never received");
      } else if (!receipt.ok || receipt.length !== length) {
        totals.corrupted += length;
        fail(
          `object ${name}`,
          `received ${receipt.length} bytes, ${
            receipt.ok ? "checksum ok" : "checksum mismatch"
          }`,
        );
      } else {
        totals.objects++;
        totals.objectBytes += length;
      }
    }
    if (failedCompletions > 0) {
      fail(
        `stream ${stream.sessionId}`,
        `${failedCompletions} failed completions`,
      );
    }
    totals.streams++;
  };

  const workers: Promise<void>[] = [];
  for (let w = 0; w < options.uploaders; w++) {
    workers.push((async () => {
      for (let i = 0; performance.now() < deadline; i++) {
        await idle();
        if (performance.now() >= deadline) break;
        await uploadOnce(w, i).catch((error) =>
          fail(`upload worker ${w}`, error)
        );
      }
    })());
  }
  for (let w = 0; w < options.streams; w++) {
    workers.push((async () => {
      for (let i = 0; performance.now() < deadline; i++) {
        await idle();
        if (performance.now() >= deadline) break;
        await streamOnce(w, i).catch((error) =>
          fail(`stream worker ${w}`, error)
        );
      }
    })());
  }
  await Promise.all(workers);
  clearInterval(progressTimer);
  await progress();

  // Shut down: both children exit cleanly on SIGTERM.
  server.child.kill("SIGTERM");
  receiver.child.kill("SIGTERM");
  const [serverStatus, receiverStatus] = await Promise.all([
    server.child.status,
    receiver.child.status,
  ]);
  await receiverDone;
  if (serverStatus.code !== 0) {
    fail("server", `exited with ${serverStatus.code}`);
  }
  if (receiverStatus.code !== 0) {
    fail("receiver", `exited with ${receiverStatus.code}`);
  }
  for (const line of receiverErrors) fail("receiver", line);
  await Deno.remove(dataDir, { recursive: true });

  // Summary.
  const mib = (n: number) => (n / MiB).toFixed(1).padStart(9);
  const every = Math.max(1, Math.ceil(samples.length / 60));
  console.log("\nRSS over time (MiB):");
  console.log("   time     server  receiver    driver");
  samples.forEach((s, i) => {
    if (i % every === 0 || i === samples.length - 1) {
      console.log(
        `${(s.t.toFixed(0) + " s").padStart(7)}${mib(s.server)} ${
          mib(s.receiver)
        } ${mib(s.driver)}`,
      );
    }
  });
  const peak = (key: "server" | "receiver" | "driver") =>
    Math.max(...samples.map((s) => s[key]));
  console.log(
    `   peak${mib(peak("server"))} ${mib(peak("receiver"))} ${
      mib(peak("driver"))
    }`,
  );
  const seconds = elapsed();
  console.log(`
Totals over ${
    seconds.toFixed(1)
  } s (seed ${options.seed}, ${pauses} idle pauses):
  uploads completed     ${totals.uploads} (${
    formatBytes(totals.uploadBytes)
  } uploaded)
  follower bytes        ${formatBytes(totals.followerBytes)}
  range reads           ${totals.rangeReads} (${formatBytes(totals.rangeBytes)})
  final reads           ${formatBytes(totals.finalReadBytes)}
  streams finished      ${totals.streams}
  objects delivered     ${totals.objects} (${formatBytes(totals.objectBytes)})
  bytes moved: ${moved()} (${formatBytes(moved())}, ${
    formatBytes(moved() / seconds)
  }/s)
  bytes lost: ${totals.lost}
  bytes corrupted: ${totals.corrupted}
  errors: ${totals.errors}`);
  for (const message of errorMessages) console.log(`  error: ${message}`);
  const ok = totals.lost === 0 && totals.corrupted === 0 && totals.errors === 0;
  console.log(ok ? "soak: PASS" : "soak: FAIL");
  return ok ? 0 : 1;
}

if (import.meta.main) {
  if (Deno.args.includes("--receiver")) {
    await receiverRole();
  } else {
    let options: Options | "help";
    try {
      options = parseOptions(Deno.args);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      console.error(`soak: ${error.message}\nTry --help.`);
      Deno.exit(2);
    }
    if (options === "help") {
      console.log(USAGE);
      Deno.exit(0);
    }
    Deno.exit(await driver(options));
  }
}
