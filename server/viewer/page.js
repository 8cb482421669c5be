// @ts-check
/// <reference lib="dom" />
/**
 * The browser side of the viewer's resource page (`/view/{id}`). The server
 * serves this file inline, allowed by its hash in the page's
 * Content-Security-Policy (see `script.ts`), with the text of `format.js` in
 * place of the import below. Its parameters are `#app`'s data attributes.
 * Everything from the server goes into the page with `textContent` only.
 *
 * @module
 */

import { faviconFor, formatBytes, formatTime, visibleText } from "./format.js";

/** Requests the tail pane makes for a resource before it gives up. */
const MAX_ATTEMPTS = 20;
/** The pane's first pause before it reconnects; it doubles each time. */
const RETRY_BASE_MS = 500;
/** The pane's longest pause before it reconnects. */
const RETRY_MAX_MS = 10_000;

/**
 * A resource's status, as `/status` and the `status` events carry it (the
 * fields the page shows).
 *
 * @typedef {object} Status
 * @property {string} name
 * @property {string} status
 * @property {number} size
 * @property {string} updatedAt
 * @property {string} [error]
 * @property {string} [sha256]
 */

/** A read that failed; `final` when trying again cannot help. */
class ReadError extends Error {
  /**
   * @param {string} message What went wrong.
   * @param {boolean} final Whether to stop trying.
   */
  constructor(message, final) {
    super(message);
    this.final = final;
  }
}

/**
 * The element with `id`; the page always has it.
 *
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`the page has no #${id}`);
  return element;
}

const app = $("app", HTMLElement);
const data = app.dataset;
const token = data.token ||
  new URLSearchParams(location.search).get("token") || "";
const resourceUrl = new URL(data.resource ?? "", location.href);
/** Lines the tail pane keeps; older ones are dropped from the page. */
const MAX_LINES = Number(data.maxLines);

/**
 * A URL of the resource: `suffix` after its path, `params`, and the token.
 *
 * @param {string} suffix
 * @param {Record<string, string> | null} [params]
 * @returns {URL}
 */
function urlOf(suffix, params) {
  const url = new URL(resourceUrl.pathname + suffix, resourceUrl);
  for (const [key, value] of Object.entries(params ?? {})) {
    url.searchParams.set(key, value);
  }
  if (token) url.searchParams.set("token", token);
  return url;
}

const badge = $("status", HTMLElement);
const sizeEl = $("size", HTMLElement);
const updatedEl = $("updated", HTMLTimeElement);
const errorEl = $("error", HTMLElement);
const shaEl = document.getElementById("sha");
const stateEl = $("stream-state", HTMLElement);
const icon = $("icon", HTMLLinkElement);
/** @type {Status} */
let last = {
  name: "",
  status: data.status ?? "",
  size: Number(data.size),
  updatedAt: "",
};
/** @param {Status} s */
const terminal = (s) => s.status === "COMPLETED" || s.status === "FAILED";

// The tail pane (text resources only).
const pane = document.getElementById("log");
const follow = /** @type {HTMLInputElement | null} */ (
  document.getElementById("follow")
);

/**
 * Text from the server, with invisible characters shown as marked escapes,
 * like the server renders them. visibleText escapes every NUL of its input,
 * so the NULs around each escape can only be the marks.
 *
 * @param {HTMLElement} el
 * @param {string} text
 */
function showText(el, text) {
  const parts = visibleText(text, (e) => "\u0000" + e + "\u0000").split(
    "\u0000",
  );
  el.textContent = "";
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) {
      if (parts[i]) el.appendChild(document.createTextNode(parts[i]));
      continue;
    }
    const span = document.createElement("span");
    span.className = "ctl";
    span.textContent = parts[i];
    el.appendChild(span);
  }
}

/** @param {Status} s */
function showStatus(s) {
  last = s;
  badge.textContent = s.status;
  badge.className = "badge " + s.status;
  sizeEl.textContent = formatBytes(s.size);
  sizeEl.title = s.size.toLocaleString("en-US") + " bytes";
  updatedEl.textContent = formatTime(s.updatedAt);
  updatedEl.dateTime = s.updatedAt;
  showText(
    errorEl,
    s.status === "FAILED" ? "Failed: " + (s.error || "unknown reason") : "",
  );
  if (shaEl) shaEl.textContent = s.sha256 ? "sha256 " + s.sha256 : "";
  document.title = visibleText(s.name) + " \u2014 " + s.status +
    " \u2014 Spool";
  icon.href = faviconFor(s.status);
  if (pane && follow?.checked) pane.scrollTop = pane.scrollHeight;
}

// Statuses: latest first, then every update; the server ends after the final one.
const events = new EventSource(urlOf("/events"));
events.addEventListener("status", (event) => {
  const s = JSON.parse(event.data);
  showStatus(s);
  if (terminal(s)) events.close();
});
events.addEventListener("error", () => {
  if (events.readyState === EventSource.CLOSED && !terminal(last)) {
    errorEl.textContent =
      "Lost the status stream; reload the page to try again.";
  }
});

/** One line of the pane: its element and the text node it grows. */
function newLine() {
  const div = document.createElement("div");
  const text = document.createTextNode("");
  div.appendChild(text);
  return { div, text };
}

/**
 * The tail pane's lines: text appended as it is decoded, in one DOM update
 * per burst, the last MAX_LINES kept (with a note of how many were
 * trimmed), scrolled down while the reader follows the bottom.
 */
class Pane {
  /**
   * @param {HTMLElement} log The `<pre>` of the lines.
   * @param {HTMLInputElement} follow The follow (auto-scroll) toggle.
   */
  constructor(log, follow) {
    this.log = log;
    this.follow = follow;
    this.trimmedEl = $("trimmed", HTMLElement);
    this.trimmedCount = $("trimmed-count", HTMLElement);
    this.current = newLine();
    log.appendChild(this.current.div);
    this.pending = "";
    this.scheduled = false;
    this.trimmed = 0;
    // Following stops when the reader scrolls up and resumes at the bottom.
    log.addEventListener("scroll", () => {
      const bottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
      if (follow.checked !== bottom) follow.checked = bottom;
    });
    follow.addEventListener("change", () => {
      if (follow.checked) this.scrollDown();
    });
    if (globalThis.ResizeObserver) {
      new ResizeObserver(() => {
        if (follow.checked) this.scrollDown();
      }).observe(log);
    }
  }

  scrollDown() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** @param {string} text Decoded text, lines or parts of lines. */
  append(text) {
    if (!text) return;
    this.pending += text;
    if (this.scheduled) return;
    this.scheduled = true;
    // Coalesce bursts into one DOM update; the timer also runs in background tabs.
    requestAnimationFrame(() => this.flush());
    setTimeout(() => this.flush(), 100);
  }

  /** Puts the pending text into the page now. */
  flush() {
    this.scheduled = false;
    if (!this.pending) return;
    const parts = this.pending.split("\n");
    this.pending = "";
    this.current.text.appendData(parts[0]);
    if (parts.length > 1) this.#addLines(parts);
    if (this.follow.checked) this.scrollDown();
  }

  /** @param {string[]} parts The pending text split at its line ends. */
  #addLines(parts) {
    const log = this.log;
    const fresh = parts.length - 1;
    let start = 1;
    if (fresh >= MAX_LINES) {
      // The whole pane is replaced by the newest lines of this batch.
      this.trimmed += log.childElementCount + fresh - MAX_LINES;
      log.textContent = "";
      start = parts.length - MAX_LINES;
    }
    const fragment = document.createDocumentFragment();
    for (let i = start; i < parts.length; i++) {
      this.current = newLine();
      this.current.text.data = parts[i];
      fragment.appendChild(this.current.div);
    }
    log.appendChild(fragment);
    let over = log.childElementCount - MAX_LINES;
    if (over > 0) {
      this.trimmed += over;
      while (over-- > 0) log.firstChild?.remove();
    }
    if (this.trimmed > 0) {
      this.trimmedCount.textContent = this.trimmed.toLocaleString("en-US");
      this.trimmedEl.hidden = false;
    }
  }
}

/** A decoder of the resource's charset (UTF-8 for one the browser lacks). */
function newDecoder() {
  try {
    return new TextDecoder(data.charset, { fatal: false });
  } catch (_) {
    // A charset the browser does not know: read the bytes as UTF-8.
    return new TextDecoder("utf-8");
  }
}

/**
 * The byte an answer's body starts at: a 206's Content-Range, a follow's
 * Spool-Start, else the first.
 *
 * @param {Response} response
 * @returns {number}
 */
function firstByteOf(response) {
  if (response.status === 206) {
    const range = /^bytes (\d+)-/.exec(
      response.headers.get("content-range") || "",
    );
    return range ? Number(range[1]) : NaN;
  }
  const start = response.headers.get("spool-start");
  return start === null ? 0 : Number(start);
}

/**
 * Why the server refused a read; final for a 4xx.
 *
 * @param {Response} response
 * @returns {Promise<ReadError>}
 */
async function refusal(response) {
  let reason = "HTTP " + response.status;
  try {
    reason += ": " + (await response.text()).slice(0, 300);
  } catch (_) {
    // The body broke: the reason is the status alone.
  }
  return new ReadError(reason, response.status >= 400 && response.status < 500);
}

/**
 * The resource's status now, or the last one known if the server cannot
 * be reached.
 *
 * @returns {Promise<Status>}
 */
async function latestStatus() {
  try {
    const response = await fetch(urlOf("/status"), { cache: "no-store" });
    if (response.ok) return await response.json();
  } catch (_) {
    // Unreachable for now: the last status known stands.
  }
  return last;
}

/**
 * The resource's bytes into the pane. While the resource is live, one
 * request follows it from the first byte not shown (?follow=1&start=N) and
 * grows with it; once it is finished, a plain read (Range: bytes=N-) takes
 * what is left. So after a lost connection, and after a follow cut off
 * because the resource FAILED (a broken chunked body, whose last bytes
 * Chromium may drop), the next request starts where the page is: no byte
 * twice, none missing. Bytes count as received only once they are in the
 * pane, and one decoder reads them all, so a character split between two
 * requests decodes whole.
 */
class ByteReader {
  /** @param {Pane} pane */
  constructor(pane) {
    this.pane = pane;
    this.received = 0;
    this.decoder = newDecoder();
  }

  /** @param {boolean} live Follow the resource, or read what is left. */
  async readFrom(live) {
    const received = this.received;
    const response = await fetch(
      urlOf("", live ? { follow: "1", start: String(received) } : null),
      {
        cache: "no-store",
        headers: !live && received > 0
          ? { range: "bytes=" + received + "-" }
          : {},
      },
    );
    if (!response.ok) throw await refusal(response);
    if (!response.body) return;
    const first = firstByteOf(response);
    if (!(first <= received)) {
      response.body.cancel().catch(() => {
        // Nothing of it is used, whatever happens to it.
      });
      throw new ReadError(
        "the server answered from byte " + first + "; expected byte " +
          received + " at the latest",
        true,
      );
    }
    await this.#take(response.body.getReader(), received - first);
  }

  /**
   * Appends what `reader` yields past its first `skip` bytes.
   *
   * @param {ReadableStreamDefaultReader<Uint8Array>} reader
   * @param {number} skip
   */
  async #take(reader, skip) {
    for (;;) {
      const step = await reader.read();
      if (step.done) return;
      let chunk = step.value;
      if (skip >= chunk.byteLength) {
        skip -= chunk.byteLength;
        continue;
      }
      if (skip > 0) {
        chunk = chunk.subarray(skip);
        skip = 0;
      }
      this.received += chunk.byteLength;
      this.pane.append(this.decoder.decode(chunk, { stream: true }));
    }
  }

  /** @param {Status} s The final status. */
  ended(s) {
    this.pane.append(this.decoder.decode());
    this.pane.flush();
    const bytes = this.received.toLocaleString("en-US") + " bytes";
    if (s.status === "FAILED") {
      showStatus(s);
      stateEl.textContent = "stopped: the upload failed after " + bytes;
      return;
    }
    stateEl.textContent = "end of resource (" + bytes + ")";
  }

  /** Reads until the resource ended and the pane has all of it, or gives up. */
  async run() {
    let s = last;
    for (let attempt = 0;; attempt++) {
      const live = !terminal(s);
      if (!live && this.received >= s.size) return this.ended(s);
      stateEl.textContent = live ? "following\u2026" : "reading\u2026";
      /** @type {unknown} */
      let problem = null;
      try {
        await this.readFrom(live);
      } catch (error) {
        problem = error;
      }
      this.pane.flush();
      s = await latestStatus();
      if (terminal(s) && this.received >= s.size) return this.ended(s);
      const final = problem instanceof ReadError && problem.final;
      if (final || attempt >= MAX_ATTEMPTS) {
        const reason = problem instanceof Error
          ? problem.message || String(problem)
          : problem
          ? String(problem)
          : "the stream ended early";
        showText(stateEl, "stopped: " + reason);
        return;
      }
      // The follow ended with the resource: read the rest at once.
      if (live && terminal(s)) continue;
      // The stream broke (or ended) before the end: reconnect, from where the page is.
      stateEl.textContent = "connection lost; reconnecting\u2026";
      await new Promise((resolve) => {
        setTimeout(
          resolve,
          Math.min(RETRY_MAX_MS, RETRY_BASE_MS * Math.pow(2, attempt)),
        );
      });
    }
  }
}

if (pane && follow) new ByteReader(new Pane(pane, follow)).run();
