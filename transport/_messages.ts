/**
 * Messages between a main-thread `Stream` and its send-loop worker.
 * Internal: not part of the public API.
 *
 * @module
 */

import type { TransportErrorCode } from "./errors.ts";
import type { TransportCompression } from "./types.ts";

/** Starts the send loop. */
export interface InitMessage {
  t: "init";
  url: string;
  sessionId: string;
  idleTimeoutMs: number;
  compression: TransportCompression;
  sizePdu: number;
  headers: Record<string, string>;
  secret?: string;
  caCerts?: string[];
}

/** How an object's body crossed into the worker. */
export type WireBody =
  | null
  /** A slice of the batch's packed buffer. */
  | { k: "packed"; off: number; len: number }
  /** Its own (transferred) buffer. */
  | { k: "buffer"; bytes: Uint8Array }
  /** A transferred stream. */
  | { k: "stream"; stream: ReadableStream<Uint8Array> }
  /** A file the worker opens. */
  | { k: "file"; path: string }
  /** A slot of the shared copy ring. */
  | { k: "ring"; off: number; len: number }
  /** The caller's own shared memory, read in place until the completion. */
  | { k: "shared"; bytes: Uint8Array };

/** One object of a batch. */
export interface WireObject {
  seq: number;
  size: number;
  /** Offset and length of its encoded header in the packed buffer. */
  hdrOff: number;
  hdrLen: number;
  body: WireBody;
}

/** A batch of objects, headers (and small bodies) packed in one buffer. */
export interface ObjectsMessage {
  t: "objs";
  packed: Uint8Array;
  objs: WireObject[];
}

/** Main → worker control. */
export type ControlMessage =
  | { t: "ring"; buffer: SharedArrayBuffer }
  | { t: "fin" }
  | { t: "abort"; reason: string }
  | { t: "close" };

/** Every message the main thread sends. */
export type ToWorker = InitMessage | ObjectsMessage | ControlMessage;

/** An error crossing the thread boundary. */
export interface WireError {
  code: TransportErrorCode;
  message: string;
  remoteCode?: string;
}

/** Counters the worker keeps. */
export interface WorkerStats {
  objects: number;
  bytes: number;
  offset: number;
  failed: number;
  requests: number;
  idleMs: number;
  totalMs: number;
}

/** Statistics before anything was sent. */
export function zeroStats(): WorkerStats {
  return {
    objects: 0,
    bytes: 0,
    offset: 0,
    failed: 0,
    requests: 0,
    idleMs: 0,
    totalMs: 0,
  };
}

/** Objects up to `through` completed; those in `errors` failed. */
export interface CompletionsMessage {
  t: "cmpl";
  through: number;
  errors: [seq: number, error: WireError][];
  stats: WorkerStats;
}

/**
 * The send loop ended with `error` (`null`: cleanly); every object after the
 * last completion fails with `rest` (the root error, or `stream_terminated`
 * naming it when one object's failure ended the stream).
 */
export interface EndMessage {
  t: "end";
  error: WireError | null;
  rest: WireError | null;
  stats: WorkerStats;
}

/** Every message the worker sends. */
export type FromWorker = CompletionsMessage | EndMessage | { t: "closed" };
