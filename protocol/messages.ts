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

/** Uploader → server: create a resource and start uploading it. */
export interface RequestUploadMessage {
  /** The message type. */
  type: "request-upload";
  /** A label for the resource (e.g. a file name); never used as a path. */
  name: string;
  /** MIME type; `application/octet-stream` when omitted. */
  mimeType?: string;
  /** Custom string metadata, stored and returned in every status. */
  metadata?: Record<string, string>;
}

/**
 * Uploader → server, as the first message of a new socket: continue upload
 * `id` after a lost connection. The server answers `ready-for-upload` with
 * the `offset` to continue from.
 */
export interface ResumeUploadMessage {
  /** The message type. */
  type: "resume-upload";
  /** The resource id. */
  id: string;
  /** The write token from the first `ready-for-upload`. */
  token: string;
}

/** Uploader → server: no more bytes follow. */
export interface EndOfInputMessage {
  /** The message type. */
  type: "end-of-input";
  /** Lowercase hex SHA-256 the uploader computed; a mismatch fails the upload. */
  sha256?: string;
}

/** Server → uploader: the resource exists; send bytes within `window`. */
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
}

/** Server → uploader: bytes up to `offset` are written to the store. */
export interface AckMessage {
  /** The message type. */
  type: "ack";
  /** Total bytes written so far. */
  offset: number;
}

/** Server → uploader: the upload ended; the resource's final status. */
export interface FinalStatusMessage {
  /** The message type. */
  type: "final-status";
  /** The resource status. */
  resource: ResourceStatus;
}

/** Downloader → server: send bytes `[start, end)`, tagged with `requestId`. */
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

/** Downloader → server: the reader consumed `bytes` more of request `requestId`. */
export interface CreditMessage {
  /** The message type. */
  type: "credit";
  /** The read request this message is about. */
  requestId: number;
  /** Bytes the reader consumed since its last credit. */
  bytes: number;
}

/** Downloader → server: stop sending request `requestId`. */
export interface CancelMessage {
  /** The message type. */
  type: "cancel";
  /** The read request this message is about. */
  requestId: number;
}

/** Server → downloader: the latest status, sent on connect and on every change. */
export interface StatusMessage {
  /** The message type. */
  type: "status";
  /** The resource status. */
  resource: ResourceStatus;
}

/** Server → downloader: request `requestId` is complete after `bytes` bytes. */
export interface ReadEndMessage {
  /** The message type. */
  type: "read-end";
  /** The read request this message is about. */
  requestId: number;
  /** Bytes sent for the request. */
  bytes: number;
}

/** Either direction: a request failed; the connection stays usable unless closed. */
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

/** Messages an uploader sends. */
export type UploadClientMessage =
  | RequestUploadMessage
  | ResumeUploadMessage
  | EndOfInputMessage;
/** Messages the server sends on an upload socket. */
export type UploadServerMessage =
  | ReadyForUploadMessage
  | AckMessage
  | FinalStatusMessage
  | ErrorMessage;
/** Messages a downloader sends. */
export type DownloadClientMessage =
  | ReadMessage
  | FollowMessage
  | CreditMessage
  | CancelMessage;
/** Messages the server sends on a download socket. */
export type DownloadServerMessage =
  | StatusMessage
  | ReadEndMessage
  | ErrorMessage;
