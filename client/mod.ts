/**
 * Spool clients: upload a live resource, download it while it grows.
 *
 * @example
 * ```ts ignore
 * import { openDownload, upload } from "./mod.ts";
 * const status = await upload("http://127.0.0.1:8787/", new TextEncoder().encode("hi"), {
 *   name: "hi.txt",
 * });
 * ```
 *
 * @module
 */

export * from "./upload.ts";
export * from "./download.ts";
