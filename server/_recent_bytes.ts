/**
 * The most recently written bytes of a live resource, kept in memory as the
 * chunks they were written in: caught-up followers all want the bytes of
 * the latest checkpoint, so they are served from here instead of one disk
 * read per follower. Adding and dropping a chunk are O(1) (amortised): an
 * `Array.shift()` per append was O(n) once a tail held ~500k tiny chunks.
 *
 * @module
 */

/** Dropped chunks at the head are compacted away past this many. */
const COMPACT_AFTER = 1024;

/** Recent bytes `[start, end)` of one resource. */
export class RecentBytes {
  #chunks: Uint8Array[] = [];
  /** Where each chunk starts in the resource. */
  #starts: number[] = [];
  /** Index of the oldest chunk still held. */
  #head = 0;
  #start: number;
  #end: number;

  /** An empty tail at offset `at`. */
  constructor(at: number) {
    this.#start = this.#end = at;
  }

  /** First byte held. */
  get start(): number {
    return this.#start;
  }

  /** Byte after the last one held. */
  get end(): number {
    return this.#end;
  }

  /** Adds `chunk` at the end, then drops the oldest chunks beyond `limit` bytes. */
  push(chunk: Uint8Array, limit: number): void {
    if (chunk.byteLength > limit) {
      this.clear(this.#end + chunk.byteLength);
      return;
    }
    this.#chunks.push(chunk);
    this.#starts.push(this.#end);
    this.#end += chunk.byteLength;
    while (this.#end - this.#start > limit) {
      this.#start += this.#chunks[this.#head].byteLength;
      this.#head++;
    }
    if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#starts = this.#starts.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Drops every chunk; the tail continues at `at`. */
  clear(at: number): void {
    this.#chunks = [];
    this.#starts = [];
    this.#head = 0;
    this.#start = this.#end = at;
  }

  /** Index of the chunk holding `position` (which must be held). */
  #find(position: number): number {
    let low = this.#head;
    let high = this.#chunks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.#starts[middle] <= position) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /**
   * Copies the bytes from `position` on into `target`; returns how many,
   * `0` if `position` is not held.
   */
  copy(position: number, target: Uint8Array): number {
    if (position < this.#start || position >= this.#end) return 0;
    let copied = 0;
    for (
      let index = this.#find(position);
      index < this.#chunks.length && copied < target.byteLength;
      index++
    ) {
      const chunk = this.#chunks[index];
      const from = position + copied - this.#starts[index];
      const length = Math.min(
        chunk.byteLength - from,
        target.byteLength - copied,
      );
      target.set(chunk.subarray(from, from + length), copied);
      copied += length;
    }
    return copied;
  }

  /** `[start, end)` as views on the held chunks, or `undefined` if not all held. */
  views(start: number, end: number): Uint8Array[] | undefined {
    if (start < this.#start || end > this.#end) return undefined;
    const pieces: Uint8Array[] = [];
    if (start === end) return pieces;
    for (let index = this.#find(start); index < this.#chunks.length; index++) {
      const chunk = this.#chunks[index];
      const offset = this.#starts[index];
      pieces.push(
        chunk.subarray(
          Math.max(0, start - offset),
          Math.min(chunk.byteLength, end - offset),
        ),
      );
      if (offset + chunk.byteLength >= end) break;
    }
    return pieces;
  }
}
