/**
 * The receiver's side of one object body: a `ReadableStream` the handler
 * reads, fed with views of the request body. Once the handler settles
 * without reading to the end, further bytes are dropped (drained).
 *
 * @module
 */

const HIGH_WATER_MARK = 1 << 20;

/** Feeds one object's body to its handler. */
export class BodySink {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #wake: (() => void) | null = null;
  #open = true;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#wakeUp(),
      cancel: () => {
        this.#open = false;
        this.#wakeUp();
      },
    }, { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /**
   * Hands `bytes` to the reader; waits while the reader is behind, unless
   * `settled` resolves first (the handler returned: drain from then on).
   */
  async write(bytes: Uint8Array, settled: Promise<unknown>): Promise<void> {
    if (!this.#open) return;
    this.#controller.enqueue(bytes);
    if ((this.#controller.desiredSize ?? 0) > 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.#wake = resolve),
      settled,
    ]);
    this.#wake = null;
  }

  /** Stops feeding: everything after this is drained. */
  drain(): void {
    this.#open = false;
  }

  /** Ends the body normally. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#controller.close();
  }

  /** Ends the body with `error`. */
  error(error: unknown): void {
    if (!this.#open) return;
    this.#open = false;
    this.#controller.error(error);
  }
}
