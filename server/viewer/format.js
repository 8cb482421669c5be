// @ts-check
/**
 * How Spool shows values to people: byte counts, times, text with
 * invisible characters made visible, and a resource's status as a colour. The same code runs in the terminal (the
 * CLI's progress line, the soak), on the server (the viewer's pages) and in
 * the browser: the viewer's page script includes this file's text, which is
 * why it is plain JavaScript (type-checked through `@ts-check` and JSDoc).
 * Nothing here may touch Deno, the DOM or another module.
 *
 * @module
 */

/** Binary units, each 1024 of the one before. */
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/**
 * A byte count in binary units: whole bytes below 1 KiB (`117 B`), one
 * decimal below 100 of a unit (`2.9 KiB`, `12.5 MiB`), whole numbers from
 * there (`117 MiB`), carried to the next unit once it rounds to 1024
 * (`1.0 MiB`). `@std/fmt/bytes` rounds the same way (three significant
 * digits) but gives two decimals below 10, and spells `kiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./format.js";
 * console.log(formatBytes(117.47), formatBytes(2969), formatBytes(13107200));
 * // "117 B" "2.9 KiB" "12.5 MiB"
 * ```
 *
 * @param {number} bytes A count of bytes (a rate may have a fraction).
 * @returns {string} The count with its unit.
 */
export function formatBytes(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  let figure = unit === 0 || value >= 99.95
    ? String(Math.round(value))
    : value.toFixed(1);
  if (figure === "1024" && unit < UNITS.length - 1) {
    figure = "1.0";
    unit++;
  }
  return figure + " " + UNITS[unit];
}

/**
 * An ISO 8601 time as `2026-11-24 01:53:55 UTC`; any other text as it is.
 *
 * @example
 * ```ts
 * import { formatTime } from "./format.js";
 * console.log(formatTime("2026-11-24T01:53:55.120Z")); // "2026-11-24 01:53:55 UTC"
 * ```
 *
 * @param {string} iso A time as `Date.prototype.toISOString` writes it.
 * @returns {string} The time to show.
 */
export function formatTime(iso) {
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso);
  return match ? match[1] + " " + match[2] + " UTC" : iso;
}

/**
 * Makes invisible characters that change how text reads visible as
 * `\u202E`-style escapes: control characters (C0, DEL, C1), bidirectional
 * controls (so `invoice\u202Efdp.exe` cannot display as `invoiceexe.pdf`),
 * line and paragraph separators, U+FEFF and lone surrogates. `mark` wraps each
 * escape (the server marks them up; the browser script, which writes with
 * `textContent`, splits on them).
 *
 * @example
 * ```ts
 * import { visibleText } from "./format.js";
 * console.log(visibleText("a\u202Eb")); // "a\\u202Eb"
 * ```
 *
 * @param {string} text Text from a user.
 * @param {(escape: string) => string} [mark] Wraps each escape.
 * @returns {string} The text with its invisible characters escaped.
 */
export function visibleText(text, mark) {
  return String(text).replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    function (c) {
      const code = c.charCodeAt(0).toString(16).toUpperCase();
      const escape = "\\u" + ("000" + code).slice(-4);
      return mark ? mark(escape) : escape;
    },
  );
}

/**
 * The colour of each resource status: its badge on the viewer's pages and
 * the page's favicon.
 *
 * @type {Readonly<Record<string, string>>}
 */
export const STATUS_COLOURS = {
  INITIATED: "#6b7280",
  IN_PROGRESS: "#2563eb",
  COMPLETED: "#15803d",
  FAILED: "#b91c1c",
};

/**
 * A favicon for a status (a dot of its colour) as a `data:` URL.
 *
 * @example
 * ```ts
 * import { faviconFor } from "./format.js";
 * console.log(faviconFor("COMPLETED").startsWith("data:image/svg+xml,")); // true
 * ```
 *
 * @param {string} status A resource status (`INITIATED` for any other).
 * @returns {string} The icon's URL.
 */
export function faviconFor(status) {
  const colour = (STATUS_COLOURS[status] ?? STATUS_COLOURS.INITIATED)
    .replace("#", "%23");
  return "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='" +
    colour + "'/></svg>";
}

/**
 * A time since a start, as the viewer's line times show it: `+m:ss.s`,
 * with hours past an hour (`+1:02:03`); `-` before the start.
 *
 * @example
 * ```ts
 * import { formatElapsed } from "./format.js";
 * console.log(formatElapsed(5234), formatElapsed(3723000)); // "+0:05.2" "+1:02:03"
 * ```
 *
 * @param {number} ms Milliseconds since the start.
 * @returns {string}
 */
export function formatElapsed(ms) {
  const sign = ms < 0 ? "-" : "+";
  const tenths = Math.floor(Math.abs(ms) / 100);
  const seconds = Math.floor(tenths / 10);
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  if (seconds >= 3600) {
    return sign + Math.floor(seconds / 3600) + ":" +
      two(Math.floor(seconds / 60) % 60) + ":" + two(seconds % 60);
  }
  return sign + Math.floor(seconds / 60) + ":" + two(seconds % 60) + "." +
    (tenths % 10);
}

/**
 * A duration as a section header shows it: `0.4s`, `12s`, `3m 05s`,
 * `1h 02m`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./format.js";
 * console.log(formatDuration(400), formatDuration(185000), formatDuration(3720000)); // "0.4s" "3m 05s" "1h 02m"
 * ```
 *
 * @param {number} ms
 * @returns {string}
 */
export function formatDuration(ms) {
  const t = Math.max(0, ms);
  if (t < 10_000) return (Math.floor(t / 100) / 10).toFixed(1) + "s";
  const s = Math.floor(t / 1000);
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
  return Math.floor(s / 3600) + "h " + two(Math.floor(s / 60) % 60) + "m";
}

/**
 * How long ago a time was, in words: `just now`, `42 s ago`, `5 min ago`,
 * `3 h ago`, `2 days ago`; a time in the future (clocks differ) is
 * `just now`.
 *
 * @example
 * ```ts
 * import { formatAgo } from "./format.js";
 * const now = Date.parse("2026-01-01T12:00:00Z");
 * console.log(formatAgo("2026-01-01T11:55:00Z", now)); // "5 min ago"
 * ```
 *
 * @param {string} iso A time as `toISOString` writes it.
 * @param {number} now The time now (ms).
 * @returns {string}
 */
export function formatAgo(iso, now) {
  const s = Math.floor((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return iso;
  if (s < 5) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  const days = Math.floor(s / 86400);
  return days + (days === 1 ? " day ago" : " days ago");
}
