/**
 * The receive loop of one HTTP request: parses its frames incrementally and
 * hands each object, in order, to the endpoint's handler. A protocol error
 * ends this request only, and is delivered to the handler.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import {
  errorBody,
  errorResponse,
  errorStatus,
} from "../protocol/http_error.ts";
import { FrameParser } from "./frame_parser.ts";
import { ACK_HEADER, COMPRESSION_HEADER, SESSION_HEADER } from "./framing.ts";
import type {
  ReceivedHeader,
  ReceiveHandler,
  TransportCompression,
} from "./types.ts";
import { BodySink } from "./_body_sink.ts";
import { READ_SIZE, RequestBody } from "./_request_body.ts";
import { AckStream } from "./_ack_stream.ts";
import { StallWatchdog } from "./_stall_watchdog.ts";
import type { ReceiverOptions, ReceiverStats } from "./receiver.ts";

/**
 * Receive statistics of one session (all its requests).
 *
 * @example
 * ```ts
 * import type { SessionStats } from "./recv.ts";
 * const describe = (id: string, session: SessionStats) =>
 *   `${id}: ${session.objects} objects, ${session.errors} failed requests` +
 *   (session.finished ? ", finished" : "");
 * ```
 */
export type SessionStats = EndpointStats["sessions"][string];

/**
 * Receive statistics of one endpoint.
 *
 * @example
 * ```ts
 * import type { EndpointStats } from "./recv.ts";
 * const openSessions = (stats: EndpointStats) =>
 *   Object.entries(stats.sessions).filter(([, s]) => !s.finished).map(([id]) => id);
 * ```
 */
export type EndpointStats = ReceiverStats[string][string];

/**
 * One HTTP request of a session ended (idle teardown, fin or error).
 *
 * @example
 * ```ts
 * import type { RequestEndEvent } from "./recv.ts";
 * const onRequestEnd = (event: RequestEndEvent) => {
 *   if (event.error) console.error(`${event.trname}/${event.sessionId}: ${event.error.code}`);
 * };
 * ```
 */
export type RequestEndEvent = Parameters<
  NonNullable<ReceiverOptions["onRequestEnd"]>
>[0];

/** What the receive loop needs from its endpoint. */
export interface EndpointState {
  network: string;
  trname: string;
  onRequestEnd?: (event: RequestEndEvent) => void;
  handler: ReceiveHandler;
  stats: EndpointStats;
  maxHeaderSize: number;
  maxPduSize: number;
  /** A body read that waits this long fails the request; 0: no bound. */
  bodyTimeoutMs: number;
}

const DECOMPRESSIONS: readonly TransportCompression[] = [
  "gzip",
  "deflate",
  "deflate-raw",
];
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

/** The object being received, and its handler's call once started. */
interface Current {
  header: ReceivedHeader;
  sink: BodySink | null;
  /** Its body arrived whole with its header: the sink comes with the bytes. */
  whole: boolean;
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
function startHandler(handler: ReceiveHandler, current: Current): void {
  if (current.started) return;
  current.started = true;
  // Only an error before the body's bytes gets here without its sink.
  if (current.whole) current.sink ??= new BodySink(current.header.size);
  const { header, sink } = current;
  let result: void | Promise<void>;
  try {
    result = handler(header, sink === null ? null : sink.stream);
  } catch (error) {
    current.failure = error;
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
interface Outcome {
  status: number;
  answer: Record<string, unknown>;
}

/**
 * Runs the receive loop of `request` for `endpoint`; resolves to the HTTP
 * response once the body ended (200) or failed (4xx/5xx with `{code,
 * message}`). A request with `Spool-Ack: 1` is answered with its first
 * confirmation instead: `200` with a stream of confirmations, the final
 * answer as its last line (see `_ack_stream.ts`). `signal` ends the loop
 * with `receiver-closed`.
 *
 * @example
 * ```ts ignore
 * import { receiveRequest } from "./recv.ts";
 * Deno.serve((request) => receiveRequest(request, endpoint, { signal }));
 * ```
 */
export function receiveRequest(
  request: Request,
  endpoint: EndpointState,
  options: { signal?: AbortSignal } = {},
): Promise<Response> {
  const refused = checkRequest(request);
  if (refused instanceof Response) return Promise.resolve(refused);
  if (request.headers.get(ACK_HEADER) !== "1") {
    return receiveLoop(request, endpoint, refused, null, options.signal)
      .then(({ status, answer }) => Response.json(answer, { status }));
  }
  const acks = new AckStream();
  receiveLoop(request, endpoint, refused, acks, options.signal).then(
    ({ answer }) => acks.end(answer),
    (error) => {
      // Only an onRequestEnd callback that threw gets here; without
      // confirmations Deno.serve would answer 500 for it.
      console.error("spool receiver: a request ended with an error:", error);
      acks.end({
        code: "connection-reset",
        message: `receive loop failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
      });
    },
  );
  // Handed to Deno.serve with its first line, not before (see _ack_stream.ts).
  return acks.started;
}

/**
 * The request's session id and compression, or the error response if its
 * headers are wrong.
 */
function checkRequest(
  request: Request,
): { sessionId: string; compression: string | null } | Response {
  const sessionId = request.headers.get(SESSION_HEADER) ?? "";
  if (sessionId === "" || sessionId.length > 200) {
    return errorResponse(
      new TransportError(
        "bad-request",
        `request header ${SESSION_HEADER} is ${
          sessionId === "" ? "missing" : "longer than 200 characters"
        }, expected a session id`,
      ),
    );
  }
  const compressionHeader = request.headers.get(COMPRESSION_HEADER);
  const compression = compressionHeader === "none" ? null : compressionHeader;
  if (
    compression !== null &&
    !DECOMPRESSIONS.includes(compression as TransportCompression)
  ) {
    return errorResponse(
      new TransportError(
        "bad-request",
        `request header ${COMPRESSION_HEADER} is ${
          JSON.stringify(compression)
        }, expected one of ${DECOMPRESSIONS.join(", ")}`,
        { sessionId },
      ),
    );
  }
  return { sessionId, compression };
}

/** The receive loop of one request; never rejects. */
async function receiveLoop(
  request: Request,
  endpoint: EndpointState,
  { sessionId, compression }: { sessionId: string; compression: string | null },
  acks: AckStream | null,
  signal: AbortSignal | undefined,
): Promise<Outcome> {
  const sessions = endpoint.stats.sessions;
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
  const offsetBase = session.offset;
  const objectsBase = session.objects;
  const ended = (error: TransportError | null) =>
    endpoint.onRequestEnd?.({
      network: endpoint.network,
      trname: endpoint.trname,
      sessionId,
      objects: session.objects - objectsBase,
      fin: parser.finished,
      error,
    });
  let body: ReadableStream<Uint8Array> = request.body ??
    new ReadableStream({ start: (c) => c.close() });
  if (compression !== null) {
    body = body.pipeThrough(
      new DecompressionStream(
        compression as CompressionFormat,
      ) as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
  }
  const input = new RequestBody(body);
  const parser = new FrameParser({
    maxHeaderSize: endpoint.maxHeaderSize,
    maxPduSize: endpoint.maxPduSize,
  });
  /** Why the loop was told to stop (closing, a stalled body), if it was. */
  let stopped: TransportError | null = null;
  const stop = (error: TransportError) => {
    if (stopped !== null) return;
    stopped = error;
    input.cancel(error).catch(() => {
      // The body already failed (its connection died, or its compressed
      // bytes were corrupt): the loop reports the request's end either way.
    });
  };
  const onAbort = () =>
    stop(
      new TransportError(
        "receiver-closed",
        `receiver is closing: request ended at byte ${parser.offset}`,
        { sessionId },
      ),
    );
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const timeoutMs = endpoint.bodyTimeoutMs;
  const watchdog = timeoutMs > 0
    ? new StallWatchdog(timeoutMs, (waited) =>
      stop(
        new TransportError(
          "body-timeout",
          `request body stalled: no bytes for ${
            Math.round(waited)
          } ms at byte ${parser.offset} (the receiver's bodyTimeoutMs is ${timeoutMs}); expected the sender to keep sending or end the request`,
          { sessionId },
        ),
      ))
    : null;
  /** Reads the body through `read`, watched for stalls and stops. */
  const readBody = async <T>(read: () => Promise<T>): Promise<T> => {
    acks?.flush();
    watchdog?.reading();
    let result: T;
    try {
      result = await read();
    } catch (error) {
      throw stopped ?? readFailed(error);
    } finally {
      watchdog?.idle();
    }
    if (stopped !== null) throw stopped;
    return result;
  };
  let current: Current | null = null;
  let lastSeq = -1;
  running.set(session, (running.get(session) ?? 0) + 1);
  const readFailed = (error: unknown) =>
    new TransportError(
      compression !== null &&
        !(error instanceof Error &&
          /connection|reset|closed/i.test(error.message))
        ? "decompress-failed"
        : "connection-reset",
      `reading the request body failed at byte ${parser.offset}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, sessionId },
    );
  /** A handler that returned early: drain its body, or fail if it threw. */
  const checkSettled = (cur: Current) => {
    if (!cur.settled) return;
    cur.sink?.drain();
    if (cur.failure !== undefined) {
      throw handlerFailed(endpoint.trname, cur.header, cur.failure);
    }
  };
  /** Handles the parser's events up to the end of its input. */
  const dispatch = async () => {
    for (let event = parser.next(); event !== null; event = parser.next()) {
      switch (event.type) {
        case "object": {
          lastSeq = event.seq;
          // The decoded header is this object's own: complete it in place.
          const header = event.header as ReceivedHeader;
          header.sessionId = sessionId;
          header.seq = event.seq;
          const whole = event.hasBody && header.size !== -1 &&
            header.size <= parser.buffered;
          current = {
            header,
            sink: event.hasBody && !whole ? new BodySink(header.size) : null,
            whole,
            started: false,
            done: SETTLED,
            settled: false,
          };
          // A body still on its way: the handler learns of the object now.
          if (!whole) startHandler(endpoint.handler, current);
          break;
        }
        case "data": {
          const cur = current!;
          if (cur.whole && !cur.started) {
            // In PDU mode the first PDU may be only part of the body.
            const all = event.bytes.byteLength === cur.header.size;
            if (all) cur.sink = new BodySink(cur.header.size, event.bytes);
            startHandler(endpoint.handler, cur);
            if (all) break;
          }
          if (cur.sink !== null) {
            await cur.sink.write(event.bytes, cur.done);
            checkSettled(cur);
          }
          break;
        }
        case "end": {
          const cur = current!;
          if (cur.header.size === -1) cur.header.size = event.size;
          startHandler(endpoint.handler, cur);
          cur.sink?.close();
          await cur.done;
          current = null;
          if (cur.failure !== undefined) {
            throw handlerFailed(endpoint.trname, cur.header, cur.failure);
          }
          session.objects++;
          session.bytes += event.size;
          endpoint.stats.objects++;
          endpoint.stats.bytes += event.size;
          acks?.note(cur.header.seq);
          break;
        }
        case "fin":
          session.finished = true;
          break;
      }
    }
    session.offset = offsetBase + parser.offset;
  };
  /**
   * Reads body bytes straight into the handler's pending read, if the
   * parser wants body bytes next and the handler still reads. Returns
   * whether it did (`false` at the end of input too: the parser knows).
   */
  const readDirect = async (): Promise<boolean> => {
    const cur = current;
    const want = parser.dataWanted;
    if (
      want < DIRECT_READ || cur?.sink?.open !== true || !input.direct
    ) return false;
    startHandler(endpoint.handler, cur);
    await cur.sink.wanted(cur.done);
    checkSettled(cur);
    const target = cur.sink.target();
    if (target === null || target.byteLength < DIRECT_READ) return false;
    const filled = await readBody(() =>
      input.readInto(target.subarray(0, DIRECT_READ))
    );
    if (filled === null) {
      parser.finish();
      return false;
    }
    parser.consumed(filled.byteLength);
    cur.sink.filled(filled);
    return true;
  };
  try {
    for (;;) {
      if (await readDirect()) {
        await dispatch();
        continue;
      }
      const chunk = await readBody(() => input.read());
      if (chunk === null) {
        parser.finish();
        break;
      }
      parser.push(chunk);
      await dispatch();
    }
    session.offset = offsetBase + parser.offset;
    ended(null);
    return {
      status: 200,
      answer: { objects: session.objects, bytes: session.bytes },
    };
  } catch (thrown) {
    session.offset = offsetBase + parser.offset;
    const error = thrown instanceof TransportError
      ? thrown
      : new TransportError(
        "connection-reset",
        `receive loop failed: ${(thrown as Error)?.message ?? String(thrown)}`,
        { cause: thrown, sessionId },
      );
    session.errors++;
    session.lastError = error.code;
    input.cancel(error).catch(() => {
      // Only an errored body rejects: with the error `error` reports, or
      // with a later one (a corrupt compressed body fails in the
      // decompressor's flush after a frame error, a connection drops after
      // the answer) that adds nothing: the request already failed.
    });
    if (error.code !== "handler-failed") {
      await deliverError(endpoint, current, sessionId, lastSeq, error);
    }
    ended(error);
    return {
      status: errorStatus(error),
      answer: errorBody(error),
    };
  } finally {
    watchdog?.stop();
    running.set(session, running.get(session)! - 1);
    signal?.removeEventListener("abort", onAbort);
  }
}

async function deliverError(
  endpoint: EndpointState,
  current: Current | null,
  sessionId: string,
  lastSeq: number,
  error: TransportError,
): Promise<void> {
  let header: ReceivedHeader;
  if (current !== null) {
    // The handler sees the object, then its body fail, then the error.
    startHandler(endpoint.handler, current);
    current.sink?.error(error);
    await current.done;
    header = current.header;
  } else {
    header = {
      name: "",
      opaque: EMPTY,
      size: 0,
      contentType: "",
      checksum: null,
      custom: {},
      sessionId,
      seq: lastSeq,
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
