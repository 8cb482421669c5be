/**
 * Typed errors of the object transport. Every failure carries a
 * machine-readable {@linkcode TransportErrorCode}; receivers report the same
 * codes to senders in their HTTP error responses.
 *
 * @module
 */

/**
 * Machine-readable error codes of the object transport.
 *
 * @example
 * ```ts
 * import { TRANSPORT_ERROR_CODES } from "./errors.ts";
 * console.log(TRANSPORT_ERROR_CODES.includes("hdr_checksum")); // true
 * ```
 */
export const TRANSPORT_ERROR_CODES = [
  // Receive side: framing and decoding.
  "proto_hdr_short",
  "proto_hdr_invalid",
  "hdr_checksum",
  "hdr_too_large",
  "obj_hdr_short",
  "obj_hdr_malformed",
  "obj_data_eof",
  "obj_data_size",
  "pdu_hdr_short",
  "pdu_invalid",
  "pdu_data_eof",
  "frame_after_fin",
  "decompress_failed",
  "connection_reset",
  "body_timeout",
  "handler_failed",
  "unknown_endpoint",
  "bad_request",
  "receiver_closed",
  "unauthorized",
  "nonce_cache_full",
  // Send side.
  "obj_hdr_invalid",
  "obj_size_mismatch",
  "body_failed",
  "stream_terminated",
  "stream_aborted",
  "receiver_gone",
  "receiver_error",
  "destination_missing",
  // Registry.
  "duplicate_endpoint",
  "unknown_network",
  "invalid_argument",
] as const;

/**
 * One of {@linkcode TRANSPORT_ERROR_CODES}.
 *
 * @example
 * ```ts
 * import { TransportError, type TransportErrorCode } from "./errors.ts";
 * const transient: TransportErrorCode[] = ["connection_reset", "receiver_gone"];
 * const shouldRetry = (error: unknown) =>
 *   error instanceof TransportError && transient.includes(error.code);
 * ```
 */
export type TransportErrorCode = typeof TRANSPORT_ERROR_CODES[number];

/**
 * Extra context of a {@linkcode TransportError}.
 *
 * @example
 * ```ts
 * import { TransportError, type TransportErrorOptions } from "./errors.ts";
 * const options: TransportErrorOptions = { sessionId: "s1", cause: new Error("socket closed") };
 * const error = new TransportError("connection_reset", "the receiver went away", options);
 * console.log(error.sessionId); // "s1"
 * ```
 */
export interface TransportErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** The session the error belongs to, if known. */
  sessionId?: string;
  /** The code the remote peer reported (for `receiver_error`). */
  remoteCode?: string;
}

/**
 * An error of the object transport.
 *
 * @example
 * ```ts
 * import { TransportError } from "./errors.ts";
 * const error = new TransportError("hdr_checksum", "check word mismatch");
 * console.log(error.code); // "hdr_checksum"
 * ```
 */
export class TransportError extends Error {
  /** The machine-readable code. */
  readonly code: TransportErrorCode;
  /** The session the error belongs to, if known. */
  readonly sessionId?: string;
  /** For `receiver_error`: the code the receiver reported. */
  readonly remoteCode?: string;

  /** Creates an error with a code and a message saying what was wrong. */
  constructor(
    code: TransportErrorCode,
    message: string,
    options?: TransportErrorOptions,
  ) {
    super(message, { cause: options?.cause });
    this.name = "TransportError";
    this.code = code;
    if (options?.sessionId !== undefined) this.sessionId = options.sessionId;
    if (options?.remoteCode !== undefined) this.remoteCode = options.remoteCode;
  }
}

/**
 * Whether `value` is one of the transport error codes.
 *
 * @example
 * ```ts
 * import { isTransportErrorCode } from "./errors.ts";
 * console.log(isTransportErrorCode("hdr_checksum")); // true
 * ```
 */
export function isTransportErrorCode(
  value: unknown,
): value is TransportErrorCode {
  return typeof value === "string" &&
    (TRANSPORT_ERROR_CODES as readonly string[]).includes(value);
}
