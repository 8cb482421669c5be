/**
 * Releasing store reads: a cancel that fails is logged, except when the file
 * is simply gone already (closed by the read's own end).
 *
 * @module
 */

/**
 * Logs a failed cancel of a store read; a closed file is not a failure.
 *
 * @example
 * ```ts ignore
 * await reader.cancel().catch(logReleaseFailure);
 * ```
 */
export function logReleaseFailure(error: unknown): void {
  if (!(error instanceof Deno.errors.BadResource)) {
    console.debug("spool: releasing a store read failed:", error);
  }
}
