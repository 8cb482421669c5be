/**
 * The in-memory tail of a resource another node holds: the pieces this
 * node's data subscription received, placed by their offset header, so
 * that its followers take the bytes of each checkpoint from memory instead
 * of each reading them from the engine. Pieces may come out of offset
 * order, twice, or overlapping (a pipelined writer's retry, a leader
 * change, a node that lost the upload): the tail keeps each byte once, as
 * disjoint chunks sorted by offset. A byte it does not hold (a piece missed
 * while the engine was away, or dropped by the bound) is read from the
 * engine instead ({@linkcode readThroughTail}).
 *
 * @module
 */

/** Bytes `[offset, offset + bytes.byteLength)` of the resource. */
interface Chunk {
  offset: number;
  bytes: Uint8Array;
}

function endOf(chunk: Chunk): number {
  return chunk.offset + chunk.bytes.byteLength;
}

/**
 * Bytes one resource's tail keeps at most: a checkpoint interval of a fast
 * upload (64 MiB in 250 ms was measured), so that followers still reading
 * one checkpoint's bytes when the next comes find them here. A node's local
 * tail can be small (its store reads are cheap), a remote one cannot: each
 * byte it lacks costs every follower a direct get.
 */
export const TAIL_BYTES = 64 * 1024 * 1024;
/** Bytes all the remote tails of one node keep at most, together. */
export const NODE_TAIL_BYTES = 256 * 1024 * 1024;

/**
 * The bytes every remote tail of a node holds, against their bound: a tail
 * adding beyond it drops its own oldest bytes.
 *
 * @example
 * ```ts ignore
 * const budget = new TailBudget(NODE_TAIL_BYTES);
 * const tail = new RemoteTail(budget);
 * ```
 */
export class TailBudget {
  /** Bytes held by every tail. */
  used = 0;
  /** The most they may hold. */
  readonly limit: number;

  /** A budget of `limit` bytes. */
  constructor(limit: number) {
    this.limit = limit;
  }
}

/**
 * Disjoint chunks of a resource, bounded: at most {@linkcode TAIL_BYTES}
 * of it, and no more than its node's {@linkcode TailBudget} allows; the
 * oldest go first.
 */
export class RemoteTail {
  /** Sorted by offset, disjoint. */
  #chunks: Chunk[] = [];
  #held = 0;
  /** Bytes below this are never taken again (dropped, or passed). */
  #floor = 0;
  readonly #budget: TailBudget;
  readonly #limit: number;

  /** An empty tail within `budget`, of at most `limit` bytes. */
  constructor(budget: TailBudget, limit = TAIL_BYTES) {
    this.#budget = budget;
    this.#limit = limit;
  }

  /** Bytes held. */
  get held(): number {
    return this.#held;
  }

  /** Index of the first chunk ending after `position`. */
  #after(position: number): number {
    let low = 0, high = this.#chunks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (endOf(this.#chunks[middle]) <= position) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * Places the piece at `offset`; only the bytes no chunk holds yet are
   * kept (a byte is the same in every piece holding it). Then drops the
   * oldest chunks while the bound is exceeded.
   */
  add(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.byteLength;
    let at = Math.max(offset, this.#floor);
    if (at >= end) return;
    const last = this.#chunks.at(-1);
    if (last === undefined || endOf(last) <= at) {
      this.#chunks.push({ offset: at, bytes: bytes.subarray(at - offset) });
      this.#hold(end - at);
    } else {
      // Out of order or overlapping: fill the holes between held chunks.
      const parts: Chunk[] = [];
      for (let i = this.#after(at); at < end; i++) {
        const next = this.#chunks[i];
        const to = next === undefined ? end : Math.min(end, next.offset);
        if (to > at) {
          parts.push({
            offset: at,
            bytes: bytes.subarray(at - offset, to - offset),
          });
        }
        if (next === undefined) break;
        at = Math.max(at, endOf(next));
      }
      for (const part of parts) {
        this.#chunks.splice(this.#after(part.offset), 0, part);
        this.#hold(part.bytes.byteLength);
      }
    }
    while (
      this.#chunks.length > 0 &&
      (this.#held > this.#limit || this.#budget.used > this.#budget.limit)
    ) this.#dropOldest();
  }

  #hold(bytes: number): void {
    this.#held += bytes;
    this.#budget.used += bytes;
  }

  #dropOldest(): void {
    const oldest = this.#chunks.shift()!;
    this.#hold(-oldest.bytes.byteLength);
    this.#floor = Math.max(this.#floor, endOf(oldest));
  }

  /** Drops every chunk; nothing below `floor` is taken again. */
  clear(floor: number): void {
    this.#chunks = [];
    this.#hold(-this.#held);
    this.#floor = Math.max(this.#floor, floor);
  }

  /**
   * Copies the bytes held from `position` on, as far as they join, into
   * `target`; returns how many (`0` if `position` is not held).
   */
  copy(position: number, target: Uint8Array): number {
    let copied = 0;
    for (
      let i = this.#after(position);
      i < this.#chunks.length && copied < target.byteLength;
      i++
    ) {
      const chunk = this.#chunks[i];
      const at = position + copied;
      if (chunk.offset > at) break;
      const from = at - chunk.offset;
      const length = Math.min(
        chunk.bytes.byteLength - from,
        target.byteLength - copied,
      );
      target.set(chunk.bytes.subarray(from, from + length), copied);
      copied += length;
    }
    return copied;
  }

  /** `[start, end)` as views on the chunks, or `undefined` if not all held. */
  views(start: number, end: number): Uint8Array[] | undefined {
    const views: Uint8Array[] = [];
    let at = start;
    for (let i = this.#after(start); at < end; i++) {
      const chunk = this.#chunks[i];
      if (chunk === undefined || chunk.offset > at) return undefined;
      const to = Math.min(end, endOf(chunk));
      views.push(chunk.bytes.subarray(at - chunk.offset, to - chunk.offset));
      at = to;
    }
    return views;
  }

  /** Where the first chunk after `position` starts (`Infinity` if none). */
  nextHeld(position: number): number {
    const chunk = this.#chunks[this.#after(position)];
    return chunk === undefined ? Infinity : Math.max(position, chunk.offset);
  }
}

/**
 * Bytes `[start, end)` as a byte stream: from `tail` where it holds them,
 * from `stored` (the engine) for each run it does not, so that a follower
 * that fell behind the tail (or started before it) reads from the engine
 * only what memory lacks. The caller bounds `end` by the checkpoint.
 *
 * @example
 * ```ts ignore
 * const body = readThroughTail(tail, (s, e) => store.read(id, s, e), 0, size);
 * ```
 */
export function readThroughTail(
  tail: RemoteTail,
  stored: (start: number, end: number) => ReadableStream<Uint8Array>,
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  let position = start;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let pending: Uint8Array = new Uint8Array(0);
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    async pull(controller) {
      const request = controller.byobRequest!;
      if (position >= end) {
        controller.close();
        request.respond(0);
        return;
      }
      const view = (request.view as Uint8Array).subarray(0, end - position);
      let length = 0;
      while (length === 0) {
        if (pending.byteLength > 0) {
          length = Math.min(view.byteLength, pending.byteLength);
          view.set(pending.subarray(0, length));
          pending = pending.subarray(length);
          break;
        }
        if (reader === undefined) {
          length = tail.copy(position, view);
          if (length > 0) break;
          // Not in memory: the engine's bytes up to where the tail holds again.
          const to = Math.min(end, tail.nextHeld(position));
          reader = stored(position, to).getReader();
        }
        const { value, done } = await reader.read();
        // The engine's run ended: the tail's bytes come next.
        if (done) reader = undefined;
        else pending = value;
      }
      position += length;
      request.respond(length);
      if (position >= end) {
        controller.close();
        await reader?.cancel();
      }
    },
    async cancel() {
      await reader?.cancel();
    },
  });
}
