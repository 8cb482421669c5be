/**
 * The open-file limit (`ulimit -n`) of this process, so that the watcher
 * limits never promise more sockets than the process can hold: past it,
 * accepting a connection fails for every client at once.
 *
 * @module
 */

import type { ServerLimits } from "./limits.ts";

/** Descriptors kept for listeners, store files and upload sockets. */
export const RESERVED_DESCRIPTORS = 64;

/**
 * The soft limit on open files, where the system tells it (Linux
 * `/proc/self/limits`); `undefined` elsewhere or when unlimited.
 */
export async function openFileLimit(): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile("/proc/self/limits");
  } catch (error) {
    // Not Linux, or not readable here: nothing to fit the limits to.
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      return undefined;
    }
    throw error;
  }
  const soft = text.match(/^Max open files\s+(\S+)/m)?.[1];
  return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
}

/**
 * `limits` with `maxWatchers` lowered to what `fileLimit` descriptors allow
 * when it was left at its default (`explicit` tells which limits were
 * given); returns the note to log when it lowered it or when an explicit
 * value cannot be held.
 */
export function fitWatchersToOpenFiles(
  limits: ServerLimits,
  explicit: Partial<ServerLimits>,
  fileLimit: number | undefined,
): { limits: ServerLimits; note?: string } {
  if (fileLimit === undefined) return { limits };
  const room = Math.max(1, fileLimit - RESERVED_DESCRIPTORS);
  if (limits.maxWatchers <= room) return { limits };
  if (explicit.maxWatchers !== undefined) {
    return {
      limits,
      note:
        `the limit maxWatchers of ${limits.maxWatchers} is more than the open-file limit of ${fileLimit} (ulimit -n) can hold; connections past about ${room} will be refused at accept (raise it with ulimit -n)`,
    };
  }
  return {
    limits: { ...limits, maxWatchers: room },
    note:
      `download sockets are limited to ${room} by the open-file limit of ${fileLimit} (ulimit -n); raise it for more`,
  };
}
