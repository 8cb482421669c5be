/**
 * The Spool server: live resources over WebSockets, hosted by `Deno.serve`.
 *
 * @example
 * ```ts
 * import { startServer } from "./mod.ts";
 * await using server = await startServer({ port: 0, dataDir: await Deno.makeTempDir() });
 * console.log(server.url.href);
 * ```
 *
 * @module
 */

export * from "./server.ts";
export * from "./store.ts";
export {
  FileStore,
  type FileStoreOptions,
  InvalidResourceIdError,
  StoreInUseError,
} from "./file_store.ts";
export {
  INTERRUPTED_REASON,
  type NewResource,
  type RegistryListener,
  ResourceRegistry,
} from "./registry.ts";
export {
  type LiveResourceOptions,
  Resource,
  type StatusWatcher,
  type WatchOptions,
  type WriteObserver,
} from "./resource.ts";
export { DISCONNECTED_REASON } from "./upload_socket.ts";
export { sha256UploadHash, type UploadHash } from "./upload_hash.ts";
export * from "./limits.ts";
export * from "../protocol/close_codes.ts";
// The vocabulary the exports above speak, so this entry stands alone.
export {
  RESOURCE_STATES,
  type ResourceState,
  type ResourceStatus,
} from "../protocol/status.ts";
export { ERROR_CODES, type ErrorCode, SpoolError } from "../protocol/errors.ts";
