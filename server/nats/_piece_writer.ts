/**
 * The writer of one upload on the engine: appends become pieces on the
 * resource's segment subjects (an append's pieces are published together,
 * and it resolves once the stream stored all of them), and each `sync`
 * publishes the checkpoint status after the bytes it counts.
 *
 * @module
 */

import { headers } from "@nats-io/transport-node";
import type { ResourceStatus } from "../../protocol/status.ts";
import { type ResourceWriter, TakenOverError } from "../store.ts";
import type { Lease } from "./lease.ts";
import { FencedError, publishReliably } from "./_publish.ts";
import { dataSubject, OFFSET_HEADER, SEGMENT_BYTES } from "./subjects.ts";
import type { StatusPublisher } from "./_status_publisher.ts";
import type { JetStreamClient } from "@nats-io/jetstream";

/** What a writer needs from its store. */
export interface PieceWriterParts {
  /** Publishes the pieces. */
  js: JetStreamClient;
  /** Publishes the checkpoints, fenced. */
  statuses: StatusPublisher;
  /** The upload's lease: once lost, no byte is taken. */
  lease: Lease;
  /** Another node took the upload over: the store lets go of it here. */
  yielded(): void;
}

/**
 * Writes one resource's bytes from `offset` on.
 *
 * @example
 * ```ts ignore
 * const writer = new PieceWriter(parts, status, 0);
 * await writer.append(bytes);
 * await writer.sync(); // the checkpoint status is in the stream
 * ```
 */
export class PieceWriter implements ResourceWriter {
  readonly #parts: PieceWriterParts;
  readonly #status: ResourceStatus;
  #offset: number;
  #checkpointed: number;
  /** Resolves once another node took the upload over (its lease, or a fenced status). */
  readonly lost: Promise<TakenOverError>;
  readonly #lost = Promise.withResolvers<TakenOverError>();

  /** A writer continuing `status`'s resource at byte `offset`. */
  constructor(parts: PieceWriterParts, status: ResourceStatus, offset: number) {
    this.#parts = parts;
    this.#status = status;
    this.#offset = offset;
    this.#checkpointed = status.size;
    this.lost = this.#lost.promise;
    parts.lease.takenOver.then((reason) => this.#yield(reason));
  }

  /** Another node holds the upload now; returns the error saying so. */
  #yield(detail: string): TakenOverError {
    const error = new TakenOverError(this.#status.id, detail);
    this.#lost.resolve(error);
    this.#parts.yielded();
    return error;
  }

  #checkLease(): void {
    const lease = this.#parts.lease;
    const lost = lease.lost;
    if (lost === undefined) return;
    // Taken over: the resource follows the new holder instead of failing.
    throw lease.taken
      ? new TakenOverError(this.#status.id, lost)
      : new Error(`this node no longer holds the upload: ${lost}`);
  }

  /**
   * Throws {@linkcode TakenOverError} if another node took the upload, even
   * if this node's lease renewal has not noticed yet.
   */
  async stillHeld(): Promise<void> {
    await this.#parts.lease.check();
    this.#checkLease();
  }

  /** Publishes `chunk` as pieces; resolves once the stream stored all. */
  async append(chunk: Uint8Array): Promise<void> {
    this.#checkLease();
    const id = this.#status.id;
    const publishes: Promise<unknown>[] = [];
    let at = 0;
    while (at < chunk.byteLength) {
      const offset = this.#offset + at;
      const room = SEGMENT_BYTES - (offset % SEGMENT_BYTES);
      const piece = chunk.subarray(at, at + room);
      const header = headers();
      header.set(OFFSET_HEADER, String(offset));
      publishes.push(
        publishReliably(
          this.#parts.js,
          dataSubject(id, Math.floor(offset / SEGMENT_BYTES)),
          piece,
          { msgID: `${id}:${offset}:${piece.byteLength}`, headers: header },
        ),
      );
      at += piece.byteLength;
    }
    await Promise.all(publishes);
    this.#offset += chunk.byteLength;
  }

  /** Publishes the checkpoint: `IN_PROGRESS` with every byte stored so far. */
  async sync(): Promise<void> {
    this.#checkLease();
    if (this.#offset === this.#checkpointed) return;
    const size = this.#offset;
    try {
      await this.#parts.statuses.publish({
        ...this.#status,
        status: "IN_PROGRESS",
        size,
        updatedAt: new Date().toISOString(),
      });
    } catch (error) {
      // Another node's status came first: it took the upload, or failed it.
      if (error instanceof FencedError) throw this.#yield(error.message);
      throw error;
    }
    this.#checkpointed = size;
  }

  /** Nothing to release: the lease goes with the final status. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
