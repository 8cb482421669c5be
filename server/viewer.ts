/**
 * The live viewer: an HTML page per resource that follows it in the browser,
 * and a listing page of resources.
 *
 * @module
 */

import type { Resource } from "./resource.ts";

/** What the viewer may use. */
export interface ViewerContext {
  /** Every resource the server knows (for the listing). */
  resources: () => Iterable<Resource>;
  /** The resource named by the path, found and access-checked, if any. */
  resource?: Resource;
  /** The read token the request presented, to put in the page's URLs. */
  token?: string;
  /** Whether the listing may be shown (not with read tokens). */
  listing: boolean;
}

/**
 * Answers `GET /view/` (listing) and `GET /view/{id}` (one resource).
 *
 * @example
 * ```ts ignore
 * return serveViewer(request, { resources: () => registry.all(), listing: true });
 * ```
 */
export function serveViewer(
  _request: Request,
  context: ViewerContext,
): Response {
  if (context.resource === undefined) {
    if (!context.listing) {
      return new Response("listing is off on this server (read tokens)", {
        status: 403,
      });
    }
    const items = [...context.resources()].map((r) => r.status.id);
    return new Response(items.join("\n"), {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  return new Response(JSON.stringify(context.resource.status), {
    headers: { "content-type": "application/json" },
  });
}
