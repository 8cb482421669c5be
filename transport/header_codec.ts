/**
 * Object header codec: pure functions between {@linkcode ObjectHeader} and
 * the bytes that follow an object frame header.
 *
 * ```
 * name         u16 BE length + UTF-8
 * size         i64 BE (-1 = unknown)
 * opaque       u32 BE length + bytes
 * contentType  u16 BE length + UTF-8
 * checksumType u16 BE length + UTF-8 ("" = no checksum)
 * checksumValue u16 BE length + UTF-8
 * customCount  u16 BE
 * custom pairs customCount × (u16 length + UTF-8 key, u16 length + UTF-8 value),
 *              sorted by key
 * ```
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import type { DecodedHeader, ObjectHeader } from "./types.ts";

const encoder = new TextEncoder();
// ignoreBOM: a string field may start with U+FEFF; the default would drop it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const EMPTY = new Uint8Array(0);
const MAX_U16 = 0xffff;
const TWO_32 = 2 ** 32;

/**
 * Smallest possible encoded header (all fields empty): 22 bytes.
 *
 * @example
 * ```ts
 * import { encodeHeader, MIN_HEADER_SIZE } from "./header_codec.ts";
 * console.log(encodeHeader({ name: "", size: 0 }).length === MIN_HEADER_SIZE); // true
 * ```
 */
export const MIN_HEADER_SIZE: number = 2 + 8 + 4 + 2 + 2 + 2 + 2;

/**
 * A string field as it goes on the wire: the string itself when it is all
 * ASCII (written char by char: a `TextEncoder` call per field cost more
 * than the rest of the encoder for header-only objects), else its UTF-8.
 */
type Field = string | Uint8Array;

function fieldLength(field: Field): number {
  return typeof field === "string" ? field.length : field.byteLength;
}

function utf8(field: string, value: string): Field {
  if (typeof value !== "string") {
    throw new TransportError(
      "obj-hdr-invalid",
      `header field ${field} is ${typeof value}, expected a string`,
    );
  }
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii && value.length <= MAX_U16) return value;
  // A lone surrogate would go out as U+FFFD: another string than the one given.
  if (!value.isWellFormed()) {
    throw new TransportError(
      "obj-hdr-invalid",
      `header field ${field} holds a lone surrogate, expected well-formed Unicode`,
    );
  }
  const bytes = encoder.encode(value);
  if (bytes.length > MAX_U16) {
    throw new TransportError(
      "obj-hdr-invalid",
      `header field ${field} is ${bytes.length} UTF-8 bytes, expected at most ${MAX_U16}`,
    );
  }
  return bytes;
}

function checkSize(size: number): void {
  if (!(Number.isSafeInteger(size) && size >= -1)) {
    throw new TransportError(
      "obj-hdr-invalid",
      `header size is ${size}, expected -1 (unknown) or a safe integer >= 0`,
    );
  }
}

/**
 * The fields of the header {@linkcode measureHeader} checked last, kept
 * here until {@linkcode writeHeader} writes them: the stream encodes each
 * header straight into its batch buffer, and a fresh typed array or
 * `DataView` per header cost more than the rest of `send` (about 0.4 µs
 * each in Deno).
 */
const prepared = {
  name: "" as Field,
  size: 0,
  opaque: EMPTY as Uint8Array,
  contentType: "" as Field,
  cksumType: "" as Field,
  cksumValue: "" as Field,
  /** Custom keys and values, alternating; `pairCount` of them are live. */
  pairs: [] as Field[],
  pairCount: 0,
};

function customPairs(custom: Record<string, string>): void {
  const keys = Object.keys(custom).sort();
  if (keys.length > MAX_U16) {
    throw new TransportError(
      "obj-hdr-invalid",
      `header has ${keys.length} custom attributes, expected at most ${MAX_U16}`,
    );
  }
  const pairs = prepared.pairs;
  for (const key of keys) {
    const value = custom[key];
    if (typeof value !== "string") {
      throw new TransportError(
        "obj-hdr-invalid",
        `custom attribute ${
          JSON.stringify(key)
        } is ${typeof value}, expected a string`,
      );
    }
    pairs[prepared.pairCount++] = utf8("custom key", key);
    pairs[prepared.pairCount++] = utf8(`custom.${key}`, value);
  }
}

/**
 * Checks `header` with `size` (`-1` for unknown) and returns the length it
 * encodes to; {@linkcode writeHeader} then writes it. Nothing may come
 * between the two calls. Throws `obj-hdr-invalid` on a field that does not
 * fit its length prefix.
 *
 * @example
 * ```ts
 * import { measureHeader, writeHeader } from "./header_codec.ts";
 * const out = new Uint8Array(measureHeader({ name: "a" }, 3));
 * writeHeader(out, 0);
 * console.log(out.length); // 23
 * ```
 */
export function measureHeader(header: ObjectHeader, size: number): number {
  checkSize(size);
  prepared.pairCount = 0;
  prepared.size = size;
  const name = prepared.name = utf8("name", header.name);
  const opaque = header.opaque ?? EMPTY;
  if (!(opaque instanceof Uint8Array)) {
    throw new TransportError(
      "obj-hdr-invalid",
      `header field opaque is ${typeof opaque}, expected a Uint8Array`,
    );
  }
  prepared.opaque = opaque;
  const contentType = prepared.contentType = utf8(
    "contentType",
    header.contentType ?? "",
  );
  const checksum = header.checksum;
  const cksumType = prepared.cksumType = utf8(
    "checksum.type",
    checksum?.type ?? "",
  );
  const cksumValue = prepared.cksumValue = utf8(
    "checksum.value",
    checksum?.value ?? "",
  );
  if (header.custom !== undefined) customPairs(header.custom);
  let length = MIN_HEADER_SIZE + fieldLength(name) + opaque.length +
    fieldLength(contentType) + fieldLength(cksumType) + fieldLength(cksumValue);
  const pairs = prepared.pairs;
  for (let i = 0; i < prepared.pairCount; i++) {
    length += 2 + fieldLength(pairs[i]);
  }
  return length;
}

function putU16(out: Uint8Array, at: number, n: number): number {
  out[at] = n >>> 8;
  out[at + 1] = n & 0xff;
  return at + 2;
}

function putU32(out: Uint8Array, at: number, n: number): number {
  out[at] = n >>> 24;
  out[at + 1] = (n >>> 16) & 0xff;
  out[at + 2] = (n >>> 8) & 0xff;
  out[at + 3] = n & 0xff;
  return at + 4;
}

/** Writes a u16-length-prefixed field at `at`; returns the offset past it. */
function putField(out: Uint8Array, at: number, field: Field): number {
  const n = fieldLength(field);
  at = putU16(out, at, n);
  if (typeof field === "string") {
    for (let i = 0; i < n; i++) out[at + i] = field.charCodeAt(i);
  } else out.set(field, at);
  return at + n;
}

/**
 * Writes the header {@linkcode measureHeader} just checked into `out` at
 * `at` (which must have room for the length it returned); returns the
 * offset past it.
 *
 * @example
 * ```ts
 * import { measureHeader, writeHeader } from "./header_codec.ts";
 * const length = measureHeader({ name: "a" }, 0);
 * const out = new Uint8Array(64);
 * console.log(writeHeader(out, 0) === length); // true
 * ```
 */
export function writeHeader(out: Uint8Array, at: number): number {
  const p = prepared;
  at = putField(out, at, p.name);
  if (p.size === -1) {
    at = putU32(out, at, 0xffffffff);
    at = putU32(out, at, 0xffffffff);
  } else {
    at = putU32(out, at, Math.floor(p.size / TWO_32));
    at = putU32(out, at, p.size >>> 0);
  }
  at = putU32(out, at, p.opaque.length);
  if (p.opaque.length > 0) out.set(p.opaque, at);
  at += p.opaque.length;
  at = putField(out, at, p.contentType);
  at = putField(out, at, p.cksumType);
  at = putField(out, at, p.cksumValue);
  at = putU16(out, at, p.pairCount / 2);
  for (let i = 0; i < p.pairCount; i++) at = putField(out, at, p.pairs[i]);
  // Drop the caller's strings and bytes: the next header overwrites the rest.
  p.opaque = EMPTY;
  return at;
}

/**
 * Encodes an object header. `header.size` must be set (`-1` for unknown).
 * Throws `obj-hdr-invalid` on a field that does not fit its length prefix.
 *
 * @example
 * ```ts
 * import { encodeHeader } from "./header_codec.ts";
 * const bytes = encodeHeader({ name: "a", size: 3 });
 * console.log(bytes.length); // 23
 * ```
 */
export function encodeHeader(
  header: ObjectHeader & { size: number },
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(measureHeader(header, header.size));
  writeHeader(out, 0);
  return out;
}

/**
 * Short ASCII strings decoded in JavaScript: most names and attributes are,
 * and a decoder call per field costs more than the loop (it was the largest
 * single item of the receiver's profile for small objects).
 */
function shortAscii(bytes: Uint8Array): string | null {
  if (bytes.length > 64) return null;
  let text = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte >= 0x80) return null;
    text += String.fromCharCode(byte);
  }
  return text;
}

/** Where {@linkcode decodeHeader} is in the header's bytes. */
interface Cursor {
  bytes: Uint8Array;
  at: number;
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 8) | bytes[at + 1];
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
    bytes[at + 3]) >>> 0;
}

/**
 * Throws unless `n` bytes are left for `field` (`field` and `index` are
 * joined only then: the message costs nothing on the way that succeeds).
 */
function need(
  cursor: Cursor,
  n: number,
  field: string,
  index?: number,
  lengthOf = false,
): void {
  if (cursor.at + n <= cursor.bytes.length) return;
  throw new TransportError(
    "obj-hdr-malformed",
    `object header ends inside ${lengthOf ? "the length of " : ""}${field}${
      index ?? ""
    }: needs ${n} bytes at offset ${cursor.at}, header has ${cursor.bytes.length}`,
  );
}

/** A u16-length-prefixed UTF-8 string. */
function str16(cursor: Cursor, field: string, index?: number): string {
  need(cursor, 2, field, index, true);
  const bytes = cursor.bytes;
  const n = u16(bytes, cursor.at);
  cursor.at += 2;
  need(cursor, n, field, index);
  const slice = bytes.subarray(cursor.at, cursor.at + n);
  cursor.at += n;
  if (n === 0) return "";
  const ascii = shortAscii(slice);
  if (ascii !== null) return ascii;
  try {
    return decoder.decode(slice);
  } catch (error) {
    throw new TransportError(
      "obj-hdr-malformed",
      `object header field ${field}${index ?? ""} is not valid UTF-8`,
      { cause: error },
    );
  }
}

/**
 * Decodes an object header that fills `bytes` exactly. Throws
 * `obj-hdr-malformed` on a length that overruns, trailing bytes, invalid
 * UTF-8 or an invalid size.
 *
 * @example
 * ```ts
 * import { decodeHeader, encodeHeader } from "./header_codec.ts";
 * const header = decodeHeader(encodeHeader({ name: "a", size: 3 }));
 * console.log(header.name, header.size); // "a" 3
 * ```
 */
export function decodeHeader(bytes: Uint8Array): DecodedHeader {
  const cursor: Cursor = { bytes, at: 0 };
  const name = str16(cursor, "name");
  need(cursor, 8, "size");
  const hi = u32(bytes, cursor.at);
  const lo = u32(bytes, cursor.at + 4);
  cursor.at += 8;
  let size: number;
  if (hi === 0xffffffff && lo === 0xffffffff) size = -1;
  else {
    size = hi * TWO_32 + lo;
    if (!Number.isSafeInteger(size)) {
      throw new TransportError(
        "obj-hdr-malformed",
        `object header size 0x${hi.toString(16)}${
          lo.toString(16).padStart(8, "0")
        } is not -1 or a safe integer`,
      );
    }
  }
  need(cursor, 4, "opaque", undefined, true);
  const opaqueLength = u32(bytes, cursor.at);
  cursor.at += 4;
  need(cursor, opaqueLength, "opaque");
  // An empty opaque is shared: it has no bytes to change.
  const opaque = opaqueLength === 0
    ? EMPTY
    : bytes.slice(cursor.at, cursor.at + opaqueLength);
  cursor.at += opaqueLength;
  const contentType = str16(cursor, "contentType");
  const cksumType = str16(cursor, "checksum.type");
  const cksumValue = str16(cursor, "checksum.value");
  need(cursor, 2, "the custom attribute count");
  const count = u16(bytes, cursor.at);
  cursor.at += 2;
  const custom: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const key = str16(cursor, "custom key #", i);
    // defineProperty so that a "__proto__" key stays a plain attribute.
    Object.defineProperty(custom, key, {
      value: str16(cursor, "custom value #", i),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  const at = cursor.at;
  if (at !== bytes.length) {
    throw new TransportError(
      "obj-hdr-malformed",
      `object header has ${
        bytes.length - at
      } trailing bytes after ${at}, expected exactly ${at}`,
    );
  }
  return {
    name,
    opaque,
    size,
    contentType,
    checksum: cksumType === "" && cksumValue === ""
      ? null
      : { type: cksumType, value: cksumValue },
    custom,
  };
}
