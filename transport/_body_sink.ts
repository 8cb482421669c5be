/**
 * The receiver's side of one object body: a byte `ReadableStream` the
 * handler reads. Bytes move only when the handler asks (high-water mark 0),
 * so the receive loop can read the request body straight into the buffer of
 * the handler's pending read (its own, with a BYOB reader, or one the stream
 * allocates for a default reader): no copy and no extra allocation. Bytes
 * the loop already holds are copied in. Once the handler settles without
 * reading to the end, further bytes are dropped (drained).
 *
 * @module
 */

/** Buffer size a default reader's read gets (the request body's read size). */
const AUTO_ALLOCATE = 64 * 1024;
/**
 * Bytes queued for the handler before the receive loop waits for it: small
 * objects go through without a wait each (a thousand 1 KiB bodies would
 * otherwise cost a thousand round trips through the event loop).
 */
const QUEUE_LIMIT = 1024 * 1024;

/** Feeds one object's body to its handler. */
export class BodySink {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableByteStreamController;
  #wake: (() => void) | null = null;
  #open = true;

  /**
   * `size`: the body's length if known (a default read needs no more), else
   * -1. `whole`: all of the body, already here (the caller reuses it): the
   * stream starts with a copy queued and closed, and nothing more is fed.
   */
  constructor(size: number, whole?: Uint8Array) {
    this.stream = new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: size > 0 && size < AUTO_ALLOCATE
        ? size
        : AUTO_ALLOCATE,
      start: (controller) => {
        this.#controller = controller;
        if (whole !== undefined) {
          controller.enqueue(whole.slice());
          controller.close();
          this.#open = false;
        }
      },
      pull: () => this.#wakeUp(),
      cancel: () => {
        this.#open = false;
        this.#wakeUp();
      },
    }, { highWaterMark: 0 });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Whether bytes still go to the handler (not drained, closed or failed). */
  get open(): boolean {
    return this.#open;
  }

  /**
   * Waits until the handler reads (or cancels), unless `settled` resolves
   * first (the handler returned: drain from then on).
   */
  async wanted(settled: Promise<unknown>): Promise<void> {
    if (!this.#open || this.#controller.byobRequest !== null) return;
    await Promise.race([
      new Promise<void>((resolve) => this.#wake = resolve),
      settled,
    ]);
    this.#wake = null;
  }

  /** The free part of the handler's pending read buffer, or `null`. */
  target(): Uint8Array | null {
    if (!this.#open) return null;
    const view = this.#controller.byobRequest?.view;
    return view
      ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
      : null;
  }

  /**
   * Completes the pending read with `filled`: bytes read into (the moved
   * buffer of) {@linkcode target}, at its offset. Dropped if the handler
   * cancelled meanwhile.
   */
  filled(filled: Uint8Array): void {
    const request = this.#controller.byobRequest;
    if (this.#open && request !== null) {
      request.respondWithNewView(filled);
    }
  }

  /**
   * Hands `bytes` (which the caller reuses) to the handler: copies them into
   * its pending read, or queues a copy; waits first while over 1 MiB is
   * queued.
   */
  async write(bytes: Uint8Array, settled: Promise<unknown>): Promise<void> {
    if (!this.#open) return;
    const queued = -(this.#controller.desiredSize ?? 0);
    if (queued + bytes.byteLength > QUEUE_LIMIT) {
      await this.wanted(settled);
      if (!this.#open) return;
    }
    const target = this.target();
    if (target !== null && target.byteLength >= bytes.byteLength) {
      target.set(bytes);
      this.#controller.byobRequest!.respond(bytes.byteLength);
    } else {
      this.#controller.enqueue(bytes.slice());
    }
  }

  /** Stops feeding: everything after this is drained. */
  drain(): void {
    this.#open = false;
  }

  /** Ends the body normally. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    try {
      this.#controller.close();
    } catch (error) {
      // A read into a multi-byte view (a Uint16Array, say) holds half an
      // element: the stream errored itself, and the handler's read rejects
      // with this TypeError. The request goes on.
      if (!(error instanceof TypeError)) throw error;
      return;
    }
    // A BYOB reader's pending read ends only with an empty respond.
    this.#controller.byobRequest?.respond(0);
  }

  /** Ends the body with `error`. */
  error(error: unknown): void {
    if (!this.#open) return;
    this.#open = false;
    this.#controller.error(error);
  }
}
