/**
 * `register(..., { wholeBodies: N })`: bodies of known size up to N bytes
 * reach the handler as one `Uint8Array`, bigger and unknown-size ones as
 * streams; every byte, in order; a body cut short reaches such a handler
 * only as the error call.
 */

import { assertEquals, assertThrows } from "@std/assert";
import {
  encodeFrameHeader,
  encodeHeader,
  KIND_OBJECT,
  MAX_WHOLE_BODIES,
  type ReceivedHeader,
  Stream,
  TransportError,
} from "../transport/mod.ts";
import {
  chunked,
  randomBytes,
  sha256,
  startTestReceiver,
} from "./_transport_helpers.ts";

const N = 4096;

/** What the handler saw of one call. */
interface Seen {
  name: string;
  as: "bytes" | "stream" | "none";
  length: number;
  sha: string;
  error?: string;
}

/** A handler recording each call into `into`, bodies hashed. */
function recorder(into: Seen[]) {
  return async (
    header: ReceivedHeader,
    body: Uint8Array | ReadableStream<Uint8Array> | null,
    error?: TransportError,
  ): Promise<void> => {
    if (error !== undefined) {
      into.push({
        name: header.name,
        as: "none",
        length: 0,
        sha: "",
        error: error.code,
      });
      return;
    }
    const as = body === null
      ? "none"
      : body instanceof Uint8Array
      ? "bytes"
      : "stream";
    const bytes = body === null
      ? new Uint8Array(0)
      : body instanceof Uint8Array
      ? body
      : await new Response(body).bytes();
    into.push({
      name: header.name,
      as,
      length: bytes.length,
      sha: await sha256(bytes),
    });
  };
}

Deno.test("transport whole bodies: sizes 0, 1, N-1, N, N+1 and 1 MiB, bytes and streams mixed, arrive whole, in order, as bytes up to N", async () => {
  await using rx = await startTestReceiver();
  const seen: Seen[] = [];
  rx.receiver.register("data", "whole", recorder(seen), { wholeBodies: N });
  const stream = new Stream(rx.receiver.url("data", "whole"), { burst: 8 });
  const expected: Seen[] = [];
  const sizes = [0, 1, N - 1, N, N + 1, 1024 * 1024, 1, N];
  let i = 0;
  for (const size of sizes) {
    const bytes = randomBytes(size, ++i);
    const sha = await sha256(bytes);
    // Known size, sent as one buffer (size 0 goes as header-only).
    await stream.send({ name: `b${i}` }, bytes.slice());
    expected.push({
      name: `b${i}`,
      as: size === 0 ? "none" : size <= N ? "bytes" : "stream",
      length: size,
      sha,
    });
    // Known size, fed in 100-byte pieces: may reach the receiver in parts.
    await stream.send({ name: `p${i}`, size }, chunked(bytes, 100));
    expected.push({
      name: `p${i}`,
      as: size === 0 ? "none" : size <= N ? "bytes" : "stream",
      length: size,
      sha,
    });
    // Unknown size: always a stream.
    await stream.send({ name: `u${i}` }, chunked(bytes, 1000));
    expected.push({ name: `u${i}`, as: "stream", length: size, sha });
    // Header-only: no body.
    await stream.send({ name: `h${i}` });
    expected.push({
      name: `h${i}`,
      as: "none",
      length: 0,
      sha: await sha256(new Uint8Array(0)),
    });
  }
  await stream.fin();
  assertEquals(seen, expected);
  const stats = rx.receiver.stats().data.whole;
  assertEquals(stats.objects, expected.length);
  assertEquals(stats.bytes, expected.reduce((sum, e) => sum + e.length, 0));
});

Deno.test("transport whole bodies: bodies bigger than a read (up to 2 MiB) are collected whole from many reads", async () => {
  await using rx = await startTestReceiver();
  const seen: Seen[] = [];
  const limit = 2 * 1024 * 1024;
  rx.receiver.register("data", "large", recorder(seen), { wholeBodies: limit });
  const stream = new Stream(rx.receiver.url("data", "large"));
  const expected: Seen[] = [];
  for (const [i, size] of [N, 1024 * 1024, limit, limit + 1, 3].entries()) {
    const bytes = randomBytes(size, 50 + i);
    await stream.send({ name: `l${i}` }, bytes.slice());
    expected.push({
      name: `l${i}`,
      as: size <= limit ? "bytes" : "stream",
      length: size,
      sha: await sha256(bytes),
    });
  }
  await stream.fin();
  assertEquals(seen, expected);
});

Deno.test("transport whole bodies: a handler's bytes are its own (the next objects do not overwrite them)", async () => {
  await using rx = await startTestReceiver();
  const kept: Uint8Array[] = [];
  rx.receiver.register("data", "keep", (_header, body) => {
    if (body instanceof Uint8Array) kept.push(body);
  }, { wholeBodies: N });
  const stream = new Stream(rx.receiver.url("data", "keep"));
  const sent: string[] = [];
  for (let i = 0; i < 200; i++) {
    const bytes = randomBytes(1024, 100 + i);
    sent.push(await sha256(bytes));
    await stream.send({ name: `k${i}` }, bytes);
  }
  await stream.fin();
  assertEquals(await Promise.all(kept.map((b) => sha256(b))), sent);
});

function cat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** One object frame of `name` announcing `size` body bytes, then `body`. */
function objectFrame(
  name: string,
  size: number,
  body: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const header = encodeHeader({ name, size });
  return cat(
    encodeFrameHeader({
      kind: KIND_OBJECT,
      flags: 0,
      length: header.length,
      seq: 0,
    }),
    header,
    body,
  );
}

Deno.test("transport whole bodies: a body cut short reaches the handler only as the error call (bytes), or as a failing stream then the error (streams)", async () => {
  await using rx = await startTestReceiver();
  const seen: Seen[] = [];
  rx.receiver.register("data", "cut", recorder(seen), { wholeBodies: N });
  const url = rx.receiver.url("data", "cut");
  const cases: [string, Uint8Array<ArrayBuffer>, Seen[]][] = [
    [
      "small",
      objectFrame("small", 4, new Uint8Array(2)),
      [{
        name: "small",
        as: "none",
        length: 0,
        sha: "",
        error: "obj-data-eof",
      }],
    ],
    [
      "most of N",
      objectFrame("most", N, randomBytes(N - 1, 7)),
      [{ name: "most", as: "none", length: 0, sha: "", error: "obj-data-eof" }],
    ],
    [
      "over N",
      objectFrame("big", N + 1, randomBytes(N, 8)),
      // The stream's read fails (the handler rejects, and is not counted as
      // failing: the request already did), then the error call.
      [{ name: "big", as: "none", length: 0, sha: "", error: "obj-data-eof" }],
    ],
  ];
  let n = 0;
  for (const [label, body, want] of cases) {
    const sessionId = `cut-${n++}`;
    const ended = rx.nextRequestEnd((e) => e.sessionId === sessionId);
    const response = await fetch(url, {
      method: "PUT",
      headers: { "Spool-Session-Id": sessionId },
      body,
    });
    assertEquals(response.status, 400, label);
    assertEquals((await response.json()).code, "obj-data-eof", label);
    assertEquals((await ended).error?.code, "obj-data-eof", label);
    assertEquals(seen.splice(0), want, label);
  }
});

Deno.test("transport whole bodies: wholeBodies must be a byte count from 0 to MAX_WHOLE_BODIES", async () => {
  await using rx = await startTestReceiver();
  const handler = () => {};
  for (const bad of [-1, 1.5, Number.NaN, MAX_WHOLE_BODIES + 1]) {
    const error = assertThrows(
      () => rx.receiver.register("data", "bad", handler, { wholeBodies: bad }),
      TransportError,
      `option wholeBodies is ${bad}, expected an integer number of bytes from 0 to ${MAX_WHOLE_BODIES}`,
    );
    assertEquals(error.code, "invalid-argument");
  }
  rx.receiver.register("data", "ok", handler, {
    wholeBodies: MAX_WHOLE_BODIES,
  });
});

Deno.test("transport whole bodies: a handler that returns nothing gets every object in order; a stream it leaves unread is drained", async () => {
  await using rx = await startTestReceiver();
  const seen: string[] = [];
  const kept: Uint8Array[] = [];
  rx.receiver.register("data", "sync", (header, body) => {
    // No promise: the receiver goes on at once (and drains unread streams).
    if (body instanceof Uint8Array) {
      seen.push(`${header.name} bytes ${body.byteLength}`);
      kept.push(body);
    } else seen.push(`${header.name} ${body === null ? "none" : "stream"}`);
  }, { wholeBodies: N });
  const stream = new Stream(rx.receiver.url("data", "sync"), { burst: 4 });
  const expected: string[] = [];
  const sent: Uint8Array[] = [];
  const sizes = [1, N, N + 1, 0, 3 * N, 7, 64 * 1024, N - 1];
  for (let round = 0; round < 50; round++) {
    for (const [i, size] of sizes.entries()) {
      const name = `s${round}.${i}`;
      const bytes = randomBytes(size, round * 16 + i);
      await stream.send({ name }, size === 0 ? null : bytes);
      if (size === 0) expected.push(`${name} none`);
      else if (size <= N) {
        expected.push(`${name} bytes ${size}`);
        sent.push(bytes.slice());
      } else expected.push(`${name} stream`);
    }
  }
  await stream.fin();
  assertEquals(seen, expected);
  assertEquals(kept.length, sent.length);
  for (let i = 0; i < kept.length; i++) {
    assertEquals(await sha256(kept[i]), await sha256(sent[i]));
  }
  const stats = rx.receiver.stats().data.sync;
  assertEquals(stats.objects, expected.length);
  assertEquals(stats.bytes, 50 * sizes.reduce((sum, size) => sum + size, 0));
});
