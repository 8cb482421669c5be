/**
 * A cursor over a growing resource: the one way followers (a WebSocket
 * `follow` or `read`, an HTTP `?follow=1`) take its bytes. Bytes come from
 * the resource's recent tail in memory while they are there, copied (a
 * thousand waiting followers keep no views of the tail alive), else from
 * the store; never past the limit the caller gives (at most the checkpoint).
 *
 * @module
 */

import type { Resource } from "./resource.ts";

/**
 * How a cursor hands out bytes.
 *
 * @example
 * ```ts
 * import type { CursorOptions } from "./follow_cursor.ts";
 * // Frames with a 4-byte header written in place, sent before the next read.
 * const framed: CursorOptions = { headroom: 4, reuse: true };
 * ```
 */
export interface CursorOptions {
  /** Bytes left free before each payload, for a header written in place. Default 0. */
  headroom?: number;
  /**
   * The caller is done with each chunk before its next read (a WebSocket
   * send copies it), so the store buffer is reused; otherwise (chunks
   * given away to a response body) every chunk has a buffer of its own.
   * Default `false`.
   */
  reuse?: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * Reads a resource from a position on, as far as its caller allows.
 *
 * @example
 * ```ts ignore
 * const cursor = new FollowCursor(resource, 0);
 * let chunk = cursor.read(64 * 1024, resource.status.size);
 * if (chunk instanceof Promise) chunk = await chunk;
 * await cursor.close();
 * ```
 */
export class FollowCursor {
  readonly #resource: Resource;
  readonly #headroom: number;
  readonly #reuse: boolean;
  #position: number;
  /** A store read of `[.., #readerEnd)` in progress. */
  #reader: ReadableStreamBYOBReader | undefined;
  #readerEnd = 0;
  /** The store buffer, when reused. */
  #buffer: ArrayBuffer | undefined;
  /** Stops counting this cursor as a reader of the resource. */
  readonly #release: () => void;

  /**
   * A cursor at `start`. It does not watch the resource: its owner, who
   * waits for checkpoints anyway, decides when to read again.
   */
  constructor(resource: Resource, start: number, options: CursorOptions = {}) {
    this.#resource = resource;
    this.#position = start;
    this.#headroom = options.headroom ?? 0;
    this.#reuse = options.reuse ?? false;
    this.#release = resource.openReader();
  }

  /** The next byte to read. */
  get position(): number {
    return this.#position;
  }

  /**
   * Up to `room` bytes from the position, below `limit`: an empty chunk if
   * there are none. From memory the bytes are copied into `scratch` (after
   * its headroom) when one is given, and the chunk comes at once; from the
   * store it comes as a promise. Either way the chunk has `headroom` bytes
   * free before it in its buffer.
   */
  read(
    room: number,
    limit: number,
    scratch?: ArrayBuffer,
  ): Uint8Array | Promise<Uint8Array> {
    const length = Math.min(room, limit - this.#position);
    if (length <= 0) return EMPTY;
    if (this.#reader === undefined) {
      const target = scratch
        ? new Uint8Array(scratch, this.#headroom, length)
        : new Uint8Array(this.#headroom + length).subarray(this.#headroom);
      const copied = this.#resource.copyRecent(this.#position, target);
      if (copied > 0) {
        this.#position += copied;
        return target.subarray(0, copied);
      }
      // Not (or no longer) in memory: the rest comes from the store.
      this.#reader = this.#resource.read(this.#position, limit).getReader({
        mode: "byob",
      });
      this.#readerEnd = limit;
    }
    return this.#readStored(Math.min(length, this.#readerEnd - this.#position));
  }

  async #readStored(length: number): Promise<Uint8Array> {
    const size = this.#headroom + length;
    const buffer = this.#reuse && this.#buffer !== undefined &&
        this.#buffer.byteLength >= size
      ? this.#buffer
      : new ArrayBuffer(size);
    // Read straight behind the headroom: the payload is never copied.
    const { value, done } = await this.#reader!.read(
      new Uint8Array(buffer, this.#headroom, length),
    );
    if (done || !value) {
      throw new Error(
        `the store ended at byte ${this.#position}; expected bytes up to ${this.#readerEnd}`,
      );
    }
    // A BYOB read hands its buffer back in a new ArrayBuffer.
    if (this.#reuse) this.#buffer = value.buffer as ArrayBuffer;
    this.#position += value.byteLength;
    // A store reader closes itself at the end of its range.
    if (this.#position >= this.#readerEnd) this.#reader = undefined;
    return value;
  }

  /** Releases a store read in progress, and the resource's tail if it was the last reader. */
  async close(): Promise<void> {
    this.#release();
    const reader = this.#reader;
    this.#reader = undefined;
    await reader?.cancel().catch((error) =>
      console.error(
        `spool: closing a read of ${this.#resource.status.id} failed:`,
        error,
      )
    );
  }
}
