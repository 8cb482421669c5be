/**
 * The JSON control messages of the live-resource protocol. Every message is a
 * WebSocket text frame holding one object with a `type` field; data travels in
 * binary frames (see `data_frame.ts`). `docs/protocol.md` describes the
 * exchange.
 *
 * @module
 */

import type { ResourceStatus } from "./status.ts";
import type { ErrorCode } from "./errors.ts";
import type { HeartbeatMessage } from "./heartbeat.ts";

/**
 * Largest control (text) message either end accepts, in UTF-16 units (a
 * `request-upload` with the largest name and metadata fits). Deno reads a
 * whole message before it is seen, so this bounds what is parsed and kept,
 * not what a hostile peer can make the runtime buffer (up to 64 MiB).
 *
 * @example
 * ```ts
 * import { MAX_CONTROL_MESSAGE_CHARS } from "./messages.ts";
 * const tooLong = (text: string) => text.length > MAX_CONTROL_MESSAGE_CHARS;
 * ```
 */
export const MAX_CONTROL_MESSAGE_CHARS = 256 * 1024;

/**
 * Uploader → server: create a resource and start uploading it.
 *
 * @example
 * ```ts
 * import type { RequestUploadMessage } from "./messages.ts";
 * const request: RequestUploadMessage = {
 *   type: "request-upload",
 *   name: "build.log",
 *   mimeType: "text/plain",
 * };
 * const text = JSON.stringify(request); // sent as a WebSocket text frame
 * ```
 */
export interface RequestUploadMessage {
  /** The message type. */
  type: "request-upload";
  /** A label for the resource (e.g. a file name); never used as a path. */
  name: string;
  /** MIME type; `application/octet-stream` when omitted. */
  mimeType?: string;
  /** Custom string metadata, stored and returned in every status. */
  metadata?: Record<string, string>;
  /**
   * The bytes the uploader means to send, when it knows: an upload larger
   * than the server's `--max-resource-bytes` is refused at once, before a
   * reference is handed out. Optional; the upload is not held to it.
   */
  size?: number;
}

/**
 * Uploader → server, as the first message of a new socket: continue upload
 * `id` after a lost connection. The server answers `ready-for-upload` with
 * the `offset` to continue from.
 *
 * @example
 * ```ts
 * import type { ReadyForUploadMessage, ResumeUploadMessage } from "./messages.ts";
 * const resumeOf = (ready: ReadyForUploadMessage): ResumeUploadMessage => ({
 *   type: "resume-upload", id: ready.id, token: ready.token,
 * });
 * ```
 */
export interface ResumeUploadMessage {
  /** The message type. */
  type: "resume-upload";
  /** The resource id. */
  id: string;
  /** The write token from the first `ready-for-upload`. */
  token: string;
}

/**
 * Uploader → server: no more bytes follow.
 *
 * @example
 * ```ts
 * import type { EndOfInputMessage } from "./messages.ts";
 * // End of an empty upload, with the SHA-256 of zero bytes.
 * const end: EndOfInputMessage = {
 *   type: "end-of-input",
 *   sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
 * };
 * ```
 */
export interface EndOfInputMessage {
  /** The message type. */
  type: "end-of-input";
  /** Lowercase hex SHA-256 the uploader computed; a mismatch fails the upload. */
  sha256?: string;
}

/**
 * Server → uploader: the resource exists; send bytes within `window`.
 *
 * @example
 * ```ts
 * import type { ReadyForUploadMessage } from "./messages.ts";
 * const onReady = (ready: ReadyForUploadMessage) =>
 *   console.log(`share ${ready.reference}; send from byte ${ready.offset}`);
 * ```
 */
export interface ReadyForUploadMessage {
  /** The message type. */
  type: "ready-for-upload";
  /** The resource id. */
  id: string;
  /** The download reference (a `ws:` or `wss:` URL). */
  reference: string;
  /** Bytes the uploader may send beyond the last acknowledged offset. */
  window: number;
  /** The write token: send it with `resume-upload` to continue after a lost connection. */
  token: string;
  /** Bytes the server holds: the uploader sends from here (0 for a new upload). */
  offset: number;
  /** How long the server keeps an upload whose connection was lost; 0 = not resumable. */
  resumeGraceMs: number;
  /**
   * Bytes of the window each binary frame costs beyond its payload, so that
   * a flood of tiny frames is paced like bytes are. Absent (0) from older
   * servers.
   */
  frameCost?: number;
}

/**
 * Server → uploader: bytes up to `offset` are written to the store.
 *
 * @example
 * ```ts
 * import type { AckMessage } from "./messages.ts";
 * const ack: AckMessage = { type: "ack", offset: 65_536 };
 * const unacknowledged = 100_000 - ack.offset; // of 100 000 bytes sent
 * ```
 */
export interface AckMessage {
  /** The message type. */
  type: "ack";
  /** Total bytes written so far. */
  offset: number;
}

/**
 * Server → uploader: the upload ended; the resource's final status.
 *
 * @example
 * ```ts
 * import type { FinalStatusMessage } from "./messages.ts";
 * const onFinal = (final: FinalStatusMessage) =>
 *   console.log(final.resource.status, final.resource.sha256);
 * ```
 */
export interface FinalStatusMessage {
  /** The message type. */
  type: "final-status";
  /** The resource status. */
  resource: ResourceStatus;
}

/**
 * Downloader → server: send bytes `[start, end)`, tagged with `requestId`.
 *
 * @example
 * ```ts
 * import type { ReadMessage } from "./messages.ts";
 * // The first KiB, as request 1.
 * const read: ReadMessage = { type: "read", requestId: 1, start: 0, end: 1024 };
 * ```
 */
export interface ReadMessage {
  /** The message type. */
  type: "read";
  /** Client-chosen tag, an integer in `[0, 2^32)`, unique among its reads in flight. */
  requestId: number;
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive; at most the checkpointed size. */
  end: number;
  /** Bytes the server may send before it needs more credit; server default when omitted. */
  window?: number;
}

/**
 * Downloader → server: send bytes from `start` on as they are checkpointed,
 * until the resource is `COMPLETED` (then `read-end`) or `FAILED` (then an
 * `error` with code `resource-failed`).
 *
 * @example
 * ```ts
 * import type { FollowMessage } from "./messages.ts";
 * // Everything from byte 0 on, as it is checkpointed, with 1 MiB of credit.
 * const follow: FollowMessage = { type: "follow", requestId: 2, start: 0, window: 1 << 20 };
 * ```
 */
export interface FollowMessage {
  /** The message type. */
  type: "follow";
  /** Client-chosen tag, an integer in `[0, 2^32)`, unique among its requests in flight. */
  requestId: number;
  /** First byte, inclusive; may lie past the current size of a live resource. */
  start: number;
  /** Bytes the server may send before it needs more credit; server default when omitted. */
  window?: number;
}

/**
 * Downloader → server: the reader consumed `bytes` more of request `requestId`.
 *
 * @example
 * ```ts
 * import type { CreditMessage } from "./messages.ts";
 * // The reader of request 1 consumed another 64 KiB.
 * const credit: CreditMessage = { type: "credit", requestId: 1, bytes: 65_536 };
 * ```
 */
export interface CreditMessage {
  /** The message type. */
  type: "credit";
  /** The read request this message is about. */
  requestId: number;
  /** Bytes the reader consumed since its last credit. */
  bytes: number;
}

/**
 * Downloader → server: stop sending request `requestId`.
 *
 * @example
 * ```ts
 * import type { CancelMessage } from "./messages.ts";
 * const cancel: CancelMessage = { type: "cancel", requestId: 2 };
 * ```
 */
export interface CancelMessage {
  /** The message type. */
  type: "cancel";
  /** The read request this message is about. */
  requestId: number;
}

/**
 * Server → downloader: the latest status, sent on connect and on every change.
 *
 * @example
 * ```ts
 * import type { StatusMessage } from "./messages.ts";
 * const onStatus = (message: StatusMessage) =>
 *   console.log(message.resource.status, message.resource.size);
 * ```
 */
export interface StatusMessage {
  /** The message type. */
  type: "status";
  /** The resource status. */
  resource: ResourceStatus;
}

/**
 * Server → downloader: request `requestId` is complete after `bytes` bytes.
 *
 * @example
 * ```ts
 * import type { ReadEndMessage } from "./messages.ts";
 * const onReadEnd = (end: ReadEndMessage) =>
 *   console.log(`request ${end.requestId} done after ${end.bytes} bytes`);
 * ```
 */
export interface ReadEndMessage {
  /** The message type. */
  type: "read-end";
  /** The read request this message is about. */
  requestId: number;
  /** Bytes sent for the request. */
  bytes: number;
}

/**
 * Either direction: a request failed; the connection stays usable unless closed.
 *
 * @example
 * ```ts
 * import type { ErrorMessage } from "./messages.ts";
 * const error: ErrorMessage = {
 *   type: "error",
 *   code: "invalid-range",
 *   message: "start 10 is past end 4",
 *   requestId: 1,
 * };
 * ```
 */
export interface ErrorMessage {
  /** The message type. */
  type: "error";
  /** Machine-readable error code. */
  code: ErrorCode;
  /** What was wrong and what was expected. */
  message: string;
  /** The read request the error belongs to, if any. */
  requestId?: number;
}

/**
 * Messages an uploader sends.
 *
 * @example
 * ```ts
 * import type { UploadClientMessage } from "./messages.ts";
 * const messages: UploadClientMessage[] = [
 *   { type: "request-upload", name: "build.log" },
 *   { type: "end-of-input" },
 * ];
 * ```
 */
export type UploadClientMessage =
  | RequestUploadMessage
  | ResumeUploadMessage
  | EndOfInputMessage
  | HeartbeatMessage;
/**
 * Messages the server sends on an upload socket.
 *
 * @example
 * ```ts
 * import type { UploadServerMessage } from "./messages.ts";
 * const describe = (message: UploadServerMessage): string =>
 *   message.type === "ack" ? `${message.offset} bytes written` : message.type;
 * ```
 */
export type UploadServerMessage =
  | ReadyForUploadMessage
  | AckMessage
  | FinalStatusMessage
  | ErrorMessage
  | HeartbeatMessage;
/**
 * Messages a downloader sends.
 *
 * @example
 * ```ts
 * import type { DownloadClientMessage } from "./messages.ts";
 * const messages: DownloadClientMessage[] = [
 *   { type: "read", requestId: 1, start: 0, end: 4 },
 *   { type: "cancel", requestId: 1 },
 * ];
 * ```
 */
export type DownloadClientMessage =
  | ReadMessage
  | FollowMessage
  | CreditMessage
  | CancelMessage
  | HeartbeatMessage;
/**
 * Messages the server sends on a download socket.
 *
 * @example
 * ```ts
 * import type { DownloadServerMessage } from "./messages.ts";
 * const describe = (message: DownloadServerMessage): string =>
 *   message.type === "status" ? message.resource.status : message.type;
 * ```
 */
export type DownloadServerMessage =
  | StatusMessage
  | ReadEndMessage
  | ErrorMessage
  | HeartbeatMessage;
