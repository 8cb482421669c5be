/**
 * The live viewer's pages: a resource's page (with the script of
 * `page.js`), the listing, and the page of a refused URL. The CSS and the
 * script are files of this folder imported as text, so that `deno compile`
 * embeds them. The HTML is built with {@linkcode markup}, which escapes every
 * string it is given; the browser script puts resource bytes and statuses
 * into the page with `textContent` only.
 *
 * @module
 */

import { getCharset } from "@std/media-types/get-charset";
import { STATUS_TEXT, type StatusCode } from "@std/http/status";
import type { SpoolError } from "../../protocol/errors.ts";
import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import {
  MAX_MIME_TYPE_LENGTH,
  MAX_NAME_LENGTH,
} from "../../protocol/validate.ts";
import { downloadFilename } from "../_header.ts";
import { clipText } from "../_text.ts";
import {
  faviconFor,
  formatBytes,
  formatTime,
  STATUS_COLOURS,
  visibleText,
} from "./format.js";
import { type Html, markup, raw } from "./html.ts";
import { LISTING_SCRIPT, PAGE_SCRIPT } from "./script.ts";
import pageCss from "./page.css" with { type: "text" };

/** Lines the log pane holds at most (and the tail it reads keeps). */
export const MAX_LINES: number = 5000;
/** Bytes of the end of a log the page starts reading from (a huge log opens at once). */
export const TAIL_BYTES: number = 64 * 1024;
/** Lines "load earlier" and "load later" read at a time. */
export const PAGE_LINES: number = 1000;
/** Rows the listing shows (the newest ones). */
export const MAX_LISTED: number = 1000;
/** Characters of a name a listing row shows (the page shows the whole name). */
export const MAX_LISTED_NAME: number = 200;
/** Characters of a failure reason a page shows. */
const MAX_SHOWN_ERROR = 2000;

/** `page.css` after the badge colours it uses (`--badge-{STATE}`). */
const CSS = `:root{${
  Object.entries(STATUS_COLOURS)
    .map(([state, colour]) => `--badge-${state}:${colour}`).join(";")
}}\n${pageCss}`;
if (/<\/style/i.test(CSS)) throw new Error("page.css may not end its <style>");

/**
 * User text as HTML: clipped to `max` characters, escaped, and its invisible
 * characters shown as marked escapes. `visibleText` escapes every NUL of
 * its input, so the NULs around each escape can only be the marks.
 */
function userHtml(text: string, max: number): Html {
  const clipped = clipText(String(text), max);
  const parts = visibleText(clipped, (e) => `\u0000${e}\u0000`).split(
    "\u0000",
  );
  return markup`${
    parts.map((part, i) =>
      i % 2 === 0 ? part : markup`<span class="ctl">${part}</span>`
    )
  }${clipped.length < String(text).length && markup`&hellip;`}`;
}

/** A name as HTML: isolated from the text around it (`<bdi>`). */
function nameHtml(name: string, max = MAX_NAME_LENGTH): Html {
  return markup`<bdi>${userHtml(name, max)}</bdi>`;
}

/**
 * Whether bytes of this MIME type are shown as text in the tail pane.
 *
 * @example
 * ```ts
 * import { isTextMime } from "./pages.ts";
 * console.log(isTextMime("text/plain; charset=utf-8"), isTextMime("image/png")); // true false
 * ```
 */
export function isTextMime(mimeType: string): boolean {
  const essence = mimeType.split(";")[0].trim().toLowerCase();
  return essence.startsWith("text/") || essence.endsWith("+json") ||
    essence.endsWith("+xml") ||
    /^application\/(json|x-ndjson|ndjson|jsonl|xml|javascript|x-javascript|ecmascript|x-sh|x-shellscript|yaml|x-yaml|toml|x-toml|csv|sql|graphql|x-log)$/
      .test(essence);
}

/** The page around `body`: head, the CSS, the favicon of `state`, a script. */
function shell(
  title: string,
  state: string,
  body: Html,
  script?: string,
): string {
  return String(markup`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link id="icon" rel="icon" href="${faviconFor(state)}">
<style>${raw(CSS)}</style>
</head>
<body>
${body}
${script !== undefined && markup`<script>${raw(script)}</script>`}
</body>
</html>
`);
}

/** An ` id="…"` attribute, or nothing. */
function idAttribute(id: string | undefined): Html | undefined {
  return id === undefined ? undefined : markup` id="${id}"`;
}

function badge(state: string, id?: string): Html {
  return markup`<span${idAttribute(id)} class="badge ${state}">${state}</span>`;
}

function timeElement(iso: string, id?: string, className?: string): Html {
  return markup`<time${idAttribute(id)}${
    className !== undefined && markup` class="${className}"`
  } datetime="${iso}">${formatTime(iso)}</time>`;
}

/** A size as the pages show it on hover: the exact count. */
function sizeTitle(size: number): string {
  return `${size.toLocaleString("en-US")} bytes`;
}

/** What the resource page needs. */
export interface ResourcePageOptions {
  /** The resource's status when the page is made. */
  status: ResourceStatus;
  /** The read token to put in the page's URLs, if the server has them. */
  token?: string;
  /** Whether to link back to the listing (off with read tokens). */
  listing: boolean;
}

/** The tail pane of a text resource, or the note of a binary one. */
function contentHtml(
  status: ResourceStatus,
  link: { href: string; filename: string },
): Html {
  const { href, filename } = link;
  if (!isTextMime(status.mimeType)) {
    const mime = userHtml(status.mimeType, MAX_MIME_TYPE_LENGTH);
    return markup`<section class="binary">
<p>This resource is <b>${mime}</b>, which is not shown as text here. Its status above stays live; ${
      downloadLink(link)
    }.</p>
<span id="stream-state" hidden></span>
</section>`;
  }
  return markup`<div class="bar">
<label title="keep the end in view (f)"><input type="checkbox" id="follow" checked> follow</label>
<label title="when each line arrived, from the start"><input type="checkbox" id="times"> times</label>
<span class="search"><input id="search" type="search" placeholder="search (/)" aria-label="search the lines on the page" autocomplete="off" spellcheck="false"><label title="regular expression"><input type="checkbox" id="search-regex">.*</label><label title="match case"><input type="checkbox" id="search-case">Aa</label><button type="button" id="search-prev" title="previous match (Shift+Enter)" aria-label="previous match">&uarr;</button><button type="button" id="search-next" title="next match (Enter)" aria-label="next match">&darr;</button><span id="search-count" class="count" aria-live="polite"></span></span>
<span id="lines" class="lines" title="lines in the log">&hellip;</span>
<span id="stream-state" class="state" aria-live="polite">loading&hellip;</span>
</div>
<div id="earlier" class="edge" hidden><span id="earlier-text"></span> <button type="button" id="load-earlier">load ${
    PAGE_LINES.toLocaleString("en-US")
  } earlier lines</button> <a href="${href}" download="${filename}">download the whole log</a></div>
<pre id="log" aria-label="resource content" tabindex="0"></pre>
<div id="later" class="edge" hidden><span id="later-text"></span> <button type="button" id="load-later">load ${
    PAGE_LINES.toLocaleString("en-US")
  } later lines</button> <button type="button" id="jump-end" title="G">jump to the end</button></div>`;
}

/** The page's download link. */
function downloadLink(link: { href: string; filename: string }): Html {
  return markup`<a id="download" href="${link.href}" download="${link.filename}">download</a>`;
}

/**
 * The page of one resource at `/view/{id}`. URLs in it are relative
 * (`../resources/{id}`), so a path prefix in front of the server is kept.
 *
 * @example
 * ```ts ignore
 * const page = renderResourcePage({ status: resource.status, listing: true });
 * ```
 */
export function renderResourcePage(options: ResourcePageOptions): string {
  const { status, token, listing } = options;
  const resourcePath = `../resources/${encodeURIComponent(status.id)}`;
  const link = {
    href: resourcePath +
      (token === undefined ? "" : `?token=${encodeURIComponent(token)}`),
    filename: downloadFilename(status.name),
  };
  const charset = getCharset(status.mimeType) ?? "utf-8";
  const failed = status.status === "FAILED" &&
    markup`Failed: ${
      userHtml(status.error ?? "unknown reason", MAX_SHOWN_ERROR)
    }`;
  const body =
    markup`<div class="view" id="app" data-resource="${resourcePath}" data-token="${
      token ?? ""
    }" data-status="${status.status}" data-size="${status.size}" data-created="${status.createdAt}" data-charset="${charset}" data-max-lines="${MAX_LINES}" data-tail-bytes="${TAIL_BYTES}" data-page-lines="${PAGE_LINES}">
<header>
${
      listing &&
      markup`<div class="crumb"><a href="./">&larr; all resources</a></div>`
    }
<h1 id="name">${nameHtml(status.name)}</h1>
<div class="meta">
${badge(status.status, "status")}
<span>size <b id="size" title="${sizeTitle(status.size)}">${
      formatBytes(status.size)
    }</b></span>
<span>updated <b>${timeElement(status.updatedAt, "updated")}</b></span>
<span>type <b id="mime">${
      userHtml(status.mimeType, MAX_MIME_TYPE_LENGTH)
    }</b></span>
${downloadLink(link)}
<span id="sha" class="sha">${status.sha256 && `sha256 ${status.sha256}`}</span>
</div>
<p id="error" class="error" role="alert">${failed}</p>
</header>
${contentHtml(status, link)}
</div>`;
  const name = visibleText(clipText(String(status.name), MAX_NAME_LENGTH));
  return shell(
    `${name} \u2014 ${status.status} \u2014 Spool`,
    status.status,
    body,
    PAGE_SCRIPT,
  );
}

/** One row of the listing (`listing.js` makes new ones the same way). */
function listingRow(s: ResourceStatus): Html {
  return markup`<tr data-id="${s.id}" data-created="${s.createdAt}">
<td class="name"><a href="./${encodeURIComponent(s.id)}">${
    nameHtml(s.name, MAX_LISTED_NAME)
  }</a></td>
<td class="state">${badge(s.status)}</td>
<td class="num size" title="${sizeTitle(s.size)}">${formatBytes(s.size)}</td>
<td class="type">${userHtml(s.mimeType, MAX_MIME_TYPE_LENGTH)}</td>
<td class="time">${timeElement(s.createdAt, undefined, "created")}</td>
<td class="time">${timeElement(s.updatedAt, undefined, "updated")}</td>
</tr>
`;
}

/**
 * The listing at `/view/`: the resources, newest first, with a filter box;
 * its script (`listing.js`) keeps the rows live from `/view/events` and
 * shows times as how long ago they were.
 *
 * @example
 * ```ts
 * import { renderListingPage } from "./pages.ts";
 * console.log(renderListingPage([]).includes("No resources yet.")); // true
 * ```
 */
export function renderListingPage(statuses: ResourceStatus[]): string {
  const sorted = [...statuses].sort((a, b) =>
    a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0
  );
  const shown = sorted.slice(0, MAX_LISTED);
  const live = statuses.filter((s) => !isTerminal(s)).length;
  const more = sorted.length > shown.length &&
    markup`<p class="empty">Showing the newest ${shown.length} of ${sorted.length}.</p>`;
  const body = markup`<header>
<h1>Spool resources</h1>
<div class="meta"><span><b id="total">${statuses.length}</b> resources, <b id="live">${live}</b> live <span id="shown"></span></span><input id="filter" type="search" placeholder="filter by name, status, type (/)" aria-label="filter the resources" autocomplete="off" spellcheck="false"><span id="feed" class="state" aria-live="polite"></span></div>
</header>
<main class="list">
<p id="empty" class="empty"${
    statuses.length > 0 && markup` hidden`
  }>No resources yet.</p>
<table id="table"${statuses.length === 0 && markup` hidden`}>
<thead><tr><th>Name</th><th>Status</th><th>Size</th><th>Type</th><th>Created</th><th>Updated</th></tr></thead>
<tbody id="rows" data-max-name="${MAX_LISTED_NAME}">
${shown.map(listingRow)}</tbody>
</table>
${more}
</main>`;
  return shell("Spool resources", "COMPLETED", body, LISTING_SCRIPT);
}

/** What the page of a refused viewer URL says. */
export interface ErrorPageOptions {
  /** The HTTP status it is answered with (403, 404, 410, …). */
  status: number;
  /** What was refused, and why. */
  error: SpoolError;
  /** What the reader can do about it, if anything. */
  hint?: string;
  /** The listing's URL, relative to the page, if the server shows it. */
  listingHref?: string;
}

/**
 * The page of a refused `/view/…` URL: its status, the error's code and
 * message, and a hint, escaped; no script (it is served with
 * `STATIC_CSP`).
 *
 * @example
 * ```ts
 * import { renderErrorPage } from "./pages.ts";
 * import { SpoolError } from "../../protocol/errors.ts";
 * const page = renderErrorPage({
 *   status: 404,
 *   error: new SpoolError("not-found", "no resource with id \"x\""),
 * });
 * console.log(page.includes("404 Not Found")); // true
 * ```
 */
export function renderErrorPage(options: ErrorPageOptions): string {
  const { status, error, hint, listingHref } = options;
  const heading = `${status} ${STATUS_TEXT[status as StatusCode] ?? "Error"}`;
  const crumb = listingHref !== undefined &&
    markup`<div class="crumb"><a href="${listingHref}">&larr; all resources</a></div>`;
  const body = markup`<header>
${crumb}
<h1 id="title">${heading}</h1>
<div class="meta"><span id="code" class="badge refused">${error.code}</span></div>
<p id="error" class="error" role="alert">${
    userHtml(error.message, MAX_SHOWN_ERROR)
  }</p>
</header>
<main class="list">
${hint !== undefined && markup`<p id="hint" class="hint">${hint}</p>`}
</main>`;
  return shell(`${heading} \u2014 Spool`, "FAILED", body);
}
