/**
 * A resource whose upload another node holds (or held): its statuses come
 * from the engine's status feed, its bytes from the engine store. To the
 * routes, sockets and watchers of this node it is a {@linkcode Resource}
 * like any other.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import { Resource, type StatusWatcher } from "../resource.ts";
import { isNewer } from "../_status_order.ts";
import type { ResourceStore } from "../store.ts";

function statusMessage(status: ResourceStatus): string {
  return JSON.stringify({ type: "status", resource: status });
}

export { isNewer } from "../_status_order.ts";

/**
 * A resource owned elsewhere, mirrored from the engine.
 *
 * @example
 * ```ts ignore
 * const resource = new RemoteResource(store, status);
 * resource.mirror(newerStatus); // watchers hear it
 * ```
 */
export class RemoteResource extends Resource {
  #status: ResourceStatus;
  #message: string;
  readonly #watchers = new Set<StatusWatcher>();
  readonly #finished = Promise.withResolvers<ResourceStatus>();

  /** Mirrors `status`, read through `store`. */
  constructor(store: ResourceStore, status: ResourceStatus) {
    super(store, status, { checkpointMs: 0 });
    this.#status = status;
    this.#message = statusMessage(status);
    if (isTerminal(status)) this.#finished.resolve(status);
  }

  /** The latest status the engine told. */
  override get status(): ResourceStatus {
    return this.#status;
  }

  /** Never live here: no upload of it runs on this node. */
  override get live(): boolean {
    return false;
  }

  /** Resolves with the final status once the engine told it. */
  override get finished(): Promise<ResourceStatus> {
    return this.#finished.promise;
  }

  /** Number of watchers. */
  override get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Calls `watcher` with the latest status now and with every later one. */
  override watch(watcher: StatusWatcher): () => void {
    this.#watchers.add(watcher);
    watcher(this.#status, this.#message);
    return () => this.#watchers.delete(watcher);
  }

  /** Takes `status` if it is newer and tells the watchers; returns whether it was. */
  override mirror(status: ResourceStatus): boolean {
    if (!isNewer(this.#status, status)) return false;
    this.#status = status;
    this.#message = statusMessage(status);
    for (const watcher of this.#watchers) watcher(status, this.#message);
    if (isTerminal(status)) this.#finished.resolve(status);
    return true;
  }
}
