/**
 * Opens an object body inside the worker as a pull-based chunk source:
 * packed or transferred bytes, a transferred stream, or a file the worker
 * opens itself.
 *
 * @module
 */

import { TransportError } from "../transport/errors.ts";
import type { WireBody } from "../transport/internal/messages.ts";

/**
 * Bytes per file read. The next read runs while the send loop writes the
 * last one to the socket.
 */
const FILE_CHUNK = 1024 * 1024;
/** Read buffers a file source keeps for reuse. */
const SPARE_BUFFERS = 2;

/** A body being read. */
export interface BodySource {
  /** The next chunk, or `null` at the end (the source is then closed). */
  read(): Promise<Uint8Array | null>;
  /** Cancels or closes the body; safe to call more than once. */
  cancel(reason: unknown): Promise<void>;
  /**
   * Hands back a chunk {@linkcode read} returned that is no longer used
   * (the socket copied it), so its buffer can take a later read. Optional:
   * only sources that allocate their chunks keep it.
   */
  recycle?(chunk: Uint8Array): void;
}

class BytesSource implements BodySource {
  #bytes: Uint8Array | null;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  read(): Promise<Uint8Array | null> {
    const bytes = this.#bytes;
    this.#bytes = null;
    return Promise.resolve(bytes);
  }
  cancel(): Promise<void> {
    this.#bytes = null;
    return Promise.resolve();
  }
}

class StreamSource implements BodySource {
  #reader: ReadableStreamDefaultReader<Uint8Array> | null;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }
  async read(): Promise<Uint8Array | null> {
    const reader = this.#reader;
    if (reader === null) return null;
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (error) {
      this.#reader = null;
      throw new TransportError(
        "body-failed",
        `reading the object's body stream failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    if (result.done) {
      this.#reader = null;
      reader.releaseLock();
      return null;
    }
    if (!(result.value instanceof Uint8Array)) {
      const error = new TransportError(
        "body-failed",
        `the object's body stream yielded ${typeof result
          .value}, expected Uint8Array chunks`,
      );
      await this.cancel(error);
      throw error;
    }
    return result.value;
  }
  async cancel(reason: unknown): Promise<void> {
    const reader = this.#reader;
    this.#reader = null;
    await reader?.cancel(reason);
  }
}

class FileSource implements BodySource {
  #file: Deno.FsFile | null;
  #left: number;
  /**
   * Buffers of written chunks, for the next reads: a fresh 1 MiB buffer per
   * read costs its zeroing and page faults, ~10 % of sending a file.
   */
  #spare: ArrayBuffer[] = [];
  /** The read after the one handed out last, already running. */
  #next: Promise<Uint8Array | null> | null = null;
  constructor(file: Deno.FsFile, limit: number) {
    this.#file = file;
    this.#left = limit;
  }
  async read(): Promise<Uint8Array | null> {
    const chunk = await (this.#next ?? this.#read());
    this.#next = chunk === null ? null : this.#read();
    this.#next?.catch(() => {
      // Seen by the next read(), which awaits it; this only keeps a failure
      // before then from counting as an unhandled rejection.
    });
    return chunk;
  }
  async #read(): Promise<Uint8Array | null> {
    const file = this.#file;
    if (file === null) return null;
    // One byte more than the declared size shows a file that grew.
    const want = Math.min(FILE_CHUNK, this.#left + 1);
    const spare = this.#spare.pop();
    const buffer = spare === undefined
      ? new Uint8Array(want)
      : new Uint8Array(spare, 0, want);
    let n: number | null;
    try {
      n = await file.read(buffer);
    } catch (error) {
      this.#close();
      throw new TransportError(
        "body-failed",
        `reading the object's file failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (n === null) {
      this.#close();
      return null;
    }
    this.#left -= n;
    return buffer.subarray(0, n);
  }
  recycle(chunk: Uint8Array): void {
    const buffer = chunk.buffer;
    // Only whole read buffers of full size, and two at most: one read runs
    // ahead while one chunk is written.
    if (
      buffer instanceof ArrayBuffer && buffer.byteLength === FILE_CHUNK &&
      this.#spare.length < SPARE_BUFFERS
    ) this.#spare.push(buffer);
  }
  #close(): void {
    this.#file?.close();
    this.#file = null;
    this.#spare = [];
  }
  async cancel(): Promise<void> {
    const next = this.#next;
    this.#next = null;
    await next?.catch(() => {
      // A read still running ends before the file closes; its failure does
      // not matter to a body being cancelled.
    });
    this.#close();
  }
}

/**
 * Opens `body`. File bodies are opened and their size checked against
 * `size` here, before any byte of the object is sent.
 */
export async function openBody(
  body: Exclude<WireBody, null>,
  packed: Uint8Array,
  size: number,
  ring: SharedArrayBuffer | null,
): Promise<BodySource> {
  switch (body.k) {
    case "ring":
      return new BytesSource(new Uint8Array(ring!, body.off, body.len));
    case "packed":
      return new BytesSource(packed.subarray(body.off, body.off + body.len));
    case "buffer":
    case "shared":
      return new BytesSource(body.bytes);
    case "stream":
      return new StreamSource(body.stream);
    case "file": {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(body.path, { read: true });
      } catch (error) {
        throw new TransportError(
          "body-failed",
          `opening file ${JSON.stringify(body.path)} failed: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
      if (size >= 0) {
        const { size: actual } = await file.stat();
        if (actual !== size) {
          file.close();
          throw new TransportError(
            "obj-size-mismatch",
            `file ${
              JSON.stringify(body.path)
            } has ${actual} bytes, the header says ${size}`,
          );
        }
      }
      return new FileSource(file, size >= 0 ? size : Number.MAX_SAFE_INTEGER);
    }
  }
}

/** Cancels a body that will never be sent (stream cancelled, file untouched). */
export async function discardBody(
  body: WireBody,
  reason: unknown,
): Promise<void> {
  if (body?.k === "stream") await body.stream.cancel(reason);
}
