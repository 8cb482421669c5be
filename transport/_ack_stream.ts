/**
 * The streamed answer of a request that asked for confirmations
 * (`Spool-Ack: 1`): `200` with its first line, then one JSON line `{"ack":<seq>}` per
 * batch of objects the handler took whole (cumulative: every object of the
 * request up to `seq`), then the request's final answer as the last line.
 * Acks are written when the receive loop is about to wait for more of the
 * body, or on the next macrotask, whichever comes first: one line per
 * socket read, not per object.
 *
 * The response goes to `Deno.serve` only with its first line: while a
 * streamed response of Deno 2.9 waits for its first chunk, the server reads
 * the request body on its own into a buffer that every later body read
 * shifts down, and a receiver that lags then slows down without end
 * (bench/ANALYSIS.md, "One big object").
 *
 * @module
 */

import { ACK_HEADER } from "./framing.ts";

const encoder = new TextEncoder();

/** The confirmations of one request. */
export class AckStream {
  /** The response to answer with. */
  readonly response: Response;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  /** Sequence number to confirm next, or -1. */
  #pending = -1;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #started = Promise.withResolvers<Response>();
  /** Resolves with {@linkcode response} once its first line is written. */
  readonly started: Promise<Response> = this.#started.promise;

  constructor() {
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        // The sender is gone: its request fails on its own.
        this.#closed = true;
        this.#clearTimer();
      },
    });
    this.response = new Response(body, {
      headers: {
        [ACK_HEADER]: "1",
        "Content-Type": "application/x-ndjson",
      },
    });
  }

  /** Object `seq` (its wire number) was taken whole. */
  note(seq: number): void {
    this.#pending = seq;
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, 0);
  }

  /** Writes the pending confirmation, if any. */
  flush(): void {
    if (this.#pending < 0) return;
    this.#write({ ack: this.#pending });
    this.#pending = -1;
  }

  /** Writes the pending confirmation and `answer`, and ends the stream. */
  end(answer: Record<string, unknown>): void {
    this.flush();
    this.#clearTimer();
    this.#write(answer);
    if (!this.#closed) {
      this.#closed = true;
      this.#controller.close();
    }
  }

  #write(line: Record<string, unknown>): void {
    if (this.#closed) return;
    this.#controller.enqueue(encoder.encode(JSON.stringify(line) + "\n"));
    this.#started.resolve(this.response);
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
