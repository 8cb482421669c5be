/**
 * Checks of what a sender puts in its HTTP request line and headers, shared
 * by `Stream` (to fail fast with `invalid-argument`) and the worker's
 * HTTP/1.1 client (which must never write a malformed request).
 * Internal (see `./README.md`).
 *
 * @module
 */

import { TransportError } from "../errors.ts";

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
/** Headers the transport writes itself; a caller's copy would break framing. */
const RESERVED = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "content-type",
  "spool-session-id",
  "spool-compression",
]);

/**
 * Parses a receiver URL; throws `invalid-argument` unless it is `http:` or
 * `https:`.
 *
 * @example
 * ```ts ignore
 * const url = receiverUrl("http://127.0.0.1:8080/v1/objstream/x");
 * ```
 */
export function receiverUrl(url: string | URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new TransportError(
      "invalid-argument",
      `receiver URL ${JSON.stringify(String(url))} is not a URL`,
      { cause: error },
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TransportError(
      "invalid-argument",
      `receiver URL ${parsed.href} has protocol ${parsed.protocol}, expected http: or https:`,
    );
  }
  return parsed;
}

/**
 * Throws `invalid-argument` unless every header is a token name with a
 * printable value (no CR/LF: nothing can be smuggled into the request).
 *
 * @example
 * ```ts ignore
 * checkRequestHeaders({ authorization: "Bearer x" });
 * ```
 */
export function checkRequestHeaders(headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (
      !HEADER_NAME.test(name) || typeof value !== "string" ||
      !HEADER_VALUE.test(value)
    ) {
      throw new TransportError(
        "invalid-argument",
        `request header ${JSON.stringify(name)}: ${
          JSON.stringify(value)
        } is not a valid HTTP header, expected a token name and a printable value`,
      );
    }
    if (RESERVED.has(name.toLowerCase())) {
      throw new TransportError(
        "invalid-argument",
        `request header ${
          JSON.stringify(name)
        } is set by the transport itself, expected another name`,
      );
    }
  }
}
