/**
 * Clipping user text (names, MIME types, reasons) to a bound.
 *
 * @module
 */

/**
 * `text` cut to at most `max` UTF-16 code units, never splitting a
 * surrogate pair (so a well-formed string stays well-formed).
 *
 * @example
 * ```ts
 * import { clipText } from "./_text.ts";
 * clipText("ab😀", 3); // "ab"
 * ```
 */
export function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\ud800-\udbff]/.test(text[max - 1]) ? max - 1 : max;
  return text.slice(0, end);
}

/**
 * `text` fit for a log line: clipped to `max` UTF-16 code units and every
 * character outside printable ASCII written as `\uXXXX`, so that control
 * characters and bidi overrides from users cannot forge or reorder log
 * output.
 *
 * @example
 * ```ts
 * import { loggable } from "./_text.ts";
 * loggable("disk \u202eLLUF", 100); // "disk \\u202eLLUF"
 * ```
 */
export function loggable(text: string, max: number): string {
  const clipped = clipText(String(text), max);
  return clipped.replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  ) + (clipped.length < String(text).length ? "…" : "");
}
