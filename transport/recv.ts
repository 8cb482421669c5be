/**
 * Receiving one HTTP request of a session: checks its headers, then runs its
 * receive loop (`_rx_loop.ts`), which parses its frames incrementally and
 * hands each object, in order, to the endpoint's handler. A protocol error
 * ends this request only, and is delivered to the handler.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { ACK_HEADER, COMPRESSION_HEADER, SESSION_HEADER } from "./framing.ts";
import type { ReceiveHandler, TransportCompression } from "./types.ts";
import { AckStream } from "./_ack_stream.ts";
import { RxLoop } from "./_rx_loop.ts";
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
  handler: ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>>;
  /** Bodies of known size up to this go to the handler as bytes; -1: none. */
  wholeBodies: number;
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
  const signal = options.signal;
  if (request.headers.get(ACK_HEADER) !== "1") {
    return new RxLoop(request, endpoint, { ...refused, acks: null, signal })
      .run().then(({ status, answer }) => Response.json(answer, { status }));
  }
  const acks = new AckStream();
  new RxLoop(request, endpoint, { ...refused, acks, signal }).run().then(
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
