/**
 * The receive loop of one HTTP request as an object (shaped like AIStore's
 * `transport/recv.go`): it holds the request's state (session, parser,
 * object being received, stall watchdog, confirmations) and reads, parses
 * and dispatches in small steps. `run()` resolves to the request's outcome
 * and never rejects unless an `onRequestEnd` callback threw.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import { errorBody, errorStatus } from "../protocol/http_error.ts";
import { type FrameEvent, FrameParser } from "./frame_parser.ts";
import type { ReceivedHeader, ReceiveHandler } from "./types.ts";
import { BodySink } from "./_body_sink.ts";
import { READ_SIZE, RequestBody } from "./_request_body.ts";
import type { AckStream } from "./_ack_stream.ts";
import { StallWatchdog } from "./_stall_watchdog.ts";
import type { EndpointState, SessionStats } from "./recv.ts";

const EMPTY = new Uint8Array(0);
/**
 * Sessions kept in an endpoint's statistics; the oldest idle ones go first.
 * Sessions with a request running are never dropped (their counters would
 * restart on the next request), so the cap may be exceeded by them alone.
 */
const MAX_SESSIONS = 1024;

/**
 * Size of every read straight into a handler's buffer: the size of the
 * loop's own reads. Deno.serve (2.9) reads the socket, while its reader
 * lags, into a buffer that each body read shifts down (a copy of all it
 * holds); a read smaller than the largest one made on the connection
 * leaves that buffer bigger than it found it, so mixed sizes grow it
 * without bound and make receiving quadratic (bench/ANALYSIS.md, "one big
 * object"). Smaller handler reads and body tails take the copying path.
 */
const DIRECT_READ = READ_SIZE;

/** An endpoint's handler: bodies as streams, or small ones as bytes. */
type EndpointHandler = ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>>;

/** Requests running per session. */
const running = new WeakMap<SessionStats, number>();

/**
 * Makes room for one more session: drops the oldest finished session without
 * a running request, else the oldest session without one.
 */
function forgetOldSession(sessions: Record<string, SessionStats>): void {
  const ids = Object.keys(sessions);
  if (ids.length < MAX_SESSIONS) return;
  const idle = ids.filter((id) => !running.get(sessions[id]));
  const victim = idle.find((id) => sessions[id].finished) ?? idle[0];
  if (victim !== undefined) delete sessions[victim];
}

/** The statistics of session `sessionId`, created if new, one request more. */
function openSession(
  sessions: Record<string, SessionStats>,
  sessionId: string,
): SessionStats {
  if (!(sessionId in sessions)) forgetOldSession(sessions);
  const session = sessions[sessionId] ??= {
    objects: 0,
    bytes: 0,
    offset: 0,
    requests: 0,
    errors: 0,
    finished: false,
  };
  session.requests++;
  return session;
}

/** The object being received, and its handler's call once started. */
interface Current {
  header: ReceivedHeader;
  sink: BodySink | null;
  /** Its body arrived whole with its header: the sink comes with the bytes. */
  whole: boolean;
  /**
   * Its body goes to the handler as bytes (the endpoint's `wholeBodies`):
   * collected in `bytes` (`filled` of them so far), the handler called at
   * its end.
   */
  collect: boolean;
  bytes: Uint8Array | null;
  filled: number;
  /** Whether the handler was called for this object. */
  started: boolean;
  done: Promise<void>;
  settled: boolean;
  failure?: unknown;
}

const SETTLED = Promise.resolve();

/**
 * Calls the handler for `current` unless it already was. For a body that
 * arrived whole with its header the call waits until the body is queued:
 * a default reader then takes it without a pull (1.5× the objects per
 * second for 1 KiB bodies). Any other object's handler is called as its
 * header arrives.
 */
function startHandler(handler: EndpointHandler, current: Current): void {
  if (current.started) return;
  current.started = true;
  // Only an error before the body's bytes gets here without its sink.
  if (current.whole) current.sink ??= new BodySink(current.header.size);
  const { header, sink } = current;
  let result: void | Promise<void>;
  try {
    result = handler(
      header,
      current.collect
        ? current.bytes ?? EMPTY
        : sink === null
        ? null
        : sink.stream,
    );
  } catch (error) {
    current.failure = error;
    current.settled = true;
    current.done = SETTLED;
    return;
  }
  if (result === undefined) {
    // A handler that returned nothing is done: no promise, no wait per object.
    current.settled = true;
    current.done = SETTLED;
    return;
  }
  current.done = Promise.resolve(result).then(
    () => {
      current.settled = true;
    },
    (error) => {
      current.failure = error;
      current.settled = true;
    },
  );
}

/** Keeps a copy of `bytes` (which the parser reuses) of the body of `cur`. */
function collectBody(cur: Current, bytes: Uint8Array): void {
  if (cur.bytes === null) {
    if (bytes.byteLength === cur.header.size) {
      // All of it at once, the common case: one copy, no second buffer.
      cur.bytes = bytes.slice();
      cur.filled = bytes.byteLength;
      return;
    }
    cur.bytes = new Uint8Array(cur.header.size);
  }
  cur.bytes.set(bytes, cur.filled);
  cur.filled += bytes.byteLength;
}

function handlerFailed(
  trname: string,
  header: ReceivedHeader,
  cause: unknown,
): TransportError {
  return new TransportError(
    "handler-failed",
    `handler of ${JSON.stringify(trname)} failed on object #${header.seq} ${
      JSON.stringify(header.name)
    }: ${cause instanceof Error ? cause.message : String(cause)}`,
    { cause, sessionId: header.sessionId },
  );
}

/** How a request ended: its HTTP status and JSON answer. */
export interface Outcome {
  status: number;
  answer: Record<string, unknown>;
}

/** What the loop knows of its request besides the body. */
export interface RxRequest {
  sessionId: string;
  /** The body's compression, `null` if none. */
  compression: string | null;
  /** Where confirmations go, `null` if the request asked for none. */
  acks: AckStream | null;
  /** Ends the loop with `receiver-closed`. */
  signal: AbortSignal | undefined;
}

/** The receive loop of one request. */
export class RxLoop {
  readonly #endpoint: EndpointState;
  readonly #sessionId: string;
  readonly #compression: string | null;
  readonly #acks: AckStream | null;
  readonly #signal: AbortSignal | undefined;
  readonly #session: SessionStats;
  readonly #offsetBase: number;
  readonly #objectsBase: number;
  readonly #input: RequestBody;
  readonly #parser: FrameParser;
  readonly #watchdog: StallWatchdog | null;
  /** Why the loop was told to stop (closing, a stalled body), if it was. */
  #stopped: TransportError | null = null;
  #current: Current | null = null;
  #lastSeq = -1;
  readonly #onAbort = (): void =>
    this.#stop(
      new TransportError(
        "receiver-closed",
        `receiver is closing: request ended at byte ${this.#parser.offset}`,
        { sessionId: this.#sessionId },
      ),
    );

  constructor(request: Request, endpoint: EndpointState, rx: RxRequest) {
    this.#endpoint = endpoint;
    this.#sessionId = rx.sessionId;
    this.#compression = rx.compression;
    this.#acks = rx.acks;
    this.#signal = rx.signal;
    this.#session = openSession(endpoint.stats.sessions, rx.sessionId);
    this.#offsetBase = this.#session.offset;
    this.#objectsBase = this.#session.objects;
    this.#input = new RequestBody(this.#body(request));
    this.#parser = new FrameParser({
      maxHeaderSize: endpoint.maxHeaderSize,
      maxPduSize: endpoint.maxPduSize,
    });
    this.#watchdog = this.#newWatchdog();
  }

  /** Receives the whole request: read, parse, dispatch; then its outcome. */
  async run(): Promise<Outcome> {
    const signal = this.#signal;
    const session = this.#session;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (signal?.aborted) this.#onAbort();
    running.set(session, (running.get(session) ?? 0) + 1);
    try {
      for (;;) {
        if (await this.#readDirect()) {
          await this.#dispatch();
          continue;
        }
        const chunk = await this.#readBody(() => this.#input.read());
        if (chunk === null) {
          this.#parser.finish();
          break;
        }
        this.#parser.push(chunk);
        await this.#dispatch();
      }
      return this.#finish();
    } catch (thrown) {
      return await this.#fail(thrown);
    } finally {
      this.#watchdog?.stop();
      running.set(session, running.get(session)! - 1);
      signal?.removeEventListener("abort", this.#onAbort);
    }
  }

  /** The request's body, decompressed if it is compressed. */
  #body(request: Request): ReadableStream<Uint8Array> {
    const body: ReadableStream<Uint8Array> = request.body ??
      new ReadableStream({ start: (c) => c.close() });
    if (this.#compression === null) return body;
    return body.pipeThrough(
      new DecompressionStream(
        this.#compression as CompressionFormat,
      ) as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
  }

  #newWatchdog(): StallWatchdog | null {
    const timeoutMs = this.#endpoint.bodyTimeoutMs;
    if (timeoutMs <= 0) return null;
    return new StallWatchdog(timeoutMs, (waited) =>
      this.#stop(
        new TransportError(
          "body-timeout",
          `request body stalled: no bytes for ${
            Math.round(waited)
          } ms at byte ${this.#parser.offset} (the receiver's bodyTimeoutMs is ${timeoutMs}); expected the sender to keep sending or end the request`,
          { sessionId: this.#sessionId },
        ),
      ));
  }

  #stop(error: TransportError): void {
    if (this.#stopped !== null) return;
    this.#stopped = error;
    this.#input.cancel(error).catch(() => {
      // The body already failed (its connection died, or its compressed
      // bytes were corrupt): the loop reports the request's end either way.
    });
  }

  /** Reads the body through `read`, watched for stalls and stops. */
  async #readBody<T>(read: () => Promise<T>): Promise<T> {
    this.#acks?.flush();
    this.#watchdog?.reading();
    let result: T;
    try {
      result = await read();
    } catch (error) {
      throw this.#stopped ?? this.#readFailed(error);
    } finally {
      this.#watchdog?.idle();
    }
    if (this.#stopped !== null) throw this.#stopped;
    return result;
  }

  #readFailed(error: unknown): TransportError {
    return new TransportError(
      this.#compression !== null &&
        !(error instanceof Error &&
          /connection|reset|closed/i.test(error.message))
        ? "decompress-failed"
        : "connection-reset",
      `reading the request body failed at byte ${this.#parser.offset}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, sessionId: this.#sessionId },
    );
  }

  /**
   * Reads body bytes straight into the handler's pending read, if the
   * parser wants body bytes next and the handler still reads. Returns
   * whether it did (`false` at the end of input too: the parser knows).
   */
  async #readDirect(): Promise<boolean> {
    const cur = this.#current;
    const want = this.#parser.dataWanted;
    if (
      want < DIRECT_READ || cur?.sink?.open !== true || !this.#input.direct
    ) return false;
    startHandler(this.#endpoint.handler, cur);
    await cur.sink.wanted(cur.done);
    this.#checkSettled(cur);
    const target = cur.sink.target();
    if (target === null || target.byteLength < DIRECT_READ) return false;
    const filled = await this.#readBody(() =>
      this.#input.readInto(target.subarray(0, DIRECT_READ))
    );
    if (filled === null) {
      this.#parser.finish();
      return false;
    }
    this.#parser.consumed(filled.byteLength);
    cur.sink.filled(filled);
    return true;
  }

  /**
   * Handles the parser's events up to the end of its input. The steps are
   * synchronous and the waits stay here: this runs per object, and an
   * extra await per step would cost small objects their rate.
   */
  async #dispatch(): Promise<void> {
    const parser = this.#parser;
    for (let event = parser.next(); event !== null; event = parser.next()) {
      switch (event.type) {
        case "object":
          this.#rxObj(event);
          break;
        case "data": {
          const cur = this.#current!;
          if (this.#rxData(cur, event.bytes)) {
            await cur.sink!.write(event.bytes, cur.done);
            this.#checkSettled(cur);
          }
          break;
        }
        case "end": {
          const cur = this.#current!;
          this.#rxEnd(cur, event.size);
          if (!cur.settled) await cur.done;
          this.#rxObjDone(cur, event.size);
          break;
        }
        case "fin":
          this.#session.finished = true;
          break;
      }
    }
    this.#session.offset = this.#offsetBase + parser.offset;
  }

  /** An object header arrived: the object becomes the current one. */
  #rxObj(event: Extract<FrameEvent, { type: "object" }>): void {
    this.#lastSeq = event.seq;
    // The decoded header is this object's own: complete it in place.
    const header = event.header as ReceivedHeader;
    header.sessionId = this.#sessionId;
    header.seq = event.seq;
    const collect = event.hasBody && header.size !== -1 &&
      header.size <= this.#endpoint.wholeBodies;
    const whole = !collect && event.hasBody && header.size !== -1 &&
      header.size <= this.#parser.buffered;
    const current: Current = {
      header,
      sink: event.hasBody && !whole && !collect
        ? new BodySink(header.size)
        : null,
      whole,
      collect,
      bytes: null,
      filled: 0,
      started: false,
      done: SETTLED,
      settled: false,
    };
    this.#current = current;
    // A body still on its way: the handler learns of the object now.
    if (!whole && !collect) startHandler(this.#endpoint.handler, current);
  }

  /**
   * Body bytes (all of them, a PDU or a part) of `cur` arrived; returns
   * whether they still go through its sink (the caller writes them).
   */
  #rxData(cur: Current, bytes: Uint8Array): boolean {
    if (cur.collect) {
      collectBody(cur, bytes);
      return false;
    }
    if (cur.whole && !cur.started) {
      // In PDU mode the first PDU may be only part of the body.
      const all = bytes.byteLength === cur.header.size;
      if (all) cur.sink = new BodySink(cur.header.size, bytes);
      startHandler(this.#endpoint.handler, cur);
      if (all) return false;
    }
    return cur.sink !== null;
  }

  /** The body of `cur` ended: its handler has all of it. */
  #rxEnd(cur: Current, size: number): void {
    if (cur.header.size === -1) cur.header.size = size;
    startHandler(this.#endpoint.handler, cur);
    cur.sink?.close();
  }

  /** The handler of `cur` settled after its body ended: count or fail. */
  #rxObjDone(cur: Current, size: number): void {
    this.#current = null;
    if (cur.failure !== undefined) {
      throw handlerFailed(this.#endpoint.trname, cur.header, cur.failure);
    }
    const stats = this.#endpoint.stats;
    this.#session.objects++;
    this.#session.bytes += size;
    stats.objects++;
    stats.bytes += size;
    this.#acks?.note(cur.header.seq);
  }

  /** A handler that returned early: drain its body, or fail if it threw. */
  #checkSettled(cur: Current): void {
    if (!cur.settled) return;
    cur.sink?.drain();
    if (cur.failure !== undefined) {
      throw handlerFailed(this.#endpoint.trname, cur.header, cur.failure);
    }
  }

  /** Tells `onRequestEnd` how the request ended. */
  #ended(error: TransportError | null): void {
    const endpoint = this.#endpoint;
    endpoint.onRequestEnd?.({
      network: endpoint.network,
      trname: endpoint.trname,
      sessionId: this.#sessionId,
      objects: this.#session.objects - this.#objectsBase,
      fin: this.#parser.finished,
      error,
    });
  }

  /** The body ended where a frame may: the request succeeded. */
  #finish(): Outcome {
    const session = this.#session;
    session.offset = this.#offsetBase + this.#parser.offset;
    this.#ended(null);
    return {
      status: 200,
      answer: { objects: session.objects, bytes: session.bytes },
    };
  }

  /** The request failed with `thrown`: count it, tell the handler, answer. */
  async #fail(thrown: unknown): Promise<Outcome> {
    const session = this.#session;
    session.offset = this.#offsetBase + this.#parser.offset;
    const error = thrown instanceof TransportError
      ? thrown
      : new TransportError(
        "connection-reset",
        `receive loop failed: ${(thrown as Error)?.message ?? String(thrown)}`,
        { cause: thrown, sessionId: this.#sessionId },
      );
    session.errors++;
    session.lastError = error.code;
    this.#input.cancel(error).catch(() => {
      // Only an errored body rejects: with the error `error` reports, or
      // with a later one (a corrupt compressed body fails in the
      // decompressor's flush after a frame error, a connection drops after
      // the answer) that adds nothing: the request already failed.
    });
    if (error.code !== "handler-failed") await this.#deliverError(error);
    this.#ended(error);
    return { status: errorStatus(error), answer: errorBody(error) };
  }

  /** Tells the handler the request failed with `error`. */
  async #deliverError(error: TransportError): Promise<void> {
    const endpoint = this.#endpoint;
    const current = this.#current;
    let header: ReceivedHeader;
    if (current !== null) {
      // The handler sees the object, then its body fail, then the error;
      // a body it would get as bytes but did not whole, only the error.
      if (!current.collect || current.started) {
        startHandler(endpoint.handler, current);
        current.sink?.error(error);
        await current.done;
      }
      header = current.header;
    } else {
      header = {
        name: "",
        opaque: EMPTY,
        size: 0,
        contentType: "",
        checksum: null,
        custom: {},
        sessionId: this.#sessionId,
        seq: this.#lastSeq,
      };
    }
    try {
      await endpoint.handler(header, null, error);
    } catch (cause) {
      // The stream is already failing with `error`; the handler's own failure
      // while being told about it has nowhere better to go than the log.
      console.error(
        `spool receiver: handler of ${
          JSON.stringify(endpoint.trname)
        } threw on error ${error.code}:`,
        cause,
      );
    }
  }
}
