// @ts-check
/// <reference lib="dom" />
/**
 * Styled runs (`ansi.js`) into the page: text nodes in spans whose classes
 * (the 16 named colours, bold, dim, …) and inline colours (256-colour and
 * truecolour values, set as style properties through the DOM) give the
 * look, with search matches wrapped in `<mark>`. Text only ever goes in as
 * text nodes.
 *
 * @module
 */

import { paletteColour } from "./ansi.js";
import { visibleText } from "./format.js";

/**
 * @typedef {import("./ansi.js").Run} Run
 * @typedef {import("./ansi.js").Style} Style
 * @typedef {import("./ansi.js").Colour} Colour
 */

/**
 * How a style is drawn: classes and inline colours.
 *
 * @typedef {object} Look
 * @property {string} className
 * @property {string} color
 * @property {string} background
 */

/** @type {WeakMap<Style, Look>} */
const looks = new WeakMap();

/**
 * A colour as a class (named colours, themed by the CSS) or a CSS value.
 *
 * @param {Colour} colour
 * @param {"fg" | "bg"} layer
 * @returns {{ className: string, value: string }}
 */
function paint(colour, layer) {
  if (colour === null) return { className: "", value: "" };
  if (typeof colour === "number" && colour < 16) {
    return { className: layer + colour, value: "" };
  }
  const value = typeof colour === "number" ? paletteColour(colour) : colour;
  return { className: "", value };
}

/**
 * @param {Style} style
 * @returns {Look}
 */
function lookOf(style) {
  let look = looks.get(style);
  if (look !== undefined) return look;
  // Inverse swaps the colours; a default one becomes the log's own.
  const fg = paint(style.inverse ? style.bg : style.fg, "fg");
  const bg = paint(style.inverse ? style.fg : style.bg, "bg");
  const classes = [fg.className, bg.className];
  if (style.inverse && style.bg === null) classes.push("inv-fg");
  if (style.inverse && style.fg === null) classes.push("inv-bg");
  for (
    const [on, name] of /** @type {[boolean, string][]} */ ([
      [style.bold, "b"],
      [style.dim, "d"],
      [style.italic, "i"],
      [style.underline, "u"],
      [style.strike, "s"],
      [style.hidden, "h"],
      [style.ctl, "ctl"],
    ])
  ) if (on) classes.push(name);
  look = {
    className: classes.filter(Boolean).join(" "),
    color: fg.value,
    background: bg.value,
  };
  looks.set(style, look);
  return look;
}

/**
 * A node of `text` in `style`.
 *
 * @param {string} text
 * @param {Style | null} style
 * @returns {Node}
 */
function styled(text, style) {
  const node = document.createTextNode(text);
  if (style === null) return node;
  const look = lookOf(style);
  const span = document.createElement("span");
  if (look.className) span.className = look.className;
  if (look.color) span.style.color = look.color;
  if (look.background) span.style.backgroundColor = look.background;
  span.appendChild(node);
  return span;
}

/**
 * Fills `el` with `runs`, the character ranges of `marks` (sorted, not
 * overlapping) in `<mark>`s; the mark at index `current` has the class
 * `current`.
 *
 * @example
 * ```js ignore
 * renderRuns(span, [{ text: "an error", style: null }], [[3, 8]], 0);
 * // span: an <mark class="hit current">error</mark>
 * ```
 *
 * @param {HTMLElement} el
 * @param {Run[]} runs
 * @param {[number, number][]} marks
 * @param {number} current
 */
export function renderRuns(el, runs, marks, current) {
  el.textContent = "";
  let at = 0;
  let m = 0;
  for (const run of runs) {
    const runStart = at;
    const end = runStart + run.text.length;
    while (at < end) {
      while (m < marks.length && marks[m][1] <= at) m++;
      const mark = marks[m];
      const inMark = mark !== undefined && mark[0] <= at;
      const stop = Math.min(end, inMark ? mark[1] : mark?.[0] ?? end);
      const node = styled(
        run.text.slice(at - runStart, stop - runStart),
        run.style,
      );
      if (inMark) {
        const wrap = document.createElement("mark");
        wrap.className = m === current ? "hit current" : "hit";
        wrap.appendChild(node);
        el.appendChild(wrap);
      } else el.appendChild(node);
      at = stop;
    }
  }
}

/**
 * `runs` without their first `count` characters (a GitHub group's
 * `::group::`).
 *
 * @param {Run[]} runs
 * @param {number} count
 * @returns {Run[]}
 */
export function dropChars(runs, count) {
  /** @type {Run[]} */
  const out = [];
  let left = count;
  for (const run of runs) {
    if (left >= run.text.length) {
      left -= run.text.length;
      continue;
    }
    out.push(left > 0 ? { text: run.text.slice(left), style: run.style } : run);
    left = 0;
  }
  return out;
}

/**
 * Text from the server into `el`, its invisible characters shown as marked
 * escapes (`<span class="ctl">\u202E</span>`), as the server renders them.
 * visibleText escapes every NUL of its input, so the NULs around each
 * escape can only be the marks.
 *
 * @example
 * ```js ignore
 * showText(document.getElementById("error"), "disk \u202eLLUF");
 * ```
 *
 * @param {HTMLElement} el
 * @param {string} text
 */
export function showText(el, text) {
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
