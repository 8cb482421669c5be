/**
 * The order of a resource's statuses as other nodes tell them: statuses
 * only move forward (a final one is final, sizes never shrink), so a late
 * or replayed message cannot take a follower back.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../protocol/status.ts";

/**
 * Whether `next` may replace `current`.
 *
 * @example
 * ```ts
 * import { isNewer } from "./_status_order.ts";
 * const base = { id: "x", name: "a", mimeType: "text/plain", metadata: {}, createdAt: "", updatedAt: "" };
 * console.log(isNewer({ ...base, status: "IN_PROGRESS", size: 5 }, { ...base, status: "IN_PROGRESS", size: 9 })); // true
 * ```
 */
export function isNewer(
  current: ResourceStatus,
  next: ResourceStatus,
): boolean {
  if (isTerminal(current)) return false;
  if (isTerminal(next)) return next.size >= current.size;
  return next.size > current.size ||
    (next.size === current.size && next.status !== current.status &&
      current.status === "INITIATED");
}
