/**
 * Write → follower latency across processes for the fan-out benchmarks:
 * the producer starts every write with the wall-clock time it was written
 * (a little-endian float64 of {@linkcode wallClockMs}); a follower that knows
 * the write size finds each write's end in its byte stream, however it is
 * chunked, and takes the time then minus the stamp. Producer and followers
 * run on one machine, so they read one clock.
 *
 * @module
 */

/** Bytes of the stamp at the start of every write. */
export const STAMP_BYTES = 8;

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable
 * between processes on one machine.
 *
 * @example
 * ```ts ignore
 * const sentAt = wallClockMs();
 * ```
 */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A new write of `size` bytes (at least {@linkcode STAMP_BYTES}) stamped
 * with the time now; the rest is a pattern.
 *
 * @example
 * ```ts ignore
 * await upload.write(stampedWrite(50_000));
 * ```
 */
export function stampedWrite(size: number): Uint8Array<ArrayBuffer> {
  if (size < STAMP_BYTES) {
    throw new RangeError(
      `stampedWrite: ${size}-byte writes cannot hold a ${STAMP_BYTES}-byte stamp`,
    );
  }
  const bytes = new Uint8Array(size);
  for (let i = STAMP_BYTES; i < size; i++) bytes[i] = (i * 131 + 7) & 0xff;
  new DataView(bytes.buffer).setFloat64(0, wallClockMs(), true);
  return bytes;
}

/**
 * One follower's view of a stream of stamped `writeSize`-byte writes:
 * feed it what arrives, in order, and it collects one latency per write.
 *
 * @example
 * ```ts ignore
 * const latencies = new WriteLatencies(50_000);
 * for await (const chunk of download.follow()) latencies.add(chunk);
 * console.log(latencies.values.length, latencies.bytes);
 * ```
 */
export class WriteLatencies {
  /** Milliseconds from each write to its last byte's arrival, in order. */
  readonly values: number[] = [];
  /** Bytes seen so far. */
  bytes = 0;
  readonly #writeSize: number;
  readonly #stamp = new Uint8Array(STAMP_BYTES);
  readonly #view = new DataView(this.#stamp.buffer);

  /** Follows writes of `writeSize` bytes each. */
  constructor(writeSize: number) {
    this.#writeSize = writeSize;
  }

  /** Takes `chunk`, which arrived now after every byte given before. */
  add(chunk: Uint8Array): void {
    const now = wallClockMs();
    let at = 0;
    while (at < chunk.byteLength) {
      const inWrite = this.bytes % this.#writeSize;
      if (inWrite < STAMP_BYTES) {
        const n = Math.min(STAMP_BYTES - inWrite, chunk.byteLength - at);
        this.#stamp.set(chunk.subarray(at, at + n), inWrite);
      }
      const n = Math.min(this.#writeSize - inWrite, chunk.byteLength - at);
      at += n;
      this.bytes += n;
      if (this.bytes % this.#writeSize === 0) {
        this.values.push(now - this.#view.getFloat64(0, true));
      }
    }
  }
}

/** p50, p99 and max of many followers' latencies, in ms. */
export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
  /** How many latencies (writes × followers). */
  samples: number;
}

/**
 * The percentiles of every latency of `followers` together.
 *
 * @example
 * ```ts ignore
 * const { p99 } = summarize([a.values, b.values]);
 * ```
 */
export function summarize(followers: number[][]): LatencySummary {
  const all = Float64Array.from(followers.flat()).sort();
  const at = (p: number) =>
    all.length === 0
      ? NaN
      : all[Math.min(all.length - 1, Math.floor((p / 100) * all.length))];
  return {
    p50: at(50),
    p99: at(99),
    max: all.length === 0 ? NaN : all[all.length - 1],
    samples: all.length,
  };
}
