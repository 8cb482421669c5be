/**
 * A node joining the others on the engine: its registry learns every
 * resource from the status feed (other nodes' ones become
 * {@linkcode RemoteResource}s whose statuses follow the feed), and its lease
 * sweeper fails the uploads of nodes that are gone. An uploader resuming
 * here an upload another node holds is taken over ({@linkcode takeOverUpload}).
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import { SpoolError } from "../../protocol/errors.ts";
import type { ResourceRegistry } from "../registry.ts";
import { Resource } from "../resource.ts";
import { noUpload, type TakeOver } from "../upload_sessions.ts";
import { isResourceId } from "../resource_id.ts";
import { sanitizeStoredStatus } from "../_stored_status.ts";
import type { JetStreamStore } from "./jetstream_store.ts";
import { LeaseSweeper } from "./lease_sweeper.ts";
import { RemoteResource } from "./remote_resource.ts";
import { pieceSubscriber } from "./_piece_subscription.ts";
import { NODE_TAIL_BYTES, TailBudget } from "./_remote_tail.ts";
import { StatusFeed } from "./status_feed.ts";
import { DEFAULT_CHECKPOINT_MS, DEFAULT_LEASE_SWEEP_MS } from "../defaults.ts";

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
  /** Checkpoint interval of uploads taken over here, in ms. Default 250. */
  checkpointMs?: number;
  /**
   * Whether the nodes share the token secret (`--secret-file`): only then is
   * another node's write token valid here, and its uploads taken over.
   * Default `false`.
   */
  sharedSecret?: boolean;
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
  /** Takes over uploads other nodes hold when their uploaders resume here. */
  readonly takeOver: TakeOver;
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
  // One bound for the tails of every resource this node follows.
  const tails = new TailBudget(NODE_TAIL_BYTES);
  const feed = await StatusFeed.start(store.engine, {
    status: (status) => mirror(store, registry, status, tails),
    deleted(id) {
      const resource = registry.get(id);
      if (resource?.live) return;
      // Unknown ids are remembered too: they answer "gone", not "not found".
      registry.forget(id);
      if (resource) options.onDeleted?.(resource);
    },
  });
  registry.lookUpWith((id) => lookUpElsewhere(store, registry, id, tails));
  const sweeper = new LeaseSweeper(store, {
    graceMs: options.graceMs,
    sweepMs: options.sweepMs ?? DEFAULT_LEASE_SWEEP_MS,
    uploads: () => remoteUploads(registry),
  });
  return {
    feed,
    takeOver: {
      refusal: (id) => takeOverRefusal(store, registry, id, options),
      take: (id) =>
        takeOverUpload(store, registry, id, {
          checkpointMs: options.checkpointMs ?? DEFAULT_CHECKPOINT_MS,
        }),
    },
    async leave() {
      await sweeper.stop();
      await feed.stop();
    },
  };
}

/**
 * Statuses of the live uploads other nodes hold: those this node knows
 * from the feed, and those taken over from it.
 */
function remoteUploads(registry: ResourceRegistry): ResourceStatus[] {
  const statuses: ResourceStatus[] = [];
  for (const resource of registry.all()) {
    if (!resource.live && !isTerminal(resource.status)) {
      statuses.push(resource.status);
    }
  }
  return statuses;
}

/**
 * Why upload `id` cannot be taken over here, if it cannot. An id the feed
 * has not brought yet (a resume right after the upload started elsewhere)
 * is looked up in the engine.
 */
async function takeOverRefusal(
  store: JetStreamStore,
  registry: ResourceRegistry,
  id: string,
  options: ClusterOptions,
): Promise<SpoolError | undefined> {
  const known = registry.get(id);
  const status = known?.status ??
    (isResourceId(id) ? await store.lastStatus(id) : undefined);
  if (status === undefined || known?.live || isTerminal(status)) {
    return noUpload(id);
  }
  if (options.sharedSecret) return undefined;
  return new SpoolError(
    "unavailable",
    `upload ${id} is held by another node, and this node cannot check its write token: the nodes do not share a token secret; expected --secret-file naming one key file on every node (or a resume on the node that took the upload)`,
  );
}

/**
 * Takes the live upload `id` over from the node holding it: the store takes
 * its lease and fences it out; the new live resource continues from the
 * bytes stored, with their SHA-256 rebuilt, and replaces the one the
 * registry had (whose watchers follow it).
 *
 * @example
 * ```ts ignore
 * const resource = await takeOverUpload(store, registry, id, { checkpointMs: 250 });
 * console.log(resource.written); // the durable offset the uploader resumes from
 * ```
 */
export async function takeOverUpload(
  store: JetStreamStore,
  registry: ResourceRegistry,
  id: string,
  options: { checkpointMs: number },
): Promise<Resource> {
  const taken = await store.takeOver(id);
  if (taken === undefined) throw noUpload(id);
  const resource = new Resource(store, taken.status, {
    checkpointMs: options.checkpointMs,
    writer: taken.writer,
    resumed: { written: taken.written, hash: taken.hash },
  });
  await registry.takeOver(resource);
  console.error(
    `spool: took over upload ${id} from ${taken.from} at byte ${taken.written}`,
  );
  return resource;
}

/**
 * Finds `id` in the engine when the feed has not brought it yet. An engine
 * that cannot answer makes the request `unavailable`, not `not-found`.
 */
async function lookUpElsewhere(
  store: JetStreamStore,
  registry: ResourceRegistry,
  id: string,
  tails: TailBudget,
): Promise<Resource | undefined> {
  let status: ResourceStatus | undefined;
  try {
    status = await store.lastStatus(id);
  } catch (error) {
    throw new SpoolError(
      "unavailable",
      `could not look resource ${id} up in the engine: ${
        (error as Error).message
      }; expected the engine to answer (try again)`,
    );
  }
  if (status !== undefined) await mirror(store, registry, status, tails);
  return registry.get(id);
}

/** Takes a status from the feed into the registry. */
async function mirror(
  store: JetStreamStore,
  registry: ResourceRegistry,
  stored: ResourceStatus,
  tails: TailBudget,
): Promise<void> {
  if (!isResourceId(stored.id)) return;
  const known = registry.get(stored.id);
  // This node's own uploads publish; they need not hear themselves.
  if (known?.live) return;
  const { status, changes } = await sanitizeStoredStatus(
    stored,
    () => store.dataSize(stored.id),
  );
  if (known === undefined) {
    for (const change of changes) {
      console.warn(`spool: resource ${status.id}: ${change}`);
    }
    registry.adopt(
      new RemoteResource(store, status, {
        pieces: pieceSubscriber(store.engine.nc),
        budget: tails,
      }),
    );
  } else known.mirror(status);
}
