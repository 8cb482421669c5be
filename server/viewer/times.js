// @ts-check
/**
 * When lines arrived: the resource's checkpoints (`/checkpoints`, then each
 * status event) as a map from a byte offset to the time its checkpoint
 * made it readable. A line arrived with the first checkpoint that covers its
 * end. No DOM here.
 *
 * @module
 */

/**
 * Checkpoint times, sorted by size.
 *
 * @example
 * ```ts
 * import { CheckpointTimes } from "./times.js";
 * const times = new CheckpointTimes();
 * times.add(100, 5000);
 * times.add(250, 7000);
 * console.log(times.timeOf(100), times.timeOf(101), times.timeOf(300)); // 5000 7000 undefined
 * ```
 */
export class CheckpointTimes {
  constructor() {
    /** @type {number[]} */
    this.sizes = [];
    /** @type {number[]} */
    this.times = [];
    /** Bytes before this offset have no time. */
    this.from = 0;
  }

  /**
   * Takes what `/checkpoints` answered (merged with those known).
   *
   * @param {{ from: number, checkpoints: { size: number, time: string }[] }} log
   */
  load(log) {
    this.from = log.from;
    for (const { size, time } of log.checkpoints) {
      this.add(size, Date.parse(time));
    }
  }

  /**
   * Records that bytes up to `size` were readable at `time` (ms).
   *
   * @param {number} size
   * @param {number} time
   */
  add(size, time) {
    if (!Number.isFinite(time)) return;
    const at = this.#firstCovering(size);
    if (this.sizes[at] === size) return;
    this.sizes.splice(at, 0, size);
    this.times.splice(at, 0, time);
  }

  /**
   * The time the byte before `end` became readable (ms), if known.
   *
   * @param {number} end
   * @returns {number | undefined}
   */
  timeOf(end) {
    if (end <= this.from) return undefined;
    const at = this.#firstCovering(end);
    return at < this.sizes.length ? this.times[at] : undefined;
  }

  /** @param {number} size @returns {number} The first entry with size >= `size`. */
  #firstCovering(size) {
    let low = 0;
    let high = this.sizes.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.sizes[middle] < size) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
