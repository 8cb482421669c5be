// @ts-check
/// <reference lib="dom" />
/**
 * Links to lines: a click on a line's number sets `#L120` in the address,
 * a shift-click `#L120-L140` (from the line clicked before); an address
 * with such a fragment opens there, the lines highlighted, whether they are
 * on the page, still to be read by number, or not written yet (the page
 * waits for them while the log grows).
 *
 * @module
 */

import { entryAt } from "./log_view.js";

/**
 * @typedef {import("./log_view.js").Entry} Entry
 * @typedef {import("./log_view.js").LogView} LogView
 * @typedef {import("./navigator.js").Navigator} Navigator
 */

/**
 * The lines a fragment names (0-based, inclusive), if it names any.
 *
 * @example
 * ```js ignore
 * linesOfHash("#L120-L140"); // { from: 119, to: 139 }
 * ```
 *
 * @param {string} hash `location.hash`.
 * @returns {{ from: number, to: number } | null}
 */
export function linesOfHash(hash) {
  const match = /^#L(\d{1,15})(?:-L?(\d{1,15}))?$/.exec(hash);
  if (!match) return null;
  const a = Number(match[1]);
  const b = match[2] === undefined ? a : Number(match[2]);
  if (a < 1 || b < 1) return null;
  return { from: Math.min(a, b) - 1, to: Math.max(a, b) - 1 };
}

/**
 * The selected lines and the links to them.
 *
 * @example
 * ```js ignore
 * const links = new LineLinks(view, nav, { reveal, state });
 * links.fromHash();
 * ```
 */
export class LineLinks {
  /**
   * @param {LogView} view
   * @param {Navigator} nav
   * @param {{ reveal: (entry: Entry) => void, picked: () => void, state: (text: string) => void }} page
   *   `reveal` shows a line (expands its sections, scrolls, stops
   *   following); `picked`: the reader clicked a line's number.
   */
  constructor(view, nav, page) {
    this.view = view;
    this.nav = nav;
    this.page = page;
    /** @type {{ from: number, to: number } | null} */
    this.selection = null;
    /** @type {number | null} The line a shift-click extends from. */
    this.anchor = null;
    /** Whether the selection is still to be shown. */
    this.pending = false;
    this.going = false;
    view.log.addEventListener("click", (event) => this.#click(event));
    addEventListener("hashchange", () => this.fromHash());
  }

  /** Takes the selection from the address, and goes there. */
  fromHash() {
    this.selection = linesOfHash(location.hash);
    this.anchor = this.selection?.from ?? null;
    this.pending = this.selection !== null;
    this.decorate(this.view.all());
    this.go();
  }

  /** Goes to the selection if it is still to be shown and can be now. */
  async go() {
    const selection = this.selection;
    if (!this.pending || this.going || !selection || this.nav.base === null) {
      return;
    }
    this.going = true;
    try {
      const entry = await this.nav.show(selection.from);
      if (selection !== this.selection) return;
      if (entry === undefined) {
        const total = this.nav.total ?? 0;
        if (selection.from >= total) {
          this.page.state(
            "waiting for line " + (selection.from + 1).toLocaleString("en-US") +
              " (the log has " + total.toLocaleString("en-US") + ")\u2026",
          );
        }
        return;
      }
      this.pending = false;
      this.decorate(this.view.all());
      this.page.reveal(entry);
    } finally {
      this.going = false;
    }
  }

  /** @param {MouseEvent} event */
  #click(event) {
    const target = event.target;
    if (!(target instanceof HTMLAnchorElement) || !target.matches(".ln")) {
      return;
    }
    const n = entryAt(target)?.rec.n;
    if (n === null || n === undefined) return;
    event.preventDefault();
    const from = event.shiftKey && this.anchor !== null ? this.anchor : n;
    if (!event.shiftKey || this.anchor === null) this.anchor = n;
    this.selection = { from: Math.min(from, n), to: Math.max(from, n) };
    const { from: a, to: b } = this.selection;
    history.replaceState(
      null,
      "",
      "#L" + (a + 1) + (a === b ? "" : "-L" + (b + 1)),
    );
    this.pending = false;
    this.decorate(this.view.all());
    this.page.picked();
  }

  /** @param {Entry[]} entries Lines to show selected or not. */
  decorate(entries) {
    const s = this.selection;
    for (const entry of entries) {
      const n = entry.rec.n;
      entry.el.classList.toggle(
        "hl",
        s !== null && n !== null && n >= s.from && n <= s.to,
      );
    }
  }
}
