/**
 * The last step of every plain HTTP answer, whatever route made it:
 *
 * - an exception becomes the one JSON error body (`internal`, 500), logged;
 * - a header value that is not printable ASCII (which Deno's HTTP writer
 *   would panic on, ending the process) becomes that error too, logged:
 *   values from users go through `_header.ts`, so this is a last defence;
 * - an answer to `HEAD` has no body (over HTTP/2 a body on a `HEAD` answer
 *   is a `PROTOCOL_ERROR`).
 *
 * @module
 */

import { logReleaseFailure } from "./_release.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { SpoolError } from "../protocol/errors.ts";

/** What Deno's HTTP/1 and HTTP/2 writers take without complaint. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
const SWITCHING_PROTOCOLS = 101;

/** Routes a request to its answer. */
export type HttpRoute = (request: Request) => Response | Promise<Response>;

/**
 * Answers `request` with `route`, checked as above.
 *
 * @example
 * ```ts ignore
 * Deno.serve((request) => guardResponse(request, route));
 * ```
 */
export function guardResponse(
  request: Request,
  route: HttpRoute,
): Response | Promise<Response> {
  let answer: Response | Promise<Response>;
  try {
    answer = route(request);
  } catch (error) {
    return failed(request, error);
  }
  return answer instanceof Promise
    ? answer.then(
      (response) => checked(request, response),
      (error) => failed(request, error),
    )
    : checked(request, answer);
}

function what(request: Request): string {
  return `${request.method} ${new URL(request.url).pathname.slice(0, 200)}`;
}

function failed(request: Request, error: unknown): Response {
  console.error(`spool: answering ${what(request)} failed:`, error);
  return withoutBodyForHead(
    request,
    errorResponse(
      new SpoolError(
        "internal",
        `answering ${what(request)} failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
      ),
    ),
  );
}

function checked(request: Request, response: Response): Response {
  if (response.status === SWITCHING_PROTOCOLS) return response;
  for (const [name, value] of response.headers) {
    if (HEADER_VALUE.test(value)) continue;
    response.body?.cancel().catch(logReleaseFailure);
    console.error(
      `spool: the answer to ${what(request)} had an invalid ${name} header ${
        JSON.stringify(value.slice(0, 80))
      }; answered 500 instead (a bug: user values go through _header.ts)`,
    );
    return withoutBodyForHead(
      request,
      errorResponse(
        new SpoolError(
          "internal",
          `the answer to ${
            what(request)
          } had an invalid ${name} header; expected printable ASCII (a bug in the server)`,
        ),
      ),
    );
  }
  return withoutBodyForHead(request, response);
}

function withoutBodyForHead(request: Request, response: Response): Response {
  if (request.method !== "HEAD" || response.body === null) return response;
  response.body.cancel().catch(logReleaseFailure);
  return new Response(null, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
