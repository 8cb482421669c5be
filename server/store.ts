/**
 * The storage interface behind live resources: bytes are appended by one
 * writer and read by ranges while they grow; metadata is the resource's
 * status. {@linkcode FileStore} is the embedded default; other backends fit
 * behind the same interface.
 *
 * @module
 */

import type { ResourceStatus } from "../protocol/status.ts";
import { SpoolError } from "../protocol/errors.ts";

/**
 * Appends the bytes of one resource, in order.
 *
 * @example
 * ```ts
 * import type { ResourceWriter } from "./store.ts";
 * async function appendAll(writer: ResourceWriter, chunks: Uint8Array[]): Promise<void> {
 *   for (const chunk of chunks) await writer.append(chunk);
 *   await writer.sync();
 * }
 * ```
 */
export interface ResourceWriter {
  /** Appends `chunk`; resolves once it is written (visible to readers). */
  append(chunk: Uint8Array): Promise<void>;
  /**
   * Pipelining stores: like `append`, but resolves once `chunk` is on its
   * way; `stored` resolves once it and every earlier chunk are written.
   * Optional: without it, appends wait for each other.
   */
  enqueue?(chunk: Uint8Array): Promise<{ stored: Promise<void> }>;
  /** Makes everything appended so far durable (a no-op for stores that need none). */
  sync(): Promise<void>;
  /** Releases the writer; no append follows. */
  close(): Promise<void>;
  /**
   * Shared stores: resolves (with a `TakenOverError`, exported by
   * `./server`) when another node took the upload over (its uploader
   * resumed there); the writer takes no byte after that. Optional.
   */
  readonly lost?: Promise<SpoolError<"taken-over">>;
  /**
   * Shared stores: throws {@linkcode TakenOverError} if another node took
   * the upload over, asking the store rather than waiting to be told.
   * Optional.
   */
  stillHeld?(): Promise<void>;
}

/**
 * Thrown by a shared store's writer or `save` when another node holds the
 * upload now (its uploader resumed there, or that node failed it): this
 * node must stop writing and follow the other node's statuses, not fail
 * the resource.
 *
 * @example
 * ```ts
 * import { TakenOverError } from "./store.ts";
 * const error = new TakenOverError("AAAAAAAAAAAAAAAAAAAAAA", "its lease was taken");
 * console.log(error.code); // taken-over
 * ```
 */
export class TakenOverError extends SpoolError<"taken-over"> {
  /** The resource. */
  readonly id: string;

  /** Creates the error for resource `id`; `detail` says how this node learnt it. */
  constructor(id: string, detail: string) {
    super(
      "taken-over",
      `another node holds the upload of ${id} now (${detail}); expected this node to stop writing it and follow that node's statuses`,
    );
    this.name = "TakenOverError";
    this.id = id;
  }
}

/**
 * Storage for resource bytes and metadata.
 *
 * @example Listing every stored resource
 * ```ts
 * import type { ResourceStore } from "./store.ts";
 * async function printAll(store: ResourceStore): Promise<void> {
 *   for (const status of await store.list()) console.log(status.id, status.status);
 * }
 * ```
 */
export interface ResourceStore {
  /**
   * Takes the store for one server before it is used, e.g. locks a
   * directory; rejects if another server holds it. Optional.
   */
  open?(): Promise<void>;
  /** Lets the store go once the server stopped. Optional. */
  close?(): Promise<void>;
  /**
   * Whether several servers share the store: a status saved by another node
   * may fence this node's out (`save` then throws {@linkcode TakenOverError}),
   * so a resource tells its watchers of its failure only once it is saved.
   * Default `false`.
   */
  readonly shared?: boolean;
  /** Shared stores: the last status any node saved for `id`. Optional. */
  lastStatus?(id: string): Promise<ResourceStatus | undefined>;
  /** Creates the data of a new resource and saves its first status. */
  create(status: ResourceStatus): Promise<ResourceWriter>;
  /** Saves a resource's status (atomically: readers never see a torn one). */
  save(status: ResourceStatus): Promise<void>;
  /**
   * Reads bytes `[start, end)` as a byte stream (BYOB-capable), so a caller
   * can read straight into its own buffers.
   */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array>;
  /** Bytes of data held for `id`, which may exceed the checkpointed size. */
  dataSize(id: string): Promise<number>;
  /** Every stored resource's last saved status. */
  list(): Promise<ResourceStatus[]>;
  /** Removes a resource's data and metadata. */
  delete(id: string): Promise<void>;
}
