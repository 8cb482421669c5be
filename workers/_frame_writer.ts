/**
 * Coalesces frame headers and small payloads into 64 KiB chunks before they
 * reach the connection, so a run of 1 KiB objects costs one chunk, not
 * hundreds. Large payloads pass through without a copy. A body read piece
 * by piece (a file, a stream) of known size goes out as one HTTP chunk
 * with the frames staged before it (see {@linkcode FrameWriter.startRun}).
 *
 * @module
 */

import {
  FRAME_HEADER_SIZE,
  type FrameHeader,
  writeFrameHeader,
} from "../transport/framing.ts";
import type { Connection } from "./_http1_connection.ts";

const STAGE_SIZE = 64 * 1024;
/** Payloads up to this size are copied into the stage. */
const COPY_LIMIT = 16 * 1024;

/** Writes frames to one connection. */
export class FrameWriter {
  readonly connection: Connection;
  #stage = new Uint8Array(STAGE_SIZE);
  #fill = 0;
  /** Bytes written so far (staged ones included). */
  written = 0;
  /** Payload bytes still due of the run {@linkcode startRun} opened. */
  #run = 0;

  constructor(connection: Connection) {
    this.connection = connection;
  }

  /** Bytes staged and not yet handed to the connection. */
  get staged(): number {
    return this.#fill;
  }

  /**
   * Opens a run: the staged bytes and the next `size` bytes given to
   * {@linkcode bytes} go out as one HTTP chunk. The staged bytes leave now.
   * Nothing but those `size` bytes may be written until the run is done; a
   * run cut short fails the request (its chunk stays incomplete).
   */
  async startRun(size: number): Promise<void> {
    const lead = this.#stage.subarray(0, this.#fill);
    this.#fill = 0;
    this.#run = size;
    // The connection copies the lead before it resolves: the stage is reused.
    await this.connection.startChunk(lead.byteLength + size, lead);
  }

  async frame(frame: FrameHeader): Promise<void> {
    if (this.#run > 0) {
      throw new TypeError(`frame() while ${this.#run} bytes of a run are due`);
    }
    if (this.#fill + FRAME_HEADER_SIZE > STAGE_SIZE) await this.flush();
    writeFrameHeader(this.#stage, this.#fill, frame);
    this.#fill += FRAME_HEADER_SIZE;
    this.written += FRAME_HEADER_SIZE;
  }

  /**
   * Stages `data` (small, whole frames) if it fits in the stage now;
   * returns whether it did.
   */
  tryStageBytes(data: Uint8Array): boolean {
    if (
      this.#run > 0 || data.byteLength > COPY_LIMIT ||
      this.#fill + data.byteLength > STAGE_SIZE
    ) {
      return false;
    }
    this.#stage.set(data, this.#fill);
    this.#fill += data.byteLength;
    this.written += data.byteLength;
    return true;
  }

  /**
   * Stages a whole object if it fits in the stage now: its frame header,
   * then `source[start, end)`, its object header and small body lying side
   * by side (as a batch packs them); returns whether it did. The send loop's
   * way for small objects: no promise and no view per object.
   */
  tryStageSlice(
    frame: FrameHeader,
    source: Uint8Array,
    start: number,
    end: number,
    bodyLength: number,
  ): boolean {
    const total = FRAME_HEADER_SIZE + end - start;
    if (
      this.#run > 0 || bodyLength > COPY_LIMIT ||
      this.#fill + total > STAGE_SIZE
    ) {
      return false;
    }
    writeFrameHeader(this.#stage, this.#fill, frame);
    this.#stage.set(
      source.subarray(start, end),
      this.#fill + FRAME_HEADER_SIZE,
    );
    this.#fill += total;
    this.written += total;
    return true;
  }

  /**
   * Stages a whole object (frame header, object header, small body) if it
   * fits in the stage now; returns whether it did. The send loop's way for
   * small objects: no promise per object.
   */
  tryStage(
    frame: FrameHeader,
    header: Uint8Array,
    body: Uint8Array | null,
  ): boolean {
    const bodyLength = body?.byteLength ?? 0;
    const total = FRAME_HEADER_SIZE + header.byteLength + bodyLength;
    if (
      this.#run > 0 || bodyLength > COPY_LIMIT ||
      this.#fill + total > STAGE_SIZE
    ) {
      return false;
    }
    writeFrameHeader(this.#stage, this.#fill, frame);
    this.#stage.set(header, this.#fill + FRAME_HEADER_SIZE);
    if (body !== null) {
      this.#stage.set(body, this.#fill + FRAME_HEADER_SIZE + header.byteLength);
    }
    this.#fill += total;
    this.written += total;
    return true;
  }

  async bytes(data: Uint8Array): Promise<void> {
    if (data.byteLength === 0) return;
    this.written += data.byteLength;
    if (this.#run > 0) return await this.#runBytes(data);
    if (data.byteLength <= COPY_LIMIT) {
      if (this.#fill + data.byteLength > STAGE_SIZE) await this.flush();
      this.#stage.set(data, this.#fill);
      this.#fill += data.byteLength;
      return;
    }
    // Staged frame bytes lead the payload in the same HTTP chunk; the
    // connection copies them, so the stage is reused.
    const lead = this.#stage.subarray(0, this.#fill);
    this.#fill = 0;
    await this.connection.write(data, lead);
  }

  /**
   * More payload of the open run: small pieces are staged and written
   * together (as payload, not as chunks of their own), large ones as they are.
   */
  async #runBytes(data: Uint8Array): Promise<void> {
    if (data.byteLength > this.#run) {
      throw new TypeError(
        `${data.byteLength} bytes exceed the ${this.#run} still due in the run`,
      );
    }
    this.#run -= data.byteLength;
    if (data.byteLength <= COPY_LIMIT) {
      if (this.#fill + data.byteLength > STAGE_SIZE) await this.#flushRun();
      this.#stage.set(data, this.#fill);
      this.#fill += data.byteLength;
      if (this.#run === 0) await this.#flushRun();
      return;
    }
    await this.#flushRun();
    await this.connection.write(data);
  }

  /** Writes the staged payload of the run. */
  async #flushRun(): Promise<void> {
    if (this.#fill === 0) return;
    const chunk = this.#stage.subarray(0, this.#fill);
    this.#fill = 0;
    // A connection keeps no buffer past its write: the stage is reused.
    await this.connection.write(chunk);
  }

  async flush(): Promise<void> {
    if (this.#run > 0) return await this.#flushRun();
    if (this.#fill === 0) return;
    const chunk = this.#stage.subarray(0, this.#fill);
    this.#fill = 0;
    // A connection keeps no buffer past its write (a fresh 64 KiB stage
    // per flush was an allocation and a clearing of it per ~60 small
    // objects): the stage is reused.
    await this.connection.write(chunk);
  }
}
