/**
 * The one HTTP error body: every refusal and failure of every route is JSON
 * `{"code": "...", "message": "..."}`, made here: the shape of the
 * WebSocket `error` message and of the object transport's answers too. The HTTP status of an error
 * is decided here too, also for the viewer's HTML variant of a refusal (for
 * browsers; see `viewer.ts`).
 *
 * @module
 */

import type { ErrorCode, SpoolError } from "../protocol/errors.ts";

/** The HTTP status of each code, when the caller names none. */
const HTTP_STATUS_OF: Partial<Record<ErrorCode, number>> = {
  "forbidden": 403,
  "not-found": 404,
  "gone": 410,
  "range-not-satisfiable": 416,
  "limit-exceeded": 429,
  "method-not-allowed": 405,
  "internal": 500,
  "unavailable": 503,
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
 * import { errorStatus } from "./_http_error.ts";
 * import { SpoolError } from "../protocol/errors.ts";
 * console.log(errorStatus(new SpoolError("gone", "expired"))); // 410
 * ```
 */
export function errorStatus(
  error: SpoolError,
  init: ErrorResponseInit = {},
): number {
  return init.status ?? HTTP_STATUS_OF[error.code] ?? DEFAULT_STATUS;
}

/**
 * The JSON error answer for `error`: `{code, message}` with the code's HTTP
 * status, `Cache-Control: no-cache` and `nosniff`.
 *
 * @example
 * ```ts
 * import { errorResponse } from "./_http_error.ts";
 * import { SpoolError } from "../protocol/errors.ts";
 * const response = errorResponse(new SpoolError("not-found", "no resource 'x'"));
 * console.log(response.status); // 404
 * ```
 */
export function errorResponse(
  error: SpoolError,
  init: ErrorResponseInit = {},
): Response {
  return Response.json({ code: error.code, message: error.message }, {
    status: errorStatus(error, init),
    headers: {
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      ...init.headers,
    },
  });
}
