/**
 * Reads a NATS server's byte stream in units that hold whole protocol
 * lines and whole messages, for nats.js's parser.
 *
 * nats.js assembles a message that spans socket reads by growing a buffer
 * and copying it at every doubling; node B receives pieces of up to 1020
 * KiB, far larger than a read. Here small units are read into a shared
 * buffer and passed as views of it (no copy), and a message larger than
 * what is left of that buffer is read straight into a buffer of its exact
 * size: only the part of it that came with the read before is copied.
 *
 * @module
 */

const CR = 13;
const LF = 10;
/** Bytes of the buffer small units are read into. */
const READ_BYTES = 64 * 1024;
/** A read into less room than this starts a new buffer instead. */
const MIN_READ_ROOM = 4 * 1024;
/**
 * A message announced larger than this is not gathered (its line goes on
 * alone, and the parser fails the connection, which reconnects): the
 * server's `max_payload` keeps real ones far below, and a corrupt size
 * must not allocate.
 */
const MAX_GATHERED_BYTES = 64 * 1024 * 1024;

/** Reads into `into`; resolves with the bytes read, or `null` at the end. */
export type ReadInto = (into: Uint8Array) => Promise<number | null>;

/**
 * Units of whole protocol lines and messages read from `read`. A unit is
 * never written again once returned: the parser may keep views of it.
 *
 * @example
 * ```ts
 * import { UnitReader } from "./_unit_reader.ts";
 * const reads = ["MSG a 1 5\r\nhel", "lo\r\nPING\r\n"].map((s) => new TextEncoder().encode(s));
 * const reader = new UnitReader(async (into) => {
 *   const next = reads.shift();
 *   if (next === undefined) return null;
 *   into.set(next);
 *   return next.byteLength;
 * });
 * const unit = await reader.next();
 * console.log(new TextDecoder().decode(unit!)); // "MSG a 1 5\r\nhello\r\n"
 * ```
 */
export class UnitReader {
  readonly #read: ReadInto;
  #buffer = new Uint8Array(READ_BYTES);
  /** `[#start, #end)` of the buffer is read and not yet returned. */
  #start = 0;
  #end = 0;

  /** A reader of the bytes `read` gives. */
  constructor(read: ReadInto) {
    this.#read = read;
  }

  /** The next unit, or `null` once the stream ended (a cut-off unit is dropped). */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const { whole, pending } = scanUnits(
        this.#buffer.subarray(0, this.#end),
        this.#start,
      );
      if (whole > this.#start) {
        const unit = this.#buffer.subarray(this.#start, whole);
        this.#start = whole;
        return unit;
      }
      if (pending > this.#buffer.byteLength - this.#start) {
        return await this.#readMessage(pending);
      }
      if (this.#buffer.byteLength - this.#end < MIN_READ_ROOM) this.#renew();
      const read = await this.#read(this.#buffer.subarray(this.#end));
      if (read === null) return null;
      this.#end += read;
    }
  }

  /** Reads a message of `bytes` that does not fit the buffer into its own. */
  async #readMessage(bytes: number): Promise<Uint8Array | null> {
    const message = new Uint8Array(bytes);
    message.set(this.#buffer.subarray(this.#start, this.#end));
    let filled = this.#end - this.#start;
    this.#start = this.#end;
    while (filled < bytes) {
      const read = await this.#read(message.subarray(filled));
      if (read === null) return null;
      filled += read;
    }
    return message;
  }

  /** Moves what is left of the buffer to the start of a new one. */
  #renew(): void {
    const rest = this.#buffer.subarray(this.#start, this.#end);
    this.#buffer = new Uint8Array(Math.max(READ_BYTES, rest.byteLength * 2));
    this.#buffer.set(rest);
    this.#start = 0;
    this.#end = rest.byteLength;
  }
}

/**
 * From `start` of `data`: `whole`, the end of the last whole unit (`start`
 * if none), and `pending`, the size of the cut-off message after it when
 * its line is whole (else 0).
 */
function scanUnits(
  data: Uint8Array,
  start: number,
): { whole: number; pending: number } {
  let at = start;
  while (at < data.byteLength) {
    const eol = lineEnd(data, at);
    if (eol < 0) return { whole: at, pending: 0 };
    const next = eol + 2 + payloadBytes(data, at, eol);
    if (next > data.byteLength) return { whole: at, pending: next - at };
    at = next;
  }
  return { whole: at, pending: 0 };
}

/** The index of the `\r` of the first `\r\n` at or after `from`, or -1. */
function lineEnd(data: Uint8Array, from: number): number {
  for (
    let at = data.indexOf(CR, from);
    at >= 0;
    at = data.indexOf(CR, at + 1)
  ) {
    if (at + 1 >= data.byteLength) return -1;
    if (data[at + 1] === LF) return at;
  }
  return -1;
}

/**
 * Bytes after the line `[start, eol)` that belong to it: a `MSG` or `HMSG`
 * line's last field plus the `\r\n` after the payload; 0 for other lines
 * (and for a size the parser will refuse or that is too large to gather).
 */
function payloadBytes(data: Uint8Array, start: number, eol: number): number {
  const isMsg = data[start] === 0x4d && data[start + 1] === 0x53 &&
    data[start + 2] === 0x47 && data[start + 3] === 0x20;
  const isHmsg = data[start] === 0x48 && data[start + 1] === 0x4d &&
    data[start + 2] === 0x53 && data[start + 3] === 0x47 &&
    data[start + 4] === 0x20;
  if (!isMsg && !isHmsg) return 0;
  let size = 0;
  let scale = 1;
  let at = eol - 1;
  for (; at > start && data[at] >= 0x30 && data[at] <= 0x39; at--) {
    size += (data[at] - 0x30) * scale;
    scale *= 10;
  }
  if (at === eol - 1 || data[at] !== 0x20 || size > MAX_GATHERED_BYTES) {
    return 0;
  }
  return size + 2;
}
