/**
 * A resource whose upload another node holds (or held): its statuses come
 * from the engine's status feed, its bytes from the engine store. To the
 * routes, sockets and watchers of this node it is a {@linkcode Resource}
 * like any other. While it is live and followed (watched by a reader of
 * its bytes, not by a listing), one data subscription
 * (`_piece_subscription.ts`) fills an in-memory tail that every follower
 * on this node reads from, up to the checkpoint; what the tail lacks is
 * read by direct get.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import {
  Resource,
  type StatusWatcher,
  type WatchOptions,
} from "../resource.ts";
import { isNewer } from "../_status_order.ts";
import type { ResourceStore } from "../store.ts";
import type { PieceSubscriber } from "./_piece_subscription.ts";
import {
  NODE_TAIL_BYTES,
  readThroughTail,
  RemoteTail,
  TailBudget,
} from "./_remote_tail.ts";

function statusMessage(status: ResourceStatus): string {
  return JSON.stringify({ type: "status", resource: status });
}

export { isNewer } from "../_status_order.ts";

/**
 * A resource owned elsewhere, mirrored from the engine.
 *
 * @example
 * ```ts ignore
 * const resource = new RemoteResource(store, status, {
 *   pieces: pieceSubscriber(engine.nc),
 * });
 * resource.mirror(newerStatus); // watchers hear it
 * ```
 */
export class RemoteResource extends Resource {
  #status: ResourceStatus;
  #message: string;
  readonly #watchers = new Set<StatusWatcher>();
  readonly #finished = Promise.withResolvers<ResourceStatus>();
  readonly #pieces: PieceSubscriber | undefined;
  readonly #tail: RemoteTail;
  /** Watchers that read bytes (not a listing's). */
  #followers = 0;
  /** Stops the data subscription while one runs. */
  #unsubscribe: (() => void) | undefined;

  /**
   * Mirrors `status`, read through `store`; with `pieces`, followers read
   * the live bytes from a tail that subscription fills, within `budget`
   * (the node's, shared by its remote resources).
   */
  constructor(
    store: ResourceStore,
    status: ResourceStatus,
    options: { pieces?: PieceSubscriber; budget?: TailBudget } = {},
  ) {
    super(store, status, { checkpointMs: 0 });
    this.#pieces = options.pieces;
    this.#tail = new RemoteTail(
      options.budget ?? new TailBudget(NODE_TAIL_BYTES),
    );
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

  /**
   * Calls `watcher` with the latest status now and with every later one.
   * The first watcher that reads bytes starts the data subscription; the
   * last one leaving stops it and drops the tail.
   */
  override watch(
    watcher: StatusWatcher,
    options: WatchOptions = {},
  ): () => void {
    this.#watchers.add(watcher);
    const follows = !options.statusOnly;
    if (follows) {
      this.#followers++;
      this.#subscribe();
    }
    watcher(this.#status, this.#message);
    return () => {
      if (!this.#watchers.delete(watcher) || !follows) return;
      if (--this.#followers > 0) return;
      // Nobody follows here any more: no subscription, no tail.
      this.#unsubscribeNow();
      this.#tail.clear(this.#status.size);
    };
  }

  /** Starts the one data subscription, if live and not yet running. */
  #subscribe(): void {
    if (this.#pieces === undefined || this.#unsubscribe !== undefined) return;
    if (isTerminal(this.#status)) return;
    this.#unsubscribe = this.#pieces(
      this.#status.id,
      (offset, bytes) => this.#tail.add(offset, bytes),
    );
  }

  #unsubscribeNow(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** Checkpointed bytes `[start, end)`: from the tail where it holds them. */
  override read(start: number, end: number): ReadableStream<Uint8Array> {
    if (this.#tail.held === 0) return super.read(start, end);
    return readThroughTail(
      this.#tail,
      (from, to) => super.read(from, to),
      start,
      end,
    );
  }

  /** `[start, end)` as views on the tail, if it holds them all and they are checkpointed. */
  override recent(start: number, end: number): Uint8Array[] | undefined {
    if (end > this.#status.size) return undefined;
    return this.#tail.views(start, end);
  }

  /** Copies tail bytes from `position` on, never past the checkpoint. */
  override copyRecent(position: number, target: Uint8Array): number {
    const room = Math.min(target.byteLength, this.#status.size - position);
    if (room <= 0) return 0;
    return this.#tail.copy(position, target.subarray(0, room));
  }

  /** Takes `status` if it is newer and tells the watchers; returns whether it was. */
  override mirror(status: ResourceStatus): boolean {
    if (!isNewer(this.#status, status)) return false;
    this.#status = status;
    this.#message = statusMessage(status);
    // Ended: the final bytes are stored; the tail serves the watchers left.
    if (isTerminal(status)) this.#unsubscribeNow();
    for (const watcher of this.#watchers) watcher(status, this.#message);
    if (isTerminal(status)) this.#finished.resolve(status);
    return true;
  }
}
