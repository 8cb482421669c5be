/**
 * Retention: finished resources are deleted a fixed time after they
 * finished. One sweep timer for the whole server, not one per resource.
 *
 * @module
 */

import type { Resource } from "./resource.ts";
import type { ResourceRegistry } from "./registry.ts";

/** Options of {@linkcode startRetention}. */
export interface RetentionOptions {
  /** Keep finished resources this long, in ms; `0` keeps them forever. */
  retentionMs: number;
  /** Called after each expiry, once the store deleted the resource. */
  onExpire?: (resource: Resource) => void;
}

/** A running retention sweeper. */
export interface Retention {
  /** Stops sweeping and waits for a sweep in progress. */
  stop(): Promise<void>;
}

/**
 * Starts sweeping `registry`: every `retentionMs / 4` (between 25 ms and one
 * minute) resources finished more than `retentionMs` ago are deleted.
 *
 * @example
 * ```ts ignore
 * const retention = startRetention(registry, { retentionMs: 86_400_000 });
 * await retention.stop();
 * ```
 */
export function startRetention(
  registry: ResourceRegistry,
  options: RetentionOptions,
): Retention {
  const { retentionMs } = options;
  if (retentionMs === 0) return { stop: () => Promise.resolve() };
  let sweeping: Promise<void> = Promise.resolve();
  const sweep = async () => {
    const cutoff = Date.now() - retentionMs;
    for (const resource of [...registry.all()]) {
      const finishedAt = resource.status.finishedAt;
      if (resource.live || finishedAt === undefined) continue;
      if (Date.parse(finishedAt) > cutoff) continue;
      try {
        await registry.expire(resource);
        options.onExpire?.(resource);
      } catch (error) {
        // The next sweep cannot retry (the id is gone from the registry):
        // report it; the files stay for an operator to remove.
        console.error(
          `spool: deleting expired resource ${resource.status.id} failed:`,
          error,
        );
      }
    }
  };
  const period = Math.min(60_000, Math.max(25, Math.floor(retentionMs / 4)));
  const timer = setInterval(() => {
    sweeping = sweeping.then(sweep);
  }, period);
  return {
    async stop() {
      clearInterval(timer);
      await sweeping;
    },
  };
}
