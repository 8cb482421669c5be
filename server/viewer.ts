/**
 * The live viewer: an HTML page per resource that follows it in the browser,
 * and a listing page of resources.
 *
 * The page at `/view/{id}` is self-contained (inline CSS and one inline
 * script, allowed by its hash in a strict Content-Security-Policy). It shows
 * the resource's name, status, size, update time and a download link, and
 * for text resources a tail-f pane fed by `GET /resources/{id}?follow=1`
 * while the resource is live and by a plain `GET` (with `Range` from the
 * byte it has) once it is finished, while statuses arrive by Server-Sent
 * Events from `/resources/{id}/events`.
 * `/view/` lists the resources, newest first (not on servers with read
 * tokens, where it answers 403).
 *
 * @module
 */

import type { Resource } from "./resource.ts";
import { SpoolError } from "../protocol/errors.ts";
import { errorResponse } from "./_http_error.ts";
import { headerValue } from "./_header.ts";
import {
  PAGE_CSP,
  renderListingPage,
  renderResourcePage,
  STATIC_CSP,
} from "./_viewer_page.ts";

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

function htmlResponse(html: string, csp: string, status = 200): Response {
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": csp,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
      // The page embeds the status at the time it was made.
      "cache-control": "no-store",
    },
  });
}

/**
 * Answers `GET /view/` (listing) and `GET /view/{id}` (one resource). The
 * server allows only `GET` and `HEAD` here, and drops the body of a `HEAD`.
 *
 * @example
 * ```ts ignore
 * return serveViewer(request, { resources: () => registry.all(), listing: true });
 * ```
 */
export function serveViewer(
  request: Request,
  context: ViewerContext,
): Response {
  if (context.resource === undefined) {
    if (!context.listing) {
      return errorResponse(
        new SpoolError(
          "forbidden",
          "the listing is off on this server (it has read tokens); expected /view/{id}?token=… from a reference",
        ),
      );
    }
    const url = new URL(request.url);
    if (!url.pathname.endsWith("/")) {
      // `/view` → `/view/`, so the listing's relative links resolve.
      const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
      return new Response(null, {
        status: 308,
        headers: { location: headerValue(`${last}/${url.search}`, "view/") },
      });
    }
    const statuses = [...context.resources()].map((r) => r.status);
    return htmlResponse(renderListingPage(statuses), STATIC_CSP);
  }
  return htmlResponse(
    renderResourcePage({
      status: context.resource.status,
      token: context.token,
      listing: context.listing,
    }),
    PAGE_CSP,
  );
}
