/**
 * Reading a range of a resource's bytes back from the stream by direct get:
 * segment by segment, piece by piece (`next_by_subj` from the last
 * sequence), never creating a consumer. The caller bounds the range by the
 * checkpoint, so every byte asked for is stored.
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
): Promise<StoredMsg | null> {
  const deadline = performance.now() + READ_DEADLINE_MS;
  for (let attempt = 1;; attempt++) {
    try {
      return await jsm.direct.getMessage(STREAM, query);
    } catch (error) {
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
      await delay(READ_RETRY_PAUSE_MS);
    }
  }
}

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

/** Finds the piece holding byte `position`, continuing from the last one found. */
class PieceFinder {
  readonly #jsm: JetStreamManager;
  readonly #id: string;
  #segment = -1;
  #nextSeq = 1;

  constructor(jsm: JetStreamManager, id: string) {
    this.#jsm = jsm;
    this.#id = id;
  }

  async find(position: number): Promise<Uint8Array> {
    const found = await this.next(position);
    if (typeof found === "string") throw new Error(found);
    return found;
  }

  /**
   * The bytes from `position` to the end of the piece holding it, or, when
   * no stored piece holds it, a sentence saying so.
   */
  async next(position: number): Promise<Uint8Array | string> {
    const segment = Math.floor(position / SEGMENT_BYTES);
    if (segment !== this.#segment) {
      this.#segment = segment;
      this.#nextSeq = 1;
    }
    const subject = dataSubject(this.#id, segment);
    for (;;) {
      const message = await getReliably(this.#jsm, {
        seq: this.#nextSeq,
        next_by_subj: subject,
      });
      if (message === null) {
        return `the engine holds no piece of resource ${this.#id} at byte ${position}; expected every byte up to the checkpoint`;
      }
      const piece = pieceOf(message);
      this.#nextSeq = piece.seq + 1;
      const end = piece.offset + piece.bytes.byteLength;
      // An older copy of bytes further on (an upload resumed elsewhere) is skipped.
      if (end <= position) continue;
      if (piece.offset > position) {
        return `resource ${this.#id} has a gap: the piece after byte ${position} starts at ${piece.offset}`;
      }
      return piece.bytes.subarray(position - piece.offset);
    }
  }
}

/**
 * Reads the bytes of resource `id` stored without a gap from byte `from`
 * on, giving each run of them to `take`; resolves with the offset where
 * they end. How a node taking an upload over finds (and hashes) what the
 * stream holds: the durable offset the uploader resumes from.
 *
 * @example
 * ```ts ignore
 * const hash = createHash("sha256");
 * const end = await readStored(engine.jsm, id, 0, (bytes) => hash.update(bytes));
 * ```
 */
export async function readStored(
  jsm: JetStreamManager,
  id: string,
  from: number,
  take: (bytes: Uint8Array) => void,
): Promise<number> {
  const finder = new PieceFinder(jsm, id);
  let position = from;
  for (;;) {
    const bytes = await finder.next(position);
    if (typeof bytes === "string") return position;
    take(bytes);
    position += bytes.byteLength;
  }
}

/**
 * Bytes `[start, end)` of resource `id` as a byte stream (BYOB-capable).
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
): ReadableStream<Uint8Array> {
  const finder = new PieceFinder(jsm, id);
  let position = start;
  let pending: Uint8Array | undefined;
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
        pending = await finder.find(position);
      }
      const view = request.view as Uint8Array;
      const length = Math.min(
        view.byteLength,
        pending.byteLength,
        end - position,
      );
      view.set(pending.subarray(0, length));
      pending = pending.subarray(length);
      position += length;
      request.respond(length);
      if (position >= end) controller.close();
    },
  });
}
