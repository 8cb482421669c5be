/**
 * Coalesces frame headers and small payloads into 64 KiB chunks before they
 * reach the connection, so a run of 1 KiB objects costs one chunk, not
 * hundreds. Large payloads pass through without a copy.
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

  constructor(connection: Connection) {
    this.connection = connection;
  }

  /** Bytes staged and not yet handed to the connection. */
  get staged(): number {
    return this.#fill;
  }

  async frame(frame: FrameHeader): Promise<void> {
    if (this.#fill + FRAME_HEADER_SIZE > STAGE_SIZE) await this.flush();
    writeFrameHeader(this.#stage, this.#fill, frame);
    this.#fill += FRAME_HEADER_SIZE;
    this.written += FRAME_HEADER_SIZE;
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
    if (bodyLength > COPY_LIMIT || this.#fill + total > STAGE_SIZE) {
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

  async flush(): Promise<void> {
    if (this.#fill === 0) return;
    const chunk = this.#stage.subarray(0, this.#fill);
    // The connection keeps the chunk until the client reads it: never reuse.
    this.#stage = new Uint8Array(STAGE_SIZE);
    this.#fill = 0;
    await this.connection.write(chunk);
  }
}
