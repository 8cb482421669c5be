/**
 * Lines: the sparse line index, `/lines` ranges and tails (CRLF, no final
 * newline, empty and very long lines), live views that only count complete
 * lines, indexes rebuilt after a restart, and line-mode follows that never
 * emit half a line before the upload completes.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  openDownload,
  type ResourceStatus,
  startUpload,
  upload,
} from "../mod.ts";
import type { Download } from "../client/download.ts";
import type { Upload } from "../client/upload.ts";
import { type ByteSource, LineIndex } from "../server/line_index.ts";
import { randomBytes, startTestServer, type TestServer } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

/** The lines of `data` with their terminators; a final unterminated one counts. */
function splitLines(data: Uint8Array, final = true): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < data.byteLength; i++) {
    if (data[i] === 0x0a) {
      lines.push(data.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (final && start < data.byteLength) lines.push(data.subarray(start));
  return lines;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function endsWithNewline(bytes: Uint8Array): boolean {
  return bytes.byteLength > 0 && bytes[bytes.byteLength - 1] === 0x0a;
}

/** A byte source over `data` with a checkpoint; memory holds `[memoryFrom, ..)`. */
class FakeSource implements ByteSource {
  memoryFrom = Infinity;
  reads = 0;
  constructor(readonly data: Uint8Array, readonly chunk = 1000) {}
  read(start: number, end: number): ReadableStream<Uint8Array> {
    this.reads++;
    const chunk = this.chunk;
    const data = this.data;
    let position = start;
    return new ReadableStream({
      pull(controller) {
        if (position >= end) return controller.close();
        const next = Math.min(end, position + chunk);
        controller.enqueue(data.slice(position, next));
        position = next;
      },
    });
  }
  recent(start: number, end: number): Uint8Array[] | undefined {
    if (start < this.memoryFrom) return undefined;
    return [this.data.subarray(start, end)];
  }
}

/** Text lines of varied length (some empty, some CRLF). */
function textLines(count: number, seed: number): string {
  const noise = randomBytes(count, seed);
  return Array.from({ length: count }, (_, i) => {
    const n = noise[i];
    if (n % 11 === 0) return "\n";
    const body = `${i}:${"abcdefghij".repeat(n % 23)}`;
    return n % 5 === 0 ? `${body}\r\n` : `${body}\n`;
  }).join("");
}

Deno.test("line index: every line start is exact while the index thins its marks", async () => {
  const data = encoder.encode(textLines(5000, 1));
  const source = new FakeSource(data, 777);
  const index = new LineIndex(source, { stride: 2, maxMarks: 8 });
  const truth = [0];
  for (let i = 0; i < data.byteLength; i++) {
    if (data[i] === 0x0a) truth.push(i + 1);
  }
  // Extend in uneven steps, some served from "memory", some from the "store".
  const noise = randomBytes(100, 2);
  let size = 0;
  for (let step = 0; size < data.byteLength; step++) {
    size = Math.min(data.byteLength, size + 1 + noise[step % 100] * 20);
    source.memoryFrom = step % 2 ? 0 : Infinity;
    await index.extendTo(size);
    assertEquals(index.scanned, size);
    const complete = truth.filter((offset) => offset > 0 && offset <= size);
    assertEquals(index.lines, complete.length);
    assertEquals(index.lastLineStart, complete.at(-1) ?? 0);
    assert(index.markCount <= 8, `marks bounded: ${index.markCount}`);
  }
  assert(index.stride > 2, "the stride grew");
  for (const memoryFrom of [Infinity, 0]) {
    source.memoryFrom = memoryFrom;
    for (let line = 0; line <= index.lines; line++) {
      assertEquals(
        await index.lineStart(line, index.lastLineStart),
        truth[line],
        `line ${line}`,
      );
    }
  }
});

Deno.test("line index: newlinesBefore counts exactly at every byte, from memory and from the store, while the marks thin", async () => {
  const data = encoder.encode(textLines(2000, 5));
  const source = new FakeSource(data, 333);
  const index = new LineIndex(source, { stride: 2, maxMarks: 8 });
  await index.extendTo(data.byteLength);
  assert(index.stride > 2, "the stride grew");
  const before = [0];
  for (let i = 0; i < data.byteLength; i++) {
    before.push(before[i] + (data[i] === 0x0a ? 1 : 0));
  }
  for (const memoryFrom of [Infinity, 0]) {
    source.memoryFrom = memoryFrom;
    for (let offset = 0; offset <= data.byteLength; offset += 7) {
      assertEquals(
        await index.newlinesBefore(offset),
        before[offset],
        `${offset}`,
      );
    }
    assertEquals(
      await index.newlinesBefore(data.byteLength),
      before[data.byteLength],
    );
  }
  await assertRejects(
    () => index.newlinesBefore(data.byteLength + 1),
    RangeError,
  );
});

Deno.test("line index: concurrent extensions scan each byte once", async () => {
  const data = encoder.encode(textLines(3000, 3));
  const source = new FakeSource(data, 100);
  const index = new LineIndex(source);
  await Promise.all([
    index.extendTo(1000),
    index.extendTo(data.byteLength),
    index.extendTo(500),
    index.extendTo(data.byteLength),
  ]);
  assertEquals(index.scanned, data.byteLength);
  assertEquals(index.lines, splitLines(data, false).length);
  assertEquals(source.reads, 2, "one read to 1000, one to the end");
});

async function uploaded(
  server: TestServer,
  data: Uint8Array,
): Promise<{ reference: string; status: ResourceStatus }> {
  let reference = "";
  const status = await upload(server.url, data, {
    name: "log.txt",
    mimeType: "text/plain; charset=utf-8",
    onReady: (u) => reference = u.reference,
  });
  return { reference, status };
}

/** Checks `/lines` ranges and tails of a finished resource against `lines`. */
async function checkLines(
  reference: string,
  lines: Uint8Array[],
  label: string,
): Promise<void> {
  const total = lines.length;
  const expectRange = async (
    query: string,
    first: number,
    end: number,
    shownFirst = first,
  ) => {
    const response = await fetch(httpUrl(reference, `/lines?${query}`));
    assertEquals(response.status, 200, `${label} ${query}`);
    const body = new Uint8Array(await response.arrayBuffer());
    const expected = concat(lines.slice(first, end));
    assertEquals(
      body.byteLength,
      expected.byteLength,
      `${label} ${query}: length`,
    );
    assertEquals(body, expected, `${label} ${query}: bytes`);
    assertEquals(response.headers.get("spool-lines"), String(total), label);
    assertEquals(
      response.headers.get("spool-first-line"),
      String(shownFirst),
      `${label} ${query}: first line`,
    );
    assertEquals(
      response.headers.get("content-length"),
      String(expected.byteLength),
    );
    assertEquals(
      response.headers.get("spool-start"),
      String(concat(lines.slice(0, first)).byteLength),
      `${label} ${query}: byte offset`,
    );
  };
  const points = [
    ...new Set([0, 1, 2, 63, 64, 65, total >> 1, total - 2, total - 1, total]),
  ].filter((n) => n >= 0 && n <= total).sort((a, b) => a - b);
  for (const a of points) {
    for (const b of points) {
      if (a <= b) await expectRange(`start=${a}&end=${b}`, a, b);
    }
    await expectRange(`start=${a}`, a, total);
    await expectRange(`tail=${a}`, total - a, total);
  }
  await expectRange(`end=${total >> 1}`, 0, total >> 1);
  await expectRange(`tail=${total + 5}`, 0, total);
  await expectRange(
    `start=${total + 3}&end=${total + 9}`,
    total,
    total,
    total + 3,
  );
  await expectRange("", 0, total);
}

Deno.test("lines: ranges and tails are exact with CRLF, empty lines and no final newline", async () => {
  await using server = await startTestServer();
  const cases: [string, string][] = [
    ["plain", "one\ntwo\nthree\n"],
    ["no final newline", "one\ntwo\nthree"],
    ["crlf", "a\r\nb\r\n\r\nc"],
    ["empty lines", "\n\n\nx\n\n"],
    ["only a newline", "\n"],
    ["one unterminated line", "lonely"],
    ["empty", ""],
    ["lone CR is not a line end", "a\rb\rc\n"],
    ["many lines", textLines(3000, 4)],
  ];
  for (const [label, text] of cases) {
    const data = encoder.encode(text);
    const { reference } = await uploaded(server, data);
    await checkLines(reference, splitLines(data), label);
  }
});

Deno.test("lines: ?offset=X answers from the first line starting at or after byte X, with its number and offset", async () => {
  await using server = await startTestServer();
  const cases: [string, string][] = [
    ["plain", "one\ntwo\nthree\n"],
    ["no final newline", "one\ntwo\nthree"],
    ["crlf and empty lines", "a\r\n\n\nb\r\n\r\nc"],
    ["many lines", textLines(700, 6)],
  ];
  for (const [label, text] of cases) {
    const data = encoder.encode(text);
    const { reference } = await uploaded(server, data);
    const lines = splitLines(data);
    const starts = lines.map((_, i) => concat(lines.slice(0, i)).byteLength);
    for (let offset = 0; offset <= data.byteLength; offset++) {
      if (label === "many lines" && offset % 37 !== 0) continue;
      let first = starts.findIndex((start) => start >= offset);
      if (first === -1) first = lines.length;
      const end = Math.min(lines.length, first + 3);
      const response = await fetch(
        httpUrl(reference, `/lines?offset=${offset}&end=${end}`),
      );
      const what = `${label} offset ${offset}`;
      assertEquals(response.status, 200, what);
      assertEquals(
        response.headers.get("spool-first-line"),
        String(first),
        what,
      );
      assertEquals(
        response.headers.get("spool-start"),
        String(first < lines.length ? starts[first] : data.byteLength),
        what,
      );
      assertEquals(
        new Uint8Array(await response.arrayBuffer()),
        concat(lines.slice(first, end)),
        what,
      );
    }
    const past = await fetch(
      httpUrl(reference, `/lines?offset=${data.byteLength + 1}`),
    );
    assertEquals(past.status, 416, label);
    assertEquals(past.headers.get("spool-lines"), String(lines.length));
    assertEquals((await past.json()).code, "range-not-satisfiable");
  }
  const { reference } = await uploaded(server, encoder.encode("a\nb\n"));
  for (const query of ["offset=1&start=0", "offset=1&tail=1", "offset=x"]) {
    const response = await fetch(httpUrl(reference, `/lines?${query}`));
    assertEquals(response.status, 400, query);
    assertEquals((await response.json()).code, "invalid-field", query);
  }
});

Deno.test("lines: very long lines across store chunks", async () => {
  await using server = await startTestServer();
  const long = "L".repeat(700_000);
  const text = `first\n${long}\nmiddle\n${long}${long}\n${
    "s\n".repeat(200)
  }${long}`;
  const data = encoder.encode(text);
  const { reference } = await uploaded(server, data);
  const lines = splitLines(data);
  assertEquals(lines.length, 205);
  for (
    const [query, first, end] of [
      ["start=1&end=2", 1, 2],
      ["start=3&end=4", 3, 4],
      ["tail=1", 204, 205],
      ["tail=2", 203, 205],
      ["start=0", 0, 205],
      ["start=100&end=150", 100, 150],
    ] as const
  ) {
    const response = await fetch(httpUrl(reference, `/lines?${query}`));
    const body = new Uint8Array(await response.arrayBuffer());
    assertEquals(body, concat(lines.slice(first, end)), query);
  }
});

Deno.test("lines: bad queries are refused with what was expected", async () => {
  await using server = await startTestServer();
  const { reference } = await uploaded(server, encoder.encode("a\nb\n"));
  for (
    const query of ["start=-1", "tail=x", "start=1.5", "end=1e3", "follow=2"]
  ) {
    const response = await fetch(httpUrl(reference, `/lines?${query}`));
    assertEquals(response.status, 400, query);
    assertEquals((await response.json()).code, "invalid-field", query);
  }
  const mixed = await fetch(httpUrl(reference, "/lines?tail=1&start=0"));
  assertEquals(mixed.status, 400);
  await mixed.body?.cancel();
  const backwards = await fetch(httpUrl(reference, "/lines?start=2&end=1"));
  assertEquals(backwards.status, 400);
  assertEquals((await backwards.json()).code, "invalid-range");
  const past = await fetch(httpUrl(reference, "/lines?follow=1&start=3"));
  assertEquals(past.status, 416);
  assertEquals(past.headers.get("spool-lines"), "2");
  await past.body?.cancel();
  const head = await fetch(httpUrl(reference, "/lines?tail=1"), {
    method: "HEAD",
  });
  assertEquals(head.headers.get("content-length"), "2");
  assertEquals(head.headers.get("spool-first-line"), "1");
  assertEquals(await head.text(), "");
});

async function writeAndWait(
  up: Upload,
  watcher: Download,
  piece: Uint8Array,
  end: number,
): Promise<void> {
  await up.write(piece);
  await watcher.waitForStatus((s) => s.size >= end);
}

Deno.test("lines: a live resource shows only complete lines; the last one counts at COMPLETED", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "live.log" });
  await using watcher = await openDownload(up.reference);
  const tail = async (n: number) => {
    const response = await fetch(httpUrl(up.reference, `/lines?tail=${n}`));
    return {
      text: await response.text(),
      lines: response.headers.get("spool-lines"),
      first: response.headers.get("spool-first-line"),
      status: response.headers.get("spool-status"),
    };
  };
  assertEquals(await tail(5), {
    text: "",
    lines: "0",
    first: "0",
    status: "INITIATED",
  });
  let written = 0;
  const write = async (text: string) => {
    written += text.length;
    await writeAndWait(up, watcher, encoder.encode(text), written);
  };
  await write("alpha\nbe");
  assertEquals(await tail(5), {
    text: "alpha\n",
    lines: "1",
    first: "0",
    status: "IN_PROGRESS",
  });
  await write("ta\r\ngam");
  assertEquals(await tail(1), {
    text: "beta\r\n",
    lines: "2",
    first: "1",
    status: "IN_PROGRESS",
  });
  const range = await fetch(httpUrl(up.reference, "/lines?start=0&end=9"));
  assertEquals(await range.text(), "alpha\nbeta\r\n");
  await write("ma");
  assertEquals((await tail(9)).text, "alpha\nbeta\r\n");
  await up.finish();
  await up.closed();
  assertEquals(await tail(2), {
    text: "beta\r\ngamma",
    lines: "3",
    first: "1",
    status: "COMPLETED",
  });
});

Deno.test("lines: a finished resource loaded after a restart answers line queries", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-lines-" });
  try {
    const text = textLines(2000, 5) + "unterminated";
    const data = encoder.encode(text);
    let reference: string;
    {
      await using server = await startTestServer({ dataDir });
      reference = (await uploaded(server, data)).reference;
    }
    await using server = await startTestServer({ dataDir });
    const url = new URL(reference);
    url.port = server.url.port;
    await checkLines(url.href, splitLines(data), "after restart");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * Uploads `pieces` one checkpoint at a time while `body` follows in line
 * mode; after each checkpoint it reads exactly the complete lines so far and
 * checks that every chunk ends in a newline. Returns everything received.
 */
async function followInLines(
  up: Upload,
  watcher: Download,
  body: ReadableStream<Uint8Array>,
  pieces: Uint8Array[],
  options: { prefix?: Uint8Array; from?: number } = {},
): Promise<Uint8Array> {
  const prefix = options.prefix ?? new Uint8Array();
  const from = options.from ?? 0;
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  let written = prefix.byteLength;
  const data = concat([prefix, ...pieces]);
  for (const piece of pieces) {
    written += piece.byteLength;
    await writeAndWait(up, watcher, piece, written);
    // Every complete line of the checkpoint, and not a byte more.
    const lastNewline = data.subarray(0, written).lastIndexOf(0x0a);
    const expected = Math.max(0, lastNewline + 1 - from);
    while (received < expected) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the follow ended while the upload runs");
      assert(
        endsWithNewline(value),
        `a chunk ends mid-line before COMPLETED: ${
          JSON.stringify(decoder.decode(value.subarray(-40)))
        }`,
      );
      chunks.push(value);
      received += value.byteLength;
      assert(
        received <= expected,
        `received ${received} bytes; only ${expected} are complete lines`,
      );
    }
  }
  const final = await up.finish();
  await up.closed();
  assertEquals(final.status, "COMPLETED");
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return concat(chunks);
}

/** Text cut into pieces that mostly end mid-line, the last without a newline. */
function piecesOf(text: string, seed: number): Uint8Array[] {
  const data = encoder.encode(text);
  const noise = randomBytes(1000, seed);
  const pieces: Uint8Array[] = [];
  for (let offset = 0, i = 0; offset < data.byteLength; i++) {
    const size = 1 + (noise[i % 1000] * 7 + noise[(i + 1) % 1000]) % 1500;
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

for (
  const [label, path] of [
    ["?follow=1&lines=1", "?follow=1&lines=1"],
    ["/lines?follow=1", "/lines?follow=1"],
  ]
) {
  Deno.test(`lines: ${label} never yields half a line before COMPLETED`, async () => {
    await using server = await startTestServer({ checkpointMs: 0 });
    const up = await startUpload(server.url, { name: "follow.log" });
    await using watcher = await openDownload(up.reference);
    const response = await fetch(httpUrl(up.reference, path));
    assertEquals(response.status, 200);
    assertEquals(
      response.headers.get("cache-control"),
      "no-cache, no-transform",
    );
    const text = textLines(600, 6) + "the end, unterminated";
    const pieces = piecesOf(text, 7);
    const got = await followInLines(up, watcher, response.body!, pieces);
    assertEquals(decoder.decode(got), text);
  });
}

Deno.test("lines: /lines?tail=N&follow=1 starts N complete lines back", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "tail-f.log" });
  await using watcher = await openDownload(up.reference);
  const head = "one\ntwo\nthree\nfour\nfi";
  await writeAndWait(up, watcher, encoder.encode(head), head.length);
  const response = await fetch(httpUrl(up.reference, "/lines?tail=2&follow=1"));
  assertEquals(response.headers.get("spool-first-line"), "2");
  assertEquals(response.headers.get("spool-lines"), "4");
  const from = "one\ntwo\n".length;
  assertEquals(response.headers.get("spool-start"), String(from));
  const rest = "ve\nsix\n" + textLines(100, 8) + "last";
  const got = await followInLines(
    up,
    watcher,
    response.body!,
    piecesOf(rest, 9),
    { prefix: encoder.encode(head), from },
  );
  assertEquals(decoder.decode(got), (head + rest).slice(from));
});

Deno.test("lines: a line follow of a FAILED upload ends broken, without the partial line", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "dies.log" });
  await using watcher = await openDownload(up.reference);
  const response = await fetch(httpUrl(up.reference, "/lines?follow=1"));
  const text = "ok 1\nok 2\nhalf";
  await writeAndWait(up, watcher, encoder.encode(text), text.length);
  up.abort("test");
  await up.closed();
  const chunks: Uint8Array[] = [];
  const reader = response.body!.getReader();
  let error: unknown;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  } catch (e) {
    error = e;
  }
  assert(error instanceof TypeError, `the body was aborted, got ${error}`);
  assertEquals(decoder.decode(concat(chunks)), "ok 1\nok 2\n");
  // Range queries on the FAILED resource: the partial line does not count.
  const tail = await fetch(httpUrl(up.reference, "/lines?tail=5"));
  assertEquals(await tail.text(), "ok 1\nok 2\n");
  assertEquals(tail.headers.get("spool-lines"), "2");
});

Deno.test("lines: a line longer than a follow chunk arrives whole, then the rest", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "wide.log" });
  await using watcher = await openDownload(up.reference);
  const response = await fetch(httpUrl(up.reference, "/lines?follow=1"));
  const wide = "W".repeat(600_000) + "\n";
  const text = "short\n" + wide + "tail\n" + "x".repeat(10);
  const data = encoder.encode(text);
  const pieces = [data.subarray(0, 300_000), data.subarray(300_000)];
  let written = 0;
  for (const piece of pieces) {
    written += piece.byteLength;
    await writeAndWait(up, watcher, piece, written);
  }
  await up.finish();
  await up.closed();
  const got = new Uint8Array(await response.arrayBuffer());
  assertEquals(decoder.decode(got), text);
});
