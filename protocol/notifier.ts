/**
 * A wake-up for code that waits on a condition: waiters call
 * {@linkcode Notifier.wait} in a loop that checks the condition, and
 * whatever changes it calls {@linkcode Notifier.notify}. Every waiter
 * present wakes; a notify with nobody waiting is a no-op (the condition is
 * checked again before the next wait, so nothing is missed).
 *
 * @module
 */

/**
 * Wakes every current waiter at once.
 *
 * @example
 * ```ts
 * import { Notifier } from "./notifier.ts";
 * const changed = new Notifier();
 * let ready = false;
 * setTimeout(() => { ready = true; changed.notify(); }, 1);
 * while (!ready) await changed.wait();
 * console.log(ready); // true
 * ```
 */
export class Notifier {
  #waiters: (() => void)[] = [];

  /** Resolves at the next {@linkcode Notifier.notify}. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes everyone waiting now. */
  notify(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
