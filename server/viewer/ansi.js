// @ts-check
/**
 * Terminal output as styled text, line by line, the way a terminal shows
 * it: SGR sequences (16, 256 and 24-bit colours, bold, dim, italic,
 * underline, inverse, strike-through, reset) become styles; a carriage
 * return goes back to the start of the line, so a progress bar redrawn with
 * `\r` ends as its last state; `ESC[K` erases, `ESC[nC`/`D`/`G` move along
 * the line, a backspace steps back. Every other escape (cursor moves to
 * other lines, OSC titles and links, DCS, charset switches) is dropped, and
 * other control characters, bidirectional controls and the like are shown
 * as marked `\u001B`-style escapes, never as raw characters. An escape cut
 * at the end of a piece of text waits for the next piece. No DOM here: the
 * page renders the runs (`render.js`); the unit tests run this file as it is.
 *
 * @module
 */

/**
 * A colour: an index of the 256-colour palette (0–15 are the 16 named
 * colours), a `#rrggbb` of a 24-bit colour, or `null` for the default.
 *
 * @typedef {number | string | null} Colour
 */

/**
 * How a run of text looks. Styles are interned: equal styles are the same
 * object, and the default style is `null`.
 *
 * @typedef {object} Style
 * @property {Colour} fg
 * @property {Colour} bg
 * @property {boolean} bold
 * @property {boolean} dim
 * @property {boolean} italic
 * @property {boolean} underline
 * @property {boolean} inverse
 * @property {boolean} hidden
 * @property {boolean} strike
 * @property {boolean} ctl An escape shown for an invisible character.
 */

/**
 * Text in one style.
 *
 * @typedef {object} Run
 * @property {string} text
 * @property {Style | null} style
 */

/**
 * One line as a terminal ends up showing it.
 *
 * @typedef {object} AnsiLine
 * @property {Run[]} runs The text, in runs of one style.
 * @property {string} text The text without styles.
 * @property {string} head The line's first characters as written (escapes
 *   and all), where section markers are.
 * @property {number} dropped Characters past the longest line kept.
 */

/** Characters of a line kept; the rest are counted in `dropped`. */
export const MAX_LINE_CHARS = 20_000;
/** Characters of a line's start kept as written, for markers. */
const HEAD_CHARS = 512;
/** An escape cut at the end of a piece waits at most this long for its end. */
const MAX_PENDING = 4096;
/** Distinct styles interned before the table starts afresh. */
const MAX_STYLES = 4096;

/** The characters that are not plain text: controls, bidi controls, … */
const SPECIAL =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;

/** @type {Map<string, Style>} */
const styles = new Map();

/**
 * The one style object with these fields, or `null` for the default.
 *
 * @param {Omit<Style, never>} fields
 * @returns {Style | null}
 */
function intern(fields) {
  const key = [
    fields.fg,
    fields.bg,
    +fields.bold,
    +fields.dim,
    +fields.italic,
    +fields.underline,
    +fields.inverse,
    +fields.hidden,
    +fields.strike,
    +fields.ctl,
  ].join(",");
  if (key === ",,0,0,0,0,0,0,0,0") return null;
  let style = styles.get(key);
  if (style === undefined) {
    if (styles.size >= MAX_STYLES) styles.clear();
    style = Object.freeze({ ...fields });
    styles.set(key, style);
  }
  return style;
}

/** @returns {Style} The fields of the default style. */
function plainFields() {
  return {
    fg: null,
    bg: null,
    bold: false,
    dim: false,
    italic: false,
    underline: false,
    inverse: false,
    hidden: false,
    strike: false,
    ctl: false,
  };
}

/** The style of escapes shown for invisible characters. */
const CTL_STYLE = intern({ ...plainFields(), ctl: true });

/**
 * The colour of a 256-colour palette index as `#rrggbb` (xterm's values).
 *
 * @example
 * ```ts
 * import { paletteColour } from "./ansi.js";
 * console.log(paletteColour(196), paletteColour(244)); // "#ff0000" "#808080"
 * ```
 *
 * @param {number} index 0–255.
 * @returns {string}
 */
export function paletteColour(index) {
  const hex = (/** @type {number} */ v) => v.toString(16).padStart(2, "0");
  if (index < 16) return NAMED[index] ?? NAMED[0];
  if (index >= 232) {
    const v = 8 + (index - 232) * 10;
    return "#" + hex(v) + hex(v) + hex(v);
  }
  const n = index - 16;
  const level = (/** @type {number} */ k) => (k === 0 ? 0 : 55 + k * 40);
  return "#" + hex(level(Math.floor(n / 36))) +
    hex(level(Math.floor(n / 6) % 6)) + hex(level(n % 6));
}

/** xterm's 16 named colours. */
const NAMED = [
  "#000000",
  "#cd0000",
  "#00cd00",
  "#cdcd00",
  "#0000ee",
  "#cd00cd",
  "#00cdcd",
  "#e5e5e5",
  "#7f7f7f",
  "#ff0000",
  "#00ff00",
  "#ffff00",
  "#5c5cff",
  "#ff00ff",
  "#00ffff",
  "#ffffff",
];

/**
 * An extended colour (after 38/48): `5;n` or `2;r;g;b`, from `values`
 * starting at `at`; how many values it used.
 *
 * @param {number[]} values
 * @param {number} at
 * @returns {{ colour: Colour | undefined, used: number }}
 */
function extendedColour(values, at) {
  const byte = (/** @type {number} */ v) =>
    Number.isInteger(v) && v >= 0 && v <= 255;
  if (values[at] === 5) {
    const index = values[at + 1];
    return { colour: byte(index) ? index : undefined, used: 2 };
  }
  if (values[at] === 2) {
    const [r, g, b] = values.slice(at + 1, at + 4);
    if (![r, g, b].every(byte)) return { colour: undefined, used: 4 };
    const hex = (/** @type {number} */ v) => v.toString(16).padStart(2, "0");
    return { colour: "#" + hex(r) + hex(g) + hex(b), used: 4 };
  }
  return { colour: undefined, used: 1 };
}

/**
 * Applies one plain SGR code to `s`.
 *
 * @param {Style} s
 * @param {number} code
 */
function applyCode(s, code) {
  if (code === 0) Object.assign(s, plainFields());
  else if (code === 1) s.bold = true;
  else if (code === 2) s.dim = true;
  else if (code === 3) s.italic = true;
  else if (code === 4 || code === 21) s.underline = true;
  else if (code === 7) s.inverse = true;
  else if (code === 8) s.hidden = true;
  else if (code === 9) s.strike = true;
  else if (code === 22) s.bold = s.dim = false;
  else if (code === 23) s.italic = false;
  else if (code === 24) s.underline = false;
  else if (code === 27) s.inverse = false;
  else if (code === 28) s.hidden = false;
  else if (code === 29) s.strike = false;
  else if (code >= 30 && code <= 37) s.fg = code - 30;
  else if (code === 39) s.fg = null;
  else if (code >= 40 && code <= 47) s.bg = code - 40;
  else if (code === 49) s.bg = null;
  else if (code >= 90 && code <= 97) s.fg = code - 90 + 8;
  else if (code >= 100 && code <= 107) s.bg = code - 100 + 8;
  // Anything else (blink, fonts, overline, …) changes nothing shown here.
}

/**
 * Applies the parameters of one SGR sequence (`ESC[…m`) to `s`: `;`
 * separates codes, `:` the parts of one (`38:2::r:g:b`).
 *
 * @param {Style} s
 * @param {string} params
 */
function applySgr(s, params) {
  const parts = params === "" ? ["0"] : params.split(";");
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].includes(":")) {
      const sub = parts[i].split(":").map((v) => v === "" ? -1 : Number(v));
      // `38:2:CS:r:g:b` names a colour space first; `38:2:r:g:b` does not.
      if (sub[1] === 2 && sub.length >= 6) sub.splice(2, 1);
      setExtended(s, sub[0], extendedColour(sub, 1).colour);
      continue;
    }
    const code = parts[i] === "" ? 0 : Number(parts[i]);
    if (code === 38 || code === 48 || code === 58) {
      const values = parts.slice(i + 1, i + 5).map(Number);
      const { colour, used } = extendedColour(values, 0);
      setExtended(s, code, colour);
      i += used;
    } else applyCode(s, code);
  }
}

/**
 * @param {Style} s
 * @param {number} code 38 (foreground), 48 (background) or 58 (underline).
 * @param {Colour | undefined} colour
 */
function setExtended(s, code, colour) {
  if (colour === undefined) return;
  if (code === 38) s.fg = colour;
  else if (code === 48) s.bg = colour;
}

/**
 * Where the string escape (OSC, DCS, …) starting at `at` ends: past its
 * BEL or ST; -1 while it has not ended.
 *
 * @param {string} s
 * @param {number} at
 * @returns {number}
 */
function stringEnd(s, at) {
  for (let i = at; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x07 || c === 0x9c) return i + 1;
    if (c === 0x1b) {
      if (i + 1 >= s.length) return -1;
      if (s[i + 1] === "\\") return i + 2;
    }
  }
  return -1;
}

/**
 * A terminal's view of one line at a time: feed it text with
 * {@linkcode AnsiParser.write}, end each line with
 * {@linkcode AnsiParser.endLine}. The SGR style carries over from one line
 * to the next, as on a terminal.
 *
 * @example
 * ```ts
 * import { AnsiParser } from "./ansi.js";
 * const parser = new AnsiParser();
 * parser.write("\u001b[1;31mFAIL\u001b[0m 10%\r\u001b[1;3");
 * parser.write("1mFAIL\u001b[0m 100%");
 * const line = parser.endLine();
 * console.log(line.text, line.runs.length, line.runs[0].style?.fg); // "FAIL 100%" 2 1
 * ```
 */
export class AnsiParser {
  /** @param {number} [maxChars] Characters of a line kept. */
  constructor(maxChars = MAX_LINE_CHARS) {
    this.maxChars = maxChars;
    /** @type {Style} */
    this.sgr = plainFields();
    /** @type {Style | null} */
    this.style = null;
    this.pending = "";
    /** @type {string[]} */
    this.chars = [];
    /** @type {(Style | null)[]} */
    this.styles = [];
    this.cursor = 0;
    this.dropped = 0;
    this.head = "";
  }

  /** @param {string} text Text of the current line (no `\n`). */
  write(text) {
    if (this.head.length < HEAD_CHARS) {
      this.head += text.slice(0, HEAD_CHARS - this.head.length);
    }
    const s = this.pending + text;
    this.pending = "";
    let i = 0;
    while (i < s.length) {
      SPECIAL.lastIndex = i;
      const match = SPECIAL.exec(s);
      const stop = match ? match.index : s.length;
      if (stop > i) this.#put(s.slice(i, stop), this.style);
      if (!match) return;
      const next = this.#control(s, stop);
      if (next >= 0) i = next;
      else if (s.length - stop > MAX_PENDING) i = stop + 1; // never ends: drop its ESC
      else {
        this.pending = s.slice(stop);
        return;
      }
    }
  }

  /** @returns {AnsiLine} The current line; the parser starts the next one. */
  endLine() {
    const line = this.peek();
    this.chars = [];
    this.styles = [];
    this.cursor = 0;
    this.dropped = 0;
    this.head = "";
    // An escape cannot go on past the end of its line.
    this.pending = "";
    return line;
  }

  /** @returns {AnsiLine} The current line so far. */
  peek() {
    /** @type {Run[]} */
    const runs = [];
    const { chars, styles } = this;
    let from = 0;
    for (let i = 1; i <= chars.length; i++) {
      if (i < chars.length && styles[i] === styles[from]) continue;
      runs.push({ text: chars.slice(from, i).join(""), style: styles[from] });
      from = i;
    }
    return {
      runs,
      text: chars.join(""),
      head: this.head,
      dropped: this.dropped,
    };
  }

  /**
   * Writes `text` at the cursor, over what is there.
   *
   * @param {string} text
   * @param {Style | null} style
   */
  #put(text, style) {
    const { chars, styles } = this;
    for (const ch of text) {
      if (this.cursor >= this.maxChars) {
        this.dropped++;
        continue;
      }
      while (chars.length < this.cursor) {
        chars.push(" ");
        styles.push(null);
      }
      chars[this.cursor] = ch;
      styles[this.cursor] = style;
      this.cursor++;
    }
  }

  /**
   * Acts on the control character at `at`; returns where text goes on, or
   * -1 if the escape it starts is cut off.
   *
   * @param {string} s
   * @param {number} at
   * @returns {number}
   */
  #control(s, at) {
    const c = s.charCodeAt(at);
    if (c === 0x1b) return this.#escape(s, at);
    if (c === 0x9b) return this.#csi(s, at + 1);
    if (c === 0x9d || c === 0x90 || c === 0x98 || c === 0x9e || c === 0x9f) {
      return stringEnd(s, at + 1);
    }
    if (c === 0x0d) this.cursor = 0;
    else if (c === 0x08) this.cursor = Math.max(0, this.cursor - 1);
    else if (c === 0x09) this.#put("\t", this.style);
    else if (c !== 0x07 && c !== 0x0e && c !== 0x0f) {
      // BEL and the shifts mean nothing shown; the rest is shown as an escape.
      const code = c.toString(16).toUpperCase().padStart(4, "0");
      this.#put("\\u" + code, CTL_STYLE);
    }
    return at + 1;
  }

  /**
   * The escape sequence at `at` (an ESC).
   *
   * @param {string} s
   * @param {number} at
   * @returns {number}
   */
  #escape(s, at) {
    if (at + 1 >= s.length) return -1;
    const next = s[at + 1];
    if (next === "[") return this.#csi(s, at + 2);
    if ("]PX^_".includes(next)) return stringEnd(s, at + 2);
    const code = next.charCodeAt(0);
    if (code >= 0x20 && code <= 0x2f) {
      // Intermediates, then a final: `ESC ( B` and the like.
      let i = at + 1;
      while (
        i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f
      ) {
        i++;
      }
      return i < s.length ? i + 1 : -1;
    }
    // `ESC 7`, `ESC =`, …: two characters; a stray ESC before a control alone.
    return code >= 0x30 && code <= 0x7e ? at + 2 : at + 1;
  }

  /**
   * A control sequence whose parameters start at `at`.
   *
   * @param {string} s
   * @param {number} at
   * @returns {number}
   */
  #csi(s, at) {
    let i = at;
    while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x3f) {
      i++;
    }
    const params = s.slice(at, i);
    const intermediates = i;
    while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f) {
      i++;
    }
    if (i >= s.length) return -1;
    const final = s.charCodeAt(i);
    // Not a sequence after all: drop what was read, go on at this character.
    if (final < 0x40 || final > 0x7e) return i;
    if (i === intermediates) this.#act(String.fromCharCode(final), params);
    return i + 1;
  }

  /**
   * Carries out the control sequence `final` with `params`, if it changes
   * what one line shows.
   *
   * @param {string} final
   * @param {string} params
   */
  #act(final, params) {
    if (/^[<=>?]/.test(params)) return; // private modes: nothing shown
    const n = Number(params.split(";")[0]) || 0;
    if (final === "m") {
      applySgr(this.sgr, params);
      this.style = intern(this.sgr);
    } else if (final === "K") this.#erase(n);
    else if (final === "C") {
      this.cursor = Math.min(this.maxChars, this.cursor + Math.max(1, n));
    } else if (final === "D") {
      this.cursor = Math.max(0, this.cursor - Math.max(1, n));
    } else if (final === "G") {
      this.cursor = Math.min(this.maxChars, Math.max(1, n) - 1);
    } else if (final === "X") {
      const end = Math.min(this.chars.length, this.cursor + Math.max(1, n));
      for (let i = this.cursor; i < end; i++) {
        this.chars[i] = " ";
        this.styles[i] = null;
      }
    }
    // Moves to other lines, scrolling, screen erases: not one line's business.
  }

  /**
   * `ESC[nK`: erase to the end (0), to the start (1) or all (2) of the line.
   *
   * @param {number} mode
   */
  #erase(mode) {
    if (mode === 0) {
      this.chars.length = Math.min(this.chars.length, this.cursor);
      this.styles.length = this.chars.length;
      return;
    }
    if (mode === 2) {
      this.chars.length = 0;
      this.styles.length = 0;
      return;
    }
    const end = Math.min(this.chars.length, this.cursor + 1);
    for (let i = 0; i < end; i++) {
      this.chars[i] = " ";
      this.styles[i] = null;
    }
  }
}
