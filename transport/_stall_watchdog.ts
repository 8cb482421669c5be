/**
 * Notices a request body that stalls: no bytes for `timeoutMs` while the
 * receive loop waits for them. Time the loop spends waiting for its handler
 * does not count. One timer per request, re-armed at most once per timeout.
 *
 * @module
 */

/** Watches the reads of one request body. */
export class StallWatchdog {
  readonly #timeoutMs: number;
  readonly #onStall: (waitedMs: number) => void;
  /** When the pending read started, or -1 while none is pending. */
  #since = -1;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Calls `onStall` once a single read waited `timeoutMs`. */
  constructor(timeoutMs: number, onStall: (waitedMs: number) => void) {
    this.#timeoutMs = timeoutMs;
    this.#onStall = onStall;
  }

  /** A read of the body starts. */
  reading(): void {
    this.#since = performance.now();
    this.#timer ??= setTimeout(() => this.#check(), this.#timeoutMs);
  }

  /** The read ended (the timer stays armed and re-checks when it fires). */
  idle(): void {
    this.#since = -1;
  }

  /** Stops watching. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#since = -1;
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#since < 0) return;
    const waited = performance.now() - this.#since;
    if (waited >= this.#timeoutMs) {
      this.#since = -1;
      this.#onStall(waited);
    } else {
      this.#timer = setTimeout(() => this.#check(), this.#timeoutMs - waited);
    }
  }
}
