/**
 * The status model of a live resource, shared by server and clients.
 *
 * @module
 */

/**
 * Every state a resource can be in, in the order a healthy upload passes them.
 *
 * @example
 * ```ts
 * import { RESOURCE_STATES } from "./status.ts";
 * const isState = (value: string) => (RESOURCE_STATES as readonly string[]).includes(value);
 * console.log(isState("COMPLETED"), isState("DONE")); // true false
 * ```
 */
// The union is the source; `satisfies` makes the compiler refuse a list that
// misses one of its members or names one more.
export const RESOURCE_STATES: readonly ResourceState[] = Object.freeze(
  Object.keys(
    {
      "INITIATED": true,
      "IN_PROGRESS": true,
      "COMPLETED": true,
      "FAILED": true,
    } satisfies Record<ResourceState, true>,
  ) as ResourceState[],
);

/**
 * The state of a resource: `INITIATED` before any byte is checkpointed,
 * `IN_PROGRESS` while bytes are checkpointed, then `COMPLETED` or `FAILED`.
 *
 * @example
 * ```ts
 * import type { ResourceState } from "./status.ts";
 * const labels: Record<ResourceState, string> = {
 *   INITIATED: "waiting", IN_PROGRESS: "uploading", COMPLETED: "done", FAILED: "failed",
 * };
 * ```
 */
export type ResourceState =
  | "INITIATED"
  | "IN_PROGRESS"
  | "COMPLETED"
  | "FAILED";

/**
 * What the server knows of a resource at one checkpoint. Readers may request
 * any byte range within `size`; bytes past it are never served.
 *
 * @example Checking whether a resource is finished
 * ```ts
 * import { isTerminal, type ResourceStatus } from "./status.ts";
 * const status: ResourceStatus = {
 *   id: "abc", name: "build.log", mimeType: "text/plain", metadata: {},
 *   status: "IN_PROGRESS", size: 10,
 *   createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(),
 * };
 * console.log(isTerminal(status)); // false
 * ```
 */
export interface ResourceStatus {
  /** Unguessable id of the resource. */
  id: string;
  /** Name given by the uploader (a label only, never a path). */
  name: string;
  /** MIME type given by the uploader. */
  mimeType: string;
  /** Custom string metadata given by the uploader. */
  metadata: Record<string, string>;
  /** The state of the upload. */
  status: ResourceState;
  /** Checkpointed size in bytes: the readable extent. */
  size: number;
  /** When the upload was requested (ISO 8601). */
  createdAt: string;
  /** When this status was produced (ISO 8601). */
  updatedAt: string;
  /** When the resource reached `COMPLETED` or `FAILED` (ISO 8601). */
  finishedAt?: string;
  /** Lowercase hex SHA-256 of the whole resource, once `COMPLETED`. */
  sha256?: string;
  /** Why the resource is `FAILED`. */
  error?: string;
}

/**
 * Tells whether a status is final (`COMPLETED` or `FAILED`).
 *
 * @example
 * ```ts
 * import { isTerminal } from "./status.ts";
 * isTerminal({ status: "COMPLETED" }); // true
 * ```
 */
export function isTerminal(status: Pick<ResourceStatus, "status">): boolean {
  return status.status === "COMPLETED" || status.status === "FAILED";
}
