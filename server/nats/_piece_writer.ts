/**
 * The writer of one upload on the engine: appends become pieces on the
 * resource's segment subjects, published without waiting for each
 * acknowledgement (a bounded window in flight, in order); an append resolves
 * once the stream stored it and everything before, and each `sync`
 * publishes the checkpoint status after the bytes it counts are stored.
 *
 * @module
 */

import { headers } from "@nats-io/transport-node";
import type { ResourceStatus } from "../../protocol/status.ts";
import { type ResourceWriter, TakenOverError } from "../store.ts";
import type { Lease } from "./lease.ts";
import {
  FencedError,
  type PublishOptions,
  publishPipelined,
} from "./_publish.ts";
import { dataSubject, OFFSET_HEADER, SEGMENT_BYTES } from "./subjects.ts";
import type { StatusPublisher } from "./_status_publisher.ts";
import type { JetStreamClient } from "@nats-io/jetstream";

/** Pieces published and not yet acknowledged, at most. */
const MAX_PIECES_IN_FLIGHT = 16;
/** Bytes published and not yet acknowledged, at most (one piece may exceed it). */
const MAX_BYTES_IN_FLIGHT = 4 * 1024 * 1024;

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
  /** Resolves once every piece published so far is stored. */
  #stored: Promise<void> = Promise.resolve();
  /** Pieces not yet acknowledged, oldest first. */
  readonly #inFlight: Promise<void>[] = [];
  #inFlightBytes = 0;
  #failure: Error | undefined;
  #lastSubject = "";
  #lastSeq = 0;
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

  /**
   * Publishes `chunk` as pieces without waiting for their acknowledgements
   * (waiting only for room in the window); `stored` resolves once the stream
   * stored them and every piece before, and rejects if it could not.
   */
  async enqueue(chunk: Uint8Array): Promise<{ stored: Promise<void> }> {
    this.#checkLease();
    if (this.#failure) throw this.#failure;
    const id = this.#status.id;
    let at = 0;
    while (at < chunk.byteLength) {
      const offset = this.#offset;
      const room = SEGMENT_BYTES - (offset % SEGMENT_BYTES);
      const piece = chunk.subarray(at, at + room);
      await this.#room(piece.byteLength);
      this.#checkLease();
      const header = headers();
      header.set(OFFSET_HEADER, String(offset));
      this.#publish(
        dataSubject(id, Math.floor(offset / SEGMENT_BYTES)),
        piece,
        { msgID: `${id}:${offset}:${piece.byteLength}`, headers: header },
      );
      this.#offset += piece.byteLength;
      at += piece.byteLength;
    }
    return { stored: this.#stored };
  }

  /** Publishes `chunk` as pieces; resolves once the stream stored all. */
  async append(chunk: Uint8Array): Promise<void> {
    const { stored } = await this.enqueue(chunk);
    await stored;
  }

  /** Waits until a piece of `bytes` fits the window of pieces in flight. */
  async #room(bytes: number): Promise<void> {
    while (
      this.#inFlight.length >= MAX_PIECES_IN_FLIGHT ||
      (this.#inFlight.length > 0 &&
        this.#inFlightBytes + bytes > MAX_BYTES_IN_FLIGHT)
    ) {
      await this.#inFlight[0];
    }
  }

  /** Publishes one piece after every earlier one, keeping the subject's order. */
  #publish(subject: string, piece: Uint8Array, options: PublishOptions): void {
    const previous = this.#stored;
    const ack = publishPipelined(this.#parts.js, subject, piece, {
      ...options,
      previous,
    });
    // Its rejection is taken (in order) by `stored` below.
    ack.catch(() => {});
    const stored = previous.then(() => ack).then((acked) => {
      this.#checkOrder(subject, acked.seq);
      this.#inFlight.shift();
      this.#inFlightBytes -= piece.byteLength;
    });
    // The failure is kept for the next append; `stored` also carries it.
    stored.catch((error) => this.#failure ??= error);
    this.#inFlight.push(stored);
    this.#inFlightBytes += piece.byteLength;
    this.#stored = stored;
  }

  /** A subject's pieces must be stored in offset order (readers scan them so). */
  #checkOrder(subject: string, seq: number): void {
    if (subject === this.#lastSubject && seq < this.#lastSeq) {
      throw new Error(
        `the engine stored a piece of ${subject} at sequence ${seq}, before the piece preceding it (sequence ${this.#lastSeq}); expected a subject's pieces in offset order`,
      );
    }
    this.#lastSubject = subject;
    this.#lastSeq = seq;
  }

  /** Publishes the checkpoint: `IN_PROGRESS` with every byte stored so far. */
  async sync(): Promise<void> {
    this.#checkLease();
    const size = this.#offset;
    // A status counts only bytes the stream acknowledged.
    await this.#stored;
    if (size === this.#checkpointed) return;
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
