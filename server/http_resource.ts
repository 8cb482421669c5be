/**
 * Plain HTTP on a resource, beside its WebSocket: the routes under
 * `/resources/{id}` that `curl` and browsers use. Access control and the
 * lookup of the resource happen before these handlers run.
 *
 * - `/resources/{id}`: the bytes up to the checkpoint, with single-range
 *   support (`206`, `416`); `?follow=1` streams to the end.
 * - `/resources/{id}/status`: the status JSON.
 * - `/resources/{id}/events`: Server-Sent Events of the statuses.
 * - `/resources/{id}/lines`: line ranges, tails, line-aligned follow.
 * - `/resources/{id}/checkpoints`: when its bytes became readable.
 *
 * The server lets only `GET` and `HEAD` reach them and drops the body of a
 * `HEAD` answer (these handlers skip making bodies for `HEAD` where that
 * costs). Every answer carrying bytes has `Cache-Control: no-cache,
 * no-transform` (no automatic compression, no proxy transformation) and the
 * resource's status in `Spool-*` headers; values from the resource reach
 * headers through `_header.ts` only. Refusals are `protocol/http_error.ts`'s one
 * error body. See docs/http.md.
 *
 * @module
 */

import type { ResourceStatus } from "../protocol/status.ts";
import { isTerminal } from "../protocol/status.ts";
import { type ErrorCode, SpoolError } from "../protocol/errors.ts";
import {
  lineAtOffset,
  lineOffset,
  type LineView,
  lineView,
} from "./line_index.ts";
import { followBody } from "./http_follow.ts";
import { checkpointLogOf } from "./checkpoint_log.ts";
import { rangeBody } from "./http_range.ts";
import { statusEvents } from "./http_events.ts";
import type { Resource } from "./resource.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { contentDisposition, contentType, headerValue } from "./_header.ts";
import { HttpWatcher } from "./_http_watcher.ts";
import type { Watchers } from "./watchers.ts";

/**
 * Largest answer read whole before it is sent rather than streamed. Under
 * HTTP/2 thousands of answers are in flight at once (200 streams on each
 * connection); a streamed one keeps a pair of `ReadableStream`s and the
 * runtime's stream state each, a buffered one only its bytes.
 */
const WHOLE_BODY_BYTES = 64 * 1024;

/** What the HTTP handlers of a resource may use. */
export interface ResourceHttpContext {
  /** The resource, found and access-checked. */
  resource: Resource;
  /** The path after `/resources/{id}`: `""`, `"/status"`, `"/events"`, … */
  subpath: string;
  /** The read token the request presented, to put in links it serves. */
  token?: string;
  /** Aborts when the server shuts down: long responses must end then. */
  signal: AbortSignal;
  /** The server's watchers: follows and event streams count in the limits. */
  watchers: Watchers;
}

/** A request this module refuses, with its HTTP status and extra headers. */
class HttpRefusal extends SpoolError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

/**
 * Answers a plain HTTP request on a resource.
 *
 * @example
 * ```ts ignore
 * return serveResourceHttp(request, { resource, subpath: "/status", signal });
 * ```
 */
export async function serveResourceHttp(
  request: Request,
  context: ResourceHttpContext,
): Promise<Response> {
  const { subpath } = context;
  try {
    const query = new URL(request.url).searchParams;
    switch (subpath) {
      case "":
        return flag(query, "follow")
          ? serveFollow(request, context, query)
          : await serveBytes(request, context);
      case "/status":
        return Response.json(context.resource.status, {
          headers: { "cache-control": "no-cache" },
        });
      case "/events":
        return serveEvents(request, context);
      case "/lines":
        return await serveLines(request, context, query);
      case "/checkpoints":
        return serveCheckpoints(context.resource);
    }
    throw new HttpRefusal(
      404,
      "not-found",
      `no route /resources/{id}${
        subpath.slice(0, 100)
      }; expected /resources/{id}, /status, /events or /lines`,
    );
  } catch (error) {
    if (error instanceof HttpRefusal) {
      return errorResponse(error, {
        status: error.status,
        headers: error.headers,
      });
    }
    if (context.signal.aborted) {
      return errorResponse(
        new SpoolError("internal", "the server is shutting down"),
        { status: 503 },
      );
    }
    return errorResponse(
      new SpoolError(
        "internal",
        `reading resource ${context.resource.status.id} failed: ${
          error instanceof Error ? error.message : error
        }`,
      ),
    );
  }
}

/** The checkpoint log of a resource as JSON: `{from, checkpoints}`. */
function serveCheckpoints(resource: Resource): Response {
  const log = checkpointLogOf(resource);
  return Response.json(
    { from: log.from, checkpoints: log.entries() },
    { headers: { "cache-control": "no-cache" } },
  );
}

/** `Spool-Status` and `Spool-Size`: every answer about the bytes has them. */
function statusHeaders(status: ResourceStatus): Record<string, string> {
  return {
    "spool-status": headerValue(status.status, "FAILED"),
    "spool-size": headerValue(String(status.size), "0"),
  };
}

/** Headers every byte answer carries. */
function resourceHeaders(status: ResourceStatus): Headers {
  const headers = new Headers({
    "content-type": contentType(status.mimeType),
    "cache-control": "no-cache, no-transform",
    "x-content-type-options": "nosniff",
    // Uploaded HTML or SVG must not run on this origin.
    "content-security-policy": "sandbox; default-src 'none'",
    "content-disposition": contentDisposition(status.name),
    ...statusHeaders(status),
  });
  if (status.sha256 !== undefined) {
    const sha256 = headerValue(status.sha256, "");
    if (sha256 !== "") headers.set("spool-sha256", sha256);
  }
  return headers;
}

/** Headers of a streamed answer: nobody on the way may hold it back. */
function liveHeaders(status: ResourceStatus): Headers {
  const headers = resourceHeaders(status);
  headers.set("x-accel-buffering", "no");
  return headers;
}

/** `?name`, `?name=1`, `?name=true` are on; absent, `0`, `false` are off. */
function flag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null || value === "0" || value === "false") return false;
  if (value === "" || value === "1" || value === "true") return true;
  throw new HttpRefusal(
    400,
    "invalid-field",
    `?${name}=${
      JSON.stringify(value)
    } is not a flag; expected 1, true, 0 or false`,
  );
}

/** A non-negative integer query parameter, or `undefined` when absent. */
function count(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  const number = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number)) {
    throw new HttpRefusal(
      400,
      "invalid-field",
      `?${name}=${
        JSON.stringify(value.slice(0, 64))
      } is not a valid number; expected an integer >= 0`,
    );
  }
  return number;
}

/** The outcome of a `Range` header against a size. */
type RangeOutcome =
  | { kind: "whole" }
  | { kind: "range"; start: number; end: number }
  | { kind: "unsatisfiable" };

/** One `range-spec` resolved against a size. */
type SpecOutcome =
  | { kind: "range"; start: number; end: number }
  | { kind: "unsatisfiable" }
  | { kind: "invalid" };

/** A digit string as an offset; `Infinity` past 2^53, which no size reaches. */
function toOffset(digits: string): number {
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : Infinity;
}

/** Compares two digit strings exactly, however many digits they have. */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** `first-last`, `first-` or `-suffix` (RFC 9110 §14.1.2) against `size`. */
function resolveSpec(spec: string, size: number): SpecOutcome {
  const match = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
  if (!match || (match[1] === "" && match[2] === "")) {
    return { kind: "invalid" };
  }
  const [, first, last] = match;
  if (first === "") {
    // Suffix: the last n bytes; more than the size is all of them.
    const n = toOffset(last);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "range", start: Math.max(0, size - n), end: size };
  }
  if (last !== "" && compareDigits(last, first) < 0) return { kind: "invalid" };
  const start = toOffset(first);
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size : Math.min(toOffset(last) + 1, size);
  return { kind: "range", start, end };
}

/**
 * Parses a `Range` header (RFC 9110 §14.2) against `size`, exactly for
 * numbers of any length (past 2^53 they are past every size). One range is
 * served (`206`, or `416` when it starts at or past the size). Of several
 * ranges none is served: the whole representation (`200`), as the RFC
 * allows, unless none of them is satisfiable (`416`). An invalid header
 * (another unit, bad syntax, `last < first`) is ignored: `200`.
 */
export function parseRange(header: string | null, size: number): RangeOutcome {
  if (header === null) return { kind: "whole" };
  const match = /^\s*bytes\s*=(.*)$/is.exec(header);
  if (!match) return { kind: "whole" };
  // A list may have empty elements (RFC 9110 §5.6.1).
  const specs = match[1].split(",").map((spec) => spec.trim()).filter((
    spec,
  ) => spec !== "");
  if (specs.length === 0) return { kind: "whole" };
  const outcomes: Exclude<SpecOutcome, { kind: "invalid" }>[] = [];
  for (const spec of specs) {
    const outcome = resolveSpec(spec, size);
    if (outcome.kind === "invalid") return { kind: "whole" };
    outcomes.push(outcome);
  }
  if (outcomes.every((outcome) => outcome.kind === "unsatisfiable")) {
    return { kind: "unsatisfiable" };
  }
  return outcomes.length === 1 ? outcomes[0] : { kind: "whole" };
}

async function serveBytes(
  request: Request,
  context: ResourceHttpContext,
): Promise<Response> {
  const { resource } = context;
  const status = resource.status;
  const size = status.size;
  const headers = resourceHeaders(status);
  headers.set("accept-ranges", "bytes");
  const range = parseRange(request.headers.get("range"), size);
  if (range.kind === "unsatisfiable") {
    throw new HttpRefusal(
      416,
      "range-not-satisfiable",
      `range ${
        JSON.stringify(request.headers.get("range")!.slice(0, 100))
      } is outside the checkpointed size ${size}; expected a range starting below ${size}`,
      {
        "content-range": `bytes */${size}`,
        "accept-ranges": "bytes",
        ...statusHeaders(status),
      },
    );
  }
  const [start, end] = range.kind === "range" ? [range.start, range.end] : [
    0,
    size,
  ];
  headers.set("content-length", String(end - start));
  if (range.kind === "range") {
    headers.set("content-range", `bytes ${start}-${end - 1}/${size}`);
  }
  return new Response(
    await bytesBody(request, context, start, end),
    { status: range.kind === "range" ? 206 : 200, headers },
  );
}

/**
 * The body of bytes `[start, end)`: none for `HEAD`, read whole when small
 * (a streamed answer costs the runtime far more per HTTP/2 stream than a
 * buffer of the same bytes), streamed otherwise.
 */
async function bytesBody(
  request: Request,
  context: ResourceHttpContext,
  start: number,
  end: number,
): Promise<Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null> {
  if (request.method === "HEAD" || start === end) return null;
  if (end - start > WHOLE_BODY_BYTES) {
    return rangeBody(context.resource, start, end, context.signal);
  }
  return await new Response(context.resource.read(start, end)).bytes();
}

function serveFollow(
  request: Request,
  context: ResourceHttpContext,
  query: URLSearchParams,
): Response {
  const { resource } = context;
  const status = resource.status;
  const start = count(query, "start") ?? 0;
  const lines = flag(query, "lines");
  if (isTerminal(status) && start > status.size) {
    throw new HttpRefusal(
      416,
      "range-not-satisfiable",
      `follow from byte ${start} starts past the final size ${status.size}; expected start <= ${status.size}`,
      { "content-range": `bytes */${status.size}` },
    );
  }
  const headers = liveHeaders(status);
  headers.set("spool-start", String(start));
  if (request.method === "HEAD") return new Response(null, { headers });
  const watcher = admitWatcher(context, "an HTTP follow");
  return new Response(
    followBody(resource, {
      start,
      lines,
      signal: watcher.signal,
      onEnd: () => watcher.end(),
    }),
    { headers },
  );
}

/**
 * Counts a long response as a watcher of its resource, or refuses it with
 * `limit-exceeded` (429) when the watcher limits are reached.
 */
function admitWatcher(
  context: ResourceHttpContext,
  kind: string,
): HttpWatcher {
  const watcher = new HttpWatcher(kind, context.signal);
  const refusal = context.watchers.admit(context.resource, watcher);
  if (refusal) throw new HttpRefusal(429, refusal.code, refusal.message);
  return watcher;
}

function serveEvents(request: Request, context: ResourceHttpContext): Response {
  const headers = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  };
  if (request.method === "HEAD") return new Response(null, { headers });
  const watcher = admitWatcher(context, "an event stream");
  return new Response(
    statusEvents(context.resource, {
      signal: watcher.signal,
      onEnd: () => watcher.end(),
    }),
    { headers },
  );
}

/** What a `/lines` request asks for. */
interface LineQuery {
  follow: boolean;
  start?: number;
  end?: number;
  tail?: number;
  /** A byte offset: lines from the first one starting at or after it. */
  offset?: number;
}

/** Reads and checks the parameters of a `/lines` request. */
function lineQuery(query: URLSearchParams): LineQuery {
  const asked: LineQuery = {
    follow: flag(query, "follow"),
    start: count(query, "start"),
    end: count(query, "end"),
    tail: count(query, "tail"),
    offset: count(query, "offset"),
  };
  const { follow, start, end, tail, offset } = asked;
  const firsts = [start, tail, offset].filter((n) => n !== undefined).length;
  if (firsts > 1 || (tail !== undefined && end !== undefined)) {
    throw new HttpRefusal(
      400,
      "invalid-field",
      "?tail=, ?start= and ?offset= go alone; expected ?tail=N, ?start=A&end=B or ?offset=X&end=B",
    );
  }
  if (follow && end !== undefined) {
    throw new HttpRefusal(
      400,
      "invalid-field",
      "a line follow has no ?end=; expected ?start=A, ?offset=X or ?tail=N",
    );
  }
  if (start !== undefined && end !== undefined && start > end) {
    throw new HttpRefusal(
      400,
      "invalid-range",
      `lines [${start}, ${end}) start after they end; expected start <= end`,
    );
  }
  return asked;
}

/** The first line a `/lines` request answers from, in `view`. */
async function firstLine(
  resource: Resource,
  view: LineView,
  asked: LineQuery,
): Promise<number> {
  const { follow, start, tail, offset } = asked;
  if (offset !== undefined && offset > view.end) {
    throw new HttpRefusal(
      416,
      "range-not-satisfiable",
      `byte ${offset} is past the end of the ${view.total} lines known (byte ${view.end}); expected ?offset= <= ${view.end}`,
      { "spool-lines": String(view.total) },
    );
  }
  if (follow && start !== undefined && start > view.total) {
    throw new HttpRefusal(
      416,
      "range-not-satisfiable",
      `a line follow from line ${start} starts past the ${view.total} lines known; expected start <= ${view.total}`,
      { "spool-lines": String(view.total) },
    );
  }
  if (offset !== undefined) return await lineAtOffset(resource, view, offset);
  return tail !== undefined
    ? Math.max(0, view.total - tail)
    : Math.min(start ?? 0, view.total);
}

async function serveLines(
  request: Request,
  context: ResourceHttpContext,
  query: URLSearchParams,
): Promise<Response> {
  const { resource, signal } = context;
  const asked = lineQuery(query);
  const { follow, start, end, tail, offset } = asked;
  const view = await lineView(resource, signal);
  const first = await firstLine(resource, view, asked);
  const last = follow ? view.total : Math.min(end ?? view.total, view.total);
  const from = await lineOffset(resource, view, first);
  const headers = follow
    ? liveHeaders(view.status)
    : resourceHeaders(view.status);
  headers.set("spool-lines", String(view.total));
  headers.set(
    "spool-first-line",
    String(tail !== undefined || offset !== undefined ? first : start ?? 0),
  );
  headers.set("spool-start", String(from));
  if (follow) {
    if (request.method === "HEAD") return new Response(null, { headers });
    const watcher = admitWatcher(context, "an HTTP follow");
    return new Response(
      followBody(resource, {
        start: from,
        lines: true,
        signal: watcher.signal,
        onEnd: () => watcher.end(),
      }),
      { headers },
    );
  }
  const to = Math.max(from, await lineOffset(resource, view, last));
  headers.set("content-length", String(to - from));
  return new Response(await bytesBody(request, context, from, to), {
    headers,
  });
}
