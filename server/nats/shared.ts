/**
 * The entry the server loads (dynamically, so a server without `--nats`
 * never loads the NATS clients): the engine store and how a node joins the
 * others on it.
 *
 * @module
 */

import type { ResourceRegistry } from "../registry.ts";
import { type Cluster, type ClusterOptions, joinCluster } from "./cluster.ts";
import { NatsEngine } from "./engine.ts";
import { JetStreamStore } from "./jetstream_store.ts";

/**
 * A store on the engine, and the join of this node's registry.
 *
 * @example
 * ```ts ignore
 * const shared = await openShared({ servers: ["nats://127.0.0.1:4222"], leaseMs: 5000 });
 * const cluster = await shared.join(registry, { graceMs: 10_000 });
 * ```
 */
export interface Shared {
  /** The engine store (it closes the engine when it closes). */
  store: JetStreamStore;
  /** Fills `registry` from the engine and keeps it in step. */
  join(registry: ResourceRegistry, options: ClusterOptions): Promise<Cluster>;
}

/**
 * Connects to the engine at `servers`; throws `EngineUnreachableError`
 * naming them when none answers.
 */
export async function openShared(
  options: { servers: string[]; leaseMs: number },
): Promise<Shared> {
  const engine = await NatsEngine.connect({ servers: options.servers });
  const store = new JetStreamStore(engine, {
    leaseMs: options.leaseMs,
    ownsEngine: true,
  });
  return {
    store,
    join: (registry, clusterOptions) =>
      joinCluster(store, registry, clusterOptions),
  };
}
