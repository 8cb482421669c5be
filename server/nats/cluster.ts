/**
 * A node joining the others on the engine: its registry learns every
 * resource from the status feed (other nodes' ones become
 * {@linkcode RemoteResource}s whose statuses follow the feed), and its lease
 * sweeper fails the uploads of nodes that are gone.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import type { ResourceRegistry } from "../registry.ts";
import type { Resource } from "../resource.ts";
import { isResourceId } from "../resource_id.ts";
import { sanitizeStoredStatus } from "../_stored_status.ts";
import type { JetStreamStore } from "./jetstream_store.ts";
import { LeaseSweeper } from "./lease_sweeper.ts";
import { RemoteResource } from "./remote_resource.ts";
import { StatusFeed } from "./status_feed.ts";
import { DEFAULT_LEASE_SWEEP_MS } from "../defaults.ts";

/**
 * Options of {@linkcode joinCluster}.
 *
 * @example
 * ```ts
 * import type { ClusterOptions } from "./cluster.ts";
 * const options: ClusterOptions = { graceMs: 10_000 };
 * ```
 */
export interface ClusterOptions {
  /** The resume grace period of uploads, in ms. */
  graceMs: number;
  /** How often leases are looked at, in ms. Default 1000. */
  sweepMs?: number;
  /** Called when another node deleted a resource this node knew. */
  onDeleted?: (resource: Resource) => void;
}

/**
 * A node in the cluster.
 *
 * @example
 * ```ts ignore
 * const cluster = await joinCluster(store, registry, { graceMs: 10_000 });
 * console.log(cluster.feed.handled);
 * await cluster.leave();
 * ```
 */
export interface Cluster {
  /** The node's status feed. */
  readonly feed: StatusFeed;
  /** Stops following the engine. */
  leave(): Promise<void>;
}

/**
 * Fills `registry` with every resource on the engine and keeps it in step;
 * resolves once every resource that existed is known.
 */
export async function joinCluster(
  store: JetStreamStore,
  registry: ResourceRegistry,
  options: ClusterOptions,
): Promise<Cluster> {
  const feed = await StatusFeed.start(store.engine, {
    status: (status) => mirror(store, registry, status),
    deleted(id) {
      const resource = registry.get(id);
      if (resource?.live) return;
      // Unknown ids are remembered too: they answer "gone", not "not found".
      registry.forget(id);
      if (resource) options.onDeleted?.(resource);
    },
  });
  const sweeper = new LeaseSweeper(store, {
    graceMs: options.graceMs,
    sweepMs: options.sweepMs ?? DEFAULT_LEASE_SWEEP_MS,
    uploads: () => remoteUploads(registry),
  });
  return {
    feed,
    async leave() {
      await sweeper.stop();
      await feed.stop();
    },
  };
}

/** Statuses of the live uploads other nodes hold. */
function remoteUploads(registry: ResourceRegistry): ResourceStatus[] {
  const statuses: ResourceStatus[] = [];
  for (const resource of registry.all()) {
    if (resource instanceof RemoteResource && !isTerminal(resource.status)) {
      statuses.push(resource.status);
    }
  }
  return statuses;
}

/** Takes a status from the feed into the registry. */
async function mirror(
  store: JetStreamStore,
  registry: ResourceRegistry,
  stored: ResourceStatus,
): Promise<void> {
  if (!isResourceId(stored.id)) return;
  const known = registry.get(stored.id);
  // This node's own uploads publish; they need not hear themselves.
  if (known !== undefined && !(known instanceof RemoteResource)) return;
  const { status, changes } = await sanitizeStoredStatus(
    stored,
    () => store.dataSize(stored.id),
  );
  if (known === undefined) {
    for (const change of changes) {
      console.warn(`spool: resource ${status.id}: ${change}`);
    }
    registry.adopt(new RemoteResource(store, status));
  } else known.mirror(status);
}
