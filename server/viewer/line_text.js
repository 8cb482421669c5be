// @ts-check
/**
 * A resource's bytes as the viewer's lines: split at `\n` bytes (as the
 * server's line index does: a CRLF line keeps its `\r`, which the terminal
 * view then ignores), decoded with one streaming decoder (a character split
 * between two chunks decodes whole), and read as a terminal would
 * (`ansi.js`). Every line knows the byte offset it ends at, which maps it
 * to the checkpoint it arrived in. No DOM: the unit tests run it as it is.
 *
 * @module
 */

import { AnsiParser } from "./ansi.js";

/**
 * A line of the resource.
 *
 * @typedef {import("./ansi.js").AnsiLine & {
 *   end: number,
 *   complete: boolean,
 *   n: number | null,
 * }} LineRecord
 * `end` is the byte offset just past the line (past its `\n`), `complete`
 * whether it is whole (its `\n` was read, or the bytes ended), `n` its
 * number (0-based) once known.
 */

const NEWLINE = 0x0a;

/**
 * A decoder of `charset`; UTF-8 for a charset the browser does not know.
 *
 * @param {string | undefined} charset
 * @returns {TextDecoder}
 */
export function decoderFor(charset) {
  try {
    return new TextDecoder(charset || "utf-8", { fatal: false });
  } catch (_) {
    // Not a charset this runtime knows: read the bytes as UTF-8.
    return new TextDecoder("utf-8");
  }
}

/**
 * Turns bytes, pushed in chunks of any size, into lines.
 *
 * @example
 * ```ts
 * import { LineFeed } from "./line_text.js";
 * const feed = new LineFeed({ offset: 0 });
 * const bytes = new TextEncoder().encode("a ✓\nb\u001b[1");
 * const lines = feed.push(bytes.subarray(0, 4));
 * lines.push(...feed.push(bytes.subarray(4)));
 * console.log(lines.map((l) => [l.text, l.end]), feed.partial()?.text); // [["a ✓", 6]] "b"
 * ```
 */
export class LineFeed {
  /**
   * @param {object} options
   * @param {number} options.offset The byte the first chunk starts at.
   * @param {string} [options.charset] The bytes' charset (UTF-8).
   * @param {boolean} [options.skipFirst] Drop the bytes up to and with the
   *   first `\n` (they end a line that started before `offset`).
   */
  constructor(options) {
    this.offset = options.offset;
    this.decoder = decoderFor(options.charset);
    this.parser = new AnsiParser();
    this.skipping = options.skipFirst ?? false;
    /** Where the first whole line starts, once known. */
    this.firstStart = this.skipping ? -1 : options.offset;
    /** Whether the line in progress has any bytes. */
    this.started = false;
  }

  /**
   * @param {Uint8Array} chunk The next bytes.
   * @returns {LineRecord[]} The lines they complete.
   */
  push(chunk) {
    let bytes = chunk;
    if (this.skipping) {
      const at = bytes.indexOf(NEWLINE);
      if (at === -1) {
        this.offset += bytes.byteLength;
        return [];
      }
      this.skipping = false;
      this.offset += at + 1;
      this.firstStart = this.offset;
      bytes = bytes.subarray(at + 1);
    }
    /** @type {LineRecord[]} */
    const lines = [];
    let from = 0;
    for (
      let at = bytes.indexOf(NEWLINE);
      at !== -1;
      at = bytes.indexOf(NEWLINE, at + 1)
    ) {
      const text = this.decoder.decode(bytes.subarray(from, at + 1), {
        stream: true,
      });
      this.parser.write(text.slice(0, -1));
      this.offset += at + 1 - from;
      lines.push(this.#record(this.parser.endLine(), true));
      this.started = false;
      from = at + 1;
    }
    if (from < bytes.byteLength) {
      this.parser.write(
        this.decoder.decode(bytes.subarray(from), { stream: true }),
      );
      this.offset += bytes.byteLength - from;
      this.started = true;
    }
    return lines;
  }

  /** @returns {LineRecord | null} The line in progress, if it has bytes. */
  partial() {
    return this.started ? this.#record(this.parser.peek(), false) : null;
  }

  /**
   * The bytes ended: the line in progress, if any, is the last (with what
   * the decoder still held).
   *
   * @returns {LineRecord | null}
   */
  finish() {
    const rest = this.decoder.decode();
    if (rest) {
      this.parser.write(rest);
      this.started = true;
    }
    if (!this.started) return null;
    this.started = false;
    return this.#record(this.parser.endLine(), true);
  }

  /**
   * @param {import("./ansi.js").AnsiLine} line
   * @param {boolean} complete
   * @returns {LineRecord}
   */
  #record(line, complete) {
    return { ...line, end: this.offset, complete, n: null };
  }
}
