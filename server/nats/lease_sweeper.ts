/**
 * Node loss: every node watches the leases of the live uploads other nodes
 * hold. A lease whose revision has not moved for lease + grace (on this
 * node's clock) belongs to a node that is gone and an uploader that did not
 * resume; the upload is failed, once, by whichever node's fenced status
 * lands first. The bound from a node's death to `FAILED` everywhere is
 * lease + grace + two sweeps.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import type { LeaseRecord } from "./lease.ts";
import type { JetStreamStore } from "./jetstream_store.ts";
import { FencedError } from "./_publish.ts";

/**
 * Reason recorded for an upload whose node stopped renewing its lease.
 *
 * @example
 * ```ts
 * import { nodeLostReason } from "./lease_sweeper.ts";
 * console.log(nodeLostReason("host:1:ab", 5000, 10000));
 * ```
 */
export function nodeLostReason(
  node: string,
  leaseMs: number,
  graceMs: number,
): string {
  return `the node holding the upload (${node}) stopped renewing its lease for ${leaseMs} ms plus the resume grace of ${graceMs} ms; expected it alive or the upload resumed`;
}

/** When this node last saw a lease's revision move. */
interface Seen {
  revision: number;
  since: number;
  node: string;
  leaseMs: number;
}

/**
 * Options of {@linkcode LeaseSweeper}.
 *
 * @example
 * ```ts
 * import type { SweeperOptions } from "./lease_sweeper.ts";
 * const options: SweeperOptions = { graceMs: 10_000, sweepMs: 1000, uploads: () => [] };
 * ```
 */
export interface SweeperOptions {
  /** The resume grace period after a lease ran out, in ms. */
  graceMs: number;
  /** How often to look, in ms. */
  sweepMs: number;
  /** The statuses of live uploads other nodes hold. */
  uploads: () => ResourceStatus[];
}

/**
 * Fails the uploads of nodes that are gone.
 *
 * @example
 * ```ts ignore
 * const sweeper = new LeaseSweeper(store, { graceMs: 10_000, sweepMs: 1000, uploads });
 * await sweeper.stop();
 * ```
 */
export class LeaseSweeper {
  readonly #store: JetStreamStore;
  readonly #options: SweeperOptions;
  readonly #seen = new Map<string, Seen>();
  readonly #timer: ReturnType<typeof setInterval>;
  #sweeping: Promise<void> = Promise.resolve();

  /** Starts sweeping. */
  constructor(store: JetStreamStore, options: SweeperOptions) {
    this.#store = store;
    this.#options = options;
    this.#timer = setInterval(() => {
      this.#sweeping = this.#sweeping.then(() => this.#sweep());
    }, options.sweepMs);
  }

  async #sweep(): Promise<void> {
    const now = performance.now();
    const live = this.#options.uploads();
    const ids = new Set(live.map((status) => status.id));
    for (const id of this.#seen.keys()) if (!ids.has(id)) this.#seen.delete(id);
    for (const status of live) {
      try {
        await this.#look(status, now);
      } catch (error) {
        // The engine is away: the next sweep looks again.
        console.error(
          `spool: could not check the lease of ${status.id}:`,
          error,
        );
      }
    }
  }

  async #look(status: ResourceStatus, now: number): Promise<void> {
    const entry = await this.#store.engine.leases.get(status.id);
    const revision = entry && entry.operation === "PUT" ? entry.revision : 0;
    const seen = this.#seen.get(status.id);
    if (seen === undefined || seen.revision !== revision) {
      const record = revision > 0 ? entry!.json<LeaseRecord>() : undefined;
      this.#seen.set(status.id, {
        revision,
        since: now,
        node: record?.node ?? seen?.node ?? "unknown",
        leaseMs: record?.leaseMs ?? this.#store.leaseMs,
      });
      return;
    }
    if (now - seen.since < seen.leaseMs + this.#options.graceMs) return;
    await this.#failUpload(
      status.id,
      nodeLostReason(seen.node, seen.leaseMs, this.#options.graceMs),
    );
    this.#seen.delete(status.id);
  }

  /** Publishes `FAILED` after the last status, unless that one is final. */
  async #failUpload(id: string, reason: string): Promise<void> {
    const last = await this.#store.statuses.last(id, { fromLeader: true });
    if (last?.status === undefined || isTerminal(last.status)) return;
    const now = new Date().toISOString();
    try {
      await this.#store.statuses.publish({
        ...last.status,
        status: "FAILED",
        error: reason,
        updatedAt: now,
        finishedAt: now,
      }, {
        after: last.seq,
        // Its own message id: the owner's status after the same one has
        // `<id>:s:<seq>`, and the stream must not take either for the other.
        tag: "fail",
      });
      this.#store.statuses.forget(id);
    } catch (error) {
      // Another node failed it first, or its owner spoke: either is the truth.
      if (!(error instanceof FencedError)) throw error;
    }
  }

  /** Stops sweeping; waits for a sweep in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }
}
