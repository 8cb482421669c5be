// @ts-check
/// <reference lib="dom" />
/**
 * Sections on the page (`sections.js` finds them): a header line with a
 * toggle and the section's duration, its lines hidden while it is
 * collapsed. GitLab sections start collapsed when marked
 * `[collapsed=true]`; GitHub groups collapse once they end, as GitHub shows
 * them; the reader's toggles win. A section still open while the resource
 * is live shows as running, its duration growing.
 *
 * @module
 */

import { SectionTracker } from "./sections.js";
import { formatDuration } from "./format.js";

/**
 * @typedef {import("./log_view.js").Entry} Entry
 * @typedef {import("./log_view.js").LogView} LogView
 * @typedef {import("./line_text.js").LineRecord} LineRecord
 * @typedef {import("./sections.js").Section<LineRecord>} Section
 */

/**
 * What sections need from the page.
 *
 * @typedef {object} SectionContext
 * @property {() => boolean} live Whether the resource is still growing.
 * @property {(rec: LineRecord) => number | undefined} timeOf When a line
 *   arrived (ms), if known.
 * @property {() => void} needTimes Asks for the arrival times (GitHub groups
 *   have no times of their own).
 */

/**
 * The sections of the lines in a {@linkcode LogView}.
 *
 * @example
 * ```js ignore
 * const sections = new SectionsView(view, { live: () => true, timeOf, needTimes });
 * sections.rebuild();
 * ```
 */
export class SectionsView {
  /**
   * @param {LogView} view
   * @param {SectionContext} context
   */
  constructor(view, context) {
    this.view = view;
    this.context = context;
    /** @type {SectionTracker<LineRecord>} */
    this.tracker = new SectionTracker();
    /** @type {WeakMap<LineRecord, boolean>} The reader's choices, by header. */
    this.choices = new WeakMap();
    /** @type {Set<Entry>} Header lines on the page. */
    this.headers = new Set();
  }

  /** Places every line again (lines came at the top, or went). */
  rebuild() {
    this.tracker = new SectionTracker();
    this.headers.clear();
    for (const entry of this.view.all()) this.#place(entry);
    this.#applyAll();
  }

  /** @param {Entry[]} entries New lines at the bottom. */
  added(entries) {
    let marked = false;
    for (const entry of entries) marked = this.#place(entry) || marked;
    if (marked) this.#applyAll();
    else for (const entry of entries) entry.el.hidden = this.hidden(entry);
  }

  /** @param {Entry} entry The line in progress changed. */
  updated(entry) {
    entry.chain = this.tracker.chain;
    entry.el.hidden = this.hidden(entry);
  }

  /**
   * @param {Entry} entry
   * @returns {boolean} Whether the line is a marker.
   */
  #place(entry) {
    // The line in progress may still change: it is placed once complete.
    if (!entry.rec.complete) {
      entry.chain = this.tracker.chain;
      entry.section = null;
      return false;
    }
    const { chain, started } = this.tracker.place(entry.rec, entry.marker);
    entry.chain = chain;
    entry.section = started;
    if (started) this.#decorate(entry, started);
    return entry.marker !== null;
  }

  /**
   * Whether `section` is collapsed now.
   *
   * @param {Section} section
   * @returns {boolean}
   */
  collapsed(section) {
    const choice = this.choices.get(section.start);
    if (choice !== undefined) return choice;
    return section.flavour === "gitlab" ? section.collapsed : section.closed;
  }

  /**
   * Whether a collapsed section hides `entry` (a header shows while its own
   * section is collapsed).
   *
   * @param {Entry} entry
   * @returns {boolean}
   */
  hidden(entry) {
    return entry.chain.some((s) => s !== entry.section && this.collapsed(s));
  }

  #applyAll() {
    for (const entry of this.view.all()) entry.el.hidden = this.hidden(entry);
    for (const header of this.headers) this.refresh(header);
  }

  /**
   * Makes `entry` the header of `section`: a toggle and a duration.
   *
   * @param {Entry} entry
   * @param {Section} section
   */
  #decorate(entry, section) {
    this.headers.add(entry);
    entry.el.classList.add("sec-head");
    if (!entry.el.querySelector(".tog")) {
      const toggle = document.createElement("button");
      toggle.className = "tog";
      toggle.type = "button";
      entry.txt.before(toggle);
      const duration = document.createElement("span");
      duration.className = "dur";
      entry.txt.after(duration);
    }
    if (section.flavour === "github") this.context.needTimes();
  }

  /**
   * Shows a header's state: open or collapsed, running, its duration.
   *
   * @param {Entry} entry
   */
  refresh(entry) {
    const section = entry.section;
    const toggle = entry.el.querySelector(".tog");
    const duration = entry.el.querySelector(".dur");
    if (!section || !(toggle instanceof HTMLElement)) return;
    const collapsed = this.collapsed(section);
    toggle.setAttribute("aria-expanded", String(!collapsed));
    toggle.title = (collapsed ? "expand " : "collapse ") + section.title;
    const running = !section.closed && this.context.live();
    entry.el.classList.toggle("running", running);
    entry.el.classList.toggle("collapsed", collapsed);
    const ms = this.#duration(section, running);
    if (duration instanceof HTMLElement) {
      duration.dataset.d = ms === undefined
        ? (running ? "running" : "")
        : (running ? "running " : "") + formatDuration(ms);
    }
  }

  /**
   * @param {Section} section
   * @param {boolean} running
   * @returns {number | undefined}
   */
  #duration(section, running) {
    const gitlab = section.flavour === "gitlab";
    const start = gitlab
      ? section.startTime
      : this.context.timeOf(section.start);
    if (start === null || start === undefined) return undefined;
    if (running) return Date.now() - start;
    const end = gitlab
      ? section.endTime
      : section.end && this.context.timeOf(section.end);
    return end === null || end === undefined ? undefined : end - start;
  }

  /**
   * Collapses or expands the section `entry` heads.
   *
   * @param {Entry} entry
   */
  toggle(entry) {
    if (!entry.section) return;
    this.choices.set(entry.section.start, !this.collapsed(entry.section));
    this.#applyAll();
  }

  /**
   * Expands every section that hides `entry`.
   *
   * @param {Entry} entry
   */
  expandFor(entry) {
    if (!this.hidden(entry)) return;
    for (const section of entry.chain) {
      if (section !== entry.section) this.choices.set(section.start, false);
    }
    this.#applyAll();
  }

  /** Updates the headers (durations grow, the resource ended, times came). */
  tick() {
    for (const header of this.headers) this.refresh(header);
  }
}
