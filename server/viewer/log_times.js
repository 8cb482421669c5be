// @ts-check
/// <reference lib="dom" />
/**
 * Line times on the page: when each line arrived (the checkpoint that made
 * its end readable, `times.js`), relative to the resource's creation, in a
 * column shown while the "times" option is on. The checkpoints come once
 * from `/resources/{id}/checkpoints`, then with every status event.
 *
 * @module
 */

import { CheckpointTimes } from "./times.js";
import { formatElapsed, formatTime } from "./format.js";

/**
 * @typedef {import("./log_view.js").Entry} Entry
 * @typedef {import("./log_view.js").LogView} LogView
 * @typedef {import("./line_text.js").LineRecord} LineRecord
 */

/**
 * The times column of a {@linkcode LogView}.
 *
 * @example
 * ```js ignore
 * const times = new TimesView(view, { start: Date.parse(createdAt), load });
 * times.show(true);
 * ```
 */
export class TimesView {
  /**
   * @param {LogView} view
   * @param {{ start: number, load: () => Promise<{ from: number, checkpoints: { size: number, time: string }[] }> }} context
   *   `start`: the resource's creation (ms); `load`: fetches `/checkpoints`.
   */
  constructor(view, context) {
    this.view = view;
    this.context = context;
    this.times = new CheckpointTimes();
    this.shown = false;
    /** @type {Promise<void> | undefined} */
    this.loading = undefined;
    /** Called when times came in (for section durations). */
    this.onChange = () => {};
  }

  /** Loads the checkpoints once (a failed load is tried again next time). */
  need() {
    this.loading ??= this.context.load().then((log) => {
      this.times.load(log);
      this.fill(this.view.all());
      this.onChange();
    }, (error) => {
      this.loading = undefined;
      console.warn("spool: no line times:", error);
    });
  }

  /** @param {boolean} on Whether the column shows. */
  show(on) {
    this.shown = on;
    this.view.log.classList.toggle("times", on);
    if (on) {
      this.need();
      this.fill(this.view.all());
    }
  }

  /**
   * A checkpoint from a status event.
   *
   * @param {number} size
   * @param {string} time ISO 8601.
   */
  add(size, time) {
    this.times.add(size, Date.parse(time));
    if (this.shown) this.fill(this.#waiting());
    this.onChange();
  }

  /** @returns {Entry[]} The last lines, whose checkpoint may have come now. */
  #waiting() {
    const all = this.view.all();
    let at = all.length;
    while (at > 0 && !all[at - 1].ts.dataset.t) at--;
    return all.slice(at);
  }

  /**
   * When `rec` arrived (ms), if known.
   *
   * @param {LineRecord} rec
   * @returns {number | undefined}
   */
  timeOf(rec) {
    return this.times.timeOf(rec.end);
  }

  /** @param {Entry[]} entries Lines to show the times of. */
  fill(entries) {
    if (!this.shown) return;
    for (const entry of entries) {
      const time = this.timeOf(entry.rec);
      entry.ts.dataset.t = time === undefined
        ? ""
        : formatElapsed(time - this.context.start);
      entry.ts.title = time === undefined
        ? ""
        : formatTime(new Date(time).toISOString());
    }
  }
}
