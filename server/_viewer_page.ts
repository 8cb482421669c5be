/**
 * The live viewer's HTML, CSS and browser script, as strings (so that
 * `deno compile` embeds them; there are no static files). Every string that
 * comes from the server's data is HTML-escaped here; the browser script puts
 * resource bytes and statuses into the page with `textContent` only.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { STATUS_TEXT, type StatusCode } from "@std/http/status";
import type { SpoolError } from "../protocol/errors.ts";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import { MAX_MIME_TYPE_LENGTH, MAX_NAME_LENGTH } from "../protocol/validate.ts";
import { downloadFilename } from "./_header.ts";
import { clipText } from "./_text.ts";

/** Lines the tail pane keeps; older ones are dropped from the page. */
export const MAX_LINES: number = 5000;
/** Rows the listing shows (the newest ones). */
export const MAX_LISTED: number = 1000;
/** Characters of a name a listing row shows (the page shows the whole name). */
export const MAX_LISTED_NAME: number = 200;
/** Requests the tail pane makes for a resource before it gives up. */
const MAX_ATTEMPTS = 20;
/** The pane's first pause before it reconnects; it doubles each time. */
const RETRY_BASE_MS = 500;
/** The pane's longest pause before it reconnects. */
const RETRY_MAX_MS = 10_000;
/** Characters of a failure reason a page shows. */
const MAX_SHOWN_ERROR = 2000;

/** Escapes `&`, `<`, `>`, `"` and `'` for HTML text and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Makes invisible characters that change how text reads visible as
 * `\u202E`-style escapes: control characters (C0, DEL, C1), bidirectional
 * controls (so `invoice\u202Efdp.exe` cannot display as `invoiceexe.pdf`),
 * line and paragraph separators, U+FEFF and lone surrogates. `mark` wraps each
 * escape (the server marks them up; the browser script, which writes with
 * `textContent`, does not). Also runs in the browser.
 */
export function visibleText(
  text: string,
  mark?: (escape: string) => string,
): string {
  return String(text).replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    function (c) {
      const code = c.charCodeAt(0).toString(16).toUpperCase();
      const escape = "\\u" + ("000" + code).slice(-4);
      return mark ? mark(escape) : escape;
    },
  );
}

/** User text as HTML: clipped, escaped, invisible characters shown marked. */
function userHtml(text: string, max: number): string {
  const clipped = clipText(String(text), max);
  return visibleText(
    escapeHtml(clipped),
    (escape) => `<span class="ctl">${escape}</span>`,
  ) + (clipped.length < String(text).length ? "&hellip;" : "");
}

/** A name as HTML: isolated from the text around it (`<bdi>`). */
function nameHtml(name: string, max = MAX_NAME_LENGTH): string {
  return `<bdi>${userHtml(name, max)}</bdi>`;
}

/**
 * Bytes in binary units: `512 B`, `1.5 KiB`, `12 MiB`. Also runs in the
 * browser (its source is put into the page script).
 */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return bytes + " B";
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1023.95 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return (value < 9.95 ? value.toFixed(1) : String(Math.round(value))) + " " +
    units[unit];
}

/**
 * An ISO 8601 time as `2026-11-24 01:53:55 UTC`. Also runs in the browser.
 */
export function formatTime(iso: string): string {
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso);
  return match ? match[1] + " " + match[2] + " UTC" : iso;
}

/** Whether bytes of this MIME type are shown as text in the tail pane. */
export function isTextMime(mimeType: string): boolean {
  const essence = mimeType.split(";")[0].trim().toLowerCase();
  return essence.startsWith("text/") || essence.endsWith("+json") ||
    essence.endsWith("+xml") ||
    /^application\/(json|x-ndjson|ndjson|jsonl|xml|javascript|x-javascript|ecmascript|x-sh|x-shellscript|yaml|x-yaml|toml|x-toml|csv|sql|graphql|x-log)$/
      .test(essence);
}

/** The `charset` parameter of a MIME type, if any (for the browser's decoder). */
function charsetOf(mimeType: string): string {
  const match = /;\s*charset\s*=\s*"?([A-Za-z0-9._:-]+)"?/i.exec(mimeType);
  return match ? match[1] : "utf-8";
}

const BADGE_COLOURS: Record<string, string> = {
  INITIATED: "#6b7280",
  IN_PROGRESS: "#2563eb",
  COMPLETED: "#15803d",
  FAILED: "#b91c1c",
};

function faviconFor(state: string): string {
  const colour = (BADGE_COLOURS[state] ?? "#6b7280").replace("#", "%23");
  return `data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='${colour}'/></svg>`;
}

const CSS = `
:root{color-scheme:light dark;--bg:#f5f6f8;--fg:#1c2330;--muted:#5b6472;--card:#fff;--rule:#d9dee5;--link:#1d4ed8;--log-bg:#10151b;--log-fg:#d5dce5;--note-bg:#2a2113;--note-fg:#f3d18b}
@media (prefers-color-scheme:dark){:root{--bg:#0b0e12;--fg:#e3e8ef;--muted:#98a2b0;--card:#141920;--rule:#2a313b;--link:#8ab4ff}}
*{box-sizing:border-box}
html,body{height:100%;margin:0}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link)}
header{padding:12px 16px 10px;border-bottom:1px solid var(--rule);background:var(--card)}
h1{font-size:18px;margin:0 0 6px;overflow-wrap:anywhere}
.crumb{font-size:12px;margin-bottom:4px}
.meta{display:flex;flex-wrap:wrap;gap:4px 18px;align-items:center;color:var(--muted)}
.meta b{color:var(--fg);font-weight:600}
.badge{display:inline-block;padding:0 9px;border-radius:999px;font:600 12px/1.7 ui-monospace,"DejaVu Sans Mono",monospace;letter-spacing:.03em;color:#fff;background:${BADGE_COLOURS.INITIATED}}
.badge.IN_PROGRESS{background:${BADGE_COLOURS.IN_PROGRESS}}
.badge.COMPLETED{background:${BADGE_COLOURS.COMPLETED}}
.badge.FAILED{background:${BADGE_COLOURS.FAILED}}
.error{margin:6px 0 0;color:#dc2626;white-space:pre-wrap;overflow-wrap:anywhere}
.error:empty{display:none}
.sha{font:12px ui-monospace,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
.view{display:flex;flex-direction:column;height:100%}
.bar{display:flex;gap:14px;align-items:center;padding:5px 16px;font-size:12px;color:var(--muted);border-bottom:1px solid var(--rule)}
.bar label{display:flex;gap:5px;align-items:center;cursor:pointer;color:var(--fg)}
.bar .state{margin-left:auto}
.trimmed{padding:4px 16px;font-size:12px;background:var(--note-bg);color:var(--note-fg)}
.trimmed a{color:inherit}
.trimmed[hidden]{display:none}
#log{flex:1;min-height:0;overflow:auto;margin:0;padding:8px 16px;background:var(--log-bg);color:var(--log-fg);font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere;tab-size:8}
#log>div{min-height:1.4em}
.ctl{font:.85em ui-monospace,"DejaVu Sans Mono",monospace;padding:0 2px;border-radius:3px;background:#fde68a;color:#7c2d12}
.binary{padding:24px 16px}
.badge.refused{background:${BADGE_COLOURS.FAILED}}
.hint{max-width:48em}
main.list{padding:16px}
table{border-collapse:collapse;width:100%;background:var(--card)}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--rule);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
td.name{overflow-wrap:anywhere}
td.num{white-space:nowrap;text-align:right}
td.time{white-space:nowrap;color:var(--muted)}
.empty{color:var(--muted)}
`;

/**
 * The browser side of the resource page. A raw string: no backticks and no
 * `${` inside. It reads its parameters from `#app`'s data attributes.
 */
const SCRIPT_BODY = String.raw`
var app = document.getElementById("app");
var data = app.dataset;
var token = data.token || new URLSearchParams(location.search).get("token") || "";
var resourceUrl = new URL(data.resource, location.href);
function urlOf(suffix, params) {
  var url = new URL(resourceUrl.pathname + suffix, resourceUrl);
  if (params) for (var key in params) url.searchParams.set(key, params[key]);
  if (token) url.searchParams.set("token", token);
  return url;
}
function $(id) { return document.getElementById(id); }
var badge = $("status"), sizeEl = $("size"), updatedEl = $("updated");
var errorEl = $("error"), shaEl = $("sha"), stateEl = $("stream-state");
var icon = $("icon");
var last = { status: data.status, size: Number(data.size) };
var terminal = function (s) { return s.status === "COMPLETED" || s.status === "FAILED"; };

// Text from the server, with invisible characters shown as marked escapes,
// like the server renders them. visibleText escapes every NUL of its input,
// so the NULs around each escape can only be the marks.
function showText(el, text) {
  var parts = visibleText(text, function (e) { return "\u0000" + e + "\u0000"; }).split("\u0000");
  el.textContent = "";
  for (var i = 0; i < parts.length; i++) {
    if (i % 2 === 0) {
      if (parts[i]) el.appendChild(document.createTextNode(parts[i]));
      continue;
    }
    var span = document.createElement("span");
    span.className = "ctl";
    span.textContent = parts[i];
    el.appendChild(span);
  }
}

function showStatus(s) {
  last = s;
  badge.textContent = s.status;
  badge.className = "badge " + s.status;
  sizeEl.textContent = formatBytes(s.size);
  sizeEl.title = s.size.toLocaleString("en-US") + " bytes";
  updatedEl.textContent = formatTime(s.updatedAt);
  updatedEl.dateTime = s.updatedAt;
  showText(errorEl, s.status === "FAILED" ? "Failed: " + (s.error || "unknown reason") : "");
  if (shaEl) shaEl.textContent = s.sha256 ? "sha256 " + s.sha256 : "";
  document.title = visibleText(s.name) + " \u2014 " + s.status + " \u2014 Spool";
  icon.href = FAVICONS[s.status] || FAVICONS.INITIATED;
  if (pane && follow.checked) pane.scrollTop = pane.scrollHeight;
}

// Statuses: latest first, then every update; the server ends after the final one.
var events = new EventSource(urlOf("/events"));
events.addEventListener("status", function (event) {
  var s = JSON.parse(event.data);
  showStatus(s);
  if (terminal(s)) events.close();
});
events.addEventListener("error", function () {
  if (events.readyState === EventSource.CLOSED && !terminal(last)) {
    errorEl.textContent = "Lost the status stream; reload the page to try again.";
  }
});

// The tail pane (text resources only).
var pane = $("log");
var follow = $("follow");
if (pane) startPane();

function startPane() {
  var trimmedEl = $("trimmed"), trimmedCount = $("trimmed-count");
  var current = newLine();
  pane.appendChild(current);
  var pending = "", scheduled = false, trimmed = 0;

  function newLine() {
    var div = document.createElement("div");
    div.appendChild(document.createTextNode(""));
    return div;
  }
  function atBottom() {
    return pane.scrollHeight - pane.scrollTop - pane.clientHeight < 8;
  }
  function scrollDown() { pane.scrollTop = pane.scrollHeight; }

  // Following stops when the reader scrolls up and resumes at the bottom.
  pane.addEventListener("scroll", function () {
    var bottom = atBottom();
    if (follow.checked !== bottom) follow.checked = bottom;
  });
  follow.addEventListener("change", function () { if (follow.checked) scrollDown(); });
  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (follow.checked) scrollDown(); }).observe(pane);
  }

  function append(text) {
    if (!text) return;
    pending += text;
    if (scheduled) return;
    scheduled = true;
    // Coalesce bursts into one DOM update; the timer also runs in background tabs.
    requestAnimationFrame(flush);
    setTimeout(flush, 100);
  }

  function flush() {
    scheduled = false;
    if (!pending) return;
    var parts = pending.split("\n");
    pending = "";
    current.firstChild.appendData(parts[0]);
    var fresh = parts.length - 1;
    if (fresh > 0) {
      var start = 1;
      if (fresh >= MAX_LINES) {
        // The whole pane is replaced by the newest lines of this batch.
        trimmed += pane.childElementCount + fresh - MAX_LINES;
        pane.textContent = "";
        start = parts.length - MAX_LINES;
      }
      var fragment = document.createDocumentFragment();
      for (var i = start; i < parts.length; i++) {
        current = newLine();
        current.firstChild.data = parts[i];
        fragment.appendChild(current);
      }
      pane.appendChild(fragment);
      var over = pane.childElementCount - MAX_LINES;
      if (over > 0) {
        trimmed += over;
        while (over-- > 0) pane.removeChild(pane.firstChild);
      }
      if (trimmed > 0) {
        trimmedCount.textContent = trimmed.toLocaleString("en-US");
        trimmedEl.hidden = false;
      }
    }
    if (follow.checked) scrollDown();
  }

  // Bytes. While the resource is live, one request follows it from the
  // first byte not shown (?follow=1&start=N) and grows with it; once it is
  // finished, a plain read (Range: bytes=N-) takes what is left. So after a
  // lost connection, and after a follow cut off because the resource FAILED
  // (a broken chunked body, whose last bytes Chromium may drop), the next
  // request starts where the page is: no byte twice, none missing. Bytes
  // count as received only once they are in the pane, and one decoder reads
  // them all, so a character split between two requests decodes whole.
  var received = 0;
  var decoder = newDecoder();
  function newDecoder() {
    try { return new TextDecoder(data.charset, { fatal: false }); }
    catch (_) { return new TextDecoder("utf-8"); }
  }

  // The byte an answer's body starts at: a 206's Content-Range, a follow's
  // Spool-Start, else the first.
  function firstByteOf(response) {
    if (response.status === 206) {
      var range = /^bytes (\d+)-/.exec(response.headers.get("content-range") || "");
      return range ? Number(range[1]) : NaN;
    }
    var start = response.headers.get("spool-start");
    return start === null ? 0 : Number(start);
  }

  async function refusal(response) {
    var reason = "HTTP " + response.status;
    try { reason += ": " + (await response.text()).slice(0, 300); }
    catch (_) { /* the reason is the status alone */ }
    var refused = new Error(reason);
    refused.final = response.status >= 400 && response.status < 500;
    return refused;
  }

  async function readFrom(live) {
    var response = await fetch(
      urlOf("", live ? { follow: "1", start: String(received) } : null),
      { cache: "no-store", headers: !live && received > 0 ? { range: "bytes=" + received + "-" } : {} },
    );
    if (!response.ok) throw await refusal(response);
    if (!response.body) return;
    var first = firstByteOf(response);
    if (!(first <= received)) {
      response.body.cancel().catch(function () { /* nothing of it is used */ });
      var gap = new Error("the server answered from byte " + first + "; expected byte " + received + " at the latest");
      gap.final = true;
      throw gap;
    }
    var skip = received - first;
    var reader = response.body.getReader();
    for (;;) {
      var step = await reader.read();
      if (step.done) return;
      var chunk = step.value;
      if (skip >= chunk.byteLength) { skip -= chunk.byteLength; continue; }
      if (skip > 0) { chunk = chunk.subarray(skip); skip = 0; }
      received += chunk.byteLength;
      append(decoder.decode(chunk, { stream: true }));
    }
  }

  async function latestStatus() {
    try {
      var response = await fetch(urlOf("/status"), { cache: "no-store" });
      if (response.ok) return await response.json();
    } catch (_) { /* unreachable for now: the last status known stands */ }
    return last;
  }

  function ended(s) {
    append(decoder.decode());
    flush();
    var bytes = received.toLocaleString("en-US") + " bytes";
    if (s.status === "FAILED") {
      showStatus(s);
      stateEl.textContent = "stopped: the upload failed after " + bytes;
      return;
    }
    stateEl.textContent = "end of resource (" + bytes + ")";
  }

  async function run() {
    var s = last;
    for (var attempt = 0; ; attempt++) {
      var live = !terminal(s);
      if (!live && received >= s.size) return ended(s);
      stateEl.textContent = live ? "following\u2026" : "reading\u2026";
      var problem = null;
      try { await readFrom(live); } catch (error) { problem = error; }
      flush();
      s = await latestStatus();
      if (terminal(s) && received >= s.size) return ended(s);
      if ((problem && problem.final) || attempt >= MAX_ATTEMPTS) {
        showText(stateEl, "stopped: " + (problem ? problem.message || String(problem) : "the stream ended early"));
        return;
      }
      // The follow ended with the resource: read the rest at once.
      if (live && terminal(s)) continue;
      // The stream broke (or ended) before the end: reconnect, from where the page is.
      stateEl.textContent = "connection lost; reconnecting\u2026";
      await new Promise(function (resolve) {
        setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_BASE_MS * Math.pow(2, attempt)));
      });
    }
  }
  run();
}
`;

const FAVICONS = Object.fromEntries(
  Object.keys(BADGE_COLOURS).map((state) => [state, faviconFor(state)]),
);

/** The whole browser script (constant: the CSP allows it by its hash). */
const SCRIPT = `"use strict";
(function () {
var MAX_LINES = ${MAX_LINES};
var MAX_ATTEMPTS = ${MAX_ATTEMPTS};
var RETRY_BASE_MS = ${RETRY_BASE_MS};
var RETRY_MAX_MS = ${RETRY_MAX_MS};
var FAVICONS = ${JSON.stringify(FAVICONS).replaceAll("<", "\\u003c")};
var formatBytes = ${formatBytes.toString()};
var formatTime = ${formatTime.toString()};
var visibleText = ${visibleText.toString()};
${SCRIPT_BODY}
})();
`;

const SCRIPT_HASH = createHash("sha256").update(SCRIPT).digest("base64");

/** The `Content-Security-Policy` of the resource page (allows its script by hash). */
export const PAGE_CSP: string = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'unsafe-inline'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The `Content-Security-Policy` of pages without script (the listing). */
export const STATIC_CSP: string = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'unsafe-inline'",
  "script-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function shell(
  title: string,
  state: string,
  body: string,
  script = "",
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link id="icon" rel="icon" href="${escapeHtml(faviconFor(state))}">
<style>${CSS}</style>
</head>
<body>
${body}
${script ? `<script>${script}</script>` : ""}
</body>
</html>
`;
}

function badge(state: string, id?: string): string {
  const safe = escapeHtml(state);
  return `<span${id ? ` id="${id}"` : ""} class="badge ${safe}">${safe}</span>`;
}

function timeElement(iso: string, id?: string): string {
  return `<time${id ? ` id="${id}"` : ""} datetime="${escapeHtml(iso)}">${
    escapeHtml(formatTime(iso))
  }</time>`;
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

/**
 * The page of one resource at `/view/{id}`. URLs in it are relative
 * (`../resources/{id}`), so a path prefix in front of the server is kept.
 */
export function renderResourcePage(options: ResourcePageOptions): string {
  const { status, token, listing } = options;
  const resourcePath = `../resources/${encodeURIComponent(status.id)}`;
  const download = resourcePath +
    (token === undefined ? "" : `?token=${encodeURIComponent(token)}`);
  const text = isTextMime(status.mimeType);
  const failed = status.status === "FAILED"
    ? `Failed: ${userHtml(status.error ?? "unknown reason", MAX_SHOWN_ERROR)}`
    : "";
  const filename = escapeHtml(downloadFilename(status.name));
  const mime = userHtml(status.mimeType, MAX_MIME_TYPE_LENGTH);
  const downloadLink = `<a id="download" href="${
    escapeHtml(download)
  }" download="${filename}">download</a>`;
  const body = `<div class="view" id="app" data-resource="${
    escapeHtml(resourcePath)
  }" data-token="${escapeHtml(token ?? "")}" data-status="${
    escapeHtml(status.status)
  }" data-size="${status.size}" data-charset="${
    escapeHtml(charsetOf(status.mimeType))
  }">
<header>
${
    listing
      ? `<div class="crumb"><a href="./">&larr; all resources</a></div>`
      : ""
  }
<h1 id="name">${nameHtml(status.name)}</h1>
<div class="meta">
${badge(status.status, "status")}
<span>size <b id="size" title="${status.size.toLocaleString("en-US")} bytes">${
    formatBytes(status.size)
  }</b></span>
<span>updated <b>${timeElement(status.updatedAt, "updated")}</b></span>
<span>type <b id="mime">${mime}</b></span>
${downloadLink}
<span id="sha" class="sha">${
    status.sha256 ? `sha256 ${escapeHtml(status.sha256)}` : ""
  }</span>
</div>
<p id="error" class="error" role="alert">${failed}</p>
</header>
${
    text
      ? `<div class="bar">
<label><input type="checkbox" id="follow" checked> follow (auto-scroll)</label>
<span>last ${
        MAX_LINES.toLocaleString("en-US")
      } lines are kept on the page</span>
<span id="stream-state" class="state" aria-live="polite">loading&hellip;</span>
</div>
<div id="trimmed" class="trimmed" hidden><span id="trimmed-count">0</span> earlier lines were trimmed from this page; <a href="${
        escapeHtml(download)
      }" download="${filename}">download the whole resource</a>.</div>
<pre id="log" aria-label="resource content" tabindex="0"></pre>`
      : `<section class="binary">
<p>This resource is <b>${mime}</b>, which is not shown as text here. Its status above stays live; ${downloadLink}.</p>
<span id="stream-state" hidden></span>
</section>`
  }
</div>`;
  return shell(
    `${
      visibleText(clipText(String(status.name), MAX_NAME_LENGTH))
    } \u2014 ${status.status} \u2014 Spool`,
    status.status,
    body,
    SCRIPT,
  );
}

/** The listing at `/view/`: the resources, newest first. */
export function renderListingPage(statuses: ResourceStatus[]): string {
  const sorted = [...statuses].sort((a, b) =>
    a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0
  );
  const shown = sorted.slice(0, MAX_LISTED);
  const live = statuses.filter((s) => !isTerminal(s)).length;
  const rows = shown.map((s) =>
    `<tr>
<td class="name"><a href="./${escapeHtml(encodeURIComponent(s.id))}">${
      nameHtml(s.name, MAX_LISTED_NAME)
    }</a></td>
<td>${badge(s.status)}</td>
<td class="num" title="${s.size.toLocaleString("en-US")} bytes">${
      formatBytes(s.size)
    }</td>
<td>${userHtml(s.mimeType, MAX_MIME_TYPE_LENGTH)}</td>
<td class="time">${timeElement(s.createdAt)}</td>
<td class="time">${timeElement(s.updatedAt)}</td>
</tr>`
  ).join("\n");
  const more = sorted.length > shown.length
    ? `<p class="empty">Showing the newest ${shown.length} of ${sorted.length}.</p>`
    : "";
  const body = `<header>
<h1>Spool resources</h1>
<div class="meta"><span><b>${statuses.length}</b> resources, <b>${live}</b> live</span><a href="./">refresh</a></div>
</header>
<main class="list">
${
    statuses.length === 0 ? `<p class="empty">No resources yet.</p>` : `<table>
<thead><tr><th>Name</th><th>Status</th><th>Size</th><th>Type</th><th>Created</th><th>Updated</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
${more}`
  }
</main>`;
  return shell("Spool resources", "COMPLETED", body);
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
 * {@linkcode STATIC_CSP}).
 *
 * @example
 * ```ts
 * import { renderErrorPage } from "./_viewer_page.ts";
 * import { SpoolError } from "../protocol/errors.ts";
 * const html = renderErrorPage({
 *   status: 404,
 *   error: new SpoolError("not-found", "no resource with id \"x\""),
 * });
 * console.log(html.includes("404 Not Found")); // true
 * ```
 */
export function renderErrorPage(options: ErrorPageOptions): string {
  const { status, error, hint, listingHref } = options;
  const heading = `${status} ${STATUS_TEXT[status as StatusCode] ?? "Error"}`;
  const body = `<header>
${
    listingHref === undefined
      ? ""
      : `<div class="crumb"><a href="${
        escapeHtml(listingHref)
      }">&larr; all resources</a></div>`
  }
<h1 id="title">${escapeHtml(heading)}</h1>
<div class="meta"><span id="code" class="badge refused">${
    escapeHtml(error.code)
  }</span></div>
<p id="error" class="error" role="alert">${
    userHtml(error.message, MAX_SHOWN_ERROR)
  }</p>
</header>
<main class="list">
${hint === undefined ? "" : `<p id="hint" class="hint">${escapeHtml(hint)}</p>`}
</main>`;
  return shell(`${heading} \u2014 Spool`, "FAILED", body);
}
