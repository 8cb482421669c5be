/**
 * Seeded pseudo-random data for the tests, the bench and the soak: the same
 * seed gives the same integers and bytes on every run, so a failure can be
 * replayed from the seed it printed (xorshift32: fast, not for secrets).
 *
 * @module
 */

/**
 * Deterministic pseudo-random integers: `rand(n)` is in `[0, n)`.
 *
 * @example
 * ```ts
 * import { prng } from "./seeded_random.ts";
 * const rand = prng(42);
 * const roll = rand(6); // the same on every run with seed 42
 * console.log(roll >= 0 && roll < 6); // true
 * ```
 */
export function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/**
 * `length` deterministic pseudo-random bytes of `seed` (xorshift32 words).
 *
 * @example
 * ```ts
 * import { randomBytes } from "./seeded_random.ts";
 * const a = randomBytes(1000, 7);
 * const b = randomBytes(1000, 7);
 * console.log(a.length, a.every((byte, i) => byte === b[i])); // 1000 true
 * ```
 */
export function randomBytes(
  length: number,
  seed = 1,
): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  const words = new Uint32Array(bytes.buffer, 0, length >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  for (let i = words.length * 4; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}
