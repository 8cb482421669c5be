/**
 * The writer of one upload on the engine: appends become pieces on the
 * resource's segment subjects, published without waiting for each
 * acknowledgement (a bounded window in flight). While pieces are in flight,
 * appends are joined into the next piece (up to the segment's end), as
 * Nagle's algorithm joins writes: per byte, a few large messages cost the
 * engine and both nodes less than many smaller ones, and an idle engine
 * gets each append at once. An append counts as stored
 * once the stream acknowledged it and every piece before it, and each
 * `sync` publishes the checkpoint status only after that. Each piece is
 * retried on its own, so the stream may store a segment's pieces out of
 * offset order (or twice, after a leader change): readers place pieces by
 * their offset header (`_range_reader.ts`).
 *
 * @module
 */

import { headers } from "@nats-io/transport-node";
import type { ResourceStatus } from "../../protocol/status.ts";
import { type ResourceWriter, TakenOverError } from "../store.ts";
import type { Lease } from "./lease.ts";
import { FencedError, retryPublish } from "./_publish.ts";
import type { PiecePublisher } from "./_piece_publisher.ts";
import { dataSubject, OFFSET_HEADER, SEGMENT_BYTES } from "./subjects.ts";
import type { StatusPublisher } from "./_status_publisher.ts";

/** Pieces published and not yet acknowledged, at most. */
const MAX_PIECES_IN_FLIGHT = 16;
/** Bytes published and not yet acknowledged, at most (one piece may exceed it). */
const MAX_BYTES_IN_FLIGHT = 4 * 1024 * 1024;

/** What a writer needs from its store. */
export interface PieceWriterParts {
  /** Publishes the pieces. */
  pieces: PiecePublisher;
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
  /** Acknowledgements of the pieces in flight, oldest first. */
  readonly #inFlight: Promise<unknown>[] = [];
  #inFlightBytes = 0;
  #failure: Error | undefined;
  /** Appends joined into the next piece, which starts at `#offset - #stagedBytes`. */
  #staged: Uint8Array[] = [];
  #stagedBytes = 0;
  /** Settles once the staged bytes are stored (rejects if they never are). */
  #stagedStored: PromiseWithResolvers<void> | undefined;
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
    this.#dropStaged(error);
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
   * Takes `chunk` for the next pieces without waiting for their
   * acknowledgements (waiting only for room in the window); `stored`
   * resolves once the stream stored it and every byte before, and rejects
   * if it could not.
   */
  async enqueue(chunk: Uint8Array): Promise<{ stored: Promise<void> }> {
    this.#checkLease();
    if (this.#failure) throw this.#failure;
    let at = 0;
    while (at < chunk.byteLength) {
      const room = SEGMENT_BYTES - (this.#offset % SEGMENT_BYTES);
      const part = chunk.subarray(at, at + room);
      this.#stage(part);
      at += part.byteLength;
      // A piece never crosses a segment's end: the full one goes now.
      if (this.#offset % SEGMENT_BYTES === 0) {
        await this.#flush();
        this.#checkLease();
        if (this.#failure) throw this.#failure;
      }
    }
    const stored = this.#stagedStored?.promise ?? this.#stored;
    // Nothing in flight: waiting would only delay these bytes.
    if (this.#inFlight.length === 0) await this.#flush();
    return { stored };
  }

  #stage(part: Uint8Array): void {
    if (this.#stagedStored === undefined) {
      this.#stagedStored = Promise.withResolvers<void>();
      // Its caller may await `stored` late: the failure is also the next append's.
      this.#stagedStored.promise.catch(() => {});
    }
    this.#staged.push(part);
    this.#stagedBytes += part.byteLength;
    this.#offset += part.byteLength;
  }

  /** Publishes the staged bytes as one piece, once the window has room. */
  async #flush(): Promise<void> {
    if (this.#stagedBytes === 0) return;
    await this.#room(this.#stagedBytes);
    // Another flush (an acknowledgement's) may have taken them meanwhile.
    const staged = this.#stagedStored;
    if (this.#stagedBytes === 0 || staged === undefined) return;
    try {
      this.#checkLease();
      if (this.#failure) throw this.#failure;
    } catch (error) {
      this.#dropStaged(error as Error);
      return;
    }
    const parts = this.#staged;
    const bytes = this.#stagedBytes;
    const offset = this.#offset - bytes;
    this.#staged = [];
    this.#stagedBytes = 0;
    this.#stagedStored = undefined;
    this.#publish(offset, parts, bytes);
    staged.resolve(this.#stored);
  }

  /**
   * The staged bytes will never be stored: their `stored` rejects, and so
   * does every later append and checkpoint (they would count a gap).
   */
  #dropStaged(error: Error): void {
    this.#failure ??= error;
    this.#stagedStored?.reject(error);
    this.#stagedStored = undefined;
    this.#staged = [];
    this.#stagedBytes = 0;
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
      // Settled either way: a failure is taken through `#stored`.
      await this.#inFlight[0].catch(() => {});
    }
  }

  /**
   * Publishes `parts` (`bytes` in all) as the piece at `offset` now;
   * `#stored` then waits for it after every earlier one, so a status never
   * counts a piece whose predecessor is missing.
   */
  #publish(offset: number, parts: Uint8Array[], bytes: number): void {
    const id = this.#status.id;
    const subject = dataSubject(id, Math.floor(offset / SEGMENT_BYTES));
    const msgID = `${id}:${offset}:${bytes}`;
    const ack = retryPublish(subject, (timeoutMs) => {
      const header = headers();
      header.set(OFFSET_HEADER, String(offset));
      return this.#parts.pieces.publish(subject, header, parts, {
        msgID,
        timeoutMs,
      });
    });
    const leave = () => {
      this.#inFlight.splice(this.#inFlight.indexOf(settled), 1);
      this.#inFlightBytes -= bytes;
    };
    const settled = ack.then(() => {
      leave();
      // The last piece in flight is stored: what was joined meanwhile goes.
      if (this.#inFlight.length === 0) {
        this.#flush().catch((error) => this.#failure ??= error);
      }
    }, (error) => {
      leave();
      // Nothing after a missing piece can ever be counted: none goes out.
      this.#dropStaged(error);
    });
    const stored = Promise.all([this.#stored, ack]).then(() => {});
    // The failure is kept for the next append; `stored` also carries it.
    stored.catch((error) => this.#failure ??= error);
    this.#inFlight.push(settled);
    this.#inFlightBytes += bytes;
    this.#stored = stored;
  }

  /** Publishes the checkpoint: `IN_PROGRESS` with every byte stored so far. */
  async sync(): Promise<void> {
    this.#checkLease();
    await this.#flush();
    if (this.#failure) throw this.#failure;
    // Bytes staged since (by appends during the flush) are the next one's.
    const size = this.#offset - this.#stagedBytes;
    // A status counts only bytes the stream acknowledged, all of them.
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
