/**
 * A first-in first-out queue whose `shift` is O(1): the queues of the
 * object transport (the `Stream`'s completion queue, the worker's send
 * queue, a bundle's pending completions) hold thousands of entries, and
 * `Array.prototype.shift` moves all of them on every call.
 *
 * Internal (see `./README.md`).
 *
 * @module
 */

/**
 * Shifted-out slots kept before the array is compacted; compaction also
 * waits until more than half of the array is shifted out.
 */
const COMPACT_AFTER = 4096;

/**
 * A first-in first-out queue of objects.
 *
 * @example
 * ```ts
 * import { Fifo } from "./fifo.ts";
 * const queue = new Fifo<{ seq: number }>();
 * queue.push({ seq: 0 });
 * queue.push({ seq: 1 });
 * console.log(queue.shift()?.seq, queue.peek()?.seq, queue.length); // 0 1 1
 * ```
 */
export class Fifo<T extends object> {
  /** Slots before `#head` were shifted out (and cleared). */
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items in the queue. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds `item` at the end. */
  push(item: T): void {
    this.#items.push(item);
  }

  /** The first item, or `undefined` if the queue is empty. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  /** Removes and returns the first item, or `undefined` if empty. */
  shift(): T | undefined {
    const items = this.#items;
    if (this.#head === items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head > COMPACT_AFTER && this.#head * 2 > items.length) {
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes every item; returns them in order. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) {
      out.push(item);
    }
    return out;
  }
}
