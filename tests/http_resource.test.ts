/**
 * Plain HTTP on resources: bytes with ranges, HEAD, follow while the upload
 * runs, aborts on FAILED and shutdown, Server-Sent Events of statuses, read
 * tokens, and `curl -N` when curl is installed.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  openDownload,
  type ResourceStatus,
  startUpload,
  upload,
} from "../mod.ts";
import type { Upload } from "../client/upload.ts";
import type { Download } from "../client/download.ts";
import {
  randomBytes,
  readAll,
  sha256,
  startTestServer,
  type TestServer,
} from "./_helpers.ts";

/** The HTTP form of a reference (`ws:` → `http:`), with `path` appended. */
function httpUrl(reference: string, path = ""): URL {
  const url = new URL(reference);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  const [pathname, search] = path.split("?");
  url.pathname += pathname;
  for (const [name, value] of new URLSearchParams(search ?? "")) {
    url.searchParams.set(name, value);
  }
  return url;
}

async function uploaded(
  server: TestServer,
  data: Uint8Array,
  options: { mimeType?: string; name?: string } = {},
): Promise<{ reference: string; status: ResourceStatus }> {
  let reference = "";
  const status = await upload(server.url, data, {
    name: options.name ?? "data.bin",
    mimeType: options.mimeType,
    onReady: (u) => reference = u.reference,
  });
  return { reference, status };
}

/** Writes `data` in `steps` pieces, waiting for each piece's checkpoint. */
async function writeInSteps(
  up: Upload,
  watcher: Download,
  data: Uint8Array,
  steps: number,
): Promise<void> {
  const step = Math.ceil(data.byteLength / steps);
  for (let offset = 0; offset < data.byteLength; offset += step) {
    const end = Math.min(offset + step, data.byteLength);
    await up.write(data.subarray(offset, end));
    await watcher.waitForStatus((s) => s.size >= end);
  }
}

/** Waits (bounded) until `condition()` holds; for effects with no event to await. */
async function eventually(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("http: GET returns the bytes with content and Spool headers; HEAD the same headers", async () => {
  await using server = await startTestServer();
  const data = randomBytes(700_001, 11);
  const { reference, status } = await uploaded(server, data, {
    mimeType: "application/x-spool-test",
    name: "data (1).bin",
  });
  const url = httpUrl(reference);
  const response = await fetch(url, {
    headers: { "accept-encoding": "gzip, br" },
  });
  assertEquals(response.status, 200);
  const body = new Uint8Array(await response.arrayBuffer());
  assertEquals(body.byteLength, data.byteLength);
  assertEquals(await sha256(body), await sha256(data));
  const h = response.headers;
  assertEquals(h.get("content-type"), "application/x-spool-test");
  assertEquals(h.get("content-length"), String(data.byteLength));
  assertEquals(h.get("content-encoding"), null, "never compressed");
  assertEquals(h.get("accept-ranges"), "bytes");
  assertEquals(h.get("spool-status"), "COMPLETED");
  assertEquals(h.get("spool-size"), String(data.byteLength));
  assertEquals(h.get("spool-sha256"), status.sha256);
  assertEquals(h.get("cache-control"), "no-cache, no-transform");
  assertEquals(h.get("x-content-type-options"), "nosniff");
  assertEquals(
    h.get("content-disposition"),
    `inline; filename="data (1).bin"; filename*=UTF-8''data%20%281%29.bin`,
  );

  const head = await fetch(url, { method: "HEAD" });
  assertEquals(head.status, 200);
  assertEquals(await head.text(), "");
  for (
    const name of [
      "content-type",
      "content-length",
      "accept-ranges",
      "spool-status",
      "spool-size",
      "spool-sha256",
      "cache-control",
      "x-content-type-options",
    ]
  ) {
    assertEquals(head.headers.get(name), h.get(name), `HEAD ${name}`);
  }

  const json = await fetch(httpUrl(reference, "/status"));
  assertEquals(await json.json(), status);
  const missing = await fetch(httpUrl(reference, "/nope"));
  assertEquals(missing.status, 404);
  assertEquals((await missing.json()).code, "not-found");
  const post = await fetch(url, { method: "POST", body: "x" });
  assertEquals(post.status, 405);
  assertEquals(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

Deno.test("http: single ranges get 206 with exact bytes; unsatisfiable ones 416 with the size", async () => {
  await using server = await startTestServer();
  const data = randomBytes(300_000, 12);
  const size = data.byteLength;
  const { reference } = await uploaded(server, data);
  const url = httpUrl(reference);
  const cases: [string, number, number][] = [
    ["bytes=0-0", 0, 1],
    ["bytes=0-99", 0, 100],
    ["bytes=1000-", 1000, size],
    ["bytes=-500", size - 500, size],
    ["bytes=-999999", 0, size],
    [`bytes=${size - 10}-${size + 100}`, size - 10, size],
    [`bytes=${size - 1}-`, size - 1, size],
    ["bytes=262143-262145", 262_143, 262_146],
    ["BYTES = 5 - 9", 5, 10],
  ];
  for (const [range, start, end] of cases) {
    const response = await fetch(url, { headers: { range } });
    assertEquals(response.status, 206, range);
    assertEquals(
      response.headers.get("content-range"),
      `bytes ${start}-${end - 1}/${size}`,
      range,
    );
    assertEquals(response.headers.get("content-length"), String(end - start));
    const body = new Uint8Array(await response.arrayBuffer());
    assertEquals(
      await sha256(body),
      await sha256(data.subarray(start, end)),
      range,
    );
    const head = await fetch(url, { method: "HEAD", headers: { range } });
    assertEquals(head.status, 206, `HEAD ${range}`);
    assertEquals(
      head.headers.get("content-range"),
      `bytes ${start}-${end - 1}/${size}`,
    );
    await head.body?.cancel();
  }
  for (
    const range of [
      `bytes=${size}-`,
      `bytes=${size + 5}-${size + 9}`,
      "bytes=-0",
    ]
  ) {
    const response = await fetch(url, { headers: { range } });
    assertEquals(response.status, 416, range);
    assertEquals(response.headers.get("content-range"), `bytes */${size}`);
    assertEquals((await response.json()).code, "range-not-satisfiable");
  }
  // Several ranges, or invalid ones, are ignored: the whole body (200).
  for (const range of ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-"]) {
    const response = await fetch(url, { headers: { range } });
    assertEquals(response.status, 200, range);
    assertEquals(response.headers.get("content-range"), null);
    assertEquals((await response.arrayBuffer()).byteLength, size, range);
  }
});

Deno.test("http: ranges with numbers past 2^53, suffixes and several ranges follow docs/http.md exactly", async () => {
  await using server = await startTestServer();
  const data = randomBytes(1000, 14);
  const size = data.byteLength;
  const { reference } = await uploaded(server, data);
  const url = httpUrl(reference);
  const huge = "9".repeat(20);
  const giant = "1" + "0".repeat(400);
  const expectations: [string, number, [number, number]?][] = [
    // A first byte past the size, however many digits: 416.
    [`bytes=${huge}-`, 416],
    [`bytes=${giant}-`, 416],
    [`bytes=${2 ** 53}-`, 416],
    [`bytes=${Number.MAX_SAFE_INTEGER}-`, 416],
    [`bytes=${huge}-${huge}`, 416],
    [`bytes=000${size}-`, 416],
    // A last byte past the size is cut to it.
    [`bytes=0-${huge}`, 206, [0, size]],
    [`bytes=10-${giant}`, 206, [10, size]],
    [`bytes=0010-0019`, 206, [10, 20]],
    // A suffix longer than the resource is all of it; -0 is unsatisfiable.
    [`bytes=-${huge}`, 206, [0, size]],
    [`bytes=-${giant}`, 206, [0, size]],
    ["bytes=-000", 416],
    // last < first, however long: an invalid header, ignored.
    [`bytes=${huge}-5`, 200],
    [`bytes=${giant}-${huge}`, 200],
    // Empty list elements are allowed; one range remains.
    ["bytes=,5-9,", 206, [5, 10]],
    // Several ranges: the whole body, unless none is satisfiable.
    ["bytes=0-1,5-6", 200],
    [`bytes=0-1,${huge}-`, 200],
    [`bytes=${size}-,${huge}-,-0`, 416],
    [`bytes=${huge}-,${giant}-`, 416],
    // An invalid element makes the whole header invalid.
    [`bytes=${huge}-,x-`, 200],
  ];
  for (const [range, status, span] of expectations) {
    for (const method of ["GET", "HEAD"]) {
      const response = await fetch(url, { method, headers: { range } });
      const what = `${method} ${range.slice(0, 40)}`;
      assertEquals(response.status, status, what);
      const body = new Uint8Array(await response.arrayBuffer());
      if (status === 416) {
        assertEquals(response.headers.get("content-range"), `bytes */${size}`);
        if (method === "GET") {
          const error = JSON.parse(new TextDecoder().decode(body));
          assertEquals(Object.keys(error), ["code", "message"]);
          assertEquals(error.code, "range-not-satisfiable");
          assert(
            error.message.length < 300,
            "the message quotes a clipped range",
          );
        }
        continue;
      }
      const [start, end] = span ?? [0, size];
      assertEquals(
        response.headers.get("content-range"),
        status === 206 ? `bytes ${start}-${end - 1}/${size}` : null,
        what,
      );
      assertEquals(response.headers.get("content-length"), String(end - start));
      if (method === "GET") assertEquals(body, data.subarray(start, end), what);
      else assertEquals(body.byteLength, 0, what);
    }
  }
});

Deno.test("http: an empty resource is an empty 200; any range of it is 416", async () => {
  await using server = await startTestServer();
  const { reference } = await uploaded(server, new Uint8Array());
  const url = httpUrl(reference);
  const whole = await fetch(url);
  assertEquals(whole.status, 200);
  assertEquals(whole.headers.get("content-length"), "0");
  assertEquals(await whole.text(), "");
  const ranged = await fetch(url, { headers: { range: "bytes=0-" } });
  assertEquals(ranged.status, 416);
  assertEquals(ranged.headers.get("content-range"), "bytes */0");
  await ranged.body?.cancel();
  const followed = await fetch(new URL("?follow=1", url));
  assertEquals(await followed.text(), "");
});

Deno.test("http: GET serves only checkpointed bytes of a live resource", async () => {
  // Only finish() publishes a size: the written bytes stay invisible until then.
  await using server = await startTestServer({ checkpointMs: 600_000 });
  const up = await startUpload(server.url, { name: "slow" });
  const data = randomBytes(5000, 13);
  await up.write(data);
  const url = httpUrl(up.reference);
  const early = await fetch(url);
  assertEquals(early.headers.get("spool-status"), "INITIATED");
  assertEquals(early.headers.get("spool-size"), "0");
  assertEquals(early.headers.get("spool-sha256"), null);
  assertEquals(await early.text(), "");
  const range = await fetch(url, { headers: { range: "bytes=0-0" } });
  assertEquals(range.status, 416);
  assertEquals(range.headers.get("content-range"), "bytes */0");
  await range.body?.cancel();
  await up.finish();
  await up.closed();
  const late = await fetch(url);
  assertEquals(late.headers.get("spool-status"), "COMPLETED");
  assertEquals(
    await sha256(new Uint8Array(await late.arrayBuffer())),
    await sha256(data),
  );
});

for (const checkpointMs of [0, 20]) {
  Deno.test(`http: ?follow=1 while uploading gives identical bytes and ends at COMPLETED (checkpoint ${checkpointMs} ms)`, async () => {
    await using server = await startTestServer({ checkpointMs });
    const data = randomBytes(3 * 1024 * 1024 + 77, 20 + checkpointMs);
    const up = await startUpload(server.url, {
      name: "live.bin",
      mimeType: "application/octet-stream",
    });
    await using watcher = await openDownload(up.reference);
    const url = httpUrl(up.reference);
    const before = await fetch(new URL("?follow=1", url), {
      headers: { "accept-encoding": "gzip" },
    });
    assertEquals(before.status, 200);
    assertEquals(before.headers.get("content-length"), null);
    assertEquals(before.headers.get("content-encoding"), null);
    assertEquals(before.headers.get("cache-control"), "no-cache, no-transform");
    assertEquals(before.headers.get("spool-status"), "INITIATED");
    const beforeBytes = readAll(before.body!);

    const half = data.byteLength >> 1;
    await writeInSteps(up, watcher, data.subarray(0, half), 5);
    // A follower joining half-way, from an offset.
    const start = 12_345;
    const during = await fetch(new URL(`?follow=1&start=${start}`, url));
    assertEquals(during.headers.get("spool-status"), "IN_PROGRESS");
    const duringBytes = readAll(during.body!);
    const written = half;
    for (let offset = written; offset < data.byteLength; offset += 400_000) {
      const end = Math.min(offset + 400_000, data.byteLength);
      await up.write(data.subarray(offset, end));
      await watcher.waitForStatus((s) => s.size >= end);
    }
    const final = await up.finish();
    await up.closed();
    assertEquals(final.status, "COMPLETED");

    const after = await fetch(new URL("?follow=1", url));
    assertEquals(after.headers.get("spool-status"), "COMPLETED");
    const expected = await sha256(data);
    assertEquals(await sha256(await beforeBytes), expected);
    assertEquals(await sha256(await readAll(after.body!)), expected);
    assertEquals(
      await sha256(await duringBytes),
      await sha256(data.subarray(start)),
    );
  });
}

Deno.test("http: follow past the final size is 416; from the end it is empty", async () => {
  await using server = await startTestServer();
  const data = randomBytes(1000, 21);
  const { reference } = await uploaded(server, data);
  const url = httpUrl(reference);
  const past = await fetch(new URL("?follow=1&start=1001", url));
  assertEquals(past.status, 416);
  assertEquals(past.headers.get("content-range"), "bytes */1000");
  await past.body?.cancel();
  const atEnd = await fetch(new URL("?follow=1&start=1000", url));
  assertEquals(atEnd.status, 200);
  assertEquals(await atEnd.text(), "");
  const bad = await fetch(new URL("?follow=yes", url));
  assertEquals(bad.status, 400);
  assertEquals((await bad.json()).code, "invalid-field");
  const negative = await fetch(new URL("?follow=1&start=-1", url));
  assertEquals(negative.status, 400);
  await negative.body?.cancel();
});

Deno.test("http: a FAILED resource aborts the follow body after its readable bytes", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "doomed" });
  await using watcher = await openDownload(up.reference);
  const url = httpUrl(up.reference);
  const response = await fetch(new URL("?follow=1", url));
  const reader = response.body!.getReader();
  const data = randomBytes(200_000, 22);
  await writeInSteps(up, watcher, data, 4);
  let received = 0;
  const chunks: Uint8Array[] = [];
  while (received < data.byteLength) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the body ended before the resource did");
    chunks.push(value);
    received += value.byteLength;
  }
  assertEquals(await sha256(concat(chunks)), await sha256(data));
  up.abort("test");
  await up.closed();
  const failed = await watcher.waitForStatus((s) => s.status === "FAILED");
  assertEquals(failed.size, data.byteLength);
  await assertRejects(() => reader.read(), TypeError);

  // Following an already FAILED resource: its bytes, then the abort.
  const late = await fetch(new URL("?follow=1", url));
  assertEquals(late.headers.get("spool-status"), "FAILED");
  const lateReader = late.body!.getReader();
  const lateChunks: Uint8Array[] = [];
  const error = await (async () => {
    try {
      while (true) {
        const { value, done } = await lateReader.read();
        if (done) return undefined;
        lateChunks.push(value);
      }
    } catch (error) {
      return error;
    }
  })();
  assert(error instanceof TypeError, `the body was aborted, got ${error}`);
  assertEquals(await sha256(concat(lateChunks)), await sha256(data));
  // A plain GET still serves the readable bytes.
  const plain = await fetch(url);
  assertEquals(plain.headers.get("spool-status"), "FAILED");
  assertEquals(
    await sha256(new Uint8Array(await plain.arrayBuffer())),
    await sha256(data),
  );
});

Deno.test("http: a client leaving a follow or an event stream stops watching", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "left" });
  await using watcher = await openDownload(up.reference);
  const resource = server.registry.get(up.id)!;
  const baseline = resource.watcherCount;
  const url = httpUrl(up.reference);
  await up.write(randomBytes(50_000, 23));
  await watcher.waitForStatus((s) => s.size === 50_000);
  const follow = await fetch(new URL("?follow=1", url));
  const events = await fetch(httpUrl(up.reference, "/events"));
  const lines = await fetch(httpUrl(up.reference, "/lines?follow=1"));
  const reader = follow.body!.getReader();
  assert((await reader.read()).value!.byteLength > 0);
  const eventReader = events.body!.getReader();
  assert((await eventReader.read()).value!.byteLength > 0);
  assertEquals(resource.watcherCount, baseline + 3);
  await reader.cancel();
  await eventReader.cancel();
  await lines.body!.cancel();
  await eventually(
    () => resource.watcherCount === baseline,
    "HTTP watchers to go away",
  );
  await up.finish();
  await up.closed();
});

Deno.test("http: server shutdown aborts follows and ends event streams", async () => {
  const server = await startTestServer({ checkpointMs: 0 });
  let closing: Promise<void> | undefined;
  try {
    const up = await startUpload(server.url, { name: "cut" });
    await using watcher = await openDownload(up.reference);
    await up.write(randomBytes(1000, 24));
    await watcher.waitForStatus((s) => s.size === 1000);
    const follow = await fetch(httpUrl(up.reference, "?follow=1"));
    const events = await fetch(httpUrl(up.reference, "/events"));
    const reader = follow.body!.getReader();
    assertEquals((await reader.read()).value!.byteLength, 1000);
    const text = events.text();
    closing = server.close();
    await assertRejects(() => reader.read(), TypeError);
    const statuses = parseEvents(await text);
    assertEquals(statuses[0].status, "IN_PROGRESS");
    await closing;
    await up.closed();
  } finally {
    await (closing ?? server.close());
  }
});

/** Statuses from the text of an event stream (event `status` only). */
function parseEvents(text: string): ResourceStatus[] {
  const statuses: ResourceStatus[] = [];
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n");
    if (!lines.includes("event:status")) continue;
    const data = lines.filter((l) => l.startsWith("data:")).map((l) =>
      l.slice(5).replace(/^ /, "")
    ).join("\n");
    statuses.push(JSON.parse(data));
  }
  return statuses;
}

Deno.test("http: /events gives the latest status, then every update in order, ending at COMPLETED", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "events" });
  await using watcher = await openDownload(up.reference);
  const events = await fetch(httpUrl(up.reference, "/events"), {
    headers: { "accept-encoding": "gzip" },
  });
  assertEquals(events.status, 200);
  assertEquals(
    events.headers.get("content-type"),
    "text/event-stream; charset=utf-8",
  );
  assertEquals(events.headers.get("cache-control"), "no-cache, no-transform");
  assertEquals(events.headers.get("content-encoding"), null);
  const text = events.text();
  const data = randomBytes(100_000, 25);
  await writeInSteps(up, watcher, data, 10);
  const final = await up.finish();
  await up.closed();
  const statuses = parseEvents(await text);
  assertEquals(statuses[0].status, "INITIATED");
  assertEquals(statuses.at(-1), final);
  const sizes = statuses.map((s) => s.size);
  for (let i = 1; i < sizes.length; i++) {
    assert(sizes[i] >= sizes[i - 1], `sizes go back: ${sizes}`);
  }
  // Every checkpoint of the upload (one per step) was seen.
  for (let end = 10_000; end <= 100_000; end += 10_000) {
    assert(sizes.includes(end), `size ${end} in ${sizes}`);
  }
  assertEquals(statuses.filter((s) => s.status === "COMPLETED").length, 1);

  // A finished resource: its final status, then the end.
  const done = await fetch(httpUrl(up.reference, "/events"));
  assertEquals(parseEvents(await done.text()), [final]);
});

Deno.test("http: read tokens guard every HTTP route", async () => {
  await using server = await startTestServer({ readTokens: true });
  const data = new TextEncoder().encode("secret\nlines\n");
  const { reference } = await uploaded(server, data);
  const token = new URL(reference).searchParams.get("token")!;
  assert(token, "the reference carries a token");
  for (
    const path of ["", "/status", "/events", "/lines?tail=1", "/checkpoints"]
  ) {
    const bare = httpUrl(reference);
    bare.search = "";
    const [pathname, search] = path.split("?");
    bare.pathname += pathname;
    if (search) bare.search = search;
    const denied = await fetch(bare);
    assertEquals(denied.status, 403, `no token: ${path}`);
    await denied.body?.cancel();
    const byHeader = await fetch(bare, {
      headers: { authorization: `Bearer ${token}` },
    });
    assertEquals(byHeader.status, 200, `bearer: ${path}`);
    await byHeader.body?.cancel();
    bare.searchParams.set("token", token);
    const byQuery = await fetch(bare);
    assertEquals(byQuery.status, 200, `query: ${path}`);
    await byQuery.body?.cancel();
  }
});

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

const curl = await new Deno.Command("which", {
  args: ["curl"],
  stdout: "piped",
  stderr: "null",
}).output().then((out) =>
  out.success ? new TextDecoder().decode(out.stdout).trim() : undefined
)
  .catch(() => undefined);
if (curl === undefined) {
  console.log(
    "curl is not installed (`which curl` found none): skipping the curl tests",
  );
}

Deno.test({
  name:
    "http: `curl -N URL?follow=1` tails a live upload and exits 0 at COMPLETED",
  ignore: curl === undefined,
  async fn() {
    await using server = await startTestServer({ checkpointMs: 0 });
    const up = await startUpload(server.url, {
      name: "build.log",
      mimeType: "text/plain; charset=utf-8",
    });
    await using watcher = await openDownload(up.reference);
    const child = new Deno.Command(curl!, {
      args: [
        "-sS",
        "-N",
        "--compressed",
        httpUrl(up.reference, "?follow=1").href,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = Array.from(
      { length: 2000 },
      (_, i) => `step ${i}: ${"x".repeat(i % 97)}\n`,
    ).join("");
    const data = new TextEncoder().encode(lines);
    await writeInSteps(up, watcher, data, 20);
    await up.finish();
    await up.closed();
    const out = await child.output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(new TextDecoder().decode(out.stdout), lines);
  },
});

Deno.test({
  name: "http: curl following a resource that FAILS exits non-zero",
  ignore: curl === undefined,
  async fn() {
    await using server = await startTestServer({ checkpointMs: 0 });
    const up = await startUpload(server.url, { name: "broken.log" });
    await using watcher = await openDownload(up.reference);
    const child = new Deno.Command(curl!, {
      args: ["-sS", "-N", httpUrl(up.reference, "/lines?follow=1").href],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await writeInSteps(
      up,
      watcher,
      new TextEncoder().encode("one\ntwo\nthr"),
      1,
    );
    up.abort("test");
    await up.closed();
    await watcher.waitForStatus((s) => s.status === "FAILED");
    const out = await child.output();
    assert(out.code !== 0, "curl reports the broken transfer");
    assertEquals(new TextDecoder().decode(out.stdout), "one\ntwo\n");
  },
});

Deno.test("http: a small read holds only its bytes, not a 256 KiB buffer (2,000 HTTP/2 streams in flight each held one); small and large answers have the same bytes", async () => {
  await using server = await startTestServer();
  const data = randomBytes(300_000, 17);
  const { reference, status } = await uploaded(server, data);
  const resource = server.registry.get(status.id)!;
  for (const [start, end] of [[0, 2], [10, 1010], [0, 300_000]]) {
    const reader = resource.read(start, end).getReader();
    const { value } = await reader.read();
    await reader.cancel();
    assertEquals(value!.byteLength, Math.min(end - start, 256 * 1024));
    assertEquals(
      value!.buffer.byteLength,
      Math.min(end - start, 256 * 1024),
      `read [${start}, ${end}) allocated ${value!.buffer.byteLength} bytes`,
    );
  }
  // Whole (≤ 64 KiB) and streamed answers: exact bytes either side of it.
  for (const [start, end] of [[0, 2], [0, 65_536], [1, 65_538], [0, 300_000]]) {
    const response = await fetch(httpUrl(reference), {
      headers: { range: `bytes=${start}-${end - 1}` },
    });
    const body = new Uint8Array(await response.arrayBuffer());
    assertEquals(response.status, 206);
    assertEquals(await sha256(body), await sha256(data.subarray(start, end)));
  }
});
