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
// The vocabulary the exports above speak, so this entry stands alone.
export {
  RESOURCE_STATES,
  type ResourceState,
  type ResourceStatus,
} from "../protocol/status.ts";
export {
  ERROR_CODES,
  type ErrorCode,
  ResourceFailedError,
  SpoolError,
} from "../protocol/errors.ts";
