/**
 * A request body as the receive loop reads it. A byte stream (an
 * uncompressed `Deno.serve` body) is read into one reused buffer, or straight
 * into a handler's buffer; a fresh 64 KiB buffer per read costs more than the
 * parsing (see bench/ANALYSIS.md). Other streams (decompressed bodies) are
 * read chunk by chunk.
 *
 * @module
 */

/**
 * Size of every read of the body: the reused buffer's, and what one socket
 * read returns here. Keep all reads of one body this size (see
 * `DIRECT_READ` in _rx_loop.ts).
 */
export const READ_SIZE = 64 * 1024;

/** Reads one request body. */
export class RequestBody {
  #byob: ReadableStreamBYOBReader | null = null;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #buffer = new Uint8Array(READ_SIZE);

  constructor(body: ReadableStream<Uint8Array>) {
    try {
      this.#byob = body.getReader({ mode: "byob" });
    } catch (error) {
      // Not a byte stream (a decompressed body): read its own chunks.
      if (!(error instanceof TypeError)) throw error;
      this.#reader = body.getReader();
    }
  }

  /** Whether {@linkcode readInto} is available. */
  get direct(): boolean {
    return this.#byob !== null;
  }

  /**
   * The next bytes, or `null` at the end. The view is only valid until the
   * next read: its buffer is reused.
   */
  async read(): Promise<Uint8Array | null> {
    if (this.#byob === null) {
      const { value, done } = await this.#reader!.read();
      return done ? null : value;
    }
    const { value, done } = await this.#byob.read(this.#buffer);
    if (value !== undefined) this.#buffer = new Uint8Array(value.buffer);
    return done ? null : value;
  }

  /**
   * Reads into `target` (its buffer moves, so use the result: a view of the
   * moved buffer at `target`'s offset), or `null` at the end.
   */
  async readInto(target: Uint8Array): Promise<Uint8Array | null> {
    const { value, done } = await this.#byob!.read(target);
    return done ? null : value!;
  }

  /** Cancels the body. */
  cancel(reason: unknown): Promise<void> {
    return (this.#byob ?? this.#reader!).cancel(reason);
  }
}
