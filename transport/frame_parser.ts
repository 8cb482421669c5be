/**
 * Incremental frame parser: the receiver's state machine. It is fed the
 * request body chunk by chunk and yields object headers, body bytes (views
 * into the fed chunks, never copies), object ends and the fin, so every
 * truncation point maps to one typed error.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import {
  decodeFrameHeader,
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  FRAME_HEADER_SIZE,
  type FrameHeader,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
  MAX_PDU_SIZE,
} from "./framing.ts";
import { decodeHeader, MIN_HEADER_SIZE } from "./header_codec.ts";
import type { DecodedHeader } from "./types.ts";

/**
 * Default largest object header a receiver accepts (64 KiB).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_HEADER_SIZE, FrameParser } from "./frame_parser.ts";
 * // Accept object headers up to twice the default (128 KiB).
 * const parser = new FrameParser({ maxHeaderSize: 2 * DEFAULT_MAX_HEADER_SIZE });
 * ```
 */
export const DEFAULT_MAX_HEADER_SIZE = 64 * 1024;

/**
 * One step of a parsed stream.
 *
 * @example
 * ```ts
 * import { type FrameEvent, FrameParser } from "./frame_parser.ts";
 * import { encodeFrameHeader, KIND_FIN } from "./framing.ts";
 * const parser = new FrameParser();
 * parser.push(encodeFrameHeader({ kind: KIND_FIN, flags: 0, length: 0, seq: 0 }));
 * const event: FrameEvent | null = parser.next();
 * console.log(event?.type); // "fin"
 * ```
 */
export type FrameEvent =
  | {
    type: "object";
    header: DecodedHeader;
    seq: number;
    /** False for header-only objects (size 0, not PDU mode). */
    hasBody: boolean;
  }
  | { type: "data"; bytes: Uint8Array }
  | { type: "end"; size: number }
  | { type: "fin"; seq: number };

/**
 * Limits of a {@linkcode FrameParser}.
 *
 * @example
 * ```ts
 * import { FrameParser, type FrameParserOptions } from "./frame_parser.ts";
 * const options: FrameParserOptions = { maxHeaderSize: 4096, maxPduSize: 256 * 1024 };
 * const parser = new FrameParser(options);
 * ```
 */
export interface FrameParserOptions {
  /** Largest object header accepted (default 64 KiB). */
  maxHeaderSize?: number;
  /** Largest PDU payload accepted (default 1 MiB). */
  maxPduSize?: number;
}

const enum State {
  Frame,
  ObjectHeader,
  Data,
  Pdu,
  PduData,
  Fin,
  Failed,
}

/**
 * Parses the frames of one request body incrementally.
 *
 * @example
 * ```ts
 * import { FrameParser } from "./frame_parser.ts";
 * const parser = new FrameParser();
 * parser.push(new Uint8Array(0));
 * console.log(parser.next()); // null: needs more input
 * parser.finish(); // at a frame boundary: a clean end
 * ```
 */
export class FrameParser {
  #maxHeaderSize: number;
  #maxPduSize: number;
  #state = State.Frame;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  #stage = new Uint8Array(FRAME_HEADER_SIZE);
  #stageFill = 0;
  #need = FRAME_HEADER_SIZE;
  #remaining = 0;
  #pduLast = false;
  #seq = -1;
  #size = 0;
  #received = 0;
  #offset = 0;

  /** Creates a parser with the given limits. */
  constructor(options: FrameParserOptions = {}) {
    this.#maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    this.#maxPduSize = options.maxPduSize ?? MAX_PDU_SIZE;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Whether the fin frame was seen. */
  get finished(): boolean {
    return this.#state === State.Fin;
  }

  /** Bytes of the current chunk not parsed yet. */
  get buffered(): number {
    return this.#chunk.length - this.#at;
  }

  /**
   * Body bytes the parser expects next once its chunk is used up: the
   * caller may read up to this many straight into the handler's buffer and
   * report them with {@linkcode consumed} instead of pushing them. 0 when a
   * frame or object header comes next, or the chunk still has bytes.
   */
  get dataWanted(): number {
    if (this.#at < this.#chunk.length) return 0;
    return this.#state === State.Data || this.#state === State.PduData
      ? this.#remaining
      : 0;
  }

  /** Accounts `n` body bytes the caller read itself (see {@linkcode dataWanted}). */
  consumed(n: number): void {
    if (n > this.dataWanted) {
      throw new TypeError(
        `consumed(${n}) exceeds the ${this.dataWanted} body bytes wanted`,
      );
    }
    this.#remaining -= n;
    this.#offset += n;
  }

  /** Feeds the next chunk; call {@linkcode next} until it returns `null`. */
  push(chunk: Uint8Array): void {
    if (this.#at < this.#chunk.length) {
      throw new TypeError("push() called before the previous chunk was parsed");
    }
    this.#chunk = chunk;
    this.#at = 0;
  }

  /** The next event, or `null` when the current chunk is used up. */
  next(): FrameEvent | null {
    try {
      return this.#next();
    } catch (error) {
      this.#state = State.Failed;
      throw error;
    }
  }

  /** Signals the end of input; throws if it falls inside a frame. */
  finish(): void {
    const at = `at byte ${this.#offset}`;
    switch (this.#state) {
      case State.Frame:
        if (this.#stageFill === 0) return;
        throw this.#fail(
          "proto-hdr-short",
          `input ended ${at} inside a frame header (${this.#stageFill} of 16 bytes)`,
        );
      case State.ObjectHeader:
        throw this.#fail(
          "obj-hdr-short",
          `input ended ${at} inside an object header (${this.#stageFill} of ${this.#need} bytes)`,
        );
      case State.Data:
        throw this.#fail(
          "obj-data-eof",
          `input ended ${at} with ${this.#remaining} of ${this.#size} body bytes of object #${this.#seq} missing`,
        );
      case State.Pdu:
        throw this.#fail(
          "pdu-hdr-short",
          `input ended ${at} before the last PDU of object #${this.#seq} (${this.#stageFill} of 16 PDU header bytes)`,
        );
      case State.PduData:
        throw this.#fail(
          "pdu-data-eof",
          `input ended ${at} with ${this.#remaining} PDU payload bytes of object #${this.#seq} missing`,
        );
      case State.Fin:
        return;
      case State.Failed:
        throw new TypeError("finish() called on a failed parser");
    }
  }

  #fail(code: TransportError["code"], message: string): TransportError {
    this.#state = State.Failed;
    return new TransportError(code, message);
  }

  /** Collects `#need` bytes into the stage, or returns them as a view. */
  #gather(): Uint8Array | null {
    const available = this.#chunk.length - this.#at;
    if (this.#stageFill === 0 && available >= this.#need) {
      const view = this.#chunk.subarray(this.#at, this.#at + this.#need);
      this.#at += this.#need;
      this.#offset += this.#need;
      return view;
    }
    if (this.#stage.length < this.#need) {
      const bigger = new Uint8Array(this.#need);
      bigger.set(this.#stage.subarray(0, this.#stageFill));
      this.#stage = bigger;
    }
    const take = Math.min(available, this.#need - this.#stageFill);
    this.#stage.set(
      this.#chunk.subarray(this.#at, this.#at + take),
      this.#stageFill,
    );
    this.#stageFill += take;
    this.#at += take;
    this.#offset += take;
    if (this.#stageFill < this.#need) return null;
    this.#stageFill = 0;
    return this.#stage.subarray(0, this.#need);
  }

  #next(): FrameEvent | null {
    for (;;) {
      switch (this.#state) {
        case State.Frame: {
          if (this.#at === this.#chunk.length) return null;
          this.#need = FRAME_HEADER_SIZE;
          const bytes = this.#gather();
          if (bytes === null) return null;
          const frame = decodeFrameHeader(bytes, 0);
          if (frame.kind === KIND_FIN) {
            this.#state = State.Fin;
            return { type: "fin", seq: frame.seq };
          }
          if (frame.kind !== KIND_OBJECT) {
            throw new TransportError(
              "proto-hdr-invalid",
              `frame kind ${frame.kind} at byte ${
                this.#offset - 16
              } is not allowed between objects, expected 1 (object) or 3 (fin)`,
            );
          }
          this.#startObject(frame);
          break;
        }
        case State.ObjectHeader: {
          if (this.#at === this.#chunk.length) return null;
          const bytes = this.#gather();
          if (bytes === null) return null;
          const header = decodeHeader(bytes);
          return this.#objectDecoded(header);
        }
        case State.Data: {
          if (this.#remaining === 0) {
            this.#state = State.Frame;
            return { type: "end", size: this.#size };
          }
          return this.#takeData();
        }
        case State.Pdu: {
          if (this.#at === this.#chunk.length) return null;
          this.#need = FRAME_HEADER_SIZE;
          const bytes = this.#gather();
          if (bytes === null) return null;
          this.#startPdu(decodeFrameHeader(bytes, 0));
          break;
        }
        case State.PduData: {
          if (this.#remaining === 0) {
            if (!this.#pduLast) {
              this.#state = State.Pdu;
              break;
            }
            if (this.#size !== -1 && this.#received !== this.#size) {
              throw new TransportError(
                "obj-data-size",
                `object #${this.#seq} declared ${this.#size} bytes, its PDUs carried ${this.#received}`,
              );
            }
            this.#state = State.Frame;
            return { type: "end", size: this.#received };
          }
          return this.#takeData();
        }
        case State.Fin:
          if (this.#at === this.#chunk.length) return null;
          throw new TransportError(
            "frame-after-fin",
            `${
              this.#chunk.length - this.#at
            } bytes follow the fin frame, expected the end of the body`,
          );
        case State.Failed:
          throw new TypeError("next() called on a failed parser");
      }
    }
  }

  /** Body bytes of the current object or PDU from this chunk, as a view. */
  #takeData(): FrameEvent | null {
    const available = this.#chunk.length - this.#at;
    if (available === 0) return null;
    const take = Math.min(available, this.#remaining);
    const bytes = this.#chunk.subarray(this.#at, this.#at + take);
    this.#at += take;
    this.#offset += take;
    this.#remaining -= take;
    return { type: "data", bytes };
  }

  #startObject(frame: FrameHeader): void {
    // Sequence numbers are u32 and wrap: "ahead" is the distance mod 2^32.
    const ahead = (frame.seq - this.#seq) >>> 0;
    if (this.#seq >= 0 && (ahead === 0 || ahead >= 0x8000_0000)) {
      throw new TransportError(
        "proto-hdr-invalid",
        `object sequence number ${frame.seq} follows ${this.#seq}, expected it to increase`,
      );
    }
    if (frame.length > this.#maxHeaderSize) {
      throw new TransportError(
        "hdr-too-large",
        `object header of ${frame.length} bytes exceeds the limit of ${this.#maxHeaderSize}`,
      );
    }
    if (frame.length < MIN_HEADER_SIZE) {
      throw new TransportError(
        "obj-hdr-malformed",
        `object header length ${frame.length} is below the minimum of ${MIN_HEADER_SIZE}`,
      );
    }
    this.#seq = frame.seq;
    this.#pduLast = (frame.flags & FLAG_PDU_MODE) !== 0; // reused: PDU mode
    this.#need = frame.length;
    this.#state = State.ObjectHeader;
  }

  #objectDecoded(header: DecodedHeader): FrameEvent {
    const pduMode = this.#pduLast;
    this.#pduLast = false;
    this.#size = header.size;
    this.#received = 0;
    if (pduMode) {
      this.#state = State.Pdu;
      return { type: "object", header, seq: this.#seq, hasBody: true };
    }
    if (header.size === -1) {
      throw new TransportError(
        "obj-hdr-malformed",
        `object #${this.#seq} has unknown size (-1) without the PDU-mode flag`,
      );
    }
    this.#remaining = header.size;
    this.#state = State.Data;
    return {
      type: "object",
      header,
      seq: this.#seq,
      hasBody: header.size > 0,
    };
  }

  #startPdu(frame: FrameHeader): void {
    if (frame.kind !== KIND_PDU) {
      throw new TransportError(
        "pdu-invalid",
        `frame kind ${frame.kind} inside object #${this.#seq}, expected 2 (PDU)`,
      );
    }
    if (frame.seq !== this.#seq) {
      throw new TransportError(
        "pdu-invalid",
        `PDU carries sequence number ${frame.seq}, expected ${this.#seq}`,
      );
    }
    if (frame.length > this.#maxPduSize) {
      throw new TransportError(
        "pdu-invalid",
        `PDU payload of ${frame.length} bytes exceeds the limit of ${this.#maxPduSize}`,
      );
    }
    const last = (frame.flags & FLAG_PDU_LAST) !== 0;
    if (frame.length === 0 && !last) {
      throw new TransportError(
        "pdu-invalid",
        `empty PDU in object #${this.#seq} is not the last, expected a payload`,
      );
    }
    this.#received += frame.length;
    if (this.#size !== -1 && this.#received > this.#size) {
      throw new TransportError(
        "obj-data-size",
        `object #${this.#seq} declared ${this.#size} bytes, its PDUs carry at least ${this.#received}`,
      );
    }
    this.#remaining = frame.length;
    this.#pduLast = last;
    this.#state = State.PduData;
  }
}
