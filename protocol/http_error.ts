/**
 * The one HTTP error body of both halves: every refusal and failure of every
 * server route and of the object transport's receiver is JSON
 * `{"code": "...", "message": "..."}`, made here from a {@linkcode SpoolError}
 * (a `TransportError` is one): the shape of the WebSocket `error` message
 * too. The HTTP status of an error is decided here as well, also for the
 * viewer's HTML variant of a refusal (for browsers; see `server/viewer.ts`).
 *
 * @module
 */

import type { ErrorCode, SpoolError } from "./errors.ts";
import type { TransportErrorCode } from "../transport/errors.ts";

/** The HTTP status of each code of either half, when the caller names none. */
const HTTP_STATUS_OF: Partial<Record<ErrorCode | TransportErrorCode, number>> =
  {
    "unauthorized": 401,
    "forbidden": 403,
    "not-found": 404,
    "unknown-endpoint": 404,
    "method-not-allowed": 405,
    "body-timeout": 408,
    "gone": 410,
    "range-not-satisfiable": 416,
    "limit-exceeded": 429,
    "internal": 500,
    "handler-failed": 500,
    "unavailable": 503,
    "receiver-closed": 503,
    "nonce-cache-full": 503,
  };
/** The status of codes missing above: the request was wrong. */
const DEFAULT_STATUS = 400;

/** How {@linkcode errorResponse} answers, beyond the error itself. */
export interface ErrorResponseInit {
  /** HTTP status; default: by the error's code (`not-found` → 404, …; 400). */
  status?: number;
  /** Extra headers (server-made values only: `Allow`, `Content-Range`, …). */
  headers?: Record<string, string>;
}

/**
 * The HTTP status `error` is answered with: `init.status` if given, else by
 * its code (`forbidden` → 403, `not-found` → 404, `gone` → 410, …; 400).
 *
 * @example
 * ```ts
 * import { errorStatus } from "./http_error.ts";
 * import { SpoolError } from "./errors.ts";
 * console.log(errorStatus(new SpoolError("gone", "expired"))); // 410
 * ```
 */
export function errorStatus(
  error: SpoolError<string>,
  init: ErrorResponseInit = {},
): number {
  return init.status ??
    (HTTP_STATUS_OF as Record<string, number>)[error.code] ?? DEFAULT_STATUS;
}

/**
 * The one error body: `{code, message}` of `error`, also the last line of a
 * transport answer with confirmations.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { errorBody } from "./http_error.ts";
 * import { SpoolError } from "./errors.ts";
 * assertEquals(errorBody(new SpoolError("gone", "expired")), {
 *   code: "gone",
 *   message: "expired",
 * });
 * ```
 */
export function errorBody(
  error: SpoolError<string>,
): { code: string; message: string } {
  return { code: error.code, message: error.message };
}

/**
 * The JSON error answer for `error`: `{code, message}` with the code's HTTP
 * status, `Cache-Control: no-cache` and `nosniff`.
 *
 * @example
 * ```ts
 * import { errorResponse } from "./http_error.ts";
 * import { SpoolError } from "./errors.ts";
 * const response = errorResponse(new SpoolError("not-found", "no resource 'x'"));
 * console.log(response.status); // 404
 * ```
 */
export function errorResponse(
  error: SpoolError<string>,
  init: ErrorResponseInit = {},
): Response {
  return Response.json(errorBody(error), {
    status: errorStatus(error, init),
    headers: {
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      ...init.headers,
    },
  });
}
