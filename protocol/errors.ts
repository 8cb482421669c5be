/**
 * Typed errors shared by the live-resource server and clients. Every error a
 * peer reports on the wire carries one of {@linkcode ERROR_CODES}.
 *
 * @module
 */

/**
 * Machine-readable error codes sent in `error` messages.
 *
 * @example
 * ```ts
 * import { ERROR_CODES } from "./errors.ts";
 * const known = (code: string) => (ERROR_CODES as readonly string[]).includes(code);
 * console.log(known("not-found"), known("oops")); // true false
 * ```
 */
// The union is the source; `satisfies` makes the compiler refuse a list that
// misses one of its members or names one more.
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(
  Object.keys(
    {
      "malformed-message": true,
      "unknown-type": true,
      "invalid-field": true,
      "invalid-argument": true,
      "unexpected-message": true,
      "unexpected-binary": true,
      "not-found": true,
      "gone": true,
      "forbidden": true,
      "invalid-range": true,
      "range-not-satisfiable": true,
      "unknown-request": true,
      "duplicate-request": true,
      "flow-control": true,
      "limit-exceeded": true,
      "upload-failed": true,
      "resource-failed": true,
      "checksum-mismatch": true,
      "connection-closed": true,
      "timeout": true,
      "unavailable": true,
      "method-not-allowed": true,
      "internal": true,
    } satisfies Record<ErrorCode, true>,
  ) as ErrorCode[],
);

/**
 * One of the machine-readable error codes of the protocol.
 *
 * @example
 * ```ts
 * import { type ErrorCode, SpoolError } from "./errors.ts";
 * const retryable = (code: ErrorCode) => code === "connection-closed" || code === "timeout";
 * console.log(retryable(new SpoolError("timeout", "no status in 30 s").code)); // true
 * ```
 */
export type ErrorCode =
  | "malformed-message"
  | "unknown-type"
  | "invalid-field"
  | "invalid-argument"
  | "unexpected-message"
  | "unexpected-binary"
  | "not-found"
  | "gone"
  | "forbidden"
  | "invalid-range"
  | "range-not-satisfiable"
  | "unknown-request"
  | "duplicate-request"
  | "flow-control"
  | "limit-exceeded"
  | "upload-failed"
  | "resource-failed"
  | "checksum-mismatch"
  | "connection-closed"
  | "timeout"
  | "unavailable"
  | "method-not-allowed"
  | "internal";

/**
 * The error of Spool: raised locally for bad input and built from `error`
 * messages the peer sends. Its code is one of {@linkcode ErrorCode} for live
 * resources; the object transport's `TransportError` is a `SpoolError` whose
 * code is a `TransportErrorCode`, so `instanceof SpoolError` catches both
 * halves and every code is kebab-case.
 *
 * @typeParam C The code union (live resources by default).
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { SpoolError } from "./errors.ts";
 * const error = new SpoolError("not-found", "no resource with id 'x'");
 * assertEquals([error.code, error.message], ["not-found", "no resource with id 'x'"]);
 * ```
 */
export class SpoolError<C extends string = ErrorCode> extends Error {
  /** The machine-readable code. */
  readonly code: C;
  /** The read request the error belongs to, if any. */
  readonly requestId?: number;

  /**
   * Creates an error with a code and a message saying what was wrong and
   * what was expected.
   */
  constructor(
    code: C,
    message: string,
    options?: { requestId?: number; cause?: unknown },
  ) {
    super(message, { cause: options?.cause });
    this.name = "SpoolError";
    this.code = code;
    if (options?.requestId !== undefined) this.requestId = options.requestId;
  }
}

/**
 * A resource that ended `FAILED` while a client was reading or waiting on it.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { ResourceFailedError } from "./errors.ts";
 * const error = new ResourceFailedError("abc", "uploader disconnected");
 * assertEquals(error.message, "resource abc FAILED: uploader disconnected");
 * assertEquals(error.code, "resource-failed"); // a SpoolError like every other
 * ```
 */
export class ResourceFailedError extends SpoolError {
  /** The id of the failed resource. */
  readonly resourceId: string;
  /** The reason the server gave. */
  readonly reason: string;

  /** Creates the error for resource `resourceId` failed for `reason` (code `resource-failed`). */
  constructor(resourceId: string, reason: string) {
    super("resource-failed", `resource ${resourceId} FAILED: ${reason}`);
    this.name = "ResourceFailedError";
    this.resourceId = resourceId;
    this.reason = reason;
  }
}
