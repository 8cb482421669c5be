/**
 * Plain HTTP responses being sent, so that shutdown can let them finish
 * (within its grace) before it cuts what is left.
 *
 * @module
 */

/** The responses in flight of one server. */
export class InFlight {
  #count = 0;
  #idle: (() => void)[] = [];

  /** Counts a response until `completed` settles (sent, or failed to send). */
  track(completed: Promise<void>): void {
    this.#count++;
    const done = () => {
      this.#count--;
      if (this.#count === 0) {
        for (const wake of this.#idle.splice(0)) wake();
      }
    };
    completed.then(done, done);
  }

  /** Resolves once no response is in flight. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** Waits for `work` until `deadline` (a `performance.now()` time) at most. */
export async function within(
  deadline: number,
  work: Promise<unknown>,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) =>
    timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))
  );
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
