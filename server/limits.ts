/**
 * Server limits: each has a default, a command-line flag and a specific
 * `limit-exceeded` error that names it, so hitting one is never a crash.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";

/**
 * Every limit of a server.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS, type ServerLimits } from "./limits.ts";
 * const limits: ServerLimits = { ...DEFAULT_LIMITS, maxUploads: 100 };
 * ```
 */
export interface ServerLimits {
  /** Largest resource in bytes (`--max-resource-bytes`). Default 1 TiB. */
  maxResourceBytes: number;
  /** Uploads in progress at once (`--max-uploads`). Default 10 000. */
  maxUploads: number;
  /** Download sockets on one resource (`--max-watchers-per-resource`). Default 20 000. */
  maxWatchersPerResource: number;
  /** Download sockets on the server (`--max-watchers`). Default 100 000. */
  maxWatchers: number;
  /** Reads and follows in flight on one download socket (`--max-requests-per-socket`). Default 64. */
  maxRequestsPerSocket: number;
  /** An upload socket silent this long fails its upload (`--upload-idle-timeout-ms`). Default 5 minutes. */
  uploadIdleTimeoutMs: number;
  /**
   * A socket whose peer sent nothing this long, not even a heartbeat, is
   * presumed dead and dropped (`--peer-timeout-ms`). Default 30 s: clients
   * send a heartbeat at least every 10 s.
   */
  peerTimeoutMs: number;
  /**
   * A socket holding bytes for its peer that takes none of them this long is
   * dropped (`--stall-timeout-ms`). A slow reader that makes progress is
   * never dropped. Default 60 s.
   */
  stallTimeoutMs: number;
}

/**
 * The defaults of {@linkcode ServerLimits}.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS } from "./limits.ts";
 * console.log(DEFAULT_LIMITS.maxRequestsPerSocket); // 64
 * ```
 */
export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxResourceBytes: 2 ** 40,
  maxUploads: 10_000,
  maxWatchersPerResource: 20_000,
  maxWatchers: 100_000,
  maxRequestsPerSocket: 64,
  uploadIdleTimeoutMs: 300_000,
  peerTimeoutMs: 30_000,
  stallTimeoutMs: 60_000,
});

/**
 * The command-line flag of each limit, for the command line's `--help`
 * and its hints (library errors name the limit, not the flag).
 *
 * @example
 * ```ts
 * import { LIMIT_FLAGS } from "./limits.ts";
 * console.log(LIMIT_FLAGS.maxUploads); // "--max-uploads"
 * ```
 */
export const LIMIT_FLAGS: Readonly<Record<keyof ServerLimits, string>> = Object
  .freeze({
    maxResourceBytes: "--max-resource-bytes",
    maxUploads: "--max-uploads",
    maxWatchersPerResource: "--max-watchers-per-resource",
    maxWatchers: "--max-watchers",
    maxRequestsPerSocket: "--max-requests-per-socket",
    uploadIdleTimeoutMs: "--upload-idle-timeout-ms",
    peerTimeoutMs: "--peer-timeout-ms",
    stallTimeoutMs: "--stall-timeout-ms",
  });

/**
 * The error for hitting `limit`: says what was refused, the limit's value
 * and the flag that sets it.
 *
 * @example
 * ```ts
 * import { limitExceeded } from "./limits.ts";
 * const error = limitExceeded("maxUploads", 10, "a new upload");
 * console.log(error.message);
 * // a new upload exceeds the server's limit of 10 (limit maxUploads)
 * ```
 */
export function limitExceeded(
  limit: keyof ServerLimits,
  value: number,
  what: string,
  options?: { requestId?: number },
): SpoolError {
  return new SpoolError(
    "limit-exceeded",
    `${what} exceeds the server's limit of ${value} (limit ${limit})`,
    options,
  );
}

/**
 * Fills unset limits with defaults and checks the rest.
 *
 * @example
 * ```ts
 * import { resolveLimits } from "./limits.ts";
 * resolveLimits({ maxUploads: 5 }).maxUploads; // 5
 * ```
 */
export function resolveLimits(
  limits: Partial<ServerLimits> = {},
): ServerLimits {
  const resolved = { ...DEFAULT_LIMITS, ...limits };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new SpoolError(
        "invalid-argument",
        `limit ${name} is ${value}; expected a positive integer`,
      );
    }
  }
  return resolved;
}
