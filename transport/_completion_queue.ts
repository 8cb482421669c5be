/**
 * The completion queue of a `Stream` (AIStore's SCQ): every object sent,
 * or refused by `send`, waits here for its one completion, fired in the
 * order the objects were sent. The worker reports completions by sequence
 * number; objects refused before they got one complete in their turn.
 *
 * @module
 */

import type { TransportError } from "./errors.ts";
import { Fifo } from "./internal/fifo.ts";
import { cancelBody } from "./_bodies.ts";
import type { ObjectBody, ObjectHeader, SentCallback } from "./types.ts";

/** An object awaiting its completion. */
export interface Pending {
  /** Its sequence number, or `null` if `send` refused it before it got one. */
  seq: number | null;
  header: ObjectHeader;
  onSent?: SentCallback;
  /** Bytes counted against `maxInFlightBytes`. */
  budget: number;
  /** Copy-ring bytes to release on completion. */
  ringCost?: number;
  /** The body while it is not yet handed to the worker (to cancel if dropped). */
  body: ObjectBody;
  /** For a refused object: the error it completes with. */
  error?: TransportError;
}

/** What the queue calls: callbacks, the copy ring, and waiters for room. */
export interface CompletionHooks {
  /** The stream's `onSent`, for objects without their own. */
  onSent?: SentCallback;
  /** Gives `cost` bytes back to the copy ring. */
  releaseRing(cost: number): void;
  /** Completions made room for more objects. */
  onRoom(): void;
}

/**
 * The ordered completions of one stream.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { CompletionQueue } from "./_completion_queue.ts";
 * const order: string[] = [];
 * const queue = new CompletionQueue({
 *   onSent: (header, error) => void order.push(`${header.name} ${error?.code ?? "ok"}`),
 *   releaseRing() {},
 *   onRoom() {},
 * });
 * queue.push({ seq: 0, header: { name: "a" }, budget: 5, body: null });
 * queue.push({ seq: 1, header: { name: "b" }, budget: 0, body: null });
 * queue.completeThrough(1, new Map());
 * assertEquals([order, queue.inFlight], [["a ok", "b ok"], 0]);
 * ```
 */
export class CompletionQueue {
  readonly #hooks: CompletionHooks;
  readonly #queue = new Fifo<Pending>();
  /** Queued objects whose bodies are not yet with the worker. */
  #unposted: Pending[] = [];
  #inFlight = 0;
  #inFlightBytes = 0;
  #failed = 0;

  /** Creates an empty queue. */
  constructor(hooks: CompletionHooks) {
    this.#hooks = hooks;
  }

  /** Objects sent and not yet completed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Their body bytes. */
  get inFlightBytes(): number {
    return this.#inFlightBytes;
  }

  /** Objects completed with an error so far. */
  get failed(): number {
    return this.#failed;
  }

  /** Queues an object `send` accepted (it has a sequence number). */
  push(pending: Pending): void {
    this.#queue.push(pending);
    if (pending.body !== null) this.#unposted.push(pending);
    this.#inFlight++;
    this.#inFlightBytes += pending.budget;
  }

  /**
   * An object `send` refused with `pending.error`: it completes now if
   * nothing is ahead of it, else right after the objects before it.
   */
  refuse(pending: Pending): void {
    cancelBody(pending.body, pending.error);
    pending.body = null;
    if (this.#queue.length === 0) this.#fire(pending, pending.error);
    else this.#queue.push(pending);
  }

  /** Every queued body went to the worker: it is no longer ours to cancel. */
  posted(): void {
    for (const pending of this.#unposted) pending.body = null;
    this.#unposted = [];
  }

  /**
   * Completes the objects with sequence numbers up to `through` (with
   * their error in `errors`, if any); with `rest`, every object after them
   * too, failed with `rest`.
   */
  completeThrough(
    through: number,
    errors: Map<number, TransportError>,
    rest?: TransportError,
  ): void {
    for (let next = this.#queue.peek(); next !== undefined;) {
      if (next.seq !== null && next.seq > through && rest === undefined) break;
      this.#queue.shift();
      this.#complete(next, through, errors, rest);
      next = this.#queue.peek();
      // Refused objects right behind it complete at once, in order.
      while (next !== undefined && next.seq === null && rest === undefined) {
        this.#queue.shift();
        this.#fire(next, next.error);
        next = this.#queue.peek();
      }
    }
    if (this.#queue.length === 0) this.#unposted = [];
    this.#hooks.onRoom();
  }

  #complete(
    pending: Pending,
    through: number,
    errors: Map<number, TransportError>,
    rest: TransportError | undefined,
  ): void {
    const seq = pending.seq;
    if (seq !== null) {
      this.#inFlight--;
      this.#inFlightBytes -= pending.budget;
      if (pending.ringCost !== undefined) {
        this.#hooks.releaseRing(pending.ringCost);
      }
    }
    const error = pending.error ??
      (seq === null ? undefined : errors.get(seq)) ??
      (seq === null || seq > through ? rest : undefined);
    if (pending.body !== null) cancelBody(pending.body, error);
    this.#fire(pending, error);
  }

  #fire(pending: Pending, error: TransportError | undefined): void {
    if (error !== undefined) this.#failed++;
    const callback = pending.onSent ?? this.#hooks.onSent;
    if (callback === undefined) return;
    try {
      callback(pending.header, error);
    } catch (thrown) {
      // A throwing callback is the caller's bug: surface it like an event
      // listener's exception, and keep completing the other objects.
      reportError(thrown);
    }
  }
}
