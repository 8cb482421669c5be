/**
 * When each byte of a live resource became readable: the size and time of
 * its checkpoints, for the viewer's line times (`/resources/{id}/checkpoints`).
 *
 * A log is kept per resource from its creation (the registry starts it) in
 * memory, bounded: past {@linkcode MAX_CHECKPOINTS} entries every other one
 * is dropped, so a byte's time is then that of a later checkpoint (late by at
 * most the gap the dropped entries leave). Nothing is persisted: a resource
 * loaded from the store after a restart has an empty log, whose
 * {@linkcode CheckpointLog.from} is its size.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../protocol/status.ts";

/** Entries a log keeps before it drops every other one. */
export const MAX_CHECKPOINTS = 4096;

/** One checkpoint: bytes up to `size` were readable at `time` (ISO 8601). */
export interface Checkpoint {
  size: number;
  time: string;
}

/** What the log watches (a {@linkcode Resource}). */
export interface WatchedResource {
  readonly status: ResourceStatus;
  watch(watcher: (status: ResourceStatus) => void): () => void;
}

/**
 * The checkpoints of one resource, in order of size.
 *
 * @example
 * ```ts
 * import { CheckpointLog } from "./checkpoint_log.ts";
 * const log = new CheckpointLog(0, 4);
 * for (let i = 1; i <= 6; i++) log.record(i * 10, Date.UTC(2026, 0, 1, 0, 0, i));
 * console.log(log.entries().map((c) => c.size)); // [20, 40, 60]
 * ```
 */
export class CheckpointLog {
  readonly #max: number;
  #sizes: number[] = [];
  #times: number[] = [];
  /** Bytes before this offset have no recorded time. */
  readonly from: number;

  /** An empty log of the bytes from `from` on, keeping at most `max` entries. */
  constructor(from: number, max: number = MAX_CHECKPOINTS) {
    if (!Number.isInteger(max) || max < 2) {
      throw new RangeError(`max is ${max}; expected an integer >= 2`);
    }
    this.from = from;
    this.#max = max;
  }

  /** Records that bytes up to `size` were readable at `time` (ms since the epoch). */
  record(size: number, time: number): void {
    const last = this.#sizes.length - 1;
    if (size <= (last < 0 ? this.from : this.#sizes[last])) return;
    this.#sizes.push(size);
    this.#times.push(time);
    if (this.#sizes.length > this.#max) {
      // Keep the odd entries: the newest stays, each byte maps to a later time.
      this.#sizes = this.#sizes.filter((_, i) => i % 2 === 1);
      this.#times = this.#times.filter((_, i) => i % 2 === 1);
    }
  }

  /** The checkpoints, oldest first. */
  entries(): Checkpoint[] {
    return this.#sizes.map((size, i) => ({
      size,
      time: new Date(this.#times[i]).toISOString(),
    }));
  }
}

const logs = new WeakMap<object, CheckpointLog>();

/**
 * Starts the checkpoint log of a live resource: every status that grows it
 * is recorded, until the final one.
 *
 * @example
 * ```ts ignore
 * const resource = new Resource(store, status, { checkpointMs, writer });
 * recordCheckpoints(resource);
 * ```
 */
export function recordCheckpoints(resource: WatchedResource): CheckpointLog {
  const log = new CheckpointLog(resource.status.size);
  logs.set(resource, log);
  let ended = false;
  // `watch` calls back at once, before it returns the real `unwatch`.
  let unwatch = (): void => {};
  unwatch = resource.watch((status) => {
    log.record(status.size, Date.parse(status.updatedAt));
    if (isTerminal(status)) ended = true;
    if (ended) unwatch();
  });
  if (ended) unwatch();
  return log;
}

/**
 * The checkpoint log of `resource`: the one recorded since its creation, or
 * an empty one from its size (loaded from the store, or made elsewhere).
 *
 * @example
 * ```ts ignore
 * return Response.json({ from: log.from, checkpoints: log.entries() });
 * ```
 */
export function checkpointLogOf(resource: WatchedResource): CheckpointLog {
  return logs.get(resource) ?? new CheckpointLog(resource.status.size);
}
