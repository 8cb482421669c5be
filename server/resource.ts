/**
 * One resource: the owner of its truth. A live resource appends bytes through
 * the store, checkpoints them on a timer and fans each new status out to its
 * watchers; a finished one only answers reads. Sockets translate messages to
 * calls on it and hold no state of their own.
 *
 * @module
 */

import { sha256UploadHash, type UploadHash } from "./upload_hash.ts";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import type { SpoolError } from "../protocol/errors.ts";
import {
  type ResourceStore,
  type ResourceWriter,
  TakenOverError,
} from "./store.ts";
import { RecentBytes } from "./_recent_bytes.ts";
import { isNewer } from "./_status_order.ts";

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
 * How a watcher watches.
 *
 * @example
 * ```ts
 * import type { WatchOptions } from "./resource.ts";
 * // A listing: statuses only, never the bytes.
 * const listing: WatchOptions = { statusOnly: true };
 * ```
 */
export interface WatchOptions {
  /**
   * The watcher reads no bytes (a listing): a resource another node holds
   * does not bring its bytes to this node for it. Default `false`.
   */
  statusOnly?: boolean;
}

/**
 * Learns how far the store has written a resource's appends: the upload
 * socket holding the resource acknowledges bytes from it.
 *
 * @example
 * ```ts
 * import type { WriteObserver } from "./resource.ts";
 * const observer: WriteObserver = {
 *   written: (bytes, appends) => console.log(`${bytes} bytes in ${appends} appends written`),
 *   failed: (error) => console.error(error.message),
 * };
 * ```
 */
export interface WriteObserver {
  /** Every append up to `bytes` (the first `appends` calls) is in the store. */
  written(bytes: number, appends: number): void;
  /** The store failed; the resource takes no more bytes. */
  failed(error: Error): void;
}

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
  /**
   * An upload taken over from another node: the bytes already in the store
   * (the writer continues after them) and the SHA-256 of those bytes, rebuilt
   * from the store, which the resource keeps updating. Default: none.
   */
  resumed?: { written: number; hash: UploadHash };
}

const DEFAULT_TAIL_BYTES = 512 * 1024;
/** Extra tail per watcher, and the most tail one resource keeps. */
const TAIL_BYTES_PER_WATCHER = 8 * 1024;
const MAX_TAIL_BYTES = 16 * 1024 * 1024;
/**
 * Appends smaller than this that arrive while the store is writing are
 * copied into one batch: a flood of tiny frames costs one store write per
 * batch, not one per frame. Larger ones are written as they are.
 */
const BATCH_BELOW_BYTES = 64 * 1024;
const BATCH_MIN_BYTES = 16 * 1024;
const BATCH_MAX_BYTES = 1024 * 1024;
/** Retries of a status the store could not save: first and longest pause. */
const SAVE_RETRY_FIRST_MS = 1000;
const SAVE_RETRY_MAX_MS = 30_000;

function statusMessage(status: ResourceStatus): string {
  return JSON.stringify({ type: "status", resource: status });
}

/** Bytes waiting for the store, and how many appends they came in. */
interface QueuedWrite {
  bytes: Uint8Array;
  appends: number;
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
  /** Follow cursors open on this resource (see openReader()). */
  #readers = 0;
  /** Whether appends are still taken (false once the upload is ending). */
  #accepting: boolean;
  /** Bytes the store has written; may run ahead of the checkpointed size. */
  #written = 0;
  #appendsWritten = 0;
  /** Appends waiting for the store, oldest at `#queueHead`. */
  #queue: QueuedWrite[] = [];
  #queueHead = 0;
  /** Tiny appends gathered while the store writes. */
  #batch: Uint8Array | undefined;
  #batchUsed = 0;
  #batchAppends = 0;
  #queuedBytes = 0;
  /** The write loop while it runs. */
  #writing: Promise<void> | undefined;
  #writeError: Error | undefined;
  #observer: WriteObserver | undefined;
  #checkpointTimer: ReturnType<typeof setTimeout> | undefined;
  #checkpointing = false;
  #checkpointWanted = false;
  /** The end of the upload once begun: later callers await the same outcome. */
  #finishing: Promise<ResourceStatus> | undefined;
  readonly #finished = Promise.withResolvers<ResourceStatus>();
  /** Set once another node took the upload over; its statuses come then. */
  #handedOver = false;
  readonly #handOver = Promise.withResolvers<void>();
  readonly #hash: UploadHash;
  #digest: string | Promise<string> | undefined;
  /** Bytes the hash covers: every byte taken, written or still queued. */
  #hashed: number;
  readonly #recent: RecentBytes;
  readonly #tailLimit: number;
  /** A final status the store could not save yet, and its retry timer. */
  #unsaved: ResourceStatus | undefined;
  #saveTimer: ReturnType<typeof setTimeout> | undefined;
  #savePause = SAVE_RETRY_FIRST_MS;

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
    this.#accepting = this.live;
    this.#written = options.resumed?.written ?? status.size;
    this.#hash = options.resumed?.hash ?? sha256UploadHash();
    this.#hashed = this.#written;
    this.#recent = new RecentBytes(this.#written);
    this.#tailLimit = options.tailBytes ?? DEFAULT_TAIL_BYTES;
    if (isTerminal(status)) this.#finished.resolve(status);
    options.writer?.lost?.then((error) => this.#handOverNow(error));
    // However it ends (after its digest, if completed), the hash may stop.
    this.#finished.promise.then(() => this.#hash.release?.());
    // Found while the upload goes on: no use taking more bytes.
    this.#hash.failed?.then((error) => this.#hashFailed(error));
  }

  /** The latest published status. */
  get status(): ResourceStatus {
    return this.#status;
  }

  /** Whether the resource is live (its upload has not ended). */
  get live(): boolean {
    return this.#writer !== undefined && !isTerminal(this.#status);
  }

  /**
   * Resolves with the final status once the resource is `COMPLETED` or
   * `FAILED` and that status is saved (or its save is being retried):
   * whoever waits for it (a closing server) does not race the store.
   */
  get finished(): Promise<ResourceStatus> {
    return this.#finished.promise;
  }

  /**
   * Resolves once another node took the upload over (shared stores only):
   * this resource takes no more bytes and its statuses are the other node's,
   * given to {@linkcode Resource.mirror}. Never resolves otherwise.
   */
  get handedOver(): Promise<void> {
    return this.#handOver.promise;
  }

  /**
   * Whether this node still holds the live upload, asking a shared store
   * (another node may have taken it over without this node learning it
   * yet: then the resource hands over first).
   */
  async stillHeld(): Promise<boolean> {
    const writer = this.#writer;
    if (writer?.stillHeld === undefined) return this.live;
    try {
      await writer.stillHeld();
    } catch (error) {
      if (!(error instanceof TakenOverError)) throw error;
      this.#handOverNow(error);
    }
    return this.live;
  }

  /** Bytes written to the store so far (ahead of, or equal to, the checkpoint). */
  get written(): number {
    return this.#written;
  }

  /** Resolves once every append so far has been written (or dropped). */
  async settled(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** Appends written so far (each `append` call counts once). */
  get appendsWritten(): number {
    return this.#appendsWritten;
  }

  /** Bytes received but not yet written. */
  get pendingWrites(): number {
    return this.#queuedBytes;
  }

  /** Number of watchers. */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Calls `watcher` with the latest status now and with every later one. */
  watch(watcher: StatusWatcher, _options: WatchOptions = {}): () => void {
    this.#watchers.add(watcher);
    watcher(this.#status, this.#statusMessage);
    return () => this.#watchers.delete(watcher);
  }

  /**
   * Counts a reader (a follow cursor) until the returned function is called:
   * a completed resource keeps its tail in memory while anyone reads it.
   */
  openReader(): () => void {
    this.#readers++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.#readers--;
      if (isTerminal(this.#status)) this.#releaseFinishedTail();
    };
  }

  /**
   * Tells `observer` how far the store has written, from now on; it
   * replaces the previous observer (the socket holding the upload changed).
   */
  observeWrites(observer: WriteObserver): () => void {
    this.#observer = observer;
    return () => {
      if (this.#observer === observer) this.#observer = undefined;
    };
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
    return this.#recent.views(start, end);
  }

  /**
   * Copies the bytes from `position` on into `target` from the recent chunks
   * in memory; returns how many it copied, `0` if `position` is not in memory
   * (read the store instead). Unlike {@linkcode recent} it keeps nothing: a
   * thousand followers waiting between frames hold no views of the tail,
   * which would outlive young-generation collections and bloat the heap.
   */
  copyRecent(position: number, target: Uint8Array): number {
    return this.#recent.copy(position, target);
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

  /**
   * A completed resource keeps its tail only while someone reads it, and
   * lets it go once the last reader is done: followers that were behind at
   * the end (a thousand of them, seconds behind, in the fan-out benchmark)
   * go on copying from memory instead of each reading the rest from the
   * store in frame-sized reads.
   */
  #releaseFinishedTail(): void {
    if (this.#readers === 0) this.#recent.clear(this.#written);
  }

  /**
   * Queues `chunk` after every earlier append; the resource keeps it (the
   * caller must not reuse it). Returns `false` if the resource takes no more
   * bytes (it is ending, or its store failed). The observer learns when it
   * is written.
   */
  append(chunk: Uint8Array): boolean {
    if (!this.#accepting || this.#writeError) return false;
    this.#hash.update(chunk);
    this.#hashed += chunk.byteLength;
    this.#queuedBytes += chunk.byteLength;
    if (this.#writing !== undefined && chunk.byteLength < BATCH_BELOW_BYTES) {
      this.#addToBatch(chunk);
      return true;
    }
    this.#sealBatch();
    this.#queue.push({ bytes: chunk, appends: 1 });
    // Started a microtask later, so that its end (which clears #writing)
    // always comes after this assignment, even when it has nothing to await.
    this.#writing ??= Promise.resolve().then(() => this.#writeLoop());
    return true;
  }

  #addToBatch(chunk: Uint8Array): void {
    const needed = this.#batchUsed + chunk.byteLength;
    if (this.#batch !== undefined && needed > this.#batch.byteLength) {
      if (needed > BATCH_MAX_BYTES) this.#sealBatch();
      else {
        const grown = new Uint8Array(
          Math.min(
            BATCH_MAX_BYTES,
            Math.max(needed, this.#batch.byteLength * 2),
          ),
        );
        grown.set(this.#batch.subarray(0, this.#batchUsed));
        this.#batch = grown;
      }
    }
    this.#batch ??= new Uint8Array(
      Math.max(BATCH_MIN_BYTES, chunk.byteLength * 2),
    );
    this.#batch.set(chunk, this.#batchUsed);
    this.#batchUsed += chunk.byteLength;
    this.#batchAppends++;
  }

  /** Queues the batch being gathered, trimmed to its bytes. */
  #sealBatch(): void {
    if (this.#batchAppends === 0) return;
    const used = this.#batchUsed;
    const batch = this.#batch!;
    this.#queue.push({
      // A mostly empty buffer is copied: the tail keeps what it is given.
      bytes: used * 2 < batch.byteLength
        ? batch.slice(0, used)
        : batch.subarray(0, used),
      appends: this.#batchAppends,
    });
    this.#batch = undefined;
    this.#batchUsed = this.#batchAppends = 0;
  }

  #nextWrite(): QueuedWrite | undefined {
    if (this.#queueHead === this.#queue.length) this.#sealBatch();
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
      return undefined;
    }
    return this.#queue[this.#queueHead++];
  }

  /** Drops every append not yet being written: none was acknowledged. */
  #dropQueued(): void {
    this.#queue = [];
    this.#queueHead = 0;
    this.#batch = undefined;
    this.#batchUsed = this.#batchAppends = 0;
    this.#queuedBytes = 0;
  }

  /** Writes queued appends in order until none is left; one loop at a time. */
  async #writeLoop(): Promise<void> {
    // A pipelining store's appends still on their way, written in order.
    let stored: Promise<void> | undefined;
    try {
      for (;;) {
        const next = this.#nextWrite();
        const writer = this.#writer;
        if (next === undefined || writer === undefined) {
          if (stored === undefined) break;
          await stored;
          stored = undefined;
          continue;
        }
        const { bytes, appends } = next;
        if (bytes.byteLength > 0 && writer.enqueue !== undefined) {
          const queued = await writer.enqueue(bytes);
          stored = queued.stored.then(() => this.#wrote(bytes, appends));
          // Awaited before the loop ends; a later one carries the same failure.
          stored.catch(() => {});
          if (this.#handedOver) break;
          continue;
        }
        if (stored !== undefined) await stored;
        stored = undefined;
        if (bytes.byteLength > 0) await writer.append(bytes);
        if (this.#handedOver) break;
        this.#wrote(bytes, appends);
      }
    } catch (error) {
      if (error instanceof TakenOverError) {
        this.#handOverNow(error);
        return;
      }
      this.#writeError = error as Error;
      this.#dropQueued();
      this.#observer?.failed(this.#writeError);
    } finally {
      this.#writing = undefined;
    }
  }

  /** The store wrote `bytes` (`appends` appends): followers and the uploader learn it. */
  #wrote(bytes: Uint8Array, appends: number): void {
    if (this.#handedOver) return;
    this.#queuedBytes = Math.max(0, this.#queuedBytes - bytes.byteLength);
    this.#written += bytes.byteLength;
    this.#hash.stored?.(this.#written);
    this.#appendsWritten += appends;
    if (bytes.byteLength > 0) {
      this.#recent.push(bytes, this.#tailBytes());
      this.#scheduleCheckpoint();
    }
    this.#observer?.written(this.#written, this.#appendsWritten);
  }

  #scheduleCheckpoint(): void {
    if (this.#checkpointMs === 0) {
      // A write landing while a checkpoint runs sets the flag again; the
      // loop looks at it before it ends, so no write is left unpublished.
      this.#checkpointWanted = true;
      if (!this.#checkpointing) {
        this.#checkpointing = true;
        this.#checkpointLoop();
      }
      return;
    }
    this.#checkpointTimer ??= setTimeout(() => {
      this.#checkpointTimer = undefined;
      this.#checkpointSafely();
    }, this.#checkpointMs);
  }

  async #checkpointLoop(): Promise<void> {
    try {
      while (this.#checkpointWanted) {
        this.#checkpointWanted = false;
        await this.#checkpointSafely();
      }
    } finally {
      this.#checkpointing = false;
    }
  }

  /** A checkpoint whose store failure fails the upload instead of escaping. */
  async #checkpointSafely(): Promise<void> {
    try {
      await this.checkpoint();
    } catch (error) {
      if (error instanceof TakenOverError) {
        this.#handOverNow(error);
        return;
      }
      await this.fail(
        `the store could not make the bytes durable: ${
          (error as Error).message
        }`,
      );
    }
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
  }

  /** A taken-over upload's hash could not read back what was stored before. */
  #hashFailed(error: Error): Promise<ResourceStatus> {
    return this.fail(
      `could not hash the bytes stored before this node took the upload over: ${error.message}`,
    );
  }

  /**
   * Ends the upload: waits for pending writes, then publishes `COMPLETED`
   * with the SHA-256, or `FAILED` when `expectedSha256` does not match.
   */
  async complete(expectedSha256?: string): Promise<ResourceStatus> {
    await this.settled();
    if (this.#finishing) return await this.#finishing;
    if (!this.live) return this.#status;
    this.#accepting = false;
    if (this.#writeError) {
      return this.fail(`store write failed: ${this.#writeError.message}`);
    }
    if (this.#hashed !== this.#written) {
      // Never a COMPLETED whose checksum covers bytes the store lacks.
      return this.fail(
        `the upload took ${this.#hashed} bytes but ${this.#written} were stored; expected every byte taken to be stored before completion`,
      );
    }
    // Once: a second `complete` may come while a taken-over hash catches up.
    this.#digest ??= this.#hash.digest();
    let sha256: string;
    if (typeof this.#digest === "string") sha256 = this.#digest;
    else {
      try {
        sha256 = await this.#digest;
      } catch (error) {
        return this.#hashFailed(error as Error);
      }
      // Meanwhile another end came (a failure, a handover): it stands.
      if (this.#finishing) return await this.#finishing;
      if (!this.live) return this.#status;
    }
    if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
      return this.fail(
        `checksum mismatch: uploader sent sha256 ${expectedSha256}, server computed ${sha256} over ${this.#written} bytes`,
      );
    }
    return await this.#finish({ status: "COMPLETED", sha256 });
  }

  /**
   * Marks the resource `FAILED` with `reason`; bytes written stay readable.
   * Appends not yet being written are dropped (none was acknowledged), so a
   * failure never waits for a backlog.
   */
  async fail(reason: string): Promise<ResourceStatus> {
    if (this.#finishing) return await this.#finishing;
    if (!this.live) return this.#status;
    this.#accepting = false;
    this.#dropQueued();
    await this.settled();
    if (this.#finishing) return await this.#finishing;
    if (!this.live) return this.#status;
    return await this.#finish({ status: "FAILED", error: reason });
  }

  #finish(
    outcome: Pick<ResourceStatus, "status" | "sha256" | "error">,
  ): Promise<ResourceStatus> {
    this.#finishing ??= this.#finishNow(outcome).then((status) => {
      // Failed after all (the store): its bytes are read from the store.
      if (status.status !== "COMPLETED") this.#recent.clear(this.#written);
      else this.#releaseFinishedTail();
      // Handed over: the final status is the other node's, told by mirror().
      if (!this.#handedOver) this.#finished.resolve(status);
      return status;
    }, (error) => {
      this.#recent.clear(this.#written);
      // Whoever waits for the end must not wait forever; callers get the error.
      this.#finished.resolve(this.#status);
      throw error;
    });
    return this.#finishing;
  }

  async #finishNow(
    outcome: Pick<ResourceStatus, "status" | "sha256" | "error">,
  ): Promise<ResourceStatus> {
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    const writer = this.#writer!;
    this.#writer = undefined;
    // A resource that fails is read from the store; one that completes keeps
    // its tail for the followers still behind (see finish()).
    if (outcome.status !== "COMPLETED") this.#recent.clear(this.#written);
    const now = new Date().toISOString();
    let status: ResourceStatus = {
      ...this.#status,
      ...outcome,
      size: this.#written,
      updatedAt: now,
      finishedAt: now,
    };
    const closing = await closeWriter(writer);
    if (closing instanceof TakenOverError) return this.#handOverNow(closing);
    if (closing !== undefined && status.status === "COMPLETED") {
      status = failedStatus(status, `the store could not ${closing}`);
    } else if (closing !== undefined) {
      console.error(
        `spool: ${status.id} failed, and the store could not ${closing}`,
      );
    }
    if (status.status === "COMPLETED" || this.#store.shared) {
      return await this.#saveThenPublish(status);
    }
    // Watchers learn of a failure even when the store cannot record it.
    this.#publish(status);
    try {
      await this.#store.save(status);
    } catch (error) {
      this.#saveLater(status, error);
    }
    return status;
  }

  /**
   * Saves a final status, then tells the watchers: `COMPLETED` is promised
   * only once saved, and on a shared store another node's status may fence
   * this one out (then this node follows that node instead).
   */
  async #saveThenPublish(status: ResourceStatus): Promise<ResourceStatus> {
    try {
      await this.#store.save(status);
    } catch (error) {
      if (error instanceof TakenOverError) return this.#handOverNow(error);
      if (status.status === "COMPLETED") {
        status = failedStatus(
          status,
          `the store could not save the final status: ${
            (error as Error).message
          }`,
        );
      }
      this.#publish(status);
      this.#saveLater(status, error);
      return status;
    }
    this.#publish(status);
    return status;
  }

  /**
   * Another node took the upload over: stop writing (nothing this node still
   * holds was acknowledged), keep no tail of bytes that node now writes, and
   * follow its statuses from the last one it saved. Returns the status now.
   */
  #handOverNow(error: SpoolError<"taken-over">): ResourceStatus {
    if (this.#handedOver || isTerminal(this.#status)) return this.#status;
    this.#handedOver = true;
    this.#accepting = false;
    this.#hash.release?.();
    this.#dropQueued();
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    this.#writer = undefined;
    this.#recent.clear(this.#written);
    this.#handOver.resolve();
    const id = this.#status.id;
    // Operators see why a node stopped taking an upload's bytes.
    console.error(`spool: ${id}: handed over: ${error.message}`);
    this.#store.lastStatus?.(id).then(
      (last) => last && this.mirror(last),
      (cause) =>
        // The status feed brings the next status anyway.
        console.error(
          `spool: ${id}: could not read the status of the node that took it over (${error.message}):`,
          cause,
        ),
    );
    return this.#status;
  }

  /**
   * Takes a status another node published for this resource, once that node
   * took the upload over (before, the resource's statuses are its own);
   * older ones are ignored. Returns whether it was taken.
   */
  mirror(status: ResourceStatus): boolean {
    if (!this.#handedOver || !isNewer(this.#status, status)) return false;
    this.#publish(status);
    if (isTerminal(status)) this.#finished.resolve(status);
    return true;
  }

  /** Retries saving `status` with backoff until it is saved or saving stops. */
  #saveLater(status: ResourceStatus, error: unknown): void {
    if (this.#unsaved === undefined) {
      console.error(
        `spool: could not save the ${status.status} status of ${status.id}: ${
          (error as Error).message
        }; retrying (watchers were told)`,
      );
    }
    this.#unsaved = status;
    clearTimeout(this.#saveTimer);
    this.#saveTimer = setTimeout(() => this.flushSave(), this.#savePause);
    this.#savePause = Math.min(this.#savePause * 2, SAVE_RETRY_MAX_MS);
  }

  /**
   * Tries once more to save a final status the store refused; resolves
   * whether it worked (a failure re-arms the retry unless `stop` is set).
   */
  async flushSave(options: { stop?: boolean } = {}): Promise<void> {
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    const status = this.#unsaved;
    if (status === undefined) return;
    try {
      await this.#store.save(status);
      this.#unsaved = undefined;
      console.error(`spool: saved the ${status.status} status of ${status.id}`);
    } catch (error) {
      if (options.stop) {
        console.error(
          `spool: the ${status.status} status of ${status.id} stays unsaved: ${
            (error as Error).message
          }`,
        );
      } else this.#saveLater(status, error);
    }
  }

  #publish(status: ResourceStatus): void {
    this.#status = status;
    this.#statusMessage = statusMessage(status);
    for (const watcher of this.#watchers) {
      watcher(status, this.#statusMessage);
    }
  }
}

/**
 * Syncs and closes `writer`; returns what failed, if anything did, or the
 * error saying that another node took the upload over.
 */
async function closeWriter(
  writer: ResourceWriter,
): Promise<string | TakenOverError | undefined> {
  let failure: string | undefined;
  try {
    await writer.sync();
  } catch (error) {
    if (error instanceof TakenOverError) return error;
    failure = `make the bytes durable: ${(error as Error).message}`;
  }
  try {
    await writer.close();
  } catch (error) {
    failure ??= `close the data: ${(error as Error).message}`;
  }
  return failure;
}

function failedStatus(status: ResourceStatus, reason: string): ResourceStatus {
  const { sha256: _sha256, ...rest } = status;
  return { ...rest, status: "FAILED", error: reason };
}
