/**
 * A progress line on stderr for long transfers: bytes, rate and, when the
 * total is known, percent and ETA. Silent unless stderr is a terminal.
 *
 * @module
 */

/** Formats a byte count with a binary unit, e.g. `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/**
 * Reports progress of a transfer on stderr, at most every 200 ms.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * const progress = new Progress("upload", { enabled: false });
 * progress.update(1024);
 * progress.done();
 * ```
 */
export class Progress {
  readonly #label: string;
  readonly #enabled: boolean;
  readonly #started = performance.now();
  #lastDraw = 0;
  #bytes = 0;
  #total: number | undefined;
  readonly #encoder = new TextEncoder();

  /** Creates a reporter; `enabled` defaults to whether stderr is a terminal. */
  constructor(
    label: string,
    options: { enabled?: boolean; total?: number } = {},
  ) {
    this.#label = label;
    this.#enabled = options.enabled ?? Deno.stderr.isTerminal();
    this.#total = options.total;
  }

  /** Sets the expected total, once known. */
  set total(total: number | undefined) {
    this.#total = total;
  }

  /** Records `bytes` transferred in all so far. */
  update(bytes: number): void {
    this.#bytes = bytes;
    const now = performance.now();
    if (this.#enabled && now - this.#lastDraw >= 200) {
      this.#lastDraw = now;
      this.#draw(now);
    }
  }

  #draw(now: number): void {
    const seconds = Math.max((now - this.#started) / 1000, 0.001);
    const rate = this.#bytes / seconds;
    let line = `${this.#label}: ${formatBytes(this.#bytes)}`;
    if (this.#total !== undefined && this.#total > 0) {
      const percent = Math.min(100, (this.#bytes / this.#total) * 100);
      const eta = rate > 0
        ? Math.max(0, (this.#total - this.#bytes) / rate)
        : Infinity;
      line += ` of ${formatBytes(this.#total)} (${percent.toFixed(0)}%), ETA ${
        Number.isFinite(eta) ? `${eta.toFixed(0)} s` : "?"
      }`;
    }
    line += `, ${formatBytes(rate)}/s`;
    Deno.stderr.writeSync(this.#encoder.encode(`\r\x1b[K${line}`));
  }

  /** Draws the final line and ends it. */
  done(): void {
    if (!this.#enabled) return;
    this.#draw(performance.now());
    Deno.stderr.writeSync(this.#encoder.encode("\n"));
  }
}
