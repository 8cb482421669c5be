/**
 * A progress line on stderr for long transfers: bytes, rate and, when the
 * total is known, percent and ETA; a last line with the outcome. Shown only
 * where it cannot garble anything: stderr is a terminal, and (for commands
 * that write their data to stdout) stdout is not, as curl does.
 *
 * @module
 */

import { formatBytes } from "../server/viewer/format.js";

// The one byte-count format: the progress line, the transport CLI, the soak
// and the viewer (server and browser) all show sizes with it.
export { formatBytes };

/** Least time between two redraws, in ms. */
const REDRAW_MS = 200;

/**
 * Options of {@linkcode Progress}.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from "./progress.ts";
 * const options: ProgressOptions = { quiet: false, dataOnStdout: true, total: 1 << 20 };
 * ```
 */
export interface ProgressOptions {
  /** `--quiet`: never show it. */
  quiet?: boolean;
  /** The command writes its data to stdout: hide the line when that is the terminal. */
  dataOnStdout?: boolean;
  /** Expected total bytes, if known. */
  total?: number;
  /** Show it or not, whatever the terminals (tests). */
  enabled?: boolean;
}

/**
 * Reports progress of a transfer on stderr, at most every 200 ms.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * const progress = new Progress("upload", { enabled: false });
 * progress.update(1024);
 * progress.done("COMPLETED");
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

  /** Creates a reporter, shown as {@linkcode ProgressOptions} say. */
  constructor(label: string, options: ProgressOptions = {}) {
    this.#label = label;
    this.#enabled = options.enabled ??
      (!options.quiet && Deno.stderr.isTerminal() &&
        !(options.dataOnStdout && Deno.stdout.isTerminal()));
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
    if (this.#enabled && now - this.#lastDraw >= REDRAW_MS) {
      this.#lastDraw = now;
      this.#write(`\r\x1b[K${this.#line(now)}`);
    }
  }

  #line(now: number): string {
    const seconds = Math.max((now - this.#started) / 1000, 0.001);
    const rate = this.#bytes / seconds;
    let line = `${this.#label}: ${formatBytes(this.#bytes)}`;
    if (this.#total !== undefined && this.#total > 0) {
      const percent = Math.min(100, (this.#bytes / this.#total) * 100);
      const eta = rate > 0
        ? Math.max(0, (this.#total - this.#bytes) / rate)
        : Infinity;
      line += ` of ${formatBytes(this.#total)} (${percent.toFixed(0)}%)`;
      if (this.#bytes < this.#total) {
        line += `, ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)} s` : "?"}`;
      }
    }
    return `${line}, ${formatBytes(rate)}/s`;
  }

  /** Draws the last line, with `outcome` (e.g. `COMPLETED`) and the time taken. */
  done(outcome?: string): void {
    if (!this.#enabled) return;
    const now = performance.now();
    const seconds = ((now - this.#started) / 1000).toFixed(1);
    const ending = outcome === undefined ? "" : `: ${outcome}`;
    this.#write(`\r\x1b[K${this.#line(now)} in ${seconds} s${ending}\n`);
  }

  #write(text: string): void {
    Deno.stderr.writeSync(this.#encoder.encode(text));
  }
}
