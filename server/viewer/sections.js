// @ts-check
/**
 * Collapsible sections of CI logs: GitHub Actions' `::group::Title` …
 * `::endgroup::` (also as `##[group]` in downloaded logs, after a
 * timestamp) and GitLab's `section_start:TIME:NAME[collapsed=true]` …
 * `section_end:TIME:NAME` markers (written as `ESC[0Ksection_…\rESC[0K`, so
 * a terminal shows only the header's text). GitLab's sections nest and carry
 * Unix times; GitHub's groups do not nest (a new group ends the open one)
 * and take their times from when their lines arrived. No DOM here.
 *
 * @module
 */

/**
 * A line's section marker.
 *
 * @typedef {object} Marker
 * @property {"start" | "end"} kind
 * @property {"github" | "gitlab"} flavour
 * @property {string} name GitLab's section name; `""` for GitHub.
 * @property {string} title What the header shows.
 * @property {number | null} time GitLab's time (ms since the epoch).
 * @property {boolean} collapsed GitLab's `[collapsed=true]`.
 * @property {number} prefix Characters of the shown text before the title
 *   (GitHub's `::group::`), which the header leaves out.
 */

/**
 * A section: where it starts and ends (line records), what it is called.
 *
 * @template L
 * @typedef {object} Section
 * @property {number} id
 * @property {"github" | "gitlab"} flavour
 * @property {string} name
 * @property {string} title
 * @property {L} start The header line.
 * @property {L | null} end The end line; `null` while open (or ended by
 *   the next GitHub group, then `closed` is set).
 * @property {boolean} closed
 * @property {number | null} startTime GitLab's start time (ms).
 * @property {number | null} endTime GitLab's end time (ms).
 * @property {boolean} collapsed GitLab's `[collapsed=true]`.
 */

const GITLAB =
  // deno-lint-ignore no-control-regex
  /^(?:\u001b\[0?K)?section_(start|end):(\d{1,12}):([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?/;
const GITHUB =
  /^((?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z )?(?:::group::|##\[group\]))(.*)$/;
const GITHUB_END =
  /^(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z )?(?:::endgroup::|##\[endgroup\])\s*$/;

/**
 * The section marker of a line, if it is one.
 *
 * @example
 * ```ts
 * import { markerOf } from "./sections.js";
 * const raw = "\u001b[0Ksection_start:1700000000:build[collapsed=true]\r\u001b[0KBuilding";
 * console.log(markerOf(raw, "Building")?.name, markerOf("", "::group::Tests")?.title); // "build" "Tests"
 * ```
 *
 * @param {string} head The line's start as written (escapes and all).
 * @param {string} text The line as shown.
 * @returns {Marker | null}
 */
export function markerOf(head, text) {
  const gitlab = GITLAB.exec(head);
  if (gitlab) {
    const [, kind, seconds, name, options] = gitlab;
    const shown = text.includes("section_") ? "" : text.trim();
    return {
      kind: kind === "start" ? "start" : "end",
      flavour: "gitlab",
      name,
      title: shown || name,
      time: Number(seconds) * 1000,
      collapsed: /(^|,)\s*collapsed\s*=\s*true\s*(,|$)/.test(options ?? ""),
      prefix: 0,
    };
  }
  const github = GITHUB.exec(text);
  if (github || GITHUB_END.test(text)) {
    return {
      kind: github ? "start" : "end",
      flavour: "github",
      name: "",
      title: github ? github[2].trim() : "",
      time: null,
      collapsed: false,
      prefix: github ? github[1].length : 0,
    };
  }
  return null;
}

/**
 * Follows the sections of lines taken in order: which sections each line
 * is in.
 *
 * @template L
 * @example
 * ```ts
 * import { markerOf, SectionTracker } from "./sections.js";
 * const tracker = new SectionTracker();
 * const chains = ["::group::A", "inside", "::endgroup::", "after"].map((text) =>
 *   tracker.place(text, markerOf("", text)).chain.length
 * );
 * console.log(chains); // [1, 1, 1, 0]
 * ```
 */
export class SectionTracker {
  constructor() {
    /** @type {Section<L>[]} The open sections, outermost first. */
    this.open = [];
    /** @type {Section<L>[]} Every section, in order of their starts. */
    this.all = [];
    /** @type {readonly Section<L>[]} */
    this.chain = [];
  }

  /**
   * Places the next line.
   *
   * @param {L} line
   * @param {Marker | null} marker
   * @returns {{ chain: readonly Section<L>[], started: Section<L> | null }}
   *   The sections the line is in (its own, for a header or an end line),
   *   and the section it starts.
   */
  place(line, marker) {
    if (marker === null) return { chain: this.chain, started: null };
    if (marker.kind === "end") {
      return { chain: this.#end(line, marker), started: null };
    }
    if (marker.flavour === "github") this.#closeGithub();
    /** @type {Section<L>} */
    const section = {
      id: this.all.length,
      flavour: marker.flavour,
      name: marker.name,
      title: marker.title,
      start: line,
      end: null,
      closed: false,
      startTime: marker.time,
      endTime: null,
      collapsed: marker.collapsed,
    };
    this.all.push(section);
    this.open.push(section);
    this.chain = [...this.open];
    return { chain: this.chain, started: section };
  }

  /**
   * @param {L} line
   * @param {Marker} marker
   * @returns {readonly Section<L>[]}
   */
  #end(line, marker) {
    const at = this.open.findLastIndex((s) =>
      s.flavour === marker.flavour && s.name === marker.name
    );
    // An end without its start (cut off, or a stray one) ends nothing.
    if (at === -1) return this.chain;
    const chain = this.open.slice(0, at + 1);
    for (const section of this.open.slice(at)) {
      section.closed = true;
      section.end = line;
      section.endTime = marker.time;
    }
    this.open.length = at;
    this.chain = [...this.open];
    return chain;
  }

  /** A new GitHub group ends the open one (groups do not nest). */
  #closeGithub() {
    const at = this.open.findIndex((s) => s.flavour === "github");
    if (at === -1) return;
    for (const section of this.open.slice(at)) section.closed = true;
    this.open.length = at;
    this.chain = [...this.open];
  }
}
