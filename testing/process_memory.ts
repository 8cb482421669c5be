/**
 * Memory of a process, for the tests, the bench and the soak: its resident
 * set size now and at its peak, from Linux's `/proc/{pid}/status`.
 *
 * @module
 */

/** A `kB` line of `/proc/{pid}/status`, in bytes. */
async function statusBytes(pid: number, field: string): Promise<number> {
  const path = `/proc/${pid}/status`;
  const status = await Deno.readTextFile(path);
  const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
  if (!match) {
    throw new Error(`${path} has no "${field}: N kB" line; expected Linux`);
  }
  return Number(match[1]) * 1024;
}

/**
 * Resident set size of process `pid` in bytes (`VmRSS`). Throws if the
 * process is gone or this is not Linux.
 *
 * @example
 * ```ts ignore
 * import { rssOf } from "./process_memory.ts";
 * console.log(await rssOf(Deno.pid) > 0); // true
 * ```
 */
export function rssOf(pid: number): Promise<number> {
  return statusBytes(pid, "VmRSS");
}

/**
 * Peak resident set size of process `pid` in bytes (`VmHWM`), over its
 * whole life so far. Throws if the process is gone or this is not Linux.
 *
 * @example
 * ```ts ignore
 * import { peakRssOf, rssOf } from "./process_memory.ts";
 * console.log(await peakRssOf(Deno.pid) >= await rssOf(Deno.pid)); // true
 * ```
 */
export function peakRssOf(pid: number): Promise<number> {
  return statusBytes(pid, "VmHWM");
}
