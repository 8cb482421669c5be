/**
 * A ring of shared memory between a `Stream` and its worker for bodies the
 * caller keeps (`copy: true`, or views into a larger buffer): `send` copies
 * them in, the worker writes them to the socket straight from the ring, and
 * the slot is reused once the object completed. No allocation, no page
 * faults per object, unlike a fresh `ArrayBuffer` per body.
 *
 * Slots are released in the order they were reserved (completions are
 * ordered), so a head and a used count describe the ring.
 *
 * @module
 */

/** A reserved slot: where the bytes go, and what releasing it frees. */
export interface RingSlot {
  /** Byte offset in the ring. */
  offset: number;
  /** Bytes freed on release (the slot plus any skipped tail of the ring). */
  cost: number;
}

/** Shared-memory ring of body bytes. */
export class CopyRing {
  /** The shared memory, handed to the worker once. */
  readonly buffer: SharedArrayBuffer;
  readonly #bytes: Uint8Array;
  #head = 0;
  #used = 0;

  constructor(size: number) {
    this.buffer = new SharedArrayBuffer(size);
    this.#bytes = new Uint8Array(this.buffer);
  }

  /** Largest body the ring takes (a quarter, so slots rotate). */
  get maxBody(): number {
    return this.buffer.byteLength >>> 2;
  }

  /** Copies `body` into a free slot, or returns `null` if none is free now. */
  put(body: Uint8Array): RingSlot | null {
    const size = this.buffer.byteLength;
    if (this.#used === 0) this.#head = 0;
    let offset = this.#head;
    let skip = 0;
    if (offset + body.byteLength > size) {
      skip = size - offset;
      offset = 0;
    }
    const cost = skip + body.byteLength;
    if (cost > size - this.#used) return null;
    this.#bytes.set(body, offset);
    this.#head = offset + body.byteLength;
    this.#used += cost;
    return { offset, cost };
  }

  /** Frees the oldest reserved slot's `cost`. */
  release(cost: number): void {
    this.#used -= cost;
  }
}
