/**
 * The one way a value that came from users or from the store (a resource's
 * name, MIME type, status fields, anything taken from a request) reaches an
 * HTTP response header. Deno's HTTP writer panics, taking the whole process
 * down, on a header value with a control character, and `Headers` throws on
 * one outside Latin-1: so every such value goes through
 * {@linkcode headerValue}, which only ever returns printable ASCII.
 *
 * @module
 */

import { isMimeType } from "../protocol/validate.ts";

/** What an unusable MIME type is served as. */
export const FALLBACK_MIME_TYPE = "application/octet-stream";
/** What a name that leaves nothing usable for a file name is saved as. */
const FALLBACK_FILENAME = "download";
/** Longest header value built from user data (the longest, Content-Disposition, stays below 1.1 KB). */
const MAX_HEADER_VALUE = 4096;
/** File systems take names of at most 255 bytes. */
const MAX_FILENAME_BYTES = 255;
/** RFC 9110 §5.5 field-value, restricted to ASCII: HTAB, SP and VCHAR. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * `value` if it is a valid HTTP header value of printable ASCII (tabs and
 * spaces allowed), else `fallback`. Never throws; `fallback` must itself be
 * a constant that is valid.
 *
 * @example
 * ```ts
 * import { headerValue } from "./_header.ts";
 * headerValue("COMPLETED", "FAILED"); // "COMPLETED"
 * headerValue("bad\u0001", "FAILED"); // "FAILED"
 * ```
 */
export function headerValue(value: string, fallback: string): string {
  return typeof value === "string" && value.length <= MAX_HEADER_VALUE &&
      HEADER_VALUE.test(value)
    ? value
    : fallback;
}

/**
 * The `Content-Type` of a resource's bytes: its MIME type if that is a
 * valid RFC 9110 media type, else `application/octet-stream`.
 *
 * @example
 * ```ts
 * import { contentType } from "./_header.ts";
 * contentType("text/plain; charset=utf-8"); // "text/plain; charset=utf-8"
 * contentType("text/plain; x=\u0100"); // "application/octet-stream"
 * ```
 */
export function contentType(mimeType: string): string {
  return isMimeType(mimeType)
    ? headerValue(mimeType, FALLBACK_MIME_TYPE)
    : FALLBACK_MIME_TYPE;
}

/**
 * A resource name made safe to save as a file: lone surrogates become
 * U+FFFD; control characters, bidirectional controls (so that
 * `invoice\u202Efdp.exe` cannot pose as `invoiceexe.pdf`), line and paragraph
 * separators, U+FEFF and path separators become `_`; cut to at most 255 bytes
 * of UTF-8 without splitting a character.
 *
 * @example
 * ```ts
 * import { downloadFilename } from "./_header.ts";
 * downloadFilename("invoice\u202efdp.exe"); // "invoice_fdp.exe"
 * downloadFilename("../etc/passwd"); // ".._etc_passwd"
 * ```
 */
export function downloadFilename(name: string): string {
  const safe = String(name).toWellFormed().replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff/\\]/g,
    "_",
  );
  let bytes = 0;
  let end = 0;
  for (const char of safe) {
    const size = char.length === 2
      ? 4
      : char <= "\x7f"
      ? 1
      : char <= "\u07ff"
      ? 2
      : 3;
    if (bytes + size > MAX_FILENAME_BYTES) break;
    bytes += size;
    end += char.length;
  }
  const clipped = safe.slice(0, end);
  return clipped.trim() === "" ? FALLBACK_FILENAME : clipped;
}

/** RFC 8187 `value-chars`: every byte that is not an `attr-char` is %-encoded. */
function encodeExtValue(text: string): string {
  return encodeURIComponent(text).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * `Content-Disposition: inline` with the resource's name as the file name
 * (RFC 6266): `filename*=UTF-8''…` carries the name (made safe by
 * {@linkcode downloadFilename}), `filename="…"` an ASCII fallback for old
 * clients in which every other character, `"`, `\` and `%` is `_`.
 *
 * @example
 * ```ts
 * import { contentDisposition } from "./_header.ts";
 * contentDisposition("naïve (1).txt");
 * // `inline; filename="na_ve (1).txt"; filename*=UTF-8''na%C3%AFve%20%281%29.txt`
 * ```
 */
export function contentDisposition(name: string): string {
  const filename = downloadFilename(name);
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%]/gu, "_");
  return headerValue(
    `inline; filename="${ascii}"; filename*=UTF-8''${encodeExtValue(filename)}`,
    "inline",
  );
}
