/**
 * Messages between a main-thread `Stream` and its send-loop worker.
 * Internal (see `./README.md`): both ends of the `postMessage` use them.
 *
 * @module
 */

import type { TransportErrorCode } from "../errors.ts";
import type { TransportCompression } from "../types.ts";

/** Starts the send loop. */
export interface InitMessage {
  t: "init";
  url: string;
  sessionId: string;
  idleTimeoutMs: number;
  /** Complete objects on the receiver's confirmation, not on the write. */
  confirm: boolean;
  compression: TransportCompression;
  sizePdu: number;
  headers: Record<string, string>;
  secret?: string;
  caCerts?: string[];
}

/** How an object's body crossed into the worker. */
export type WireBody =
  | null
  /** A slice of the batch's packed buffer. */
  | { k: "packed"; off: number; len: number }
  /** Its own (transferred) buffer. */
  | { k: "buffer"; bytes: Uint8Array }
  /** A transferred stream. */
  | { k: "stream"; stream: ReadableStream<Uint8Array> }
  /** A file the worker opens. */
  | { k: "file"; path: string }
  /** A slot of the shared copy ring. */
  | { k: "ring"; off: number; len: number }
  /** The caller's own shared memory, read in place until the completion. */
  | { k: "shared"; bytes: Uint8Array };

/** One object of a batch. */
export interface WireObject {
  seq: number;
  size: number;
  /** Offset and length of its encoded header in the packed buffer. */
  hdrOff: number;
  hdrLen: number;
  body: WireBody;
}

/**
 * A batch of objects, headers (and small bodies) packed in one buffer. The
 * objects are a table of numbers (see {@linkcode BatchTable}): cloning a
 * few hundred small objects per batch was the main thread's largest cost
 * for small objects. Bodies that are not numbers ride in `others`.
 */
export interface ObjectsMessage {
  t: "objs";
  packed: Uint8Array;
  meta: Float64Array<ArrayBuffer>;
  others: [index: number, body: WireBody][];
}

/**
 * Numbers per object in a batch: seq, size, hdrOff, hdrLen, body kind, off,
 * len, framed (1: the object's frame header is in the packed buffer right
 * before its header, and its packed body, if any, right after it).
 */
export const STRIDE = 8;
/** Body kinds of a batch's table: none. */
export const BODY_NONE = 0;
/** A slice of the packed buffer. */
export const BODY_PACKED = 1;
/** A slot of the copy ring. */
export const BODY_RING = 2;
/** One of the batch's `others`. */
export const BODY_OTHER = 3;

/** The objects of the next batch, as the numbers a message carries. */
export class BatchTable {
  #meta = new Float64Array(256 * STRIDE);
  #count = 0;
  #others: [number, WireBody][] = [];

  /** Objects in the batch. */
  get length(): number {
    return this.#count;
  }

  /** Adds an object. */
  add(object: WireObject): void {
    const body = object.body;
    if (body === null) {
      this.addNumbers(object.seq, object.size, object.hdrOff, object.hdrLen);
    } else if (body.k === "packed" || body.k === "ring") {
      this.addNumbers(
        object.seq,
        object.size,
        object.hdrOff,
        object.hdrLen,
        body.k === "packed" ? BODY_PACKED : BODY_RING,
        body.off,
        body.len,
      );
    } else {
      this.#others.push([this.#count, body]);
      this.addNumbers(
        object.seq,
        object.size,
        object.hdrOff,
        object.hdrLen,
        BODY_OTHER,
      );
    }
  }

  /**
   * Adds an object whose body is none, `packed` or `ring` (`kind`, with
   * its `off` and `len`) without an object per call: the send queue's way
   * for small objects. `framed`: see {@linkcode STRIDE}.
   */
  addNumbers(
    seq: number,
    size: number,
    hdrOff: number,
    hdrLen: number,
    kind: number = BODY_NONE,
    off = 0,
    len = 0,
    framed = 0,
  ): void {
    if ((this.#count + 1) * STRIDE > this.#meta.length) {
      const bigger = new Float64Array(this.#meta.length * 2);
      bigger.set(this.#meta);
      this.#meta = bigger;
    }
    const meta = this.#meta;
    const at = this.#count * STRIDE;
    meta[at] = seq;
    meta[at + 1] = size;
    meta[at + 2] = hdrOff;
    meta[at + 3] = hdrLen;
    meta[at + 4] = kind;
    meta[at + 5] = off;
    meta[at + 6] = len;
    meta[at + 7] = framed;
    this.#count++;
  }

  /** Sequence number of object `index`. */
  seqAt(index: number): number {
    return this.#meta[index * STRIDE];
  }

  /** Empties the table. */
  clear(): void {
    this.#count = 0;
    this.#others = [];
  }

  /** The batch as a message with `packed`; the table starts over empty. */
  take(packed: Uint8Array): ObjectsMessage {
    const message: ObjectsMessage = {
      t: "objs",
      packed,
      meta: this.#meta.slice(0, this.#count * STRIDE),
      others: this.#others,
    };
    this.clear();
    return message;
  }
}

/**
 * Object `index` of a batch message, whose body is `other` if it is one of
 * the batch's `others`.
 */
export function batchObject(
  meta: Float64Array,
  index: number,
  other: WireBody,
): WireObject {
  const at = index * STRIDE;
  const kind = meta[at + 4];
  let body: WireBody = null;
  if (kind === BODY_PACKED) {
    body = { k: "packed", off: meta[at + 5], len: meta[at + 6] };
  } else if (kind === BODY_RING) {
    body = { k: "ring", off: meta[at + 5], len: meta[at + 6] };
  } else if (kind === BODY_OTHER) body = other;
  return {
    seq: meta[at],
    size: meta[at + 1],
    hdrOff: meta[at + 2],
    hdrLen: meta[at + 3],
    body,
  };
}

/** Main → worker control. */
export type ControlMessage =
  | { t: "ring"; buffer: SharedArrayBuffer }
  | { t: "fin" }
  | { t: "abort"; reason: string }
  | { t: "close" };

/** Every message the main thread sends. */
export type ToWorker = InitMessage | ObjectsMessage | ControlMessage;

/** An error crossing the thread boundary. */
export interface WireError {
  code: TransportErrorCode;
  message: string;
  remoteCode?: string;
}

/** Counters the worker keeps. */
export interface WorkerStats {
  objects: number;
  bytes: number;
  offset: number;
  sent: number;
  failed: number;
  requests: number;
  idleMs: number;
  totalMs: number;
}

/** Statistics before anything was sent. */
export function zeroStats(): WorkerStats {
  return {
    objects: 0,
    bytes: 0,
    offset: 0,
    sent: 0,
    failed: 0,
    requests: 0,
    idleMs: 0,
    totalMs: 0,
  };
}

/** Objects up to `through` completed; those in `errors` failed. */
export interface CompletionsMessage {
  t: "cmpl";
  through: number;
  errors: [seq: number, error: WireError][];
  stats: WorkerStats;
  /**
   * Packed buffers of batches the loop sent in full (moved back): the
   * `Stream` packs its next batches into them instead of new ones.
   */
  spent?: ArrayBuffer[];
}

/** Statistics while a body is being written (at most every 100 ms). */
export interface ProgressMessage {
  t: "prog";
  stats: WorkerStats;
}

/**
 * The send loop ended with `error` (`null`: cleanly); every object after the
 * last completion fails with `rest` (the root error, or `stream-terminated`
 * naming it when one object's failure ended the stream).
 */
export interface EndMessage {
  t: "end";
  error: WireError | null;
  rest: WireError | null;
  stats: WorkerStats;
}

/** Every message the worker sends. */
export type FromWorker =
  | CompletionsMessage
  | ProgressMessage
  | EndMessage
  | { t: "closed" };
