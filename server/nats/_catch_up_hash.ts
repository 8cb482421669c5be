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
import type { UploadHash } from "../upload_hash.ts";

/** Bytes of appends kept while the hash catches up, at most (beyond, stored ones are read back instead). */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** Reads stored bytes `[start, end)` of the upload back from the engine. */
export type ReadStored = (
  start: number,
  end: number,
) => ReadableStream<Uint8Array>;

/**
 * An {@linkcode UploadHash} whose first `start` bytes are read back with
 * `read`.
 *
 * @example
 * ```ts ignore
 * const hash = new CatchUpHash(written, (s, e) => readRange(engine.jsm, id, s, e));
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
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** Bytes the store holds, as the resource last said. */
  #stored: number;
  #caughtUp = false;
  #released = false;
  readonly #done: Promise<void>;

  /** A hash of an upload whose first `start` bytes are in the store. */
  constructor(start: number, read: ReadStored, limit = MAX_PENDING_BYTES) {
    this.#read = read;
    this.#limit = limit;
    this.#fromStore = start;
    this.#stored = start;
    this.#done = this.#catchUp();
    // Not lost: `digest` rejects with it; a released hash has no reader.
    this.#done.catch(() => {});
  }

  /** Bytes of appends kept, waiting for the reading to catch up. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  update(bytes: Uint8Array): void {
    if (this.#caughtUp) {
      this.#hash.update(bytes);
      return;
    }
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.byteLength;
    this.#letGo();
  }

  stored(bytes: number): void {
    this.#stored = bytes;
    this.#letGo();
  }

  /** Past the bound, the oldest appends the store holds are read back instead. */
  #letGo(): void {
    while (
      this.#pendingBytes > this.#limit && this.#pending.length > 0 &&
      this.#fromStore + this.#pending[0].byteLength <= this.#stored
    ) {
      const oldest = this.#pending.shift()!;
      this.#pendingBytes -= oldest.byteLength;
      this.#fromStore += oldest.byteLength;
    }
  }

  async #catchUp(): Promise<void> {
    for (let at = 0; at < this.#fromStore;) {
      const end = this.#fromStore;
      for await (const bytes of this.#read(at, end)) {
        if (this.#released) throw new Error("the upload ended first");
        this.#hash.update(bytes);
      }
      at = end;
    }
    // Synchronously: no append comes between the last read and these.
    for (const bytes of this.#pending) this.#hash.update(bytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#caughtUp = true;
  }

  async digest(): Promise<string> {
    await this.#done;
    return this.#hash.digest("hex");
  }

  release(): void {
    this.#released = true;
    this.#pending = [];
    this.#pendingBytes = 0;
  }
}
