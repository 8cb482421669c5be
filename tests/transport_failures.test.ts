import {
  assert,
  assertEquals,
  assertGreater,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  encodeFrameHeader,
  encodeHeader,
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
  Receiver,
  Stream,
  TransportError,
  type TransportErrorCode,
} from "../transport/mod.ts";
import {
  randomBytes,
  type Received,
  recordInto,
  sha256,
  startTestReceiver,
} from "./_transport_helpers.ts";
import { within } from "./_fault_actors.ts";

/** Guard against hangs only; nothing waits for it to pass. */
const GUARD_MS = 10_000;

/** A stream body that records whether it was read to the end or cancelled. */
function trackedBody(bytes: Uint8Array): {
  stream: ReadableStream<Uint8Array>;
  settled: Promise<"closed" | "cancelled">;
} {
  let settle!: (how: "closed" | "cancelled") => void;
  const settled = new Promise<"closed" | "cancelled">((r) => settle = r);
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        settle("closed");
        return;
      }
      controller.enqueue(bytes.slice(at, at + 4096));
      at += 4096;
    },
    cancel() {
      settle("cancelled");
    },
  });
  return { stream, settled };
}

function cat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function abortMidStream(useSignal: boolean): Promise<void> {
  await using rx = await startTestReceiver();
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "abort", received);
  const controller = new AbortController();
  const seen = new Map<string, number>();
  const codes = new Map<string, number>();
  const stream = new Stream(url, {
    burst: 64,
    signal: useSignal ? controller.signal : undefined,
    onSent: (header, error) => {
      seen.set(header.name, (seen.get(header.name) ?? 0) + 1);
      const code = error?.code ?? "ok";
      codes.set(code, (codes.get(code) ?? 0) + 1);
    },
  });
  const bodies: Promise<string>[] = [];
  const total = 10_000;
  const abortAt = 5000;
  let rejected = 0;
  let aborted: Promise<void> | undefined;
  for (let i = 0; i < total; i++) {
    if (i === abortAt) {
      if (useSignal) controller.abort(new Error("test abort"));
      else aborted = stream.abort("test abort");
    }
    let body: Uint8Array | ReadableStream<Uint8Array> | null = i % 7 === 0
      ? null
      : randomBytes(100 + (i % 3000), i);
    if (i % 10 === 3) {
      const tracked = trackedBody(randomBytes(20_000, i));
      bodies.push(tracked.settled);
      body = tracked.stream;
    }
    try {
      await stream.send({ name: `o${i}` }, body);
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      assertEquals(error.code, "stream-terminated");
      rejected++;
    }
  }
  await aborted;
  await stream.abort(); // idempotent; resolves once every completion fired
  assertEquals(seen.size, total);
  for (const [name, n] of seen) assertEquals(n, 1, `completions of ${name}`);
  assertEquals(rejected, total - abortAt);
  assertGreater(codes.get("stream-aborted") ?? 0, 0);
  assertEquals(codes.get("stream-terminated"), total - abortAt);
  assertEquals(
    (codes.get("ok") ?? 0) + (codes.get("stream-aborted") ?? 0),
    abortAt,
  );
  const how = await Promise.all(bodies);
  assertEquals(how.length, total / 10);
  await assertRejects(() => stream.fin(), TransportError, "aborted");
  // The receiver got a prefix of the objects, in order, nothing after a gap.
  const whole = received.filter((r) => r.error === undefined);
  whole.forEach((r, i) => assertEquals(r.header.name, `o${i}`));
}

Deno.test("transport failures: abort mid-stream completes every object exactly once", async () => {
  await abortMidStream(false);
});

Deno.test("transport failures: abort through the signal option", async () => {
  await abortMidStream(true);
});

Deno.test("transport failures: receiver gone mid-object gives errors, no hang", async () => {
  // A raw TCP peer that reads part of the request, then drops the connection.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dropped = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(64 * 1024);
    let total = 0;
    while (total < 1_500_000) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
    }
    conn.close();
    return total;
  })();
  const errors: TransportError[] = [];
  let completions = 0;
  const stream = new Stream(
    `http://127.0.0.1:${listener.addr.port}/v1/objstream/gone`,
    {
      onSent: (_header, error) => {
        completions++;
        if (error) errors.push(error);
      },
    },
  );
  let rejected = 0;
  for (let i = 0; i < 40; i++) {
    await stream.send({ name: `big${i}` }, randomBytes(1 << 20, i)).catch(
      () => rejected++,
    );
  }
  const finError = await assertRejects(() => stream.fin(), TransportError);
  assertEquals(finError.code, "receiver-gone");
  assertGreater(await dropped, 1_000_000);
  listener.close();
  assertEquals(completions, 40);
  assertGreater(errors.length, 10);
  for (const error of errors) {
    assert(
      error.code === "receiver-gone" || error.code === "stream-terminated",
      error.code,
    );
  }
});

Deno.test("transport failures: receiver closed mid-object delivers receiver-closed", async () => {
  const rx = await startTestReceiver();
  const handlerErrors: TransportErrorCode[] = [];
  let started!: () => void;
  const firstChunk = new Promise<void>((r) => started = r);
  rx.receiver.register("data", "closing", async (_header, body, error) => {
    if (error) return void handlerErrors.push(error.code);
    const reader = body!.getReader();
    await reader.read();
    started();
    try {
      while (!(await reader.read()).done);
    } catch (error) {
      handlerErrors.push((error as TransportError).code);
    }
  });
  let release!: () => void;
  const hold = new Promise<void>((r) => release = r);
  let cancelled = false;
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sent) {
        sent = true;
        return controller.enqueue(new Uint8Array(64 * 1024));
      }
      await hold; // never more data: the object stays open
    },
    cancel() {
      cancelled = true;
      release();
    },
  });
  const stream = new Stream(rx.receiver.url("data", "closing"));
  const failures: string[] = [];
  await stream.send({ name: "stuck", size: 1 << 20 }, body, {
    onSent: (_h, e) => failures.push(e?.code ?? "ok"),
  });
  await firstChunk;
  await rx.receiver.close();
  const error = await assertRejects(() => stream.fin(), TransportError);
  assert(
    error.code === "receiver-error" || error.code === "receiver-gone",
    error.code,
  );
  assertEquals(failures.length, 1);
  assert(failures[0] !== "ok");
  assertEquals(cancelled, true);
  assertEquals(handlerErrors, ["receiver-closed", "receiver-closed"]);
});

Deno.test("transport failures: malformed bodies get typed errors; other streams keep going", async () => {
  await using rx = await startTestReceiver({ maxHeaderSize: 4096 });
  const victim: Received[] = [];
  const victimUrl = recordInto(rx.receiver, "victim", victim);
  const good: Received[] = [];
  const goodUrl = recordInto(rx.receiver, "good", good);
  // Healthy traffic on both endpoints while the bad requests arrive.
  const healthy = [goodUrl, victimUrl].map(async (url) => {
    const stream = new Stream(url, { burst: 16 });
    for (let i = 0; i < 1500; i++) {
      await stream.send({ name: `h${i}` }, randomBytes(i % 5000, i));
    }
    await stream.fin();
    return stream.sessionId;
  });
  const h = encodeHeader({ name: "bad", size: 4 });
  const obj = (length = h.length, flags = 0, seq = 0) =>
    encodeFrameHeader({ kind: KIND_OBJECT, flags, length, seq });
  const u = encodeHeader({ name: "pdu", size: -1 });
  const pduObj = encodeFrameHeader({
    kind: KIND_OBJECT,
    flags: FLAG_PDU_MODE,
    length: u.length,
    seq: 0,
  });
  const pdu = (flags: number, length: number, seq = 0) =>
    encodeFrameHeader({ kind: KIND_PDU, flags, length, seq });
  const fin = encodeFrameHeader({
    kind: KIND_FIN,
    flags: 0,
    length: 0,
    seq: 1,
  });
  const cases: [string, Uint8Array<ArrayBuffer>, TransportErrorCode][] = [
    ["garbage", randomBytes(100, 1), "hdr-checksum"],
    ["short frame header", obj().subarray(0, 9), "proto-hdr-short"],
    ["short object header", cat(obj(), h.subarray(0, 5)), "obj-hdr-short"],
    ["header too large", cat(obj(5000), new Uint8Array(5000)), "hdr-too-large"],
    [
      "malformed header",
      cat(obj(h.length + 1), h, new Uint8Array(1)),
      "obj-hdr-malformed",
    ],
    ["truncated body", cat(obj(), h, new Uint8Array(2)), "obj-data-eof"],
    ["PDU too large", cat(pduObj, u, pdu(0, 2 << 20)), "pdu-invalid"],
    [
      "PDU of another object",
      cat(pduObj, u, pdu(FLAG_PDU_LAST, 1, 9), new Uint8Array(1)),
      "pdu-invalid",
    ],
    [
      "missing last PDU",
      cat(pduObj, u, pdu(0, 3), new Uint8Array(3)),
      "pdu-hdr-short",
    ],
    [
      "short PDU",
      cat(pduObj, u, pdu(FLAG_PDU_LAST, 3), new Uint8Array(1)),
      "pdu-data-eof",
    ],
    [
      "bytes after fin",
      cat(obj(), h, new Uint8Array(4), fin, new Uint8Array(3)),
      "frame-after-fin",
    ],
  ];
  let n = 0;
  for (const [label, body, code] of cases) {
    const response = await fetch(victimUrl, {
      method: "PUT",
      headers: { "Spool-Session-Id": `bad-${n++}` },
      body,
    });
    assertEquals(response.status, 400, label);
    const answer = await response.json();
    assertEquals(answer.code, code, label);
    const delivered = victim.find((r) =>
      r.header.sessionId === `bad-${n - 1}` && r.error
    );
    assertEquals(delivered?.error?.code, code, `handler error for ${label}`);
  }
  // Compressed garbage.
  const badGzip = await fetch(victimUrl, {
    method: "PUT",
    headers: { "Spool-Session-Id": "bad-gzip", "Spool-Compression": "gzip" },
    body: randomBytes(300, 3),
  });
  assertEquals(badGzip.status, 400);
  assertEquals((await badGzip.json()).code, "decompress-failed");
  // Not even a session: rejected before any handler call.
  const noSession = await fetch(victimUrl, { method: "PUT", body: fin });
  assertEquals(noSession.status, 400);
  assertEquals((await noSession.json()).code, "bad-request");
  const unknown = await fetch(new URL("/v1/objstream/nope", victimUrl), {
    method: "PUT",
    headers: { "Spool-Session-Id": "x" },
    body: fin,
  });
  assertEquals(unknown.status, 404);
  assertEquals((await unknown.json()).code, "unknown-endpoint");
  const [goodSession, victimSession] = await Promise.all(healthy);
  for (
    const [list, session] of [[good, goodSession], [
      victim,
      victimSession,
    ]] as const
  ) {
    const mine = list.filter((r) => r.header.sessionId === session);
    assertEquals(mine.length, 1500);
    for (let i = 0; i < 1500; i++) {
      assertEquals(mine[i].header.name, `h${i}`);
      assertEquals(mine[i].error, undefined);
      if (i % 5000 !== 0) {
        assertEquals(mine[i].sha, await sha256(randomBytes(i % 5000, i)));
      }
    }
  }
  const stats = rx.receiver.stats().data.victim.sessions;
  assertEquals(stats["bad-0"].errors, 1);
  assertEquals(stats["bad-0"].lastError, "hdr-checksum");
});

Deno.test("transport failures: send after termination, bad input and body errors", async () => {
  await using rx = await startTestReceiver();
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "errs", received);
  const log: string[] = [];
  const stream = new Stream(url, {
    maxHeaderSize: 1024,
    onSent: (h, e) => log.push(`${h.name}:${e?.code ?? "ok"}`),
  });
  await stream.send({ name: "a" }, new Uint8Array(10));
  await assertRejects(
    () => stream.send({ name: "b", size: 3 }, new Uint8Array(10)),
    TransportError,
    "size 3",
  );
  await assertRejects(
    () => stream.send({ name: "c", opaque: new Uint8Array(2000) }),
    TransportError,
    "maxHeaderSize",
  );
  // A missing file fails that object only; the stream goes on.
  await stream.send({ name: "d" }, { path: "/nonexistent/spool-file" });
  await stream.send({ name: "e", size: 5 }, { path: import.meta.filename! });
  await stream.send({ name: "f" }, new Uint8Array(3));
  await stream.fin();
  await assertRejects(
    () => stream.send({ name: "g" }),
    TransportError,
    "terminated",
  );
  assertEquals(log, [
    "a:ok",
    "b:obj-size-mismatch",
    "c:hdr-too-large",
    "d:body-failed",
    "e:obj-size-mismatch",
    "f:ok",
    "g:stream-terminated",
  ]);
  assertEquals(received.map((r) => r.header.name), ["a", "f"]);

  // A body stream that fails mid-object ends the stream; the receiver sees a
  // truncated object.
  let arrived!: () => void;
  const firstArrived = new Promise<void>((resolve) => arrived = resolve);
  rx.receiver.register("data", "broken", async (header, body) => {
    if (body !== null) await new Response(body).arrayBuffer();
    if (header.name === "x1") arrived();
  });
  const broken = new Stream(rx.receiver.url("data", "broken"), {
    onSent: (h, e) => log.push(`${h.name}:${e?.code ?? "ok"}`),
  });
  let pulls = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulls++ < 3) controller.enqueue(new Uint8Array(30_000));
      else controller.error(new Error("disk on fire"));
    },
  });
  const truncated = rx.nextRequestEnd((e) => e.sessionId === broken.sessionId);
  await broken.send({ name: "x1" }, new Uint8Array(5));
  // The request must reach the receiver before it breaks, or there is no
  // receive side to observe.
  await firstArrived;
  await broken.send({ name: "x2", size: 200_000 }, failing);
  await broken.send({ name: "x3" }, new Uint8Array(5)).catch(() => {
    // Rejected only if the failure was already known: the log checks it.
  });
  const finError = await assertRejects(() => broken.fin(), TransportError);
  assertEquals(finError.code, "body-failed");
  assertEquals(log.slice(7), [
    "x1:ok",
    "x2:body-failed",
    "x3:stream-terminated",
  ]);
  const end = (await truncated).error;
  if (end === null) throw new Error("expected the truncated request to fail");
  assert(
    ["connection-reset", "obj-data-eof"].includes(end.code),
    end.code,
  );
});

Deno.test("transport failures: receiver errors reach the sender", async () => {
  await using rx = await startTestReceiver();
  rx.receiver.register("data", "throws", (header) => {
    if (header.name === "boom") throw new Error("handler exploded");
  });
  const stream = new Stream(rx.receiver.url("data", "throws"));
  await stream.send({ name: "fine" });
  await stream.send({ name: "boom" }, new Uint8Array(100));
  const error = await assertRejects(() => stream.fin(), TransportError);
  assertEquals(error.code, "receiver-error");
  assertEquals(error.remoteCode, "handler-failed");
  assert(error.message.includes("handler exploded"));

  const missing = new Stream(rx.receiver.url("data", "missing"));
  let completion: TransportError | undefined;
  let completions = 0;
  await missing.send({ name: "x" }, new Uint8Array(1), {
    onSent: (_h, e) => {
      completion = e;
      completions++;
    },
  });
  const gone = await assertRejects(() => missing.fin(), TransportError);
  assertEquals(gone.code, "receiver-error");
  assertEquals(gone.remoteCode, "unknown-endpoint");
  assertEquals(completions, 1);
  // A completion means "handed to the connection": the object may have left
  // before the 404 came back. Either way, exactly one completion.
  assert(
    completion === undefined || completion.code === "receiver-error",
    completion?.code,
  );

  assertEquals(
    assertThrows(
      () => rx.receiver.register("data", "throws", () => {}),
      TransportError,
    ).code,
    "duplicate-endpoint",
  );
  assertEquals(
    assertThrows(
      () => rx.receiver.register("nope", "x", () => {}),
      TransportError,
    ).code,
    "unknown-network",
  );
  assertEquals(rx.receiver.unregister("data", "throws"), true);
  assertEquals(rx.receiver.unregister("data", "throws"), false);
  assertEquals(
    assertThrows(
      () => new Stream("http://127.0.0.1:1/", { burst: 0 }),
      TransportError,
    ).code,
    "invalid-argument",
  );
});

Deno.test("transport failures: a stalled body fails with body-timeout; its handler gets the error, other streams go on", async () => {
  await using rx = await startTestReceiver({ bodyTimeoutMs: 300 });
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "stall", received);
  const failedEnd = rx.nextRequestEnd((e) => e.error !== null);
  // A healthy stream on the same endpoint; its idle teardown (50 ms) keeps
  // its own requests under the receiver's bound.
  const healthy = new Stream(url, { idleTimeoutMs: 50 });
  await healthy.send({ name: "h0" }, randomBytes(1000, 1));
  // The stalled one: part of a body, then nothing.
  let stalledCompletion: TransportError | undefined;
  const stalled = new Stream(url, {
    confirm: true,
    onSent: (_header, error) => stalledCompletion = error,
  });
  const first = randomBytes(5000, 2);
  await stalled.send(
    { name: "stalled" },
    new ReadableStream({
      start(controller) {
        controller.enqueue(first);
      },
    }),
  );
  const end = await within(GUARD_MS, "the stalled request's end", failedEnd);
  assertEquals(end.error?.code, "body-timeout");
  assert(
    end.error?.message.includes("bodyTimeoutMs is 300"),
    end.error?.message,
  );
  const finError = await assertRejects(() => stalled.fin(), TransportError);
  assertEquals(finError.code, "receiver-error");
  assertEquals(finError.remoteCode, "body-timeout");
  assertEquals(stalledCompletion?.remoteCode, "body-timeout");
  // The handler saw the object, its body fail, then the error.
  const failed = received.filter((r) => r.header.name === "stalled");
  assertEquals(failed.length, 1);
  assertEquals(failed[0].error?.code, "body-timeout");
  // The healthy stream reconnects and finishes.
  await healthy.send({ name: "h1" }, randomBytes(1000, 3));
  await healthy.fin();
  assertEquals(
    received.filter((r) => r.error === undefined).map((r) => r.header.name),
    ["h0", "h1"],
  );
  const stats = rx.receiver.stats().data.stall.sessions[healthy.sessionId];
  assertEquals(stats.errors, 0);
  assertEquals(stats.finished, true);
});

Deno.test("transport failures: a stalled raw body gets 408 body-timeout", async () => {
  await using rx = await startTestReceiver({ bodyTimeoutMs: 200 });
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "raw", received);
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(url.port),
  });
  const encoder = new TextEncoder();
  const header = encodeHeader({ name: "half", size: 1000 });
  const frame = encodeFrameHeader({
    kind: KIND_OBJECT,
    flags: 0,
    length: header.length,
    seq: 0,
  });
  const part = cat(frame, header, new Uint8Array(100));
  await conn.write(cat(
    encoder.encode(
      "PUT /v1/objstream/raw HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        "Spool-Session-Id: raw-1\r\nTransfer-Encoding: chunked\r\n" +
        "Connection: close\r\n\r\n",
    ),
    encoder.encode(`${part.length.toString(16)}\r\n`),
    part,
    encoder.encode("\r\n"),
  ));
  // Read the whole answer. (Deno 2.9.6 then keeps the socket open until
  // the client closes it: a pending body read cannot be cancelled.)
  let text = "";
  const buffer = new Uint8Array(4096);
  const decoder = new TextDecoder();
  await within(
    GUARD_MS,
    "the answer",
    (async () => {
      for (;;) {
        const end = text.indexOf("\r\n\r\n");
        const length = Number(text.match(/content-length: (\d+)/i)?.[1]);
        if (end >= 0 && text.length >= end + 4 + length) return;
        const n = await conn.read(buffer);
        if (n === null) {
          throw new Error(
            `connection ended in the answer: ${text}`,
          );
        }
        text += decoder.decode(buffer.subarray(0, n));
      }
    })(),
  ).finally(() => conn.close());
  assert(text.startsWith("HTTP/1.1 408 "), text);
  const json = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
  assertEquals(json.code, "body-timeout");
  assert(
    json.message.includes(`at byte ${part.length}`) &&
      json.message.includes("bodyTimeoutMs is 200"),
    json.message,
  );
  assertEquals(received.map((r) => r.error?.code), ["body-timeout"]);
  assertEquals(received[0].header.name, "half");
});

Deno.test("transport failures: bodyTimeoutMs must be a non-negative integer", () => {
  for (const bodyTimeoutMs of [-1, 1.5, Number.NaN, Infinity]) {
    assertEquals(
      assertThrows(() => new Receiver({ bodyTimeoutMs }), TransportError).code,
      "invalid-argument",
    );
  }
});
