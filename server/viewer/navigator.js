// @ts-check
/// <reference lib="dom" />
/**
 * Where the page is in the log. The bytes stream in from near the end (the
 * last `tailBytes`, so a huge log opens at once) into the tail: the last
 * `maxLines` lines read, and the line in progress. The lines on the page
 * (a {@linkcode LogView}) are either the tail, growing as lines arrive
 * ("attached"), or a stretch of earlier lines read by number from
 * `/lines?start=&end=` ("load earlier", a link to a line not on the page),
 * which the tail joins again once they reach it. The tail's line numbers
 * come from the server (`/lines?offset=`), once it has counted them; until
 * then the lines show without. The page holds at most `maxLines` lines and
 * the tail as many: memory stays bounded however long the log.
 *
 * @module
 */

import { LineFeed } from "./line_text.js";
import { fetchLines } from "./reader.js";

/**
 * @typedef {import("./line_text.js").LineRecord} LineRecord
 * @typedef {import("./log_view.js").LogView} LogView
 * @typedef {import("./log_view.js").Entry} Entry
 * @typedef {import("./reader.js").ReaderContext["urlOf"]} UrlOf
 */

/**
 * What the navigator tells the page.
 *
 * @typedef {object} NavigatorEvents
 * @property {() => void} moved The lines on the page, or what is known of
 *   the log (its line count, whether the page is at its end), changed.
 * @property {() => void} flushed New lines are on the page.
 * @property {(error: unknown) => void} failed A read of lines failed.
 */

/**
 * The tail and the window of lines on the page.
 *
 * @example
 * ```js ignore
 * const nav = new Navigator(view, { urlOf, charset: "utf-8", maxLines: 5000, pageLines: 1000 }, events);
 * nav.start(0);
 * ```
 */
export class Navigator {
  /**
   * @param {LogView} view
   * @param {{ urlOf: UrlOf, charset: string, maxLines: number, pageLines: number }} options
   * @param {NavigatorEvents} events
   */
  constructor(view, options, events) {
    this.view = view;
    this.options = options;
    this.events = events;
    /** @type {LineRecord[]} The last complete lines read. */
    this.records = [];
    /** @type {LineRecord | null} */
    this.partial = null;
    /** Complete lines read since the first byte read. */
    this.count = 0;
    /** @type {number | null} The number of the first line read. */
    this.base = null;
    this.attached = true;
    /** @type {LineRecord[]} Lines read, not yet on the page. */
    this.fresh = [];
    this.scheduled = false;
    this.busy = false;
    this.feed = new LineFeed({ offset: 0, charset: options.charset });
  }

  /**
   * Starts reading at byte `start` (0, or near the end: then the line cut
   * there is dropped, and the numbers are asked for).
   *
   * @param {number} start
   */
  start(start) {
    const offset = Math.max(0, start - 1);
    this.feed = new LineFeed({
      offset,
      charset: this.options.charset,
      skipFirst: start > 0,
    });
    if (start === 0) this.base = 0;
  }

  /** @returns {number | null} The number the next line read will have. */
  get end() {
    return this.base === null ? null : this.base + this.count;
  }

  /** @returns {number | null} Lines known: complete ones, and one in progress. */
  get total() {
    const end = this.end;
    return end === null ? null : end + (this.partial ? 1 : 0);
  }

  /** @returns {number | null} The number of the first line of the tail. */
  get tailFirst() {
    return this.records[0]?.n ?? this.end;
  }

  /** @param {Uint8Array} chunk Bytes read, in order. */
  bytes(chunk) {
    const numbered = this.feed.firstStart >= 0;
    this.#take(this.feed.push(chunk));
    this.partial = this.feed.partial();
    if (this.partial) this.partial.n = this.end;
    if (!numbered && this.feed.firstStart >= 0) {
      this.#count(this.feed.firstStart);
    }
    this.#schedule();
  }

  /** Every byte is read: the line in progress is the last line. */
  finish() {
    const last = this.feed.finish();
    this.partial = null;
    if (last) this.#take([last]);
    this.flush();
  }

  /** @param {LineRecord[]} recs Lines read, numbered if numbers are known. */
  #take(recs) {
    for (const rec of recs) {
      rec.n = this.end === null ? null : this.end;
      this.count++;
      this.records.push(rec);
      if (this.attached) this.fresh.push(rec);
    }
    const over = this.records.length - this.options.maxLines;
    // Dropped in batches, not one line at a time.
    if (over > this.options.maxLines / 4) this.records.splice(0, over);
  }

  /**
   * Learns the number of the line at byte `offset`, the first of the tail.
   *
   * @param {number} offset
   */
  async #count(offset) {
    try {
      const { first } = await fetchLines(this.options.urlOf, {
        offset: String(offset),
        end: "0",
      });
      this.base = first;
      const tail = [...this.records, ...(this.partial ? [this.partial] : [])];
      // The page's lines are the tail's (nothing else is read before this).
      const before = this.count - this.records.length;
      tail.forEach((rec, i) => rec.n = first + before + i);
      this.view.renumber();
      this.events.moved();
    } catch (error) {
      this.events.failed(error);
    }
  }

  #schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Coalesce bursts into one DOM update; the timer also runs in background tabs.
    requestAnimationFrame(() => this.flush());
    setTimeout(() => this.flush(), 100);
  }

  /** Puts the lines read into the page now (while attached). */
  flush() {
    this.scheduled = false;
    if (this.attached) {
      const fresh = this.fresh;
      this.fresh = [];
      const max = this.options.maxLines;
      // More new lines than the page holds (the tail at first): only the
      // last ones are made at all.
      if (fresh.length >= max) this.view.replace(fresh.slice(-max), null);
      else this.view.append(fresh);
      this.view.setPartial(this.partial);
      this.view.trim("top");
    }
    this.events.flushed();
    this.events.moved();
  }

  /** Shows the tail again, at the end of the log. */
  attach() {
    this.fresh = [];
    this.attached = true;
    this.view.replace(this.records, this.partial);
    this.view.trim("top");
    this.events.moved();
  }

  /**
   * Lines `[start, end)`, read by number.
   *
   * @param {number} start
   * @param {number} end
   * @returns {Promise<LineRecord[]>}
   */
  async #lines(start, end) {
    const answer = await fetchLines(this.options.urlOf, {
      start: String(start),
      end: String(end),
    });
    const feed = new LineFeed({
      offset: answer.offset,
      charset: this.options.charset,
    });
    const recs = feed.push(answer.bytes);
    const last = feed.finish();
    if (last) recs.push(last);
    recs.forEach((rec, i) => rec.n = answer.first + i);
    return recs;
  }

  /**
   * Runs one read of lines at a time; reports failures.
   *
   * @param {() => Promise<void>} step
   * @returns {Promise<boolean>} Whether it ran.
   */
  async #one(step) {
    if (this.busy) return false;
    this.busy = true;
    try {
      await step();
      return true;
    } catch (error) {
      this.events.failed(error);
      return false;
    } finally {
      this.busy = false;
      this.events.moved();
    }
  }

  /** Adds up to `pageLines` lines before the first on the page. */
  earlier() {
    return this.#one(async () => {
      const first = this.view.first;
      if (first === null || first === 0) return;
      const recs = await this.#lines(
        Math.max(0, first - this.options.pageLines),
        first,
      );
      this.view.prepend(recs);
      if (this.view.trim("bottom") > 0) this.attached = false;
    });
  }

  /** Adds up to `pageLines` lines after the last on the page (not attached). */
  later() {
    return this.#one(async () => {
      const end = this.view.end;
      const tailFirst = this.tailFirst;
      if (this.attached || end === null || tailFirst === null) return;
      if (end < tailFirst) {
        this.view.append(
          await this.#lines(
            end,
            Math.min(end + this.options.pageLines, tailFirst),
          ),
        );
        this.view.trim("top");
      }
      this.#join();
    });
  }

  /** Attaches the tail below the lines on the page once they reach it. */
  #join() {
    const end = this.view.end;
    const tailFirst = this.tailFirst;
    if (end === null || tailFirst === null || end < tailFirst) return;
    this.view.append(
      this.records.filter((rec) => rec.n !== null && rec.n >= end),
    );
    this.view.setPartial(this.partial);
    this.fresh = [];
    this.attached = true;
    this.view.trim("top");
  }

  /**
   * Puts line `n` on the page: it is there, in the tail, or read with the
   * lines around it. Resolves with its entry, or `undefined` if the log has
   * no such line (yet).
   *
   * @param {number} n
   * @returns {Promise<Entry | undefined>}
   */
  async show(n) {
    const here = this.view.entryOf(n);
    if (here) return here;
    const tailFirst = this.tailFirst;
    const end = this.total;
    if (tailFirst === null || end === null || n >= end) return undefined;
    if (n >= tailFirst) {
      this.attach();
      return this.view.entryOf(n);
    }
    await this.#one(async () => {
      const start = Math.max(0, n - Math.floor(this.options.pageLines / 2));
      const recs = await this.#lines(
        start,
        Math.min(start + this.options.pageLines, tailFirst),
      );
      this.attached = false;
      this.view.replace(recs, null);
      this.#join();
    });
    return this.view.entryOf(n);
  }
}
