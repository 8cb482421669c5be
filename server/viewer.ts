/**
 * The live viewer: an HTML page per resource that follows it in the browser,
 * and a listing page of resources.
 *
 * The page at `/view/{id}` is self-contained (inline CSS and one inline
 * script, allowed by its hash in a strict Content-Security-Policy; they are
 * `viewer/page.css` and `viewer/page.js` with the modules it imports
 * bundled in, see `viewer/script.ts`). It shows the resource's name,
 * status, size, update time and a download link, statuses arriving by
 * Server-Sent Events from `/resources/{id}/events`, and for text resources
 * a log pane: read from the last bytes of the resource (a `Range`, or a
 * follow while it is live, so a huge log opens at once), shown as a
 * terminal shows it (ANSI colours, `\r` progress lines), with numbered,
 * linkable lines (`#L12-L20`, `/lines?offset=` gives the numbers, earlier
 * lines come from `/lines?start=&end=`), collapsible CI sections, search,
 * arrival times (`/resources/{id}/checkpoints`) and keys (`/`, `f`, `g`,
 * `G`); the page holds a bounded number of lines.
 * `/view/` lists the resources, newest first, with a filter box, its rows
 * kept live from `/view/events` (not on servers with read tokens, where
 * both answer 403).
 *
 * A refusal (403, 404, 410) is a small HTML page with the status, the
 * error's message and a hint, for browsers; a client whose `Accept` prefers
 * JSON (or names no HTML at all: `curl`, `fetch`) gets the one JSON error
 * body of `protocol/http_error.ts` instead.
 *
 * @module
 */

import { STATUS_CODE } from "@std/http/status";
import type { Resource } from "./resource.ts";
import { SpoolError } from "../protocol/errors.ts";
import { errorResponse, errorStatus } from "../protocol/http_error.ts";
import { headerValue } from "./_header.ts";
import {
  renderErrorPage,
  renderListingPage,
  renderResourcePage,
} from "./viewer/pages.ts";
import { LISTING_CSP, PAGE_CSP, STATIC_CSP } from "./viewer/script.ts";

export { serveListingEvents } from "./http_listing.ts";

/** What a reader refused a page can do about it, by the error's code. */
const HINTS: Partial<Record<SpoolError["code"], string>> = {
  "forbidden":
    "This page needs the read token: open the reference URL the uploader got (it ends in ?token=…).",
  "not-found":
    "Check the address: the id after /view/ is the one in the reference URL the uploader got, and this server has no resource with this one.",
  "gone":
    "The server deletes finished resources once its retention time is over, and this one was deleted: ask the uploader to upload it again.",
};
const LISTING_OFF_HINT =
  "This server has read tokens, so it lists no resources: open one resource's page from its reference URL (/view/{id}?token=…).";

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
  /** Why the resource named by the path may not be shown, if it may not. */
  refusal?: SpoolError;
}

function htmlResponse(
  html: string,
  csp: string,
  status: number = STATUS_CODE.OK,
  extra: Record<string, string> = {},
): Response {
  return new Response(html, {
    status,
    headers: {
      ...extra,
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

/** The q-value of a media range's parameters (`q=0.5`); 1 without one. */
function qualityOf(parameters: string[]): number {
  for (const parameter of parameters) {
    const match = /^q\s*=\s*([0-9.]+)$/i.exec(parameter.trim());
    if (match) return Math.min(1, Number(match[1]) || 0);
  }
  return 1;
}

/**
 * Whether the client takes an HTML error page: its `Accept` names
 * `text/html` and does not prefer JSON (`application/json`, `…+json`) to it.
 * Browsers navigating name `text/html`; `curl` and `fetch` accept any type
 * and get JSON, like every other route's refusals.
 */
function wantsHtml(request: Request): boolean {
  let html = 0;
  let json = 0;
  for (const range of (request.headers.get("accept") ?? "").split(",")) {
    const [type, ...parameters] = range.split(";");
    const essence = type.trim().toLowerCase();
    const quality = qualityOf(parameters);
    if (essence === "text/html") html = Math.max(html, quality);
    if (essence === "application/json" || essence.endsWith("+json")) {
      json = Math.max(json, quality);
    }
  }
  return html > 0 && html > json;
}

/** `/view/` relative to the URL of `request` (under `/view/`). */
function listingHref(request: Request): string {
  const path = new URL(request.url).pathname;
  const rest = path.slice(path.indexOf("/view/") + "/view/".length);
  const depth = rest.split("/").length - 1;
  return depth === 0 ? "./" : "../".repeat(depth);
}

/** A refusal of a viewer URL: an HTML page for browsers, else the JSON body. */
function refusalResponse(
  request: Request,
  error: SpoolError,
  options: { listing: boolean; hint?: string },
): Response {
  // The answer depends on Accept: caches must keep the variants apart.
  const vary = { vary: "accept" };
  if (!wantsHtml(request)) return errorResponse(error, { headers: vary });
  const status = errorStatus(error);
  const page = renderErrorPage({
    status,
    error,
    hint: options.hint ?? HINTS[error.code],
    listingHref: options.listing ? listingHref(request) : undefined,
  });
  return htmlResponse(page, STATIC_CSP, status, vary);
}

/**
 * Answers `GET /view/` (listing) and `GET /view/{id}` (one resource, or its
 * refusal: `context.refusal`). The server allows only `GET` and `HEAD`
 * here, and drops the body of a `HEAD`.
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
  if (context.refusal !== undefined) {
    return refusalResponse(request, context.refusal, {
      listing: context.listing,
    });
  }
  if (context.resource === undefined) {
    if (!context.listing) {
      return refusalResponse(
        request,
        new SpoolError(
          "forbidden",
          "the listing is off on this server (it has read tokens); expected /view/{id}?token=… from a reference",
        ),
        { listing: false, hint: LISTING_OFF_HINT },
      );
    }
    const url = new URL(request.url);
    if (!url.pathname.endsWith("/")) {
      // `/view` → `/view/`, so the listing's relative links resolve.
      const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
      return new Response(null, {
        status: STATUS_CODE.PermanentRedirect,
        headers: { location: headerValue(`${last}/${url.search}`, "view/") },
      });
    }
    const statuses = [...context.resources()].map((r) => r.status);
    return htmlResponse(renderListingPage(statuses), LISTING_CSP);
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
