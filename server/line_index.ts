/**
 * Line indexes of resources: where lines start, for reads by line number,
 * tails and line-aligned follows.
 *
 * A line ends with `\n` (so a CRLF line keeps its `\r`; a lone `\r` ends
 * nothing). The index is sparse: it counts every line but keeps the start
 * offset of one line in `stride` (64 to begin with) and, past
 * {@linkcode LineIndexOptions.maxMarks} marks, doubles the stride and drops
 * every other mark, so its memory is bounded however long the log grows
 * (16 384 marks, 128 KiB, by default). A lookup between marks scans at most
 * one stride of lines.
 *
 * The index only ever covers checkpointed bytes: it is extended to a
 * checkpointed size when a line reader asks (the first request on a resource
 * builds it, later ones extend it to the latest checkpoint), from the
 * resource's in-memory tail when it still holds the bytes and from the store
 * otherwise. Nothing is persisted: a finished resource loaded after a restart
 * is indexed on its first line request. Resources nobody reads by line cost
 * nothing, and the upload path never scans a byte.
 *
 * @module
 */

import { logReleaseFailure } from "./_release.ts";
import type { ResourceStatus } from "../protocol/status.ts";

/** Where an index reads checkpointed bytes from (a {@linkcode Resource}). */
export interface ByteSource {
  /** Reads bytes `[start, end)` (all checkpointed). */
  read(start: number, end: number): ReadableStream<Uint8Array>;
  /** The bytes `[start, end)` from memory, or `undefined` if not all held. */
  recent(start: number, end: number): Uint8Array[] | undefined;
}

/** Options of {@linkcode LineIndex}. */
export interface LineIndexOptions {
  /** Lines between two marks to begin with (a power of two). Default 64. */
  stride?: number;
  /** Marks kept at most before the stride doubles. Default 16 384. */
  maxMarks?: number;
}

const NEWLINE = 0x0a;

/**
 * A growing, sparse line index over the bytes of one resource.
 *
 * @example
 * ```ts ignore
 * const index = new LineIndex(resource);
 * await index.extendTo(resource.status.size);
 * const third = await index.lineStart(2, index.lastLineStart);
 * ```
 */
export class LineIndex {
  readonly #source: ByteSource;
  readonly #maxMarks: number;
  #stride: number;
  /** `#marks[k]` is the start offset of line `k * #stride`. */
  #marks: number[] = [0];
  #scanned = 0;
  #lines = 0;
  #lastLineStart = 0;
  /** Serialises extensions: bytes are scanned once, in order. */
  #extending: Promise<void> = Promise.resolve();

  /** An empty index over `source`. */
  constructor(source: ByteSource, options: LineIndexOptions = {}) {
    this.#source = source;
    this.#stride = options.stride ?? 64;
    this.#maxMarks = options.maxMarks ?? 16_384;
    if (!Number.isInteger(this.#stride) || this.#stride < 1) {
      throw new RangeError(
        `stride is ${this.#stride}; expected an integer >= 1`,
      );
    }
    if (!Number.isInteger(this.#maxMarks) || this.#maxMarks < 2) {
      throw new RangeError(
        `maxMarks is ${this.#maxMarks}; expected an integer >= 2`,
      );
    }
  }

  /** Bytes indexed so far: a checkpointed size. */
  get scanned(): number {
    return this.#scanned;
  }

  /** Complete lines (newlines) in `[0, scanned)`. */
  get lines(): number {
    return this.#lines;
  }

  /** Offset just past the last newline in `[0, scanned)` (0 if none). */
  get lastLineStart(): number {
    return this.#lastLineStart;
  }

  /** Lines between two marks now. */
  get stride(): number {
    return this.#stride;
  }

  /** Marks held now (bounded by `maxMarks`). */
  get markCount(): number {
    return this.#marks.length;
  }

  /**
   * Indexes bytes up to `size`, which must be checkpointed (readable).
   * Concurrent calls share the work. `signal` (server shutdown) stops the
   * scan between chunks; what was scanned stays indexed.
   */
  extendTo(size: number, signal?: AbortSignal): Promise<void> {
    if (size <= this.#scanned) return Promise.resolve();
    const run = this.#extending.then(() => this.#scan(size, signal));
    // A failed scan must not poison later ones: they retry from #scanned.
    this.#extending = run.catch(() => {});
    return run;
  }

  async #scan(size: number, signal?: AbortSignal): Promise<void> {
    while (this.#scanned < size) {
      signal?.throwIfAborted();
      const recent = this.#source.recent(this.#scanned, size);
      if (recent) {
        for (const piece of recent) this.#feed(piece);
        continue;
      }
      const reader = this.#source.read(this.#scanned, size).getReader();
      try {
        while (this.#scanned < size) {
          const { value, done } = await reader.read();
          if (done) {
            throw new Error(
              `the store ended at byte ${this.#scanned} while indexing lines; expected bytes up to ${size}`,
            );
          }
          this.#feed(value);
          signal?.throwIfAborted();
        }
      } finally {
        await reader.cancel().catch(logReleaseFailure);
      }
    }
  }

  #feed(chunk: Uint8Array): void {
    const offset = this.#scanned;
    for (
      let at = chunk.indexOf(NEWLINE);
      at !== -1;
      at = chunk.indexOf(NEWLINE, at + 1)
    ) {
      this.#lines++;
      this.#lastLineStart = offset + at + 1;
      if (this.#lines % this.#stride === 0) {
        this.#marks.push(this.#lastLineStart);
        if (this.#marks.length > this.#maxMarks) this.#thin();
      }
    }
    this.#scanned = offset + chunk.byteLength;
  }

  /** Doubles the stride, keeping the marks of lines that stay multiples of it. */
  #thin(): void {
    this.#stride *= 2;
    this.#marks = this.#marks.filter((_, k) => k % 2 === 0);
  }

  /**
   * The start offset of line `line` (0-based), for `line <= lines`; `limit`
   * is an offset the scan may read to (at least the start of that line,
   * e.g. {@linkcode LineIndex.lastLineStart}).
   */
  async lineStart(line: number, limit: number): Promise<number> {
    if (!Number.isInteger(line) || line < 0 || line > this.#lines) {
      throw new RangeError(
        `line ${line} is not indexed; expected 0 <= line <= ${this.#lines}`,
      );
    }
    if (line === 0) return 0;
    if (line === this.#lines) return this.#lastLineStart;
    const k = Math.floor(line / this.#stride);
    const base = this.#marks[k];
    let skip = line - k * this.#stride;
    if (skip === 0) return base;
    const found = await this.#scanFrom(base, limit, (piece, offset) => {
      for (
        let at = piece.indexOf(NEWLINE);
        at !== -1;
        at = piece.indexOf(NEWLINE, at + 1)
      ) {
        if (--skip === 0) return offset + at + 1;
      }
      return -1;
    });
    if (found !== -1) return found;
    throw new Error(
      `line ${line} does not start before byte ${limit}; the line index is inconsistent`,
    );
  }

  /**
   * The newlines in `[0, offset)`, for `offset <= scanned`: from the last
   * mark at or before `offset`, scanning at most one stride of lines.
   */
  async newlinesBefore(offset: number): Promise<number> {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.#scanned) {
      throw new RangeError(
        `byte ${offset} is not indexed; expected 0 <= offset <= ${this.#scanned}`,
      );
    }
    if (offset === this.#scanned) return this.#lines;
    // Read both before awaiting: a concurrent extension may thin the marks.
    const marks = this.#marks;
    const stride = this.#stride;
    let low = 0;
    let high = marks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (marks[middle] <= offset) low = middle;
      else high = middle - 1;
    }
    let count = low * stride;
    await this.#scanFrom(marks[low], offset, (piece) => {
      for (
        let at = piece.indexOf(NEWLINE);
        at !== -1;
        at = piece.indexOf(NEWLINE, at + 1)
      ) count++;
      return -1;
    });
    return count;
  }

  /**
   * Gives `visit` the checkpointed bytes `[base, limit)` piece by piece (from
   * memory when held, else from the store) until it returns an offset other
   * than -1, which this returns; -1 when it never did.
   */
  async #scanFrom(
    base: number,
    limit: number,
    visit: (piece: Uint8Array, offset: number) => number,
  ): Promise<number> {
    let offset = base;
    if (base >= limit) return -1;
    const recent = this.#source.recent(base, limit);
    if (recent) {
      for (const piece of recent) {
        const found = visit(piece, offset);
        if (found !== -1) return found;
        offset += piece.byteLength;
      }
      return -1;
    }
    const reader = this.#source.read(base, limit).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return -1;
        const found = visit(value, offset);
        if (found !== -1) return found;
        offset += value.byteLength;
      }
    } finally {
      await reader.cancel().catch(logReleaseFailure);
    }
  }
}

/** What a line reader sees of a resource at one checkpoint. */
export interface LineView {
  /** The status the view belongs to. */
  status: ResourceStatus;
  /** Lines ending in a newline within the checkpoint. */
  complete: number;
  /** Offset just past the last newline within the checkpoint. */
  completeEnd: number;
  /**
   * Lines a reader may get: `complete`, plus a final unterminated line once
   * the resource is `COMPLETED`.
   */
  total: number;
  /** Offset where line `total` would start: the end of the readable lines. */
  end: number;
}

const indexes = new WeakMap<object, LineIndex>();

/** The line index of a resource, made (empty) on first use. */
export function lineIndexOf(resource: ByteSource): LineIndex {
  let index = indexes.get(resource);
  if (index === undefined) {
    index = new LineIndex(resource);
    indexes.set(resource, index);
  }
  return index;
}

/**
 * Extends the index of `resource` to its latest checkpoint and describes its
 * lines there. `signal` (server shutdown) stops a long scan.
 */
export async function lineView(
  resource: ByteSource & { readonly status: ResourceStatus },
  signal?: AbortSignal,
): Promise<LineView> {
  const index = lineIndexOf(resource);
  // Checkpoints may land while the index catches up: go again until the
  // index and the status agree (a few rounds at most in practice).
  for (let round = 0; round < 16; round++) {
    const status = resource.status;
    if (index.scanned >= status.size) break;
    await index.extendTo(status.size, signal);
  }
  const status = resource.status;
  const complete = index.lines;
  const completeEnd = index.lastLineStart;
  const partial = status.status === "COMPLETED" &&
    index.scanned === status.size && completeEnd < status.size;
  return {
    status,
    complete,
    completeEnd,
    total: complete + (partial ? 1 : 0),
    end: partial ? status.size : completeEnd,
  };
}

/**
 * The start offset of line `line` in `view`, for `line <= view.total`
 * (`view.end` for `line === view.total`).
 */
export function lineOffset(
  resource: ByteSource,
  view: LineView,
  line: number,
): Promise<number> {
  if (line >= view.total) return Promise.resolve(view.end);
  if (line === view.complete) return Promise.resolve(view.completeEnd);
  return lineIndexOf(resource).lineStart(line, view.completeEnd);
}

/**
 * The number of the first line in `view` that starts at or after byte
 * `offset` (`offset <= view.end`): how many lines start before it. A line
 * starts at 0 and after every newline.
 */
export async function lineAtOffset(
  resource: ByteSource,
  view: LineView,
  offset: number,
): Promise<number> {
  if (offset === 0) return 0;
  // Newlines at or past `view.completeEnd` are not in the view.
  if (offset > view.completeEnd) return view.total;
  return 1 + await lineIndexOf(resource).newlinesBefore(offset - 1);
}
