// @ts-check
/// <reference lib="dom" />
/**
 * Search in the lines on the page (`search.js` matches): every match
 * marked, a count, the current match moved with next and previous, and the
 * marks kept up to date as lines arrive, go or change.
 *
 * @module
 */

import { compileSearch } from "./search.js";

/**
 * @typedef {import("./log_view.js").Entry} Entry
 * @typedef {import("./log_view.js").LogView} LogView
 */

/**
 * One match: its line and its index among the line's marks.
 *
 * @typedef {{ entry: Entry, index: number }} Hit
 */

/**
 * The search box and what it finds.
 *
 * @example
 * ```js ignore
 * const search = new SearchView(view, { input, regex, caseSensitive, count }, reveal);
 * search.run();
 * ```
 */
export class SearchView {
  /**
   * @param {LogView} view
   * @param {{ input: HTMLInputElement, regex: HTMLInputElement, caseSensitive: HTMLInputElement, count: HTMLElement }} controls
   * @param {(entry: Entry) => void} reveal Shows a line (expands, scrolls).
   */
  constructor(view, controls, reveal) {
    this.view = view;
    this.controls = controls;
    this.reveal = reveal;
    /** @type {((text: string) => [number, number][]) | undefined} */
    this.find = undefined;
    this.error = "";
    this.version = 0;
    /** @type {Hit[]} */
    this.hits = [];
    this.current = -1;
  }

  /** Runs the query in the box over every line again. */
  run() {
    const { input, regex, caseSensitive } = this.controls;
    const compiled = compileSearch(input.value, {
      regex: regex.checked,
      caseSensitive: caseSensitive.checked,
    });
    this.find = compiled.find;
    this.error = compiled.error ?? "";
    this.version++;
    this.current = -1;
    this.rebuilt();
    if (this.hits.length > 0) this.#select(this.#nearest());
  }

  /**
   * Marks the matches of `entry`, if its marks are not of this search.
   *
   * @param {Entry} entry
   * @returns {boolean} Whether its marks changed.
   */
  #mark(entry) {
    if (entry.searched === this.version) return false;
    const had = entry.marks.length > 0;
    entry.marks = this.find ? this.find(entry.text) : [];
    entry.current = -1;
    entry.searched = this.version;
    if (had || entry.marks.length > 0) this.view.paint(entry);
    return true;
  }

  /** @param {Entry[]} entries New lines at the bottom. */
  added(entries) {
    for (const entry of entries) {
      this.#mark(entry);
      entry.marks.forEach((_, index) => this.hits.push({ entry, index }));
    }
    this.#show();
  }

  /** Lines came at the top, went, or were replaced: count again. */
  rebuilt() {
    const was = this.hits[this.current];
    this.hits = [];
    for (const entry of this.view.all()) {
      this.#mark(entry);
      entry.marks.forEach((_, index) => this.hits.push({ entry, index }));
    }
    this.current = was
      ? this.hits.findIndex((h) =>
        h.entry === was.entry && h.index === was.index
      )
      : -1;
    this.#show();
  }

  /** @param {Entry} entry The line in progress changed. */
  updated(entry) {
    entry.searched = -1;
    const was = this.hits[this.current];
    this.hits = this.hits.filter((hit) => hit.entry !== entry);
    this.#mark(entry);
    entry.marks.forEach((_, index) => this.hits.push({ entry, index }));
    if (was?.entry === entry) this.current = -1;
    this.#show();
  }

  /** @param {Entry} entry The line in progress went. */
  dropped(entry) {
    const was = this.hits[this.current];
    this.hits = this.hits.filter((hit) => hit.entry !== entry);
    this.current = was ? this.hits.indexOf(was) : -1;
    this.#show();
  }

  /**
   * Moves to the next match (`step` 1) or the previous one (-1).
   *
   * @param {1 | -1} step
   */
  move(step) {
    if (this.hits.length === 0) return;
    const from = this.current === -1
      ? (step === 1 ? this.#nearest() - 1 : this.#nearest())
      : this.current;
    this.#select((from + step + this.hits.length) % this.hits.length);
  }

  /** @returns {number} The first match at or below the top of the view. */
  #nearest() {
    const top = this.view.log.scrollTop;
    const at = this.hits.findIndex((hit) =>
      !hit.entry.el.hidden && hit.entry.el.offsetTop >= top
    );
    return at === -1 ? 0 : at;
  }

  /** @param {number} index */
  #select(index) {
    const before = this.hits[this.current];
    if (before) {
      before.entry.current = -1;
      this.view.paint(before.entry);
    }
    this.current = index;
    const hit = this.hits[index];
    hit.entry.current = hit.index;
    this.view.paint(hit.entry);
    this.reveal(hit.entry);
    this.#show();
  }

  /** Shows the count (`3 / 12`), or what is wrong with the query. */
  #show() {
    const { count, input } = this.controls;
    count.classList.toggle("bad", this.error !== "");
    if (this.error) count.textContent = "invalid: " + this.error;
    else if (input.value === "") count.textContent = "";
    else if (this.hits.length === 0) count.textContent = "no matches";
    else {
      const total = this.hits.length.toLocaleString("en-US");
      count.textContent = this.current === -1
        ? total + " matches"
        : (this.current + 1).toLocaleString("en-US") + " / " + total;
    }
  }
}
