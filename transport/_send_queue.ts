/**
 * The send queue of a `Stream` (AIStore's SQ): the objects queued since the
 * last batch went to the worker. Headers and small bodies are packed into one
 * buffer that moves to the worker with the batch; other bodies travel as
 * ring slots, shared views, moved buffers, moved streams or file paths.
 *
 * @module
 */

import {
  BatchTable,
  BODY_NONE,
  BODY_PACKED,
  type WireBody,
} from "./internal/messages.ts";
import { writeHeader } from "./header_codec.ts";
import { FRAME_HEADER_SIZE, KIND_OBJECT, writeFrameWords } from "./framing.ts";
import type { RingSlot } from "./_copy_ring.ts";
import { cancelBody, isFileBody } from "./_bodies.ts";
import type { ObjectBody } from "./types.ts";

/** Largest body packed with its header instead of travelling on its own. */
export const PACK_LIMIT = 64 * 1024;
/** A batch goes to the worker once it holds this many objects… */
const BATCH_OBJECTS = 256;
/** …or this many packed bytes. */
const BATCH_BYTES = 1 << 20;
/** Spent packed buffers kept for reuse. */
const MAX_SPENT = 4;
/** Smallest packed buffer a batch starts with. */
const MIN_PACKED = 64 * 1024;

/** A batch ready for the worker: its message and the buffers it moves. */
export interface TakenBatch {
  message: ReturnType<BatchTable["take"]>;
  transfer: Transferable[];
}

/**
 * The objects of the next batch.
 *
 * @example
 * ```ts ignore
 * const queue = new SendQueue();
 * queue.add(0, 5, encodedHeader, new Uint8Array(5), null);
 * const { message, transfer } = queue.take()!;
 * worker.postMessage(message, transfer);
 * ```
 */
export class SendQueue {
  #table = new BatchTable();
  /** Stream bodies of the batch, to cancel if it is dropped. */
  #streams: ReadableStream<Uint8Array>[] = [];
  #transfer: Transferable[] = [];
  #packed = new Uint8Array(MIN_PACKED);
  #packedAt = 0;
  /** Packed buffers given back by the worker, free for the next batches. */
  #spent: ArrayBuffer[] = [];

  /** Objects queued. */
  get length(): number {
    return this.#table.length;
  }

  /** Whether the batch is big enough to go now rather than on the next macrotask. */
  get full(): boolean {
    return this.#table.length >= BATCH_OBJECTS || this.#packedAt >= BATCH_BYTES;
  }

  /** Queues object `seq`: its encoded `header` and its body (in `slot` if copied to the ring). */
  add(
    seq: number,
    size: number,
    header: Uint8Array,
    body: ObjectBody,
    slot: RingSlot | null,
  ): void {
    const small = body instanceof Uint8Array && body.byteLength <= PACK_LIMIT
      ? body
      : null;
    if (slot === null && size >= 0 && (small !== null || body == null)) {
      this.#addFramed(seq, size, header.byteLength, header, small);
      return;
    }
    this.#reserve(header.byteLength + (small?.byteLength ?? 0));
    const hdrOff = this.#packedAt;
    this.#packed.set(header, hdrOff);
    this.#packedAt += header.byteLength;
    const wireBody = slot !== null
      ? {
        k: "ring" as const,
        off: slot.offset,
        len: (body as Uint8Array).byteLength,
      }
      : small !== null
      ? this.#pack(small)
      : this.#travelling(body);
    this.#table.add({
      seq,
      size,
      hdrOff,
      hdrLen: header.byteLength,
      body: wireBody,
    });
  }

  /**
   * Queues object `seq` of `size` bytes whose header `measureHeader` just
   * checked (`headerLength` bytes), with a small body (at most
   * {@linkcode PACK_LIMIT} bytes) or none: the way of most small objects.
   */
  addMeasured(
    seq: number,
    size: number,
    headerLength: number,
    body: Uint8Array | null,
  ): void {
    this.#addFramed(seq, size, headerLength, null, body);
  }

  /**
   * Packs a whole object as it goes on the wire: its frame header, its
   * header (`header`, else the one `measureHeader` just checked) and its
   * body. The worker sends a run of such objects with one write, and
   * nothing here allocates per object.
   */
  #addFramed(
    seq: number,
    size: number,
    headerLength: number,
    header: Uint8Array | null,
    body: Uint8Array | null,
  ): void {
    const bodyLength = body === null ? 0 : body.byteLength;
    this.#reserve(FRAME_HEADER_SIZE + headerLength + bodyLength);
    const packed = this.#packed;
    writeFrameWords(packed, this.#packedAt, KIND_OBJECT, 0, headerLength, seq);
    const hdrOff = this.#packedAt + FRAME_HEADER_SIZE;
    let at = hdrOff + headerLength;
    if (header === null) writeHeader(packed, hdrOff);
    else packed.set(header, hdrOff);
    if (bodyLength > 0) packed.set(body!, at);
    const kind = bodyLength > 0 ? BODY_PACKED : BODY_NONE;
    this.#table.addNumbers(
      seq,
      size,
      hdrOff,
      headerLength,
      kind,
      at,
      bodyLength,
      1,
    );
    at += bodyLength;
    this.#packedAt = at;
  }

  /** The batch as a message and its transfer list; the queue starts empty. */
  take(): TakenBatch | null {
    if (this.#table.length === 0) return null;
    const packed = this.#packed.subarray(0, this.#packedAt);
    const message = this.#table.take(packed);
    const transfer = [packed.buffer, ...this.#transfer, message.meta.buffer];
    // The packed buffer moves to the worker: start the next one at a size
    // that fits a batch like this one, in one it gave back if there is one
    // (a fresh buffer of a few hundred KiB is mapped and cleared page by
    // page: ~0.1 µs per small object).
    const size = Math.max(
      MIN_PACKED,
      Math.min(this.#packedAt, BATCH_BYTES * 2),
    );
    const spent = this.#spent.pop();
    this.#packed = spent !== undefined && spent.byteLength >= size
      ? new Uint8Array(spent)
      : new Uint8Array(size);
    this.#packedAt = 0;
    this.#streams = [];
    this.#transfer = [];
    return { message, transfer };
  }

  /**
   * Keeps `buffer`, a batch's packed buffer the worker sent in full, for a
   * next batch (a few at most).
   */
  recycle(buffer: ArrayBuffer): void {
    if (this.#spent.length < MAX_SPENT && !buffer.detached) {
      this.#spent.push(buffer);
    }
  }

  /** Drops every queued object (the stream was aborted), cancelling stream bodies. */
  drop(reason: unknown): void {
    for (const stream of this.#streams) cancelBody(stream, reason);
    this.#table.clear();
    this.#streams = [];
    this.#transfer = [];
    this.#packedAt = 0;
  }

  /** Makes room for `bytes` more packed bytes. */
  #reserve(bytes: number): void {
    const need = this.#packedAt + bytes;
    if (need <= this.#packed.byteLength) return;
    const bigger = new Uint8Array(Math.max(need, this.#packed.byteLength * 2));
    bigger.set(this.#packed.subarray(0, this.#packedAt));
    this.#packed = bigger;
  }

  /** Copies a small body into the packed buffer (an empty one needs nothing). */
  #pack(small: Uint8Array): WireBody {
    if (small.byteLength === 0) return null;
    this.#packed.set(small, this.#packedAt);
    const wire = {
      k: "packed" as const,
      off: this.#packedAt,
      len: small.byteLength,
    };
    this.#packedAt += small.byteLength;
    return wire;
  }

  /** A body that travels on its own: shared, moved, streamed or a file. */
  #travelling(body: ObjectBody): WireBody {
    if (
      body instanceof Uint8Array && body.buffer instanceof SharedArrayBuffer
    ) {
      // Cloning a view of shared memory shares it: no copy, no transfer.
      return { k: "shared", bytes: body };
    }
    if (body instanceof Uint8Array) {
      // One buffer sent twice in a batch can only move once: copy the rest.
      const bytes = this.#transfer.includes(body.buffer as ArrayBuffer)
        ? body.slice()
        : body;
      this.#transfer.push(bytes.buffer as ArrayBuffer);
      return { k: "buffer", bytes };
    }
    if (body instanceof ReadableStream) {
      this.#transfer.push(body as unknown as Transferable);
      this.#streams.push(body);
      return { k: "stream", stream: body };
    }
    return isFileBody(body) ? { k: "file", path: body.path } : null;
  }
}
