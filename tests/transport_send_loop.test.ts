/**
 * The send loop in process: a real `SendLoop` writing real frames through a
 * fake connection that stands in for the network (the socket and the
 * receiver behind it). What the loop wrote is parsed back with the real
 * `FrameParser`.
 */

import { assert, assertEquals } from "@std/assert";
import { encodeHeader, FrameParser, TransportError } from "../transport/mod.ts";
import {
  BatchTable,
  type EndMessage,
  type FromWorker,
  type InitMessage,
  type ObjectsMessage,
  type WireBody,
} from "../transport/internal/messages.ts";
import type {
  Connection,
  ConnectionEvents,
  Connector,
} from "../workers/_http1_connection.ts";
import { SendLoop } from "../workers/_send_loop_core.ts";

/** One request as the network saw it. */
class FakeRequest implements Connection {
  consumed = 0;
  readonly bytes: Uint8Array[] = [];
  readonly events: ConnectionEvents;
  #closed = Promise.withResolvers<void>();
  closedBy: "close" | "abort" | null = null;
  abortReason: TransportError | null = null;
  /**
   * Whether each write takes the socket a turn of the event loop, as a real
   * one does: a loop that completed objects before their bytes were taken
   * would post the completions in the meantime.
   */
  readonly slow: boolean;

  constructor(events: ConnectionEvents, slow: boolean) {
    this.events = events;
    this.slow = slow;
  }

  /** Resolves when the loop ended the request (close or abort). */
  get ended(): Promise<void> {
    return this.#closed.promise;
  }

  async write(chunk: Uint8Array, lead?: Uint8Array): Promise<void> {
    await this.#socket();
    if (lead !== undefined && lead.byteLength > 0) this.#take(lead);
    this.#take(chunk);
    this.events.onProgress();
  }

  async startChunk(_size: number, lead?: Uint8Array): Promise<void> {
    await this.#socket();
    if (lead !== undefined && lead.byteLength > 0) this.#take(lead);
    this.events.onProgress();
  }

  close(): Promise<void> {
    this.closedBy = "close";
    this.#closed.resolve();
    return Promise.resolve();
  }

  abort(reason: TransportError): void {
    this.closedBy = "abort";
    this.abortReason = reason;
    this.#closed.resolve();
  }

  /** Everything the loop wrote, parsed. */
  parsed(): string[] {
    return this.#parse().events;
  }

  /** Where each object's last byte is in the body, by seq. */
  objectEnds(): Map<number, number> {
    return this.#parse().ends;
  }

  #parse(): { events: string[]; ends: Map<number, number> } {
    const parser = new FrameParser();
    const events: string[] = [];
    const ends = new Map<number, number>();
    let seq = -1;
    let at = 0;
    for (const chunk of this.bytes) {
      parser.push(chunk);
      for (let e = parser.next(); e !== null; e = parser.next()) {
        if (e.type === "object") {
          seq = e.seq;
          events.push(`object ${e.seq} ${e.header.name}`);
        } else if (e.type === "data") {
          events.push(`data ${e.bytes.byteLength}`);
        } else if (e.type === "end") {
          events.push(`end ${e.size}`);
          // Parsed whole at this chunk's end at the latest.
          ends.set(seq, at + chunk.byteLength);
        } else events.push(`fin ${e.seq}`);
      }
      at += chunk.byteLength;
    }
    parser.finish();
    return { events, ends };
  }

  #socket(): Promise<void> {
    if (!this.slow) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, 0));
  }

  #take(bytes: Uint8Array): void {
    // The loop reuses its buffers once a write resolved: keep a copy.
    this.bytes.push(bytes.slice());
    this.consumed += bytes.byteLength;
  }
}

/** The network: every request the loop opened, in order. */
class FakeNetwork implements Connector {
  readonly requests: FakeRequest[] = [];
  /** Whether the sockets of new requests are slow (see FakeRequest). */
  slow = false;
  #waiters: { count: number; resolve: () => void }[] = [];

  open(_sessionId: string, events: ConnectionEvents): Connection {
    const request = new FakeRequest(events, this.slow);
    this.requests.push(request);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.requests.length < w.count) return true;
      w.resolve();
      return false;
    });
    return request;
  }

  /** Resolves once `count` requests were opened. */
  opened(count: number): Promise<FakeRequest> {
    if (this.requests.length >= count) {
      return Promise.resolve(this.requests[count - 1]);
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ count, resolve });
    return promise.then(() => this.requests[count - 1]);
  }
}

/** What the loop posted, and a way to wait for a message. */
class Port {
  readonly messages: FromWorker[] = [];
  /** Bytes the network had taken when each message was posted. */
  readonly consumed: number[] = [];
  /** The request whose bytes `consumed` counts, once there is one. */
  request: FakeRequest | null = null;
  #waiters: { test: (m: FromWorker) => boolean; resolve: () => void }[] = [];

  post = (message: FromWorker): void => {
    this.messages.push(message);
    this.consumed.push(this.request?.consumed ?? 0);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(message)) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once a message passing `test` was posted. */
  next(test: (m: FromWorker) => boolean): Promise<void> {
    if (this.messages.some(test)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ test, resolve });
    return promise;
  }

  /** The loop's end message; throws if it has not ended. */
  end(): EndMessage {
    const end = this.messages.find((m) => m.t === "end");
    if (end?.t !== "end") throw new Error("the loop posted no end message");
    return end;
  }

  /** Every completed seq in the order the completions said, with errors. */
  completions(): string[] {
    const out: string[] = [];
    let done = -1;
    for (const m of this.messages) {
      if (m.t !== "cmpl") continue;
      const errors = new Map(m.errors);
      for (let seq = done + 1; seq <= m.through; seq++) {
        const error = errors.get(seq);
        out.push(error === undefined ? `${seq}` : `${seq} ${error.code}`);
      }
      done = m.through;
    }
    return out;
  }
}

const encoder = new TextEncoder();

function init(overrides: Partial<InitMessage> = {}): InitMessage {
  return {
    t: "init",
    url: "http://127.0.0.1:1/v1/objstream/fake",
    sessionId: "s-test",
    idleTimeoutMs: 60_000,
    confirm: false,
    compression: "none",
    sizePdu: 1024,
    headers: {},
    ...overrides,
  };
}

/** A batch as a Stream would post it; bodies are bytes (packed) or streams. */
function batch(
  first: number,
  objects: { name: string; body?: Uint8Array | ReadableStream<Uint8Array> }[],
): ObjectsMessage {
  const table = new BatchTable();
  const parts: Uint8Array[] = [];
  let at = 0;
  objects.forEach(({ name, body }, i) => {
    const size = body instanceof Uint8Array ? body.byteLength : body ? -1 : 0;
    const header = encodeHeader({ name, size });
    parts.push(header);
    const hdrOff = at;
    at += header.byteLength;
    let wireBody: WireBody = null;
    if (body instanceof Uint8Array) {
      parts.push(body);
      wireBody = { k: "packed", off: at, len: body.byteLength };
      at += body.byteLength;
    } else if (body !== undefined) {
      wireBody = { k: "stream", stream: body };
    }
    table.add({
      seq: first + i,
      size,
      hdrOff,
      hdrLen: header.byteLength,
      body: wireBody,
    });
  });
  const packed = new Uint8Array(at);
  let off = 0;
  for (const part of parts) {
    packed.set(part, off);
    off += part.byteLength;
  }
  return table.take(packed);
}

Deno.test("send loop: completions come in send order, each once its bytes were taken by the connection", async () => {
  const network = new FakeNetwork();
  network.slow = true;
  const port = new Port();
  const loop = new SendLoop(init(), network, port.post);
  loop.start();
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => feed = c });
  loop.handle(batch(0, [
    { name: "a", body: encoder.encode("alpha") },
    { name: "b" },
    { name: "c", body: stream },
  ]));
  const request = await network.opened(1);
  port.request = request;
  // The stream body may keep the loop waiting: the objects before it leave.
  await port.next((m) => m.t === "cmpl" && m.through === 1);
  assertEquals(port.completions(), ["0", "1"], "a and b completed, c not yet");
  feed.enqueue(new Uint8Array(1500));
  feed.close();
  loop.handle(batch(3, [
    { name: "d", body: new Uint8Array(3000) },
    { name: "e" },
  ]));
  await port.next((m) => m.t === "cmpl" && m.through === 4);
  loop.handle({ t: "fin" });
  await port.next((m) => m.t === "end");
  assertEquals(port.completions(), ["0", "1", "2", "3", "4"]);
  const ends = request.objectEnds();
  port.messages.forEach((m, i) => {
    if (m.t !== "cmpl") return;
    assert(
      ends.get(m.through)! <= port.consumed[i],
      `object #${m.through} completed with ${
        port.consumed[i]
      } bytes taken, its last byte is at ${ends.get(m.through)}`,
    );
  });
  assertEquals(request.parsed(), [
    "object 0 a",
    "data 5",
    "end 5",
    "object 1 b",
    "end 0",
    "object 2 c",
    "data 1024",
    "data 476",
    "end 1500",
    "object 3 d",
    "data 3000",
    "end 3000",
    "object 4 e",
    "end 0",
    "fin 5",
  ]);
  assertEquals(request.closedBy, "close");
  const end = port.end();
  assertEquals([end.error, end.rest], [null, null]);
  assertEquals(
    [end.stats.objects, end.stats.bytes, end.stats.failed, end.stats.requests],
    [5, 4505, 0, 1],
  );
  await loop.close();
});

Deno.test("send loop: after idleTimeoutMs with nothing to send it ends the request; the next object opens a new one, and fin after a teardown gets a request of its own", async () => {
  const network = new FakeNetwork();
  const port = new Port();
  const loop = new SendLoop(init({ idleTimeoutMs: 20 }), network, port.post);
  loop.start();
  loop.handle(batch(0, [{ name: "first", body: encoder.encode("1") }]));
  const first = await network.opened(1);
  await first.ended;
  assertEquals(first.closedBy, "close", "an idle teardown is a clean end");
  assertEquals(first.parsed(), ["object 0 first", "data 1", "end 1"]);
  await port.next((m) => m.t === "cmpl" && m.through === 0);

  loop.handle(batch(1, [{ name: "second" }]));
  const second = await network.opened(2);
  await second.ended;
  assertEquals(second.parsed(), ["object 1 second", "end 0"]);
  await port.next((m) => m.t === "cmpl" && m.through === 1);

  loop.handle({ t: "fin" });
  await port.next((m) => m.t === "end");
  assertEquals(network.requests.length, 3);
  assertEquals(network.requests[2].parsed(), ["fin 2"]);
  assertEquals(network.requests[2].closedBy, "close");
  const end = port.end();
  assertEquals(end.error, null);
  assertEquals(end.stats.requests, 3);
  assertEquals(port.completions(), ["0", "1"]);
  await loop.close();
});

Deno.test("send loop: a body that fails mid-object ends the stream: it fails with its cause, the objects behind it are cancelled and end with stream-terminated naming it", async () => {
  const network = new FakeNetwork();
  const port = new Port();
  const loop = new SendLoop(init(), network, port.post);
  loop.start();
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  const broken = new ReadableStream<Uint8Array>({ start: (c) => feed = c });
  const behind = new ReadableStream<Uint8Array>({
    cancel(reason) {
      cancelled.resolve(reason);
    },
  });
  const cancelled = Promise.withResolvers<unknown>();
  loop.handle(batch(0, [
    { name: "ok" },
    { name: "broken", body: broken },
    { name: "behind", body: behind },
  ]));
  const request = await network.opened(1);
  await port.next((m) => m.t === "cmpl" && m.through === 0);
  feed.enqueue(new Uint8Array(10));
  feed.error(new TransportError("body-failed", "disk gone"));
  await port.next((m) => m.t === "end");
  // Objects not yet written are the Stream's to fail: with `rest`.
  assertEquals(port.completions(), ["0", "1 body-failed"]);
  const end = port.end();
  const cause = "reading the object's body stream failed: disk gone";
  assertEquals(end.error?.message, cause);
  assertEquals(
    end.rest?.message,
    `stream terminated after object #1 failed: ${cause}`,
  );
  assertEquals(request.closedBy, "abort");
  assertEquals(request.abortReason?.code, "stream-terminated");
  assert(
    (await cancelled.promise) instanceof TransportError,
    "the queued body is cancelled",
  );
  await loop.close();
});
