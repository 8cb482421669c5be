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
  UploadClientMessage,
  UploadServerMessage,
} from "./messages.ts";

/** Largest offset we accept: JavaScript numbers are exact up to 2^53. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
const MAX_REQUEST_ID = 0xffff_ffff;
const MAX_NAME_LENGTH = 1024;
const MAX_METADATA_BYTES = 64 * 1024;
const MIME_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

type Json = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
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
      if (
        typeof name !== "string" || name.length === 0 ||
        name.length > MAX_NAME_LENGTH
      ) {
        throw invalid(
          "name",
          name,
          `a non-empty string of at most ${MAX_NAME_LENGTH} characters`,
        );
      }
      if (
        mimeType !== undefined &&
        (typeof mimeType !== "string" || !MIME_TYPE.test(mimeType))
      ) {
        throw invalid("mimeType", mimeType, "a MIME type such as 'text/plain'");
      }
      return {
        type: "request-upload",
        name,
        mimeType: (mimeType as string | undefined) ??
          "application/octet-stream",
        metadata: metadata(message.metadata),
      };
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
