/**
 * The SHA-256 of an upload taken over from another node, built while the
 * upload goes on: the bytes stored before the takeover are read back from
 * the engine in the background, and the appends that come meanwhile are
 * kept until it caught up, then hashed after them.
 *
 * Reading every stored byte back before answering the uploader cost about
 * 3 ms per MiB: a resume of a 10 GB upload took half a minute, as long as
 * a client waits. Now the takeover answers at once and only the completion
 * waits for what is left of the reading. The appends kept are bounded: past
 * {@linkcode MAX_PENDING_BYTES}, the oldest that are already stored are let
 * go and read back from the engine with the rest.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { delay } from "@std/async/delay";
import type { UploadHash } from "../upload_hash.ts";

/** Bytes of appends kept while the hash catches up, at most (beyond, stored ones are read back instead). */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** What one kept append costs besides its bytes (its view and its slot), as counted against the bound. */
const PER_APPEND_BYTES = 512;
/** Times the reading back starts again from the last byte hashed after it failed. */
const READ_ATTEMPTS = 5;
/** Pause before it does, in ms (a replica behind catches up within it). */
const READ_RETRY_PAUSE_MS = 1000;

/** Reads stored bytes `[start, end)` of the upload back from the engine. */
export type ReadStored = (
  start: number,
  end: number,
  signal: AbortSignal,
) => ReadableStream<Uint8Array>;

/**
 * An {@linkcode UploadHash} whose first `start` bytes are read back with
 * `read`.
 *
 * @example
 * ```ts ignore
 * const hash = new CatchUpHash(written, (s, e, signal) => readRange(engine.jsm, id, s, e, signal));
 * hash.update(next);
 * hash.stored(written + next.byteLength);
 * console.log(await hash.digest());
 * ```
 */
export class CatchUpHash implements UploadHash {
  readonly #hash = createHash("sha256");
  readonly #read: ReadStored;
  readonly #limit: number;
  /** Bytes `[0, #fromStore)` are read back; the kept appends start there. */
  #fromStore: number;
  /** Bytes read back and hashed so far. */
  #hashed = 0;
  /** Kept appends from `#head` on (the ones before were let go). */
  #pending: Uint8Array[] = [];
  #head = 0;
  #pendingBytes = 0;
  /** Bytes the store holds, as the resource last said. */
  #stored: number;
  #caughtUp = false;
  readonly #released = new AbortController();
  readonly #done: Promise<void>;
  /** Resolves if the reading back failed for good (never once released). */
  readonly failed: Promise<Error>;
  readonly #failed = Promise.withResolvers<Error>();

  /** A hash of an upload whose first `start` bytes are in the store. */
  constructor(start: number, read: ReadStored, limit = MAX_PENDING_BYTES) {
    this.#read = read;
    this.#limit = limit;
    this.#fromStore = start;
    this.#stored = start;
    this.failed = this.#failed.promise;
    this.#done = this.#catchUp();
    this.#done.catch((error) => {
      // `digest` rejects with it too; a released hash has nobody to tell.
      if (!this.#released.signal.aborted) this.#failed.resolve(error);
    });
  }

  /** What the kept appends count against the bound (bytes plus a cost per append). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  update(bytes: Uint8Array): void {
    if (this.#caughtUp) {
      this.#hash.update(bytes);
      return;
    }
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.byteLength + PER_APPEND_BYTES;
    this.#letGo();
  }

  stored(bytes: number): void {
    this.#stored = bytes;
    this.#letGo();
  }

  /** Past the bound, the oldest appends the store holds are read back instead. */
  #letGo(): void {
    while (
      this.#pendingBytes > this.#limit && this.#head < this.#pending.length &&
      this.#fromStore + this.#pending[this.#head].byteLength <= this.#stored
    ) {
      const oldest = this.#pending[this.#head++];
      this.#pendingBytes -= oldest.byteLength + PER_APPEND_BYTES;
      this.#fromStore += oldest.byteLength;
    }
    // Dropping the slots let go now and then keeps this linear.
    if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
  }

  async #catchUp(): Promise<void> {
    for (let attempt = 1; this.#hashed < this.#fromStore; attempt++) {
      try {
        await this.#readBack();
      } catch (error) {
        const signal = this.#released.signal;
        if (signal.aborted || attempt === READ_ATTEMPTS) throw error;
        // Bytes this node wrote just now may not be on every replica yet.
        await delay(READ_RETRY_PAUSE_MS, { signal });
      }
    }
    // Synchronously: no append comes between the last read and these.
    for (let i = this.#head; i < this.#pending.length; i++) {
      this.#hash.update(this.#pending[i]);
    }
    this.#pending = [];
    this.#head = 0;
    this.#pendingBytes = 0;
    this.#caughtUp = true;
  }

  /** Hashes stored bytes from `#hashed` to `#fromStore` (which may grow). */
  async #readBack(): Promise<void> {
    const signal = this.#released.signal;
    while (this.#hashed < this.#fromStore) {
      const end = this.#fromStore;
      for await (const bytes of this.#read(this.#hashed, end, signal)) {
        signal.throwIfAborted();
        this.#hash.update(bytes);
        this.#hashed += bytes.byteLength;
      }
    }
  }

  async digest(): Promise<string> {
    await this.#done;
    return this.#hash.digest("hex");
  }

  release(): void {
    this.#released.abort(new Error("the upload ended before its hash did"));
    this.#pending = [];
    this.#head = 0;
    this.#pendingBytes = 0;
  }
}
