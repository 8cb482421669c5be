// @ts-check
/// <reference lib="dom" />
/**
 * The browser side of the viewer's resource page (`/view/{id}`). The server
 * serves this file inline, allowed by its hash in the page's
 * Content-Security-Policy, with the modules it imports bundled in (see
 * `script.ts`). Its parameters are `#app`'s data attributes. Everything from
 * the server goes into the page as text (`textContent`, text nodes).
 *
 * The status comes by Server-Sent Events; the log (text resources) is read
 * from near its end, shown as a terminal would show it, with numbered and
 * linkable lines, sections, search and arrival times.
 *
 * @module
 */

import { faviconFor, formatBytes, formatTime, visibleText } from "./format.js";
import { entryAt, LogView } from "./log_view.js";
import { Navigator } from "./navigator.js";
import { SectionsView } from "./log_sections.js";
import { SearchView } from "./log_search.js";
import { TimesView } from "./log_times.js";
import { LineLinks } from "./line_links.js";
import { ByteReader, terminal } from "./reader.js";
import { showText } from "./render.js";

/**
 * @typedef {import("./reader.js").Status} Status
 * @typedef {import("./log_view.js").Entry} Entry
 */

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
  createdAt: data.created ?? "",
  updatedAt: "",
};

/** @type {((s: Status) => void)[]} Listeners of every status the page learns. */
const statusListeners = [];

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
  for (const listener of statusListeners) listener(s);
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
 * Whether a key press is typing in a text field (keys are not commands then).
 *
 * @param {EventTarget | null} target
 * @returns {boolean}
 */
function typing(target) {
  if (target instanceof HTMLTextAreaElement) return true;
  return target instanceof HTMLInputElement &&
    !["checkbox", "radio", "button"].includes(target.type);
}

/**
 * The log pane and everything around it, for a text resource.
 *
 * @param {HTMLElement} pane
 */
function startLog(pane) {
  const follow = $("follow", HTMLInputElement);
  const view = new LogView(pane, Number(data.maxLines));
  const nav = new Navigator(view, {
    urlOf,
    charset: data.charset ?? "utf-8",
    maxLines: Number(data.maxLines),
    pageLines: Number(data.pageLines),
  }, {
    moved: () => {
      showPosition(view, nav);
      // The numbers may have come: a linked line can be found now.
      links.go();
    },
    flushed: () => {
      if (follow.checked) view.scrollToBottom();
      links.go();
    },
    failed: (error) =>
      showText(stateEl, "could not read lines: " + String(error)),
  });
  const times = new TimesView(view, {
    start: Date.parse(last.createdAt),
    load: async () => (await fetch(urlOf("/checkpoints"))).json(),
  });
  const sections = new SectionsView(view, {
    live: () => !terminal(last),
    timeOf: (rec) => times.timeOf(rec),
    needTimes: () => times.need(),
  });
  times.onChange = () => sections.tick();
  /** @param {Entry} entry */
  const reveal = (entry) => {
    sections.expandFor(entry);
    follow.checked = false;
    view.reveal(entry);
  };
  const search = new SearchView(view, {
    input: $("search", HTMLInputElement),
    regex: $("search-regex", HTMLInputElement),
    caseSensitive: $("search-case", HTMLInputElement),
    count: $("search-count", HTMLElement),
  }, reveal);
  const links = new LineLinks(view, nav, {
    reveal,
    picked: () => follow.checked = false,
    state: (text) => stateEl.textContent = text,
  });
  view.hooks = hooksOf(view, { sections, search, times, links });
  const controls = { view, nav, follow, search, times, sections };
  wireControls(controls);
  wireKeys(controls);
  statusListeners.push((s) => {
    times.add(s.size, s.updatedAt);
    if (terminal(s)) sections.tick();
  });
  const ticker = setInterval(() => {
    sections.tick();
    if (terminal(last)) clearInterval(ticker);
  }, 1000);
  readLog(nav, sections);
  links.fromHash();
}

/**
 * What the parts around the lines do when lines come, go or change.
 *
 * @param {LogView} view
 * @param {{ sections: SectionsView, search: SearchView, times: TimesView, links: LineLinks }} parts
 * @returns {import("./log_view.js").ViewHooks}
 */
function hooksOf(view, parts) {
  const { sections, search, times, links } = parts;
  return {
    added(entries) {
      sections.added(entries);
      search.added(entries);
      times.fill(entries);
      links.decorate(entries);
    },
    rebuilt() {
      sections.rebuild();
      search.rebuilt();
      times.fill(view.all());
      links.decorate(view.all());
    },
    updated(entry) {
      sections.updated(entry);
      search.updated(entry);
      times.fill([entry]);
    },
    dropped: (entry) => search.dropped(entry),
  };
}

/**
 * Reads the log from near its end (its last `data-tail-bytes`).
 *
 * @param {Navigator} nav
 * @param {SectionsView} sections
 */
function readLog(nav, sections) {
  const start = Math.max(0, Number(data.size) - Number(data.tailBytes));
  nav.start(start);
  showPosition(nav.view, nav);
  new ByteReader({
    urlOf,
    status: () => last,
    latest: latestStatus,
    state: (text) => showText(stateEl, text),
    bytes: (chunk) => nav.bytes(chunk),
    ended: (s, received) => {
      nav.finish();
      sections.tick();
      const bytes = received.toLocaleString("en-US") + " bytes";
      if (s.status === "FAILED") {
        showStatus(s);
        stateEl.textContent = "stopped: the upload failed after " + bytes;
        return;
      }
      stateEl.textContent = "end of resource (" + bytes + ")";
    },
  }, start).run();
}

/**
 * @typedef {object} Controls
 * @property {LogView} view
 * @property {Navigator} nav
 * @property {HTMLInputElement} follow
 * @property {SearchView} search
 * @property {TimesView} times
 * @property {SectionsView} sections
 */

/**
 * Follows the end (attached, scrolled down), or stops.
 *
 * @param {Controls} c
 * @param {boolean} on
 */
function setFollow(c, on) {
  c.follow.checked = on;
  if (!on) return;
  if (!c.nav.attached) c.nav.attach();
  c.view.scrollToBottom();
}

/** @param {Controls} c */
function wireControls(c) {
  const { view, nav, follow, search, times, sections } = c;
  const log = view.log;
  // Following stops when the reader scrolls up and resumes at the bottom.
  log.addEventListener("scroll", () => {
    const bottom = nav.attached && view.atBottom();
    if (follow.checked !== bottom) follow.checked = bottom;
  });
  follow.addEventListener("change", () => setFollow(c, follow.checked));
  if (globalThis.ResizeObserver) {
    new ResizeObserver(() => {
      if (follow.checked) view.scrollToBottom();
    }).observe(log);
  }
  log.addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLElement) || !target.matches(".tog")) return;
    const entry = entryAt(target);
    if (entry) sections.toggle(entry);
  });
  const timesBox = $("times", HTMLInputElement);
  timesBox.addEventListener("change", () => times.show(timesBox.checked));
  const input = $("search", HTMLInputElement);
  input.addEventListener("input", () => search.run());
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    search.move(event.shiftKey ? -1 : 1);
  });
  for (const id of ["search-regex", "search-case"]) {
    $(id, HTMLInputElement).addEventListener("change", () => search.run());
  }
  $("search-next", HTMLButtonElement).addEventListener(
    "click",
    () => search.move(1),
  );
  $("search-prev", HTMLButtonElement).addEventListener(
    "click",
    () => search.move(-1),
  );
  $("load-earlier", HTMLButtonElement).addEventListener(
    "click",
    () => nav.earlier(),
  );
  $("load-later", HTMLButtonElement).addEventListener(
    "click",
    () => nav.later(),
  );
  $("jump-end", HTMLButtonElement).addEventListener(
    "click",
    () => setFollow(c, true),
  );
}

/**
 * `/` searches, `f` toggles following, `g` and `G` go to the first and the
 * last line.
 *
 * @param {Controls} c
 */
function wireKeys(c) {
  document.addEventListener("keydown", async (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape" && event.target instanceof HTMLElement) {
        event.target.blur();
      }
      return;
    }
    if (event.key === "/") {
      event.preventDefault();
      const input = $("search", HTMLInputElement);
      input.focus();
      input.select();
    } else if (event.key === "f") setFollow(c, !c.follow.checked);
    else if (event.key === "G") setFollow(c, true);
    else if (event.key === "g") {
      c.follow.checked = false;
      // Line 1 onto the page if it can be (numbers known), then the top.
      await c.nav.show(0);
      c.view.log.scrollTop = 0;
    }
  });
}

/**
 * Shows what is known of the log: its line count, the lines before and
 * after the page's.
 *
 * @param {LogView} view
 * @param {Navigator} nav
 */
function showPosition(view, nav) {
  const total = nav.total;
  $("lines", HTMLElement).textContent = total === null
    ? "counting lines\u2026"
    : total.toLocaleString("en-US") + (total === 1 ? " line" : " lines");
  const first = view.first;
  const earlier = $("earlier", HTMLElement);
  const cut = first === null
    ? Number(data.size) > Number(data.tailBytes)
    : first > 0;
  earlier.hidden = !cut;
  $("earlier-text", HTMLElement).textContent = first === null
    ? "Earlier lines are not on the page (counting them\u2026)."
    : first === 1
    ? "Line 1 is not on the page."
    : "Lines 1\u2013" + first.toLocaleString("en-US") + " are not on the page.";
  $("load-earlier", HTMLButtonElement).disabled = first === null || nav.busy;
  const later = $("later", HTMLElement);
  later.hidden = nav.attached;
  const end = view.end ?? 0;
  const newer = Math.max(0, (total ?? end) - end);
  $("later-text", HTMLElement).textContent = newer.toLocaleString("en-US") +
    (newer === 1 ? " newer line is" : " newer lines are") +
    " not on the page.";
  $("load-later", HTMLButtonElement).disabled = nav.busy;
}

const pane = document.getElementById("log");
if (pane) startLog(pane);
