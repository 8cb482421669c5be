/**
 * Typed errors of the object transport. Every failure carries a
 * machine-readable {@linkcode TransportErrorCode}; receivers report the same
 * codes to senders in their HTTP error responses.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";

/**
 * Machine-readable error codes of the object transport.
 *
 * @example
 * ```ts
 * import { TRANSPORT_ERROR_CODES } from "./errors.ts";
 * console.log(TRANSPORT_ERROR_CODES.includes("hdr-checksum")); // true
 * ```
 */
export const TRANSPORT_ERROR_CODES: readonly TransportErrorCode[] = Object
  .freeze(
    Object.keys(
      {
        // Receive side: framing and decoding.
        "proto-hdr-short": true,
        "proto-hdr-invalid": true,
        "hdr-checksum": true,
        "hdr-too-large": true,
        "obj-hdr-short": true,
        "obj-hdr-malformed": true,
        "obj-data-eof": true,
        "obj-data-size": true,
        "pdu-hdr-short": true,
        "pdu-invalid": true,
        "pdu-data-eof": true,
        "frame-after-fin": true,
        "decompress-failed": true,
        "connection-reset": true,
        "body-timeout": true,
        "handler-failed": true,
        "unknown-endpoint": true,
        "bad-request": true,
        "receiver-closed": true,
        "unauthorized": true,
        "nonce-cache-full": true,
        "method-not-allowed": true,
        // Send side.
        "obj-hdr-invalid": true,
        "obj-size-mismatch": true,
        "body-failed": true,
        "stream-terminated": true,
        "stream-aborted": true,
        "receiver-gone": true,
        "receiver-error": true,
        "destination-missing": true,
        // Registry.
        "duplicate-endpoint": true,
        "unknown-network": true,
        "invalid-argument": true,
      } satisfies Record<TransportErrorCode, true>,
    ) as TransportErrorCode[],
  );

/**
 * One of {@linkcode TRANSPORT_ERROR_CODES}.
 *
 * @example
 * ```ts
 * import { TransportError, type TransportErrorCode } from "./errors.ts";
 * const transient: TransportErrorCode[] = ["connection-reset", "receiver-gone"];
 * const shouldRetry = (error: unknown) =>
 *   error instanceof TransportError && transient.includes(error.code);
 * ```
 */
export type TransportErrorCode =
  // Receive side: framing and decoding.
  | "proto-hdr-short"
  | "proto-hdr-invalid"
  | "hdr-checksum"
  | "hdr-too-large"
  | "obj-hdr-short"
  | "obj-hdr-malformed"
  | "obj-data-eof"
  | "obj-data-size"
  | "pdu-hdr-short"
  | "pdu-invalid"
  | "pdu-data-eof"
  | "frame-after-fin"
  | "decompress-failed"
  | "connection-reset"
  | "body-timeout"
  | "handler-failed"
  | "unknown-endpoint"
  | "bad-request"
  | "receiver-closed"
  | "unauthorized"
  | "nonce-cache-full"
  | "method-not-allowed"
  // Send side.
  | "obj-hdr-invalid"
  | "obj-size-mismatch"
  | "body-failed"
  | "stream-terminated"
  | "stream-aborted"
  | "receiver-gone"
  | "receiver-error"
  | "destination-missing"
  // Registry.
  | "duplicate-endpoint"
  | "unknown-network"
  | "invalid-argument";

/**
 * Extra context of a {@linkcode TransportError}.
 *
 * @example
 * ```ts
 * import { TransportError, type TransportErrorOptions } from "./errors.ts";
 * const options: TransportErrorOptions = { sessionId: "s1", cause: new Error("socket closed") };
 * const error = new TransportError("connection-reset", "the receiver went away", options);
 * console.log(error.sessionId); // "s1"
 * ```
 */
export interface TransportErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** The session the error belongs to, if known. */
  sessionId?: string;
  /** The code the remote peer reported (for `receiver-error`). */
  remoteCode?: string;
}

/**
 * An error of the object transport: a {@linkcode SpoolError} whose code is a
 * {@linkcode TransportErrorCode}.
 *
 * @example
 * ```ts
 * import { TransportError } from "./errors.ts";
 * const error = new TransportError("hdr-checksum", "check word mismatch");
 * console.log(error.code); // "hdr-checksum"
 * ```
 */
export class TransportError extends SpoolError<TransportErrorCode> {
  /** The session the error belongs to, if known. */
  readonly sessionId?: string;
  /** For `receiver-error`: the code the receiver reported. */
  readonly remoteCode?: string;

  /** Creates an error with a code and a message saying what was wrong. */
  constructor(
    code: TransportErrorCode,
    message: string,
    options?: TransportErrorOptions,
  ) {
    super(code, message, { cause: options?.cause });
    this.name = "TransportError";
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
 * console.log(isTransportErrorCode("hdr-checksum")); // true
 * ```
 */
export function isTransportErrorCode(
  value: unknown,
): value is TransportErrorCode {
  return typeof value === "string" &&
    (TRANSPORT_ERROR_CODES as readonly string[]).includes(value);
}
