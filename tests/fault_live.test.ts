/**
 * Fault tests of live resources: uploaders, followers and the server are
 * real subprocesses, SIGKILLed at seeded random points (`SPOOL_FAULT_SEED`
 * replays a run). Kills are triggered by what the test observes (bytes
 * written, statuses, bytes followed), never by sleeping.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  openDownload,
  ResourceFailedError,
  type ResourceStatus,
  SpoolError,
  startUpload,
  type Upload,
  upload,
} from "../mod.ts";
import { DISCONNECTED_REASON, INTERRUPTED_REASON } from "../server/mod.ts";
import {
  randomBytes,
  readAll,
  sha256,
  spawnServer,
  startTestServer,
} from "./_helpers.ts";
import {
  Children,
  faultSeed,
  kill,
  Lines,
  prng,
  within,
} from "./_fault_actors.ts";

const CLIENT_MAIN = new URL("../client/main.ts", import.meta.url).pathname;
const GUARD_MS = 30_000;

/** Reads a stream to its end or error, keeping every byte it gave. */
async function collect(
  stream: ReadableStream<Uint8Array>,
): Promise<{ bytes: Uint8Array; error?: unknown }> {
  const chunks: Uint8Array[] = [];
  let error: unknown;
  try {
    for await (const chunk of stream) chunks.push(chunk);
  } catch (caught) {
    error = caught;
  }
  const bytes = new Uint8Array(
    await new Blob(chunks as BlobPart[]).arrayBuffer(),
  );
  return { bytes, error };
}

/** Whether `bytes` equals the first `bytes.length` bytes of `source`. */
function isPrefix(bytes: Uint8Array, source: Uint8Array): boolean {
  if (bytes.byteLength > source.byteLength) return false;
  for (let i = 0; i < bytes.byteLength; i++) {
    if (bytes[i] !== source[i]) return false;
  }
  return true;
}

/** Writes `bytes` to `writer` in seeded random pieces of 1 byte to 256 KiB. */
async function writeInPieces(
  write: (piece: Uint8Array) => Promise<void>,
  bytes: Uint8Array,
  rand: (n: number) => number,
): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
    const piece = 1 + rand(256 * 1024);
    await write(bytes.subarray(at, at + piece));
    at += piece;
  }
}

Deno.test("fault live: SIGKILLed uploaders fail after the resume grace; followers keep an exact prefix and get ResourceFailedError", async () => {
  const seed = faultSeed("fault live uploaders");
  const rand = prng(seed);
  const graceMs = 300;
  await using server = await startTestServer({ resumeGraceMs: graceMs });
  await using children = new Children();
  // An unrelated upload runs alongside and must not notice anything.
  const healthyData = randomBytes(500_000 + rand(1_500_000), seed + 99);
  const healthy = upload(server.url, healthyData, { name: "healthy.bin" });

  const victims = Array.from({ length: 3 }, async (_, k) => {
    const caseRand = prng(seed + 1000 * (k + 1));
    const total = 100_000 + caseRand(2_000_000);
    const source = randomBytes(total, seed + k);
    // Bytes given to the uploader before it dies, and the checkpointed size
    // the follower must have seen when the kill comes: none (the kill lands
    // while the uploader still reads its stdin), some, or all of them.
    const written = caseRand(total + 1);
    const when = caseRand(3);
    const observe = when === 0
      ? 0
      : when === 1
      ? caseRand(written + 1)
      : written;
    const uploader = children.add(
      {
        child: new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CLIENT_MAIN,
            "upload",
            "--quiet",
            "--server",
            server.url.href,
            "--name",
            `victim-${k}`,
            "-",
          ],
          stdin: "piped",
          stdout: "piped",
          stderr: "null",
        }).spawn(),
      },
      (u) => u.child.stdout.cancel().catch(() => {}),
    );
    const stdin = uploader.child.stdin.getWriter();
    const lines = new Lines(uploader.child.stdout);
    const reference = await within(
      GUARD_MS,
      "uploader reference",
      lines.until(() => true),
    );
    await using download = await openDownload(reference);
    const followed = collect(download.follow());
    // stdin stays open: the uploader can only end by being killed.
    await writeInPieces(
      (p) => stdin.write(p),
      source.subarray(0, written),
      caseRand,
    );
    await within(
      GUARD_MS,
      `checkpoint of ${observe} bytes`,
      download.waitForStatus((s) => s.size >= observe),
    );
    const killedAt = performance.now();
    const status = await kill(uploader.child);
    assertEquals(status.signal, "SIGKILL", "killed mid-upload, not exited");
    await stdin.close().catch(() => {/* the child is gone */});
    await lines.rest();

    const failed = await within(
      GUARD_MS,
      "FAILED status",
      download.waitForStatus((s) => s.status === "FAILED"),
    );
    const failedAfter = performance.now() - killedAt;
    assert(
      failedAfter >= graceMs - 5,
      `FAILED ${
        failedAfter.toFixed(1)
      } ms after the kill; expected the ${graceMs} ms resume grace first`,
    );
    assertEquals(failed.error, DISCONNECTED_REASON);
    assert(
      failed.size >= observe && failed.size <= written,
      `size ${failed.size}, observed ${observe}, written ${written}`,
    );
    const { bytes, error } = await followed;
    assert(
      error instanceof ResourceFailedError,
      `follower ended with ${error}`,
    );
    assertEquals((error as ResourceFailedError).reason, DISCONNECTED_REASON);
    // A follow fails as soon as FAILED arrives: it may miss bytes it had not
    // received yet, never get bytes past the final size.
    assert(
      bytes.byteLength <= failed.size,
      `followed ${bytes.byteLength} bytes, FAILED at ${failed.size}`,
    );
    assert(
      isPrefix(bytes, source),
      "the follower's bytes are a prefix of the source",
    );
    // Every stored byte is readable and is the source's; none past the size.
    const stored = await readAll(download.read(0, failed.size));
    assertEquals(
      await sha256(stored),
      await sha256(source.subarray(0, failed.size)),
    );
    const past = await assertRejects(
      () => readAll(download.read(0, failed.size + 1)),
      SpoolError,
    );
    assertEquals(past.code, "range-not-satisfiable");
    return {
      total,
      written,
      observe,
      size: failed.size,
      followed: bytes.byteLength,
    };
  });
  const results = await Promise.all(victims);
  const done = await healthy;
  assertEquals(done.status, "COMPLETED");
  assertEquals(done.sha256, await sha256(healthyData));
  console.log(
    results.map((r) =>
      `killed at ${r.size}/${r.written}/${r.total} (stored/written/total), followed ${r.followed}`
    ).join("\n"),
  );
});

Deno.test("fault live: SIGKILLed followers leave the server and the upload unaffected", async () => {
  const seed = faultSeed("fault live followers");
  const rand = prng(seed);
  await using server = await startTestServer();
  await using children = new Children();
  const total = 2_000_000 + rand(3_000_000);
  const source = randomBytes(total, seed);
  const up = await startUpload(server.url, { name: "followed.bin" });

  // Upload progress, so a follower can be killed once the server holds
  // bytes it has not taken yet.
  let uploaded = 0;
  const progress: { at: number; resolve: () => void }[] = [];
  const uploadedPast = (at: number) => {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (uploaded >= at) resolve();
    else progress.push({ at, resolve });
    return promise;
  };

  const followers = Array.from({ length: 3 }, (_, k) => {
    const killAt = 1 + rand(total - 1);
    // One follower stops reading first: its pipe and socket window fill up.
    const stall = k === 0;
    const extra = stall ? rand(2_000_000) : 0;
    const follower = children.add(
      {
        child: new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CLIENT_MAIN,
            "download",
            "--quiet",
            "--follow",
            up.reference,
          ],
          stdout: "piped",
          stderr: "null",
        }).spawn(),
      },
      (f) => f.child.stdout.cancel().catch(() => {}),
    );
    const run = (async () => {
      const reader = follower.child.stdout.getReader();
      let got = 0;
      let prefixOk = true;
      while (got < killAt) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`follower ${k} ended at ${got} bytes`);
        if (!isPrefix(value, source.subarray(got))) prefixOk = false;
        got += value.byteLength;
      }
      if (stall) await uploadedPast(Math.min(total, killAt + extra));
      const status = await kill(follower.child);
      while (!(await reader.read()).done) { /* drain */ }
      return { killAt, got, prefixOk, status, stall };
    })();
    return { killAt, extra, run };
  });
  // Upload up to past every kill point, wait for the kills, then the rest.
  const gate = Math.min(
    total,
    Math.max(...followers.map((f) => f.killAt + f.extra)),
  );
  for (let at = 0; at < total;) {
    if (at >= gate) {
      await within(
        GUARD_MS,
        "followers killed",
        Promise.all(followers.map((f) => f.run)),
      );
    }
    const end = Math.min(at + 1 + rand(256 * 1024), at < gate ? gate : total);
    await up.write(source.subarray(at, end));
    at = end;
    uploaded = at;
    for (const waiter of progress.filter((p) => p.at <= uploaded)) {
      waiter.resolve();
    }
  }
  const killed = await Promise.all(followers.map((f) => f.run));
  const final = await up.finish();
  await up.closed();
  assertEquals(final.status, "COMPLETED");
  assertEquals(final.size, total);
  assertEquals(final.sha256, await sha256(source));
  for (const [k, f] of killed.entries()) {
    assertEquals(
      f.status.signal,
      "SIGKILL",
      `follower ${k} was killed mid-follow`,
    );
    assert(f.prefixOk, `follower ${k} got a prefix of the source`);
    assert(f.got >= f.killAt && f.got <= total, `follower ${k}: ${f.got}`);
  }
  // A fresh follower gets every byte.
  await using fresh = await openDownload(up.reference);
  const whole = await within(GUARD_MS, "fresh follow", readAll(fresh.follow()));
  assertEquals(whole.byteLength, total);
  assertEquals(await sha256(whole), await sha256(source));
  console.log(
    `followers killed at ${
      killed.map((f) => `${f.got}${f.stall ? " (stalled)" : ""}`).join(", ")
    } of ${total}`,
  );
});

/** One upload across server lives, and what the test knows of it. */
interface Tracked {
  id: string;
  source: Uint8Array;
  role: "complete" | "live" | "finishing";
  /** The uploader was told COMPLETED. */
  completed: boolean;
  /** Bytes the server had acknowledged (written to its store) at the kill. */
  acked: number;
  /** Bytes the uploader had sent at the kill. */
  sent: number;
  /** The status seen after the first restart: it must never change again. */
  settled?: ResourceStatus;
  /** The server life it was uploaded to. */
  round?: number;
}

/** Every `.json` in the data dir parses, and names its own resource. */
async function checkMetadata(
  dataDir: string,
): Promise<{ json: number; tmp: number }> {
  let json = 0;
  let tmp = 0;
  for await (const folder of Deno.readDir(dataDir)) {
    if (!folder.isDirectory) continue;
    for await (const entry of Deno.readDir(`${dataDir}/${folder.name}`)) {
      if (entry.name.endsWith(".tmp")) tmp++;
      if (!entry.name.endsWith(".json")) continue;
      json++;
      const text = await Deno.readTextFile(
        `${dataDir}/${folder.name}/${entry.name}`,
      );
      let status: ResourceStatus;
      try {
        status = JSON.parse(text);
      } catch (error) {
        throw new Error(
          `torn metadata ${entry.name}: ${(error as Error).message}: ${text}`,
        );
      }
      assertEquals(`${status.id}.json`, entry.name);
      assert(
        ["INITIATED", "IN_PROGRESS", "COMPLETED", "FAILED"].includes(
          status.status,
        ),
        text,
      );
    }
  }
  return { json, tmp };
}

/** Checks one resource on a (re)started server. */
async function verify(server: URL, dataDir: string, t: Tracked): Promise<void> {
  const reference = new URL(`resources/${t.id}`, server);
  reference.protocol = "ws:";
  await using download = await openDownload(reference.href);
  const status = download.status;
  const label = `${t.role} ${t.id}`;
  if (t.settled) {
    assertEquals(status, t.settled, `${label} changed after a restart`);
  }
  if (t.completed) {
    assertEquals(status.status, "COMPLETED", label);
  }
  if (status.status === "COMPLETED") {
    // Only an upload that finished around the kill may be COMPLETED without
    // its uploader knowing.
    assert(
      t.completed || t.role === "finishing",
      `${label} COMPLETED unexpectedly`,
    );
    assertEquals(status.size, t.source.byteLength, label);
    assertEquals(status.sha256, await sha256(t.source), label);
  } else {
    assertEquals(status.status, "FAILED", label);
    assertEquals(status.error, INTERRUPTED_REASON, label);
    assert(
      status.size >= t.acked && status.size <= t.sent,
      `${label}: size ${status.size}, acknowledged ${t.acked}, sent ${t.sent}`,
    );
    const error = await collect(download.follow());
    assert(error.error instanceof ResourceFailedError, label);
  }
  // The size is exactly the readable, stored bytes, and they are the source's.
  const stored = await readAll(download.read(0, status.size));
  assertEquals(
    await sha256(stored),
    await sha256(t.source.subarray(0, status.size)),
    `${label}: stored bytes`,
  );
  const past = await assertRejects(
    () => readAll(download.read(0, status.size + 1)),
    SpoolError,
  );
  assertEquals(past.code, "range-not-satisfiable");
  const onDisk = await Deno.stat(`${dataDir}/${t.id.slice(0, 2)}/${t.id}.data`);
  assertEquals(onDisk.size, status.size, `${label}: data file size`);
  const plain = await fetch(new URL(`resources/${t.id}/status`, server));
  assertEquals(await plain.json(), status, `${label}: HTTP status`);
  t.settled = status;
}

Deno.test("fault live: a server SIGKILLed during concurrent uploads restarts with completed resources intact and interrupted ones FAILED", async () => {
  const seed = faultSeed("fault live server");
  const rand = prng(seed);
  const dataDir = await Deno.makeTempDir({ prefix: "spool-fault-" });
  const tracked: Tracked[] = [];
  const summary: string[] = [];
  try {
    for (let round = 0; round < 3; round++) {
      const server = await spawnServer(dataDir, {
        args: ["--resume-grace-ms", "100"],
      });
      try {
        // Everything from earlier lives is still there, unchanged.
        for (const t of tracked) await verify(server.url, dataDir, t);
        const roles: Tracked["role"][] = [
          "complete",
          "live",
          "live",
          "finishing",
        ];
        if (rand(2) === 0) roles.push("complete");
        if (rand(2) === 0) roles.push("live");
        const gate = Promise.withResolvers<void>();
        const phases: string[] = roles.map(() => "starting");
        const uploads = roles.map(async (role, k) => {
          const source = randomBytes(
            50_000 + rand(3_000_000),
            seed + 100 * round + k,
          );
          const up = await startUpload(server.url, {
            name: `${role}-${round}-${k}`,
          });
          phases[k] = `${role} ${up.id}: started`;
          const t: Tracked = {
            id: up.id,
            source,
            role,
            completed: false,
            acked: 0,
            sent: 0,
          };
          tracked.push(t);
          return {
            up,
            t,
            ...(await drive(
              up,
              t,
              gate.promise,
              prng(seed + 7 * k + round),
              (phase) =>
                phases[k] =
                  `${role} ${up.id} ${phase}; sent ${up.sent}, acknowledged ${up.acknowledged}`,
            )),
          };
        });
        const all = await within(
          GUARD_MS,
          "uploads ready for the kill",
          Promise.all(uploads),
        ).catch((error) => {
          throw new Error(`${error.message}: ${phases.join(" | ")}`);
        });
        // Kill now: completed ones are done, live ones are past a random
        // observed checkpoint and start sending the rest, finishing ones send
        // end-of-input.
        for (const u of all) u.strike();
        const status = await kill(server.process);
        assertEquals(status.signal, "SIGKILL");
        for (const u of all) {
          u.t.acked = u.up.acknowledged;
          u.t.sent = u.up.sent;
        }
        gate.resolve();
        for (const u of all) {
          await within(GUARD_MS, `${u.t.role} upload ends`, u.ended);
          u.t.completed = u.completed();
        }
        const meta = await checkMetadata(dataDir);
        summary.push(
          `round ${round}: ${meta.json} metadata files, ${meta.tmp} temporary`,
        );
        for (const u of all) u.t.round = round;
      } finally {
        await kill(server.process);
      }
    }
    // A last life checks the last round and shuts down cleanly.
    const last = await spawnServer(dataDir, {
      args: ["--resume-grace-ms", "100"],
    });
    try {
      for (const t of tracked) await verify(last.url, dataDir, t);
      assert(tracked.some((t) => t.settled?.status === "COMPLETED"));
      assert(tracked.some((t) => t.settled?.status === "FAILED"));
      await checkMetadata(dataDir);
    } finally {
      last.process.kill("SIGTERM");
      assertEquals((await last.process.status).code, 0);
    }
    for (const t of tracked) {
      summary.push(
        `round ${t.round} ${t.role}: acknowledged ${t.acked}, stored ${t.settled?.size}, sent ${t.sent}, source ${t.source.byteLength}: ${t.settled?.status}${
          t.completed ? " (uploader told COMPLETED)" : ""
        }`,
      );
    }
    console.log(summary.join("\n"));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * Drives one upload of the server-kill test and resolves once it is where
 * the kill may come: a `complete` upload is COMPLETED; a `live` one has
 * written a random part and its watcher saw a random checkpoint; a
 * `finishing` one has written everything. `strike()`, called right before
 * the kill, sends end-of-input (`finishing`) or starts writing the rest
 * (`live`), so the kill lands with bytes and messages in flight. `ended`
 * resolves once the upload is over after the kill.
 */
async function drive(
  up: Upload,
  t: Tracked,
  gate: Promise<void>,
  rand: (n: number) => number,
  phase: (what: string) => void,
): Promise<{
  ended: Promise<void>;
  strike: () => void;
  completed: () => boolean;
}> {
  let completed = false;
  let struck: Promise<unknown> = Promise.resolve();
  const settle = (p: Promise<ResourceStatus>) =>
    p.then((s) => completed = s.status === "COMPLETED", () => {});
  const total = t.source.byteLength;
  if (t.role === "complete") {
    phase("writing");
    await writeInPieces((p) => up.write(p), t.source, rand);
    phase("finishing");
    await settle(up.finish());
    phase("closing");
    await up.closed();
    phase("done");
    assert(completed, "a complete upload completed");
    return {
      ended: Promise.resolve(),
      strike: () => {},
      completed: () => completed,
    };
  }
  if (t.role === "finishing") {
    phase("writing");
    await writeInPieces((p) => up.write(p), t.source, rand);
    phase("written");
    return {
      ended: (async () => {
        await gate;
        await struck;
        await up.closed();
      })(),
      strike: () => struck = settle(up.finish()),
      completed: () => completed,
    };
  }
  const before = rand(total);
  const observe = rand(before + 1);
  // The watcher connects before any byte is written: a status arriving
  // right behind the first one can be lost by openDownload (a client bug,
  // reported apart), and then waitForStatus would never see the checkpoint.
  const watcher = await openDownload(up.reference);
  phase(`writing ${before}`);
  await writeInPieces((p) => up.write(p), t.source.subarray(0, before), rand);
  phase(`waiting for checkpoint ${observe} (${before} written)`);
  await within(
    GUARD_MS,
    `checkpoint of ${observe} bytes`,
    watcher.waitForStatus((s) => s.size >= observe),
  ).catch((error) => {
    throw new Error(
      `${error.message}; wrote ${before}, sent ${up.sent}, acknowledged ${up.acknowledged}, last status ${
        JSON.stringify(watcher.status)
      }`,
    );
  });
  phase("ready");
  const writeRest = async () => {
    for (let at = before; at < total;) {
      const piece = 1 + rand(64 * 1024);
      try {
        await up.write(t.source.subarray(at, at + piece));
      } catch {
        return; // the server is gone
      }
      at += piece;
    }
  };
  return {
    ended: (async () => {
      await gate;
      await struck;
      await watcher.close();
      await up.closed();
    })(),
    strike: () => struck = writeRest(),
    completed: () => completed,
  };
}
