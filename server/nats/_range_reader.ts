/**
 * Reading a range of a resource's bytes back from the stream by direct get:
 * segment by segment, piece by piece (`next_by_subj` from the last
 * sequence), never creating a consumer. The caller bounds the range by the
 * checkpoint, so every byte asked for is stored. Within a segment, pieces
 * are placed by their offset header, whatever order (and however many
 * times) the stream stored them.
 *
 * @module
 */

import type {
  DirectMsgRequest,
  JetStreamManager,
  StoredMsg,
} from "@nats-io/jetstream";
import { delay } from "@std/async/delay";
import { PUBLISH_DEADLINE_MS } from "./_publish.ts";
import {
  dataSubject,
  OFFSET_HEADER,
  SEGMENT_BYTES,
  STREAM,
} from "./subjects.ts";

/** Bytes handed out per pull when the reader brings no buffer of its own. */
const AUTO_CHUNK_BYTES = 64 * 1024;
/** Segments a range read fetches at once (1 MiB): their direct gets overlap. */
const PREFETCH_SEGMENTS = 4;

/** How long a direct get is retried before the read fails, in ms (as long as a publish is). */
const READ_DEADLINE_MS = PUBLISH_DEADLINE_MS;
/** Pause between attempts (the stream is electing a leader, or its server is away). */
const READ_RETRY_PAUSE_MS = 250;

/**
 * A direct get, retried until {@linkcode READ_DEADLINE_MS} when it fails
 * (times out, or no server answers): a replica dying leaves its interest in
 * the direct-get subject behind for a moment, and the stream's servers may
 * be electing a leader. Reading is idempotent; `null` (no such message) is
 * an answer, not a failure.
 */
async function getReliably(
  jsm: JetStreamManager,
  query: DirectMsgRequest,
  signal?: AbortSignal,
): Promise<StoredMsg | null> {
  const deadline = performance.now() + READ_DEADLINE_MS;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await jsm.direct.getMessage(STREAM, query);
    } catch (error) {
      // Whoever asked is gone: no more attempts.
      signal?.throwIfAborted();
      if (performance.now() + READ_RETRY_PAUSE_MS > deadline) {
        throw new Error(
          `the engine did not answer a read of ${
            JSON.stringify(query)
          } after ${attempt} attempts in ${READ_DEADLINE_MS} ms: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
      // Backing off between attempts is the point: the engine is away.
      await delay(READ_RETRY_PAUSE_MS, { signal });
    }
  }
}

/** Times a range read asks again for a byte below the checkpoint that no piece held. */
const GAP_RETRIES = 10;
/** Pause between those attempts, in ms (a replica catches up within a few). */
const GAP_RETRY_PAUSE_MS = 50;

/** A piece of a resource: its offset and bytes. */
export interface Piece {
  /** Offset of the first byte. */
  offset: number;
  /** The bytes. */
  bytes: Uint8Array;
  /** Its stream sequence. */
  seq: number;
}

/** The piece of `message`, or an error naming what is wrong with it. */
export function pieceOf(message: StoredMsg): Piece {
  const offset = Number(message.header.get(OFFSET_HEADER));
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new Error(
      `the piece at sequence ${message.seq} on ${message.subject} has no valid ${OFFSET_HEADER} header; expected a byte offset`,
    );
  }
  return { offset, bytes: message.data, seq: message.seq };
}

/**
 * The pieces of one segment, fetched in stream order on demand. The stream
 * may hold them in any order and more than once: a pipelined writer's
 * retry lands after later pieces, a leader change may store a piece twice,
 * and a node that lost an upload may still store bytes the new holder
 * writes again (the same bytes at the same offsets). So a byte is served
 * from whichever piece holds it, by the offset header, never by sequence;
 * a byte no stored piece holds is a gap.
 */
class SegmentPieces {
  readonly #jsm: JetStreamManager;
  readonly #id: string;
  readonly #subject: string;
  readonly #start: number;
  /** Pieces fetched and not yet passed, in stream order. */
  #pieces: Piece[] = [];
  #nextSeq = 1;
  readonly #signal: AbortSignal | undefined;

  constructor(
    jsm: JetStreamManager,
    id: string,
    segment: number,
    signal?: AbortSignal,
  ) {
    this.#jsm = jsm;
    this.#id = id;
    this.#subject = dataSubject(id, segment);
    this.#start = segment * SEGMENT_BYTES;
    this.#signal = signal;
  }

  /**
   * The bytes from `position` to the end of a stored piece holding it, or,
   * when no stored piece holds it, a sentence saying so. Positions asked
   * for only grow: pieces ending before one are dropped.
   */
  async at(position: number): Promise<Uint8Array | string> {
    this.#pieces = this.#pieces.filter((piece) => endOf(piece) > position);
    for (;;) {
      const held = covering(this.#pieces, position);
      if (held !== undefined) {
        return held.bytes.subarray(position - held.offset);
      }
      const message = await getReliably(this.#jsm, {
        seq: this.#nextSeq,
        next_by_subj: this.#subject,
      }, this.#signal);
      if (message === null) {
        const after = this.#pieces.reduce(
          (first, piece) => Math.min(first, piece.offset),
          Infinity,
        );
        return after === Infinity
          ? `the engine holds no piece of resource ${this.#id} at byte ${position}; expected every byte up to the checkpoint`
          : `resource ${this.#id} has a gap: no piece holds byte ${position}, the next one stored starts at ${after}`;
      }
      const piece = this.#checked(pieceOf(message));
      this.#nextSeq = piece.seq + 1;
      // An older copy of bytes already passed (stored again later) is skipped.
      if (endOf(piece) > position) this.#pieces.push(piece);
    }
  }

  /** `piece`, or an error if it does not lie within this segment. */
  #checked(piece: Piece): Piece {
    const end = this.#start + SEGMENT_BYTES;
    if (piece.offset < this.#start || endOf(piece) > end) {
      throw new Error(
        `the piece at sequence ${piece.seq} on ${this.#subject} holds bytes [${piece.offset}, ${
          endOf(piece)
        }); expected bytes within [${this.#start}, ${end})`,
      );
    }
    return piece;
  }
}

function endOf(piece: Piece): number {
  return piece.offset + piece.bytes.byteLength;
}

/** Of the pieces holding byte `position`, the one reaching furthest. */
function covering(pieces: Piece[], position: number): Piece | undefined {
  let best: Piece | undefined;
  for (const piece of pieces) {
    if (piece.offset > position || endOf(piece) <= position) continue;
    if (best === undefined || endOf(piece) > endOf(best)) best = piece;
  }
  return best;
}

/**
 * The end of the furthest piece stored on segment `segment` of resource
 * `id` (pieces may be stored in any order), or `undefined` if it has none.
 *
 * @example
 * ```ts ignore
 * const end = await segmentEnd(engine.jsm, id, 3);
 * ```
 */
export async function segmentEnd(
  jsm: JetStreamManager,
  id: string,
  segment: number,
): Promise<number | undefined> {
  let end: number | undefined;
  for (let seq = 1;;) {
    const message = await getReliably(jsm, {
      seq,
      next_by_subj: dataSubject(id, segment),
    });
    if (message === null) return end;
    const piece = pieceOf(message);
    end = Math.max(end ?? 0, endOf(piece));
    seq = piece.seq + 1;
  }
}

/** Segment `segment`'s bytes within `[from, to)`, in order; throws on a gap. */
async function segmentBytes(
  jsm: JetStreamManager,
  id: string,
  segment: number,
  range: { from: number; to: number; signal?: AbortSignal },
): Promise<Uint8Array[]> {
  const pieces = new SegmentPieces(jsm, id, segment, range.signal);
  const parts: Uint8Array[] = [];
  for (let position = range.from, missed = 0; position < range.to;) {
    const bytes = await pieces.at(position);
    if (typeof bytes === "string") {
      // The checkpoint counted this byte, so it is stored; with
      // `allow_direct` a replica still catching up may answer without it.
      if (++missed > GAP_RETRIES) throw new Error(bytes);
      await delay(GAP_RETRY_PAUSE_MS, { signal: range.signal });
      continue;
    }
    const part = bytes.subarray(0, range.to - position);
    parts.push(part);
    position += part.byteLength;
  }
  return parts;
}

/**
 * Where the bytes of resource `id` stored without a gap from byte `from`
 * on end: how a node taking an upload over finds the durable offset the
 * uploader resumes from. Pieces stored out of offset order or twice count
 * once, at their offsets.
 *
 * @example
 * ```ts ignore
 * const end = await storedEnd(engine.jsm, id, status.size);
 * ```
 */
export async function storedEnd(
  jsm: JetStreamManager,
  id: string,
  from: number,
): Promise<number> {
  let position = from;
  for (;;) {
    const segment = Math.floor(position / SEGMENT_BYTES);
    const pieces = new SegmentPieces(jsm, id, segment);
    while (Math.floor(position / SEGMENT_BYTES) === segment) {
      const bytes = await pieces.at(position);
      if (typeof bytes === "string") return position;
      position += bytes.byteLength;
    }
  }
}

/**
 * Bytes `[start, end)` of resource `id` as a byte stream (BYOB-capable).
 * Up to {@linkcode PREFETCH_SEGMENTS} segments are read at once (each is
 * its own subject, so their direct gets are independent): a follower on
 * another node catching up after a checkpoint is not one round trip per
 * piece behind. Once `signal` aborts, no read is attempted again.
 *
 * @example
 * ```ts ignore
 * const body = readRange(engine.jsm, id, 0, status.size);
 * ```
 */
export function readRange(
  jsm: JetStreamManager,
  id: string,
  start: number,
  end: number,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  const ahead = new SegmentsAhead(jsm, id, { start, end, signal });
  let pending: Uint8Array | undefined;
  let position = start;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: AUTO_CHUNK_BYTES,
    async pull(controller) {
      const request = controller.byobRequest!;
      if (position >= end) {
        controller.close();
        request.respond(0);
        return;
      }
      if (pending === undefined || pending.byteLength === 0) {
        pending = await ahead.next();
      }
      const view = request.view as Uint8Array;
      const length = Math.min(view.byteLength, pending.byteLength);
      view.set(pending.subarray(0, length));
      pending = pending.subarray(length);
      position += length;
      request.respond(length);
      if (position >= end) controller.close();
    },
    cancel: () => ahead.cancel(),
  });
}

/** The segments of a range, read a few ahead of the one being handed out. */
class SegmentsAhead {
  readonly #jsm: JetStreamManager;
  readonly #id: string;
  readonly #end: number;
  #nextSegment: number;
  readonly #reads: Promise<Uint8Array[]>[] = [];
  #parts: Uint8Array[] = [];
  readonly #signal: AbortSignal | undefined;

  constructor(
    jsm: JetStreamManager,
    id: string,
    range: { start: number; end: number; signal?: AbortSignal },
  ) {
    this.#jsm = jsm;
    this.#id = id;
    this.#end = range.end;
    this.#signal = range.signal;
    this.#nextSegment = Math.floor(range.start / SEGMENT_BYTES);
    this.#fill(range.start);
  }

  /** Starts segment reads up to the window, the first one from `from`. */
  #fill(from: number): void {
    while (this.#reads.length < PREFETCH_SEGMENTS) {
      const segment = this.#nextSegment;
      const segmentStart = segment * SEGMENT_BYTES;
      if (segmentStart >= this.#end) return;
      const read = segmentBytes(this.#jsm, this.#id, segment, {
        from: Math.max(from, segmentStart),
        to: Math.min(this.#end, segmentStart + SEGMENT_BYTES),
        signal: this.#signal,
      });
      // Its failure is taken when it is its turn (or dropped by cancel).
      read.catch(() => {});
      this.#reads.push(read);
      this.#nextSegment++;
    }
  }

  /** The next bytes of the range, in order; throws on a gap. */
  async next(): Promise<Uint8Array> {
    while (this.#parts.length === 0) {
      const read = this.#reads.shift();
      if (read === undefined) {
        throw new Error(
          `the read of resource ${this.#id} went past its end ${this.#end}`,
        );
      }
      this.#parts = await read;
      this.#fill(0);
    }
    return this.#parts.shift()!;
  }

  /** Waits for the reads under way (their answers are dropped). */
  async cancel(): Promise<void> {
    const reads = this.#reads.splice(0);
    // Only waited for, so that no request outlives the stream.
    await Promise.allSettled(reads);
  }
}
