/**
 * One resource: the owner of its truth. A live resource appends bytes through
 * the store, checkpoints them on a timer and fans each new status out to its
 * watchers; a finished one only answers reads. Sockets translate messages to
 * calls on it and hold no state of their own.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import type { ResourceStore, ResourceWriter } from "./store.ts";

/**
 * Receives each status a resource publishes, with its pre-serialised `status` message.
 *
 * @example
 * ```ts
 * import type { Resource, StatusWatcher } from "./resource.ts";
 * const logSize: StatusWatcher = (status) => console.log(status.status, status.size);
 * const watchSize = (resource: Resource) => resource.watch(logSize); // returns the unwatch function
 * ```
 */
export type StatusWatcher = (status: ResourceStatus, message: string) => void;

/**
 * Options of a live resource.
 *
 * @example
 * ```ts
 * import { type LiveResourceOptions, Resource } from "./resource.ts";
 * import type { ResourceStore } from "./store.ts";
 * import type { ResourceStatus } from "../protocol/status.ts";
 * const options: LiveResourceOptions = { checkpointMs: 250, tailBytes: 1 << 20 };
 * const startLive = async (store: ResourceStore, status: ResourceStatus) =>
 *   new Resource(store, status, { ...options, writer: await store.create(status) });
 * ```
 */
export interface LiveResourceOptions {
  /** Checkpoint interval in milliseconds; `0` checkpoints after every write. */
  checkpointMs: number;
  /** Bytes of the most recent writes kept in memory for followers. Default 512 KiB. */
  tailBytes?: number;
}

const DEFAULT_TAIL_BYTES = 512 * 1024;
/** Extra tail per watcher, and the most tail one resource keeps. */
const TAIL_BYTES_PER_WATCHER = 8 * 1024;
const MAX_TAIL_BYTES = 16 * 1024 * 1024;

function statusMessage(status: ResourceStatus): string {
  return JSON.stringify({ type: "status", resource: status });
}

/**
 * A resource known to the server. Created live by an upload, or loaded
 * finished from the store.
 *
 * @example
 * ```ts ignore
 * const stop = resource.watch((status) => console.log(status.size));
 * stop();
 * ```
 */
export class Resource {
  readonly #store: ResourceStore;
  readonly #checkpointMs: number;
  #writer: ResourceWriter | undefined;
  #status: ResourceStatus;
  #statusMessage: string;
  readonly #watchers = new Set<StatusWatcher>();
  /** Bytes the store has acknowledged; may run ahead of the checkpointed size. */
  #written = 0;
  /** Serialises appends: the store sees bytes in arrival order. */
  #writeChain: Promise<void> = Promise.resolve();
  #pendingWrites = 0;
  #writeError: Error | undefined;
  #checkpointTimer: ReturnType<typeof setTimeout> | undefined;
  #checkpointing: Promise<void> | undefined;
  /** The end of the upload once begun: later callers await the same outcome. */
  #finishing: Promise<ResourceStatus> | undefined;
  readonly #hash = createHash("sha256");
  /**
   * The most recently written chunks, covering `[#tailStart, #written)`:
   * caught-up followers all want the bytes of the latest checkpoint, so they
   * are served from memory instead of one disk read per follower.
   */
  #tail: Uint8Array[] = [];
  /** Where each chunk of `#tail` starts in the resource. */
  #tailStarts: number[] = [];
  #tailStart = 0;
  readonly #tailLimit: number;

  /** Wraps a status and, for a live resource, the writer of its bytes. */
  constructor(
    store: ResourceStore,
    status: ResourceStatus,
    options: LiveResourceOptions & { writer?: ResourceWriter },
  ) {
    this.#store = store;
    this.#status = status;
    this.#statusMessage = statusMessage(status);
    this.#checkpointMs = options.checkpointMs;
    this.#writer = options.writer;
    this.#written = status.size;
    this.#tailStart = status.size;
    this.#tailLimit = options.tailBytes ?? DEFAULT_TAIL_BYTES;
  }

  /** The latest published status. */
  get status(): ResourceStatus {
    return this.#status;
  }

  /** Whether the resource still accepts bytes. */
  get live(): boolean {
    return this.#writer !== undefined && !isTerminal(this.#status);
  }

  /** Bytes written to the store so far (ahead of, or equal to, the checkpoint). */
  get written(): number {
    return this.#written;
  }

  /** Resolves once every append so far has been written (or failed). */
  async settled(): Promise<void> {
    await this.#writeChain;
  }

  /** Bytes received but not yet written. */
  get pendingWrites(): number {
    return this.#pendingWrites;
  }

  /** Number of watchers. */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Calls `watcher` with the latest status now and with every later one. */
  watch(watcher: StatusWatcher): () => void {
    this.#watchers.add(watcher);
    watcher(this.#status, this.#statusMessage);
    return () => this.#watchers.delete(watcher);
  }

  /** Reads checkpointed bytes `[start, end)`; the caller checked the range. */
  read(start: number, end: number): ReadableStream<Uint8Array> {
    return this.#store.read(this.#status.id, start, end);
  }

  /**
   * The bytes `[start, end)` as views on recently written chunks, if they are
   * all still in memory; `undefined` otherwise (read them from the store).
   */
  recent(start: number, end: number): Uint8Array[] | undefined {
    if (start < this.#tailStart || end > this.#written) return undefined;
    const pieces: Uint8Array[] = [];
    let offset = this.#tailStart;
    for (const chunk of this.#tail) {
      const chunkEnd = offset + chunk.byteLength;
      if (chunkEnd > start && offset < end) {
        pieces.push(
          chunk.subarray(
            Math.max(0, start - offset),
            Math.min(chunk.byteLength, end - offset),
          ),
        );
      }
      if (chunkEnd >= end) break;
      offset = chunkEnd;
    }
    return pieces;
  }

  /**
   * Copies the bytes from `position` on into `target` from the recent chunks
   * in memory; returns how many it copied, `0` if `position` is not in memory
   * (read the store instead). Unlike {@linkcode recent} it keeps nothing: a
   * thousand followers waiting between frames hold no views of the tail,
   * which would outlive young-generation collections and bloat the heap.
   */
  copyRecent(position: number, target: Uint8Array): number {
    if (position < this.#tailStart || position >= this.#written) return 0;
    const starts = this.#tailStarts;
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (starts[middle] <= position) low = middle;
      else high = middle - 1;
    }
    let copied = 0;
    for (
      let index = low;
      index < this.#tail.length && copied < target.byteLength;
      index++
    ) {
      const chunk = this.#tail[index];
      const from = position + copied - starts[index];
      const length = Math.min(
        chunk.byteLength - from,
        target.byteLength - copied,
      );
      target.set(chunk.subarray(from, from + length), copied);
      copied += length;
    }
    return copied;
  }

  /**
   * Bytes of tail to keep: more when many watch, so that followers a few
   * seconds behind share one copy in memory instead of each reading the
   * store with buffers of their own.
   */
  #tailBytes(): number {
    return Math.min(
      MAX_TAIL_BYTES,
      Math.max(this.#tailLimit, this.#watchers.size * TAIL_BYTES_PER_WATCHER),
    );
  }

  #remember(chunk: Uint8Array): void {
    const limit = this.#tailBytes();
    if (chunk.byteLength > limit) {
      this.#tail = [];
      this.#tailStarts = [];
      this.#tailStart = this.#written;
      return;
    }
    this.#tail.push(chunk);
    this.#tailStarts.push(this.#written - chunk.byteLength);
    let held = this.#written - this.#tailStart;
    while (held > limit) {
      this.#tailStarts.shift();
      const dropped = this.#tail.shift()!;
      this.#tailStart += dropped.byteLength;
      held -= dropped.byteLength;
    }
  }

  /**
   * Appends `chunk` after every earlier chunk; resolves with the total bytes
   * written once it is in the store. Rejects if the store failed.
   */
  append(chunk: Uint8Array): Promise<number> {
    if (!this.live) {
      return Promise.reject(
        new Error(
          `resource ${this.#status.id} is ${this.#status.status}; it accepts no more bytes`,
        ),
      );
    }
    this.#pendingWrites += chunk.byteLength;
    this.#hash.update(chunk);
    const written = this.#writeChain.then(async () => {
      if (this.#writeError) throw this.#writeError;
      try {
        await this.#writer!.append(chunk);
      } catch (error) {
        this.#writeError = error as Error;
        throw error;
      } finally {
        this.#pendingWrites -= chunk.byteLength;
      }
      this.#written += chunk.byteLength;
      this.#remember(chunk);
      this.#scheduleCheckpoint();
      return this.#written;
    });
    // The chain itself must not reject, or one failed write would hide the next.
    this.#writeChain = written.then(() => {}, () => {});
    return written;
  }

  #scheduleCheckpoint(): void {
    if (this.#checkpointMs === 0) {
      this.#checkpointing ??= this.checkpoint().finally(() => {
        this.#checkpointing = undefined;
      });
      return;
    }
    this.#checkpointTimer ??= setTimeout(() => {
      this.#checkpointTimer = undefined;
      this.checkpoint();
    }, this.#checkpointMs);
  }

  /**
   * Makes written bytes durable and visible: publishes `IN_PROGRESS` with the
   * written size. Called by the timer; callable directly.
   */
  async checkpoint(): Promise<void> {
    if (!this.live) return;
    const size = this.#written;
    if (size === this.#status.size && this.#status.status === "IN_PROGRESS") {
      return;
    }
    await this.#writer!.sync();
    if (!this.live) return;
    this.#publish({
      ...this.#status,
      status: "IN_PROGRESS",
      size,
      updatedAt: new Date().toISOString(),
    });
    // With interval 0, writes that landed during the sync need a checkpoint too.
    if (this.#checkpointMs === 0 && this.#written > size) {
      await this.checkpoint();
    }
  }

  /**
   * Ends the upload: waits for pending writes, then publishes `COMPLETED`
   * with the SHA-256, or `FAILED` when `expectedSha256` does not match.
   */
  async complete(expectedSha256?: string): Promise<ResourceStatus> {
    await this.#writeChain;
    if (this.#finishing) return await this.#finishing;
    if (!this.live) return this.#status;
    if (this.#writeError) {
      return this.fail(`store write failed: ${this.#writeError.message}`);
    }
    const sha256 = this.#hash.digest("hex");
    if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
      return this.fail(
        `checksum mismatch: uploader sent sha256 ${expectedSha256}, server computed ${sha256} over ${this.#written} bytes`,
      );
    }
    return await this.#finish({ status: "COMPLETED", sha256 });
  }

  /** Marks the resource `FAILED` with `reason`; bytes written stay readable. */
  async fail(reason: string): Promise<ResourceStatus> {
    await this.#writeChain;
    if (this.#finishing) return await this.#finishing;
    if (!this.live) return this.#status;
    return await this.#finish({ status: "FAILED", error: reason });
  }

  #finish(
    outcome: Pick<ResourceStatus, "status" | "sha256" | "error">,
  ): Promise<ResourceStatus> {
    this.#finishing ??= this.#finishNow(outcome);
    return this.#finishing;
  }

  async #finishNow(
    outcome: Pick<ResourceStatus, "status" | "sha256" | "error">,
  ): Promise<ResourceStatus> {
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    const writer = this.#writer!;
    this.#writer = undefined;
    // Finished resources are read from the store; the tail was for live readers.
    this.#tail = [];
    this.#tailStart = this.#written;
    const now = new Date().toISOString();
    const status: ResourceStatus = {
      ...this.#status,
      ...outcome,
      size: this.#written,
      updatedAt: now,
      finishedAt: now,
    };
    try {
      await writer.sync();
    } finally {
      await writer.close();
    }
    await this.#store.save(status);
    this.#publish(status);
    return status;
  }

  #publish(status: ResourceStatus): void {
    this.#status = status;
    this.#statusMessage = statusMessage(status);
    for (const watcher of this.#watchers) {
      watcher(status, this.#statusMessage);
    }
  }
}
