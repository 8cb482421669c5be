/**
 * Plain HTTP on a resource, beside its WebSocket: the routes under
 * `/resources/{id}` that `curl` and browsers use. Access control and the
 * lookup of the resource happen before these handlers run.
 *
 * @module
 */

import type { Resource } from "./resource.ts";

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
}

/**
 * Answers a plain HTTP request on a resource.
 *
 * @example
 * ```ts ignore
 * return serveResourceHttp(request, { resource, subpath: "/status", signal });
 * ```
 */
export function serveResourceHttp(
  request: Request,
  context: ResourceHttpContext,
): Response | Promise<Response> {
  const { resource, subpath } = context;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return Response.json({
      code: "invalid-field",
      error: `method ${request.method} is not allowed; expected GET or HEAD`,
    }, { status: 405, headers: { allow: "GET, HEAD" } });
  }
  if (subpath === "" || subpath === "/status") {
    return Response.json(resource.status);
  }
  return Response.json({
    code: "not-found",
    error: `no route /resources/{id}${subpath}`,
  }, { status: 404 });
}
