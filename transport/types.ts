/**
 * Public types of the object transport: object headers, bodies, options and
 * callbacks.
 *
 * @module
 */

import type { TransportError } from "./errors.ts";

/**
 * The header of an object, as given to `Stream.send`.
 *
 * `size` is the body length in bytes: `0` with no body means header-only,
 * `-1` means unknown (the body goes as length-prefixed PDUs). When omitted it
 * is taken from a `Uint8Array` body, `0` with no body, and `-1` for stream and
 * file bodies.
 *
 * @example
 * ```ts
 * import type { ObjectHeader } from "./types.ts";
 * const header: ObjectHeader = {
 *   name: "logs/app.txt",
 *   contentType: "text/plain",
 *   custom: { host: "node-1" },
 * };
 * ```
 */
export interface ObjectHeader {
  /** Object name (UTF-8, at most 65535 bytes). */
  name: string;
  /** Opaque application bytes, carried as is. */
  opaque?: Uint8Array;
  /** Body size in bytes, or `-1` for unknown. */
  size?: number;
  /** MIME type of the body. */
  contentType?: string;
  /** Checksum of the body. */
  checksum?: {
    /** Algorithm name, e.g. `"sha256"`. */
    type: string;
    /** The value, e.g. lowercase hex. */
    value: string;
  };
  /** Custom string attributes. */
  custom?: Record<string, string>;
}

/**
 * A header handed to a receive handler.
 *
 * @example
 * ```ts
 * import type { ReceivedHeader } from "./types.ts";
 * // Unique per object: its sender's session and its place in that session.
 * const objectKey = (header: ReceivedHeader) => `${header.sessionId}/${header.seq}`;
 * ```
 */
export interface ReceivedHeader {
  /** Object name. */
  name: string;
  /** Opaque bytes (empty if none were sent). */
  opaque: Uint8Array;
  /**
   * Body size, or `-1` while unknown; for unknown-size objects the receiver
   * sets the final size once the last PDU arrived (before the body ends).
   */
  size: number;
  /** MIME type, `""` if none. */
  contentType: string;
  /** Checksum, `null` if none. */
  checksum: NonNullable<ObjectHeader["checksum"]> | null;
  /** Custom attributes (`{}` if none). */
  custom: Record<string, string>;
  /** The sender's session id (the `Spool-Session-Id` request header). */
  sessionId: string;
  /** The object's sequence number within its session. */
  seq: number;
}

/**
 * A checksum of a body: an algorithm and its value.
 *
 * @example
 * ```ts
 * import type { Checksum, ObjectHeader } from "./types.ts";
 * const checksum: Checksum = {
 *   type: "sha256",
 *   value: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
 * };
 * const header: ObjectHeader = { name: "empty.bin", size: 0, checksum };
 * ```
 */
export type Checksum = NonNullable<ObjectHeader["checksum"]>;

/**
 * An object header as decoded from the wire: every field is present (a
 * {@linkcode ReceivedHeader} without its session and sequence number).
 *
 * @example
 * ```ts
 * import type { DecodedHeader } from "./types.ts";
 * const describe = (header: DecodedHeader) =>
 *   header.size === -1 ? `${header.name} (size unknown)` : `${header.name} (${header.size} bytes)`;
 * ```
 */
export type DecodedHeader = Omit<ReceivedHeader, "sessionId" | "seq">;

/**
 * An object body: bytes, a byte stream, a file path, or nothing
 * (header-only).
 *
 * @example
 * ```ts
 * import type { ObjectBody } from "./types.ts";
 * const bodies: ObjectBody[] = [
 *   new Uint8Array(8), // known size
 *   ReadableStream.from([new Uint8Array(4)]), // unknown size: sent as PDUs
 *   { path: "./archive.tar" }, // a file the send loop opens
 *   null, // header-only
 * ];
 * ```
 */
export type ObjectBody =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | {
    /** Path of a file the send loop opens and streams itself. */
    path: string;
  }
  | null
  | undefined;

/**
 * A file the send loop opens and streams itself.
 *
 * @example
 * ```ts
 * import type { FileBody } from "./types.ts";
 * import type { Stream } from "./stream.ts";
 * const sendFile = (stream: Stream, path: string) =>
 *   stream.send({ name: path }, { path } satisfies FileBody);
 * ```
 */
export type FileBody = Extract<ObjectBody, { path: string }>;

/**
 * Called once per object when it has been handed to the connection
 * (`error` undefined) or has failed.
 *
 * @example
 * ```ts
 * import type { SentCallback } from "./types.ts";
 * const onSent: SentCallback = (header, error) => {
 *   if (error) console.error(`${header.name}: ${error.code}`);
 * };
 * ```
 */
export type SentCallback = (
  header: ObjectHeader,
  error?: TransportError,
) => void;

/**
 * Options of a `Stream`.
 *
 * @example
 * ```ts
 * import type { StreamOptions } from "./types.ts";
 * const options: StreamOptions = {
 *   burst: 64,
 *   idleTimeoutMs: 1000,
 *   compression: "gzip",
 *   headers: { "x-tenant": "demo" },
 * };
 * ```
 */
export interface StreamOptions {
  /** Most objects queued but not completed before `send` waits (default 256). */
  burst?: number;
  /** Most known body bytes queued but not completed before `send` waits (default 64 MiB). */
  maxInFlightBytes?: number;
  /** End the HTTP request after this long with nothing to send (default 4000 ms). */
  idleTimeoutMs?: number;
  /** Aborts the stream (as `abort(signal.reason)`). */
  signal?: AbortSignal;
  /** Stream-wide completion callback. */
  onSent?: SentCallback;
  /** Compress the request body (default `"none"`). */
  compression?: "none" | "gzip" | "deflate" | "deflate-raw";
  /** Payload bytes per PDU of unknown-size objects (default 64 KiB, at most 1 MiB). */
  sizePdu?: number;
  /** Largest encoded object header accepted by `send` (default 64 KiB). */
  maxHeaderSize?: number;
  /** Extra HTTP request headers. */
  headers?: Record<string, string>;
  /**
   * Shared secret of the receiver: every request is signed with it
   * (`Spool-Auth`, HMAC-SHA256 over session id, path, time and a nonce).
   */
  secret?: string;
  /** PEM CA certificates to trust for `https:` receivers. */
  caCerts?: string[];
  /**
   * Complete an object only once the receiver confirmed it: its handler
   * took it whole and settled without error (default `false`: once every
   * byte of it was written to the socket). The request asks for
   * confirmations (`Spool-Ack: 1`); a receiver that does not stream them
   * confirms a request's objects with its final answer, at idle teardown or
   * `fin`. Objects not yet confirmed count against `burst` and
   * `maxInFlightBytes`, so those bound how far the receiver may lag.
   */
  confirm?: boolean;
  /**
   * Called with fresh statistics as the send loop reports them: with every
   * batch of completions, and at most every 100 ms while it writes a body
   * (so `sent` moves inside a large object).
   */
  onProgress?: (stats: StreamStats) => void;
}

/**
 * Per-object options of `Stream.send`.
 *
 * @example
 * ```ts
 * import type { SendOptions } from "./types.ts";
 * const options: SendOptions = {
 *   copy: true, // keep the caller's buffer usable
 *   onSent: (header, error) => console.log(header.name, error?.code ?? "sent"),
 * };
 * ```
 */
export interface SendOptions {
  /** Completion callback for this object; overrides the stream's `onSent`. */
  onSent?: SentCallback;
  /**
   * Copy a large `Uint8Array` body instead of moving its buffer to the worker
   * (default `false`: a body over 64 KiB that spans its whole `ArrayBuffer`
   * is transferred and the caller's buffer is detached). A view of a
   * `SharedArrayBuffer` is neither copied nor moved: the send loop reads it
   * in place, so leave those bytes alone until the object's `onSent`.
   */
  copy?: boolean;
}

/**
 * Send-side statistics of a `Stream`.
 *
 * @example
 * ```ts
 * import type { StreamStats } from "./types.ts";
 * const bytesPerSecond = (stats: StreamStats) => stats.bytes / (stats.totalMs / 1000);
 * ```
 */
export interface StreamStats {
  /** Objects completed without error. */
  objects: number;
  /** Body bytes of those objects. */
  bytes: number;
  /** Bytes written to the wire (frames included, before compression). */
  offset: number;
  /**
   * Body bytes the send loop has written so far, of objects not yet
   * completed too (a large body counts as it goes, not at its end).
   */
  sent: number;
  /** Objects completed with an error. */
  failed: number;
  /** HTTP requests opened (the first one plus reconnects after idle teardown). */
  requests: number;
  /** Time the send loop had nothing to send, in ms. */
  idleMs: number;
  /** Time since the send loop started, in ms. */
  totalMs: number;
  /** `idleMs / totalMs` in percent. */
  idlePct: number;
}

/**
 * Receive handler: called once per object, in order, or once with an error.
 *
 * `body` is a byte stream that moves only when the handler reads. For large
 * bodies read it with a BYOB reader (`body.getReader({ mode: "byob" })`):
 * the receiver reads the request straight into your buffer, with no copy
 * and no allocation per read (64 KiB buffers suit `Deno.serve` best). A
 * small body that arrived whole is queued before the handler is called, so
 * a default reader (or `new Response(body).bytes()`) takes it in one read.
 *
 * @example
 * ```ts
 * import type { ReceiveHandler } from "./types.ts";
 * const handler: ReceiveHandler = async (header, body, error) => {
 *   if (error) return console.error(error.code, error.message);
 *   console.log(header.name, body ? (await new Response(body).bytes()).length : 0);
 * };
 * ```
 *
 * With `register(network, trname, handler, { wholeBodies: n })` (a
 * `ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>>`), a body of
 * known size up to `n` bytes arrives as one `Uint8Array` instead (the
 * handler's own copy, called once all of it is here; the fastest path for
 * small objects), bigger and unknown-size ones as a stream. A body that
 * fails before all its bytes arrived never reaches such a handler: it gets
 * only the error call, with the object's header.
 *
 * @example Small bodies as bytes
 * ```ts
 * import type { ReceiveHandler } from "./types.ts";
 * const handler: ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>> =
 *   async (header, body, error) => {
 *     if (error) return console.error(error.code, error.message);
 *     const bytes = body instanceof ReadableStream
 *       ? await new Response(body).bytes()
 *       : body;
 *     console.log(header.name, bytes?.length ?? 0);
 *   };
 * ```
 *
 * @example Reading into one reused buffer
 * ```ts
 * import type { ReceiveHandler } from "./types.ts";
 * const handler: ReceiveHandler = async (header, body) => {
 *   if (body === null) return;
 *   const reader = body.getReader({ mode: "byob" });
 *   let buffer = new Uint8Array(64 * 1024);
 *   let total = 0;
 *   for (;;) {
 *     const { value, done } = await reader.read(buffer);
 *     if (done) break;
 *     total += value.byteLength; // use the bytes before the next read
 *     buffer = new Uint8Array(value.buffer);
 *   }
 *   console.log(header.name, total);
 * };
 * ```
 */
export type ReceiveHandler<
  Body extends Uint8Array | ReadableStream<Uint8Array> = ReadableStream<
    Uint8Array
  >,
> = (
  header: ReceivedHeader,
  body: Body | null,
  error?: TransportError,
) => void | Promise<void>;

/**
 * Body compression formats (whole request body, via `CompressionStream`).
 *
 * @example
 * ```ts
 * import type { StreamOptions, TransportCompression } from "./types.ts";
 * const compression: TransportCompression = "gzip";
 * const options: StreamOptions = { compression };
 * ```
 */
export type TransportCompression = NonNullable<StreamOptions["compression"]>;
