/**
 * Parsing and validation of incoming control messages. Each failure is a
 * {@linkcode SpoolError} naming the field, the value and what was expected.
 *
 * @module
 */

import { SpoolError } from "./errors.ts";
import type {
  DownloadClientMessage,
  DownloadServerMessage,
  RequestUploadMessage,
  UploadClientMessage,
  UploadServerMessage,
} from "./messages.ts";

/** Largest offset we accept: JavaScript numbers are exact up to 2^53. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
const MAX_REQUEST_ID = 0xffff_ffff;
const MAX_METADATA_BYTES = 64 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Longest resource name accepted, in UTF-16 code units (at most 3 KiB of
 * UTF-8).
 *
 * @example
 * ```ts
 * import { MAX_NAME_LENGTH } from "./validate.ts";
 * const fits = (name: string) => name.length <= MAX_NAME_LENGTH;
 * ```
 */
export const MAX_NAME_LENGTH = 1024;

/**
 * Longest MIME type accepted, in characters (all ASCII). It becomes the
 * `Content-Type` of every HTTP answer carrying the resource's bytes.
 *
 * @example
 * ```ts
 * import { MAX_MIME_TYPE_LENGTH } from "./validate.ts";
 * console.log("text/plain".length <= MAX_MIME_TYPE_LENGTH); // true
 * ```
 */
export const MAX_MIME_TYPE_LENGTH = 255;

// RFC 9110 §5.6.2 token and §5.6.4 quoted-string, ASCII only (no obs-text).
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED_STRING = '"(?:[\\t !#-\\[\\]-~]|\\\\[\\t -~])*"';
/** RFC 9110 §8.3.1 `media-type`: `type/subtype *( OWS ";" OWS [ parameter ] )`. */
const MEDIA_TYPE = new RegExp(
  `^${TOKEN}/${TOKEN}(?:[ \\t]*;[ \\t]*(?:${TOKEN}=(?:${TOKEN}|${QUOTED_STRING}))?)*$`,
);
const MIME_EXPECTED =
  "a MIME type 'type/subtype' with optional '; name=value' parameters (RFC 9110 media-type: tokens, values as tokens or quoted strings), e.g. 'text/plain; charset=utf-8'";

type Json = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  // A string is clipped before it is quoted: it may be megabytes long.
  const text = JSON.stringify(
    typeof value === "string" ? value.slice(0, 60) : value,
  ) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function invalid(field: string, value: unknown, expected: string): SpoolError {
  return new SpoolError(
    "invalid-field",
    `field '${field}' is ${describe(value)}; expected ${expected}`,
  );
}

function parseObject(text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SpoolError(
      "malformed-message",
      `message is not valid JSON (${
        (error as Error).message
      }); expected one JSON object per text frame`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SpoolError(
      "malformed-message",
      `message is ${
        describe(value)
      }; expected a JSON object with a 'type' field`,
    );
  }
  if (typeof (value as Json).type !== "string") {
    throw new SpoolError(
      "malformed-message",
      `field 'type' is ${describe((value as Json).type)}; expected a string`,
    );
  }
  return value as Json;
}

function unknownType(type: unknown, allowed: readonly string[]): SpoolError {
  return new SpoolError(
    "unknown-type",
    `unknown message type ${describe(type)}; expected one of ${
      allowed.join(", ")
    }`,
  );
}

function offset(message: Json, field: string): number {
  const value = message[field];
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > MAX_OFFSET
  ) {
    throw invalid(field, value, "an integer offset >= 0");
  }
  return value;
}

function positive(message: Json, field: string): number {
  const value = message[field];
  if (
    typeof value !== "number" || !Number.isInteger(value) || value <= 0 ||
    value > MAX_OFFSET
  ) {
    throw invalid(field, value, "an integer > 0");
  }
  return value;
}

function requestId(message: Json): number {
  const value = message.requestId;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > MAX_REQUEST_ID
  ) {
    throw invalid("requestId", value, "an integer in [0, 4294967295]");
  }
  return value;
}

/**
 * Returns the `requestId` of a message if it has a valid one, so that an error
 * about the rest of the message can still name the request.
 *
 * @example
 * ```ts
 * import { peekRequestId } from "./validate.ts";
 * peekRequestId('{"type":"read","requestId":3}'); // 3
 * ```
 */
export function peekRequestId(text: string): number | undefined {
  try {
    const id = (JSON.parse(text) as Json | null)?.requestId;
    return typeof id === "number" && Number.isInteger(id) && id >= 0 &&
        id <= MAX_REQUEST_ID
      ? id
      : undefined;
  } catch {
    // Not JSON: the caller reports that error; there is no id to name.
    return undefined;
  }
}

/** `U+0001`: how a character is named in messages. */
function codePoint(char: string): string {
  return `U+${
    char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
  }`;
}

/** What is expected of a MIME type that is not valid, or `undefined` if it is. */
function mimeTypeProblem(value: unknown): string | undefined {
  if (typeof value !== "string") {
    return "a MIME type string such as 'text/plain; charset=utf-8'";
  }
  if (value.length > MAX_MIME_TYPE_LENGTH) {
    return `a MIME type of at most ${MAX_MIME_TYPE_LENGTH} characters (it has ${value.length})`;
  }
  const bad = /[^\t\x20-\x7e]/.exec(value);
  if (bad) {
    return `a MIME type of printable ASCII (${
      codePoint(bad[0])
    } at index ${bad.index} is not)`;
  }
  return MEDIA_TYPE.test(value) ? undefined : MIME_EXPECTED;
}

/** What is expected of a name that is not valid, or `undefined` if it is. */
function nameProblem(value: unknown): string | undefined {
  if (
    typeof value !== "string" || value.length === 0 ||
    value.length > MAX_NAME_LENGTH
  ) {
    return `a non-empty string of at most ${MAX_NAME_LENGTH} characters`;
  }
  const lone =
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
      .exec(value);
  if (lone) {
    return `well-formed Unicode (a lone surrogate ${
      codePoint(lone[0])
    } at index ${lone.index} is not)`;
  }
  return undefined;
}

/**
 * Tells whether `value` is a MIME type the server accepts: an RFC 9110
 * `media-type` (`type/subtype`, optional `; name=value` parameters whose
 * values are tokens or quoted strings) of printable ASCII, at most
 * {@linkcode MAX_MIME_TYPE_LENGTH} characters. Such a value is always a valid
 * HTTP header value.
 *
 * @example
 * ```ts
 * import { isMimeType } from "./validate.ts";
 * isMimeType('text/plain; charset="utf-8"'); // true
 * isMimeType("text/plain; x=\u0001"); // false: a control character
 * ```
 */
export function isMimeType(value: unknown): value is string {
  return mimeTypeProblem(value) === undefined;
}

/**
 * Tells whether `value` is a resource name the server accepts: a non-empty
 * string of at most {@linkcode MAX_NAME_LENGTH} UTF-16 code units of
 * well-formed Unicode (no lone surrogates).
 *
 * @example
 * ```ts
 * import { isResourceName } from "./validate.ts";
 * isResourceName("build.log"); // true
 * isResourceName("a\ud800b"); // false: a lone surrogate
 * ```
 */
export function isResourceName(value: unknown): value is string {
  return nameProblem(value) === undefined;
}

/**
 * Tells whether `value` is valid upload metadata: an object of string
 * values of at most 64 KiB of JSON.
 *
 * @example
 * ```ts
 * import { isMetadata } from "./validate.ts";
 * isMetadata({ job: "42" }); // true
 * isMetadata({ job: 42 }); // false
 * ```
 */
export function isMetadata(value: unknown): value is Record<string, string> {
  try {
    metadata(value);
    return value !== undefined;
  } catch (error) {
    // The thrown error says why; this only answers yes or no.
    if (error instanceof SpoolError) return false;
    throw error;
  }
}

function metadata(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("metadata", value, "an object of string values");
  }
  const result: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== "string") {
      throw invalid(`metadata.${key}`, entry, "a string");
    }
    result[key] = entry;
  }
  // Bytes, not UTF-16 units: "漢" is one unit but three bytes of JSON.
  if (
    new TextEncoder().encode(JSON.stringify(result)).length >
      MAX_METADATA_BYTES
  ) {
    throw invalid(
      "metadata",
      "(too large)",
      `at most ${MAX_METADATA_BYTES} bytes of JSON`,
    );
  }
  return result;
}

const UPLOAD_CLIENT_TYPES = [
  "request-upload",
  "resume-upload",
  "end-of-input",
  "heartbeat",
] as const;

/**
 * Parses a message an uploader sent.
 *
 * @example
 * ```ts
 * import { parseUploadClientMessage } from "./validate.ts";
 * const message = parseUploadClientMessage('{"type":"end-of-input"}');
 * console.log(message.type); // "end-of-input"
 * ```
 */
export function parseUploadClientMessage(text: string): UploadClientMessage {
  const message = parseObject(text);
  switch (message.type) {
    case "request-upload": {
      const { name, mimeType } = message;
      const badName = nameProblem(name);
      if (badName !== undefined) throw invalid("name", name, badName);
      const badMime = mimeType === undefined
        ? undefined
        : mimeTypeProblem(mimeType);
      if (badMime !== undefined) throw invalid("mimeType", mimeType, badMime);
      const request: RequestUploadMessage = {
        type: "request-upload",
        name: name as string,
        mimeType: (mimeType as string | undefined) ??
          "application/octet-stream",
        metadata: metadata(message.metadata),
      };
      if (message.size !== undefined) request.size = offset(message, "size");
      return request;
    }
    case "resume-upload": {
      const { id, token } = message;
      if (typeof id !== "string" || id.length === 0 || id.length > 64) {
        throw invalid("id", id, "the id of the upload to resume");
      }
      if (
        typeof token !== "string" || token.length === 0 || token.length > 64
      ) {
        throw invalid(
          "token",
          token,
          "the write token of its ready-for-upload",
        );
      }
      return { type: "resume-upload", id, token };
    }
    case "end-of-input": {
      const { sha256 } = message;
      if (
        sha256 !== undefined &&
        (typeof sha256 !== "string" || !SHA256_HEX.test(sha256))
      ) {
        throw invalid("sha256", sha256, "64 lowercase hex digits");
      }
      return sha256 === undefined
        ? { type: "end-of-input" }
        : { type: "end-of-input", sha256 };
    }
    case "heartbeat":
      return { type: "heartbeat" };
    default:
      throw unknownType(message.type, UPLOAD_CLIENT_TYPES);
  }
}

const DOWNLOAD_CLIENT_TYPES = [
  "read",
  "follow",
  "credit",
  "cancel",
  "heartbeat",
] as const;

/**
 * Parses a message a downloader sent. Checks the shape of ranges
 * (`start <= end`); whether `end` is within the size is the server's check.
 *
 * @example
 * ```ts
 * import { parseDownloadClientMessage } from "./validate.ts";
 * parseDownloadClientMessage('{"type":"read","requestId":1,"start":0,"end":10}');
 * ```
 */
export function parseDownloadClientMessage(
  text: string,
): DownloadClientMessage {
  const message = parseObject(text);
  switch (message.type) {
    case "read": {
      const id = requestId(message);
      const start = offset(message, "start");
      const end = offset(message, "end");
      if (start > end) {
        throw new SpoolError(
          "invalid-range",
          `range [${start}, ${end}) has start > end; expected start <= end`,
          { requestId: id },
        );
      }
      const read: DownloadClientMessage = {
        type: "read",
        requestId: id,
        start,
        end,
      };
      if (message.window !== undefined) {
        read.window = positive(message, "window");
      }
      return read;
    }
    case "follow": {
      const follow: DownloadClientMessage = {
        type: "follow",
        requestId: requestId(message),
        start: offset(message, "start"),
      };
      if (message.window !== undefined) {
        follow.window = positive(message, "window");
      }
      return follow;
    }
    case "credit":
      return {
        type: "credit",
        requestId: requestId(message),
        bytes: positive(message, "bytes"),
      };
    case "cancel":
      return { type: "cancel", requestId: requestId(message) };
    case "heartbeat":
      return { type: "heartbeat" };
    default:
      throw unknownType(message.type, DOWNLOAD_CLIENT_TYPES);
  }
}

/**
 * Parses a message from the server on an upload socket. The server is
 * trusted more than clients, so only the `type` is checked.
 *
 * @example
 * ```ts
 * import { parseUploadServerMessage } from "./validate.ts";
 * parseUploadServerMessage('{"type":"ack","offset":5}');
 * ```
 */
export function parseUploadServerMessage(text: string): UploadServerMessage {
  const message = parseObject(text);
  const types = [
    "ready-for-upload",
    "ack",
    "final-status",
    "error",
    "heartbeat",
  ];
  if (!types.includes(message.type as string)) {
    throw unknownType(message.type, types);
  }
  return message as unknown as UploadServerMessage;
}

/**
 * Parses a message from the server on a download socket.
 *
 * @example
 * ```ts
 * import { parseDownloadServerMessage } from "./validate.ts";
 * parseDownloadServerMessage('{"type":"read-end","requestId":1,"bytes":5}');
 * ```
 */
export function parseDownloadServerMessage(
  text: string,
): DownloadServerMessage {
  const message = parseObject(text);
  const types = ["status", "read-end", "error", "heartbeat"];
  if (!types.includes(message.type as string)) {
    throw unknownType(message.type, types);
  }
  return message as unknown as DownloadServerMessage;
}
