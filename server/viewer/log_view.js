// @ts-check
/// <reference lib="dom" />
/**
 * The lines on the page: a window of consecutive lines of the resource (at
 * most `maxLines` of them), each a `.line` element with its number (a link,
 * `#L12`), its arrival time and its text. Numbers and times are drawn by
 * the CSS from data attributes, so a line's `textContent` is the line's
 * text alone (and copying lines copies no numbers). The window grows at
 * either end and is trimmed at the other; what it shows of sections, search
 * matches and times is up to its hooks.
 *
 * @module
 */

import { markerOf } from "./sections.js";
import { dropChars, renderRuns } from "./render.js";

/**
 * @typedef {import("./line_text.js").LineRecord} LineRecord
 * @typedef {import("./ansi.js").Run} Run
 * @typedef {import("./sections.js").Section<LineRecord>} Section
 */

/**
 * A line on the page.
 *
 * @typedef {object} Entry
 * @property {LineRecord} rec
 * @property {HTMLDivElement} el
 * @property {HTMLAnchorElement} ln
 * @property {HTMLElement} ts
 * @property {HTMLElement} txt
 * @property {import("./sections.js").Marker | null} marker
 * @property {Run[]} runs What the line shows (a group header: its title).
 * @property {string} text The text of `runs`.
 * @property {[number, number][]} marks Search matches in `text`.
 * @property {number} current The current match among `marks`, or -1.
 * @property {number} searched The search version `marks` are of.
 * @property {readonly Section[]} chain The sections the line is in.
 * @property {Section | null} section The section the line starts.
 */

/**
 * What the parts around the lines do when they change.
 *
 * @typedef {object} ViewHooks
 * @property {(entries: Entry[]) => void} added New lines at the bottom.
 * @property {() => void} rebuilt Lines replaced, added at the top or trimmed.
 * @property {(entry: Entry) => void} updated The line in progress changed.
 * @property {(entry: Entry) => void} dropped The line in progress went (it
 *   is complete now, or the view moved away from the end).
 */

/** @type {WeakMap<Element, () => Entry>} The entry of each line element. */
const ELEMENTS = new WeakMap();

/**
 * The line (entry) an element of the log is in, if any.
 *
 * @param {EventTarget | null} target
 * @returns {Entry | undefined}
 */
export function entryAt(target) {
  const el = target instanceof Element ? target.closest(".line") : null;
  return el ? ELEMENTS.get(el)?.() : undefined;
}

/**
 * Takes consecutive lines out of the page at once (one by one, thousands
 * cost the page a visible pause).
 *
 * @param {Entry[]} entries
 */
function removeAll(entries) {
  const first = entries[0];
  const last = entries.at(-1);
  if (!first || !last) return;
  const range = document.createRange();
  range.setStartBefore(first.el);
  range.setEndAfter(last.el);
  range.deleteContents();
}

/** @type {ViewHooks} */
const NO_HOOKS = { added() {}, rebuilt() {}, updated() {}, dropped() {} };

/**
 * The window of lines in `#log`.
 *
 * @example
 * ```js ignore
 * const view = new LogView(document.getElementById("log"), 5000);
 * view.append(records);
 * ```
 */
export class LogView {
  /**
   * @param {HTMLElement} log
   * @param {number} maxLines
   */
  constructor(log, maxLines) {
    this.log = log;
    this.maxLines = maxLines;
    /** @type {Entry[]} Complete lines, in order. */
    this.entries = [];
    /** @type {Entry | null} The line in progress, after them. */
    this.partial = null;
    /** @type {ViewHooks} */
    this.hooks = NO_HOOKS;
    this.digits = 0;
  }

  /** @returns {Entry[]} Every line, the one in progress last. */
  all() {
    return this.partial ? [...this.entries, this.partial] : this.entries;
  }

  /** @returns {number | null} The number of the first line, if known. */
  get first() {
    return this.all()[0]?.rec.n ?? null;
  }

  /** @returns {number | null} The number after the last complete line. */
  get end() {
    const last = this.entries.at(-1);
    return last && last.rec.n !== null ? last.rec.n + 1 : null;
  }

  /**
   * The line with number `n`, if the page has it.
   *
   * @param {number} n
   * @returns {Entry | undefined}
   */
  entryOf(n) {
    const all = this.all();
    const first = all[0]?.rec.n;
    if (first === null || first === undefined) return undefined;
    const entry = all[n - first];
    return entry?.rec.n === n ? entry : undefined;
  }

  /**
   * @param {LineRecord} rec
   * @returns {Entry}
   */
  #make(rec) {
    const el = document.createElement("div");
    el.className = "line";
    const ln = document.createElement("a");
    ln.className = "ln";
    const ts = document.createElement("span");
    ts.className = "ts";
    const txt = document.createElement("span");
    txt.className = "txt";
    el.append(ln, ts, txt);
    ELEMENTS.set(el, () => entry);
    /** @type {Entry} */
    const entry = {
      rec,
      el,
      ln,
      ts,
      txt,
      marker: null,
      runs: rec.runs,
      text: rec.text,
      marks: [],
      current: -1,
      searched: -1,
      chain: [],
      section: null,
    };
    this.#read(entry);
    this.number(entry);
    return entry;
  }

  /**
   * Takes the entry's record in: its marker, what it shows, its text.
   *
   * @param {Entry} entry
   */
  #read(entry) {
    const rec = entry.rec;
    entry.marker = markerOf(rec.head, rec.text);
    entry.runs = entry.marker?.prefix
      ? dropChars(rec.runs, entry.marker.prefix)
      : rec.runs;
    entry.text = entry.marker?.prefix
      ? rec.text.slice(entry.marker.prefix)
      : rec.text;
    entry.el.classList.toggle("partial", !rec.complete);
    entry.el.classList.toggle("sec-end", entry.marker?.kind === "end");
    entry.el.classList.toggle("cut", rec.dropped > 0);
    if (rec.dropped > 0) {
      entry.el.dataset.more = rec.dropped.toLocaleString("en-US");
    }
    this.paint(entry);
  }

  /**
   * Draws the entry's text with its search marks.
   *
   * @param {Entry} entry
   */
  paint(entry) {
    renderRuns(entry.txt, entry.runs, entry.marks, entry.current);
  }

  /**
   * Shows the entry's number (and its link), once known.
   *
   * @param {Entry} entry
   */
  number(entry) {
    const n = entry.rec.n;
    if (n === null) return;
    const shown = String(n + 1);
    entry.ln.dataset.n = shown;
    entry.ln.href = "#L" + shown;
    if (shown.length > this.digits) {
      this.digits = shown.length;
      this.log.style.setProperty("--digits", String(this.digits));
    }
  }

  /** Shows the numbers of every line (they became known). */
  renumber() {
    for (const entry of this.all()) this.number(entry);
  }

  /**
   * Adds complete lines after the last one; the first completes the line
   * in progress, if there is one.
   *
   * @param {LineRecord[]} recs
   */
  append(recs) {
    if (recs.length === 0) return;
    this.setPartial(null);
    const made = recs.map((rec) => this.#make(rec));
    const fragment = document.createDocumentFragment();
    for (const entry of made) fragment.appendChild(entry.el);
    this.log.insertBefore(fragment, this.partial?.el ?? null);
    this.entries.push(...made);
    this.hooks.added(made);
  }

  /** @param {LineRecord | null} rec The line in progress, or none. */
  setPartial(rec) {
    if (rec === null) {
      const old = this.partial;
      if (old === null) return;
      old.el.remove();
      this.partial = null;
      this.hooks.dropped(old);
      return;
    }
    if (this.partial === null) {
      this.partial = this.#make(rec);
      this.log.appendChild(this.partial.el);
      this.hooks.added([this.partial]);
      return;
    }
    this.partial.rec = rec;
    this.#read(this.partial);
    this.number(this.partial);
    this.hooks.updated(this.partial);
  }

  /**
   * Adds lines before the first one, keeping what the reader sees in place.
   *
   * @param {LineRecord[]} recs
   */
  prepend(recs) {
    if (recs.length === 0) return;
    const made = recs.map((rec) => this.#make(rec));
    const fragment = document.createDocumentFragment();
    for (const entry of made) fragment.appendChild(entry.el);
    const before = this.log.scrollHeight;
    const top = this.log.scrollTop;
    this.log.insertBefore(fragment, this.log.firstChild);
    this.entries.unshift(...made);
    this.log.scrollTop = top + this.log.scrollHeight - before;
    this.hooks.rebuilt();
  }

  /**
   * Replaces every line.
   *
   * @param {LineRecord[]} recs Complete lines.
   * @param {LineRecord | null} partial The line in progress after them.
   */
  replace(recs, partial) {
    this.log.textContent = "";
    this.entries = [];
    this.partial = null;
    const hooks = this.hooks;
    this.hooks = NO_HOOKS;
    this.append(recs);
    this.setPartial(partial);
    this.hooks = hooks;
    hooks.rebuilt();
  }

  /**
   * Drops lines beyond `maxLines`, at the top or at the bottom (with the
   * line in progress); returns how many went.
   *
   * @param {"top" | "bottom"} side
   * @returns {number}
   */
  trim(side) {
    const over = this.entries.length + (this.partial ? 1 : 0) - this.maxLines;
    if (over <= 0) return 0;
    const top = this.log.scrollTop;
    if (side === "top") {
      const before = this.log.scrollHeight;
      removeAll(this.entries.splice(0, over));
      this.log.scrollTop = top - (before - this.log.scrollHeight);
    } else {
      this.setPartial(null);
      removeAll(this.entries.splice(this.maxLines));
    }
    this.hooks.rebuilt();
    return over;
  }

  /** @returns {boolean} Whether the view is scrolled to its bottom. */
  atBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  /**
   * Scrolls so that `entry` is in the middle of the view.
   *
   * @param {Entry} entry
   */
  reveal(entry) {
    // `#log` is positioned: it is the offset parent of its lines.
    const log = this.log;
    const top = entry.el.offsetTop;
    log.scrollTop = Math.max(
      0,
      top - (log.clientHeight - entry.el.offsetHeight) / 2,
    );
  }
}
