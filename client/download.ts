/**
 * The download client: the latest status on connect and every update, range
 * reads as Web streams (several may be in flight on one socket), and a
 * follower that reads a resource to its end while it grows.
 *
 * @module
 */

import { ResourceFailedError, SpoolError } from "../protocol/errors.ts";
import type {
  DownloadServerMessage,
  ErrorMessage,
  FollowMessage,
  ReadMessage,
} from "../protocol/messages.ts";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import { decodeDataFrame } from "../protocol/data_frame.ts";
import { parseDownloadServerMessage } from "../protocol/validate.ts";
import { CLOSE_TIMEOUT } from "../protocol/close_codes.ts";
import { Notifier } from "../protocol/notifier.ts";
import {
  asSpoolError,
  closeSocket,
  connect,
  DEFAULT_TIMEOUT_MS,
  describeClose,
  Liveness,
  toSocketUrl,
} from "./_connect.ts";
import { WsClient } from "./_ws_client.ts";

/**
 * Options of {@linkcode openDownload}.
 *
 * @example
 * ```ts
 * import { type DownloadOptions, openDownload } from "./download.ts";
 * const options: DownloadOptions = { window: 1 << 20, connectTimeoutMs: 5_000 };
 * const open = (reference: string) => openDownload(reference, options);
 * ```
 */
export interface DownloadOptions {
  /** Bytes the server may send ahead of what a reader consumed, per read. Default 4 MiB. */
  window?: number;
  /** Milliseconds to wait for the connection and the first status. Default 30 000. */
  connectTimeoutMs?: number;
  /**
   * Milliseconds without any message from the server after which the
   * connection is presumed dead (a black-holed link): reads and follows in
   * flight fail with a `timeout` error. Default 30 000; the server answers
   * heartbeats, so a healthy idle connection never times out.
   */
  timeoutMs?: number;
  /** Aborting it closes the download. */
  signal?: AbortSignal;
  /**
   * The resource's read token, if the server requires one and the
   * reference does not carry it (as `?token=`).
   */
  readToken?: string;
  /** PEM CA certificates to trust for `https:`/`wss:` servers. */
  caCerts?: string[];
}

/**
 * Options of {@linkcode Download.follow}.
 *
 * @example
 * ```ts
 * import type { Download, FollowOptions } from "./download.ts";
 * const options: FollowOptions = { start: 1024 }; // skip the first KiB
 * const tail = (download: Download) => download.follow(options);
 * ```
 */
export interface FollowOptions {
  /** First byte to read. Default 0. */
  start?: number;
}

const DEFAULT_WINDOW = 4 * 1024 * 1024;

/** Receive side of one read request. */
class PendingRead {
  readonly chunks: Uint8Array[] = [];
  /** A follow ends with the resource: it fails as soon as a FAILED status arrives. */
  follow = false;
  done = false;
  error: Error | undefined;
  consumed = 0;
  readonly changed = new Notifier();

  notify(): void {
    this.changed.notify();
  }
}

/**
 * A connection to one resource. Obtain one with {@linkcode openDownload}.
 *
 * @example
 * ```ts ignore
 * await using download = await openDownload(reference);
 * console.log(download.status.status, download.status.size);
 * const bytes = await new Response(download.read(0, download.status.size)).bytes();
 * ```
 */
export class Download {
  /** The reference this download is connected to. */
  readonly reference: string;
  readonly #socket: WsClient;
  readonly #window: number;
  #status: ResourceStatus;
  #nextRequestId = 1;
  readonly #reads = new Map<number, PendingRead>();
  readonly #statusStreams = new Set<
    ReadableStreamDefaultController<ResourceStatus>
  >();
  /** Wakes whoever waits for a status. */
  readonly #statusChanged = new Notifier();
  #closed: Error | undefined;
  /** The caller ended the connection (close or dispose) before anything else did. */
  #closedByCaller = false;
  /** An error the server reported about the socket itself (e.g. `gone`). */
  #socketError: SpoolError | undefined;
  readonly #closedPromise = Promise.withResolvers<void>();
  readonly #liveness: Liveness;

  /** @internal Use {@linkcode openDownload}. */
  constructor(
    socket: WsClient,
    reference: string,
    first: ResourceStatus,
    options: { window: number; timeoutMs?: number },
  ) {
    this.#socket = socket;
    this.reference = reference;
    this.#status = first;
    this.#window = options.window;
    socket.addEventListener("close", (event) => {
      this.#end(
        this.#socketError ?? new SpoolError(
          "connection-closed",
          `download socket closed (${describeClose(event)})`,
        ),
      );
    });
    this.#liveness = new Liveness(socket, {
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      onDead: (error) => {
        // A dead link may never deliver the close event: end here.
        socket.close(CLOSE_TIMEOUT, "no message from the server");
        this.#end(error);
      },
    });
    socket.onmessage = (event) => this.#onMessage(event);
  }

  /** The connection is over: everything waiting learns `error`. */
  #end(error: Error): void {
    this.#liveness.stop();
    this.#shutDown(error);
    this.#closedPromise.resolve();
  }

  /**
   * Resolves (never rejects) once the connection is over: with `undefined`
   * when the caller closed it, else with the {@linkcode SpoolError} that ended
   * it (a server error such as `gone`, `connection-closed`, or `timeout`).
   * `Upload.closed()` resolves alike.
   */
  async closed(): Promise<SpoolError | undefined> {
    await this.#closedPromise.promise;
    return this.#closedByCaller ? undefined : asSpoolError(this.#closed);
  }

  /** The latest status received. */
  get status(): ResourceStatus {
    return this.#status;
  }

  #onMessage(event: MessageEvent): void {
    this.#liveness.touch();
    if (typeof event.data !== "string") {
      this.#onFrame(event.data as Uint8Array);
      return;
    }
    let message: DownloadServerMessage;
    try {
      message = parseDownloadServerMessage(event.data);
    } catch (error) {
      this.#shutDown(error as Error);
      this.#socket.close(1002, "protocol error");
      return;
    }
    switch (message.type) {
      case "heartbeat":
        break;
      case "status":
        this.#onStatus(message.resource);
        break;
      case "read-end": {
        const read = this.#reads.get(message.requestId);
        if (read) {
          read.done = true;
          read.notify();
        }
        break;
      }
      case "error":
        this.#onError(message);
        break;
    }
  }

  /** A data frame: its bytes go to their read. */
  #onFrame(frame: Uint8Array): void {
    const { requestId, payload } = decodeDataFrame(frame);
    const read = this.#reads.get(requestId);
    // Frames of a cancelled read may still be in flight; they are dropped.
    if (read && !read.done) {
      read.chunks.push(payload);
      read.notify();
    }
  }

  #onStatus(status: ResourceStatus): void {
    this.#status = status;
    for (const controller of this.#statusStreams) {
      controller.enqueue(status);
      if (isTerminal(status)) controller.close();
    }
    if (isTerminal(status)) this.#statusStreams.clear();
    this.#statusChanged.notify();
    if (status.status !== "FAILED") return;
    // Bytes already queued are still delivered; then the follow fails.
    const failure = new ResourceFailedError(
      status.id,
      status.error ?? "unknown reason",
    );
    for (const read of this.#reads.values()) {
      if (read.follow && !read.done) {
        read.error ??= failure;
        read.notify();
      }
    }
  }

  #onError(message: ErrorMessage): void {
    const error = message.code === "resource-failed"
      ? new ResourceFailedError(
        this.#status.id,
        this.#status.error ?? message.message,
      )
      : new SpoolError(message.code, message.message, {
        requestId: message.requestId,
      });
    if (message.requestId === undefined) {
      // About the socket itself: it is why the socket will close.
      this.#socketError ??= error;
      for (const pending of this.#reads.values()) {
        if (!pending.done) {
          pending.error ??= error;
          pending.notify();
        }
      }
      return;
    }
    const read = this.#reads.get(message.requestId);
    // An error for a request that already ended (cancelled, or a follow
    // failed by its FAILED status) is a benign race: nothing is waiting.
    if (read) {
      read.error ??= error;
      read.notify();
    }
  }

  #shutDown(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const read of this.#reads.values()) {
      if (!read.done) read.error ??= error;
      read.notify();
    }
    for (const controller of this.#statusStreams) controller.close();
    this.#statusStreams.clear();
    this.#statusChanged.notify();
  }

  /**
   * A stream of statuses: the latest one first, then every update; it closes
   * after a final status or when the connection closes.
   */
  statuses(): ReadableStream<ResourceStatus> {
    let self: ReadableStreamDefaultController<ResourceStatus>;
    return new ReadableStream<ResourceStatus>({
      start: (controller) => {
        self = controller;
        controller.enqueue(this.#status);
        if (isTerminal(this.#status) || this.#closed) controller.close();
        else this.#statusStreams.add(controller);
      },
      cancel: () => {
        this.#statusStreams.delete(self);
      },
    });
  }

  /** Resolves with the next status that satisfies `predicate` (the current one counts). */
  async waitForStatus(
    predicate: (status: ResourceStatus) => boolean,
  ): Promise<ResourceStatus> {
    while (!predicate(this.#status)) {
      if (this.#closed) throw this.#closed;
      await this.#statusChanged.wait();
    }
    return this.#status;
  }

  /**
   * Reads bytes `[start, end)`; `end` must be within the checkpointed size.
   * The stream errors with a {@linkcode SpoolError} if the server refuses the
   * range. Cancelling the stream cancels the request.
   */
  read(start: number, end: number): ReadableStream<Uint8Array> {
    return this.#request((requestId) => ({
      type: "read",
      requestId,
      start,
      end,
      window: this.#window,
    }));
  }

  /**
   * Reads the whole resource as it grows, from `start`: the server sends each
   * new range as it is checkpointed; the stream closes once the resource is
   * `COMPLETED` and every byte is read, and errors with
   * {@linkcode ResourceFailedError} on `FAILED`. A chunk may be a view on a
   * read buffer (64 KiB or more, never written again) it shares with the
   * chunks next to it: copy a small part of one kept for long, so it does
   * not keep the rest.
   */
  follow(options: FollowOptions = {}): ReadableStream<Uint8Array> {
    const start = options.start ?? 0;
    return this.#request((requestId) => ({
      type: "follow",
      requestId,
      start,
      window: this.#window,
    }));
  }

  /** Sends a read or follow request and exposes its frames as a stream with credit. */
  #request(
    build: (requestId: number) => ReadMessage | FollowMessage,
  ): ReadableStream<Uint8Array> {
    if (this.#closed) {
      const closed = this.#closed;
      return new ReadableStream({
        start: (controller) => controller.error(closed),
      });
    }
    const requestId = this.#nextRequestId;
    this.#nextRequestId = (this.#nextRequestId + 1) % 0x1_0000_0000;
    const pending = new PendingRead();
    const request = build(requestId);
    pending.follow = request.type === "follow";
    this.#reads.set(requestId, pending);
    this.#socket.send(JSON.stringify(request));
    let granted = 0;
    const forget = () => this.#reads.delete(requestId);
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (pending.chunks.length === 0 && !pending.done && !pending.error) {
          await pending.changed.wait();
        }
        const chunk = pending.chunks.shift();
        if (chunk) {
          controller.enqueue(chunk);
          pending.consumed += chunk.byteLength;
          // Grant credit in halves of the window: a message per frame would be wasteful.
          if (pending.consumed - granted >= this.#window / 2 && !pending.done) {
            const bytes = pending.consumed - granted;
            granted = pending.consumed;
            if (this.#socket.readyState === WsClient.OPEN) {
              this.#socket.send(
                JSON.stringify({ type: "credit", requestId, bytes }),
              );
            }
          }
          return;
        }
        forget();
        if (pending.error) controller.error(pending.error);
        else controller.close();
      },
      cancel: () => {
        forget();
        pending.done = true;
        if (this.#socket.readyState === WsClient.OPEN) {
          this.#socket.send(JSON.stringify({ type: "cancel", requestId }));
        }
      },
    }, { highWaterMark: 0 });
  }

  /** Closes the connection; reads in flight error. */
  async close(): Promise<void> {
    if (!this.#closed) this.#closedByCaller = true;
    await closeSocket(this.#socket);
    this.#end(
      this.#socketError ??
        new SpoolError("connection-closed", "the download was closed"),
    );
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Connects to a resource's reference and resolves once its first status
 * arrived. Rejects with a {@linkcode SpoolError} of code `not-found` for an
 * unknown resource.
 *
 * @example
 * ```ts ignore
 * import { openDownload } from "./download.ts";
 * await using download = await openDownload("ws://127.0.0.1:8787/resources/abc");
 * for await (const status of download.statuses()) console.log(status.status, status.size);
 * ```
 */
export async function openDownload(
  reference: string | URL,
  options: DownloadOptions = {},
): Promise<Download> {
  const url = toSocketUrl(reference).href;
  const timeoutMs = options.connectTimeoutMs ?? 30_000;
  const socket = await connect(url, {
    timeoutMs,
    signal: options.signal,
    token: options.readToken,
    caCerts: options.caCerts,
  });
  // The Download takes over the socket inside the handler of the first
  // status: a message right behind it must reach the Download, not this
  // handler (an await in between would let the socket dispatch it here).
  const download = await new Promise<Download>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new SpoolError(
          "timeout",
          `no status from ${url} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    socket.onmessage = (event) => {
      try {
        const message = parseDownloadServerMessage(String(event.data));
        if (message.type === "heartbeat") return;
        clearTimeout(timer);
        if (message.type === "status") {
          socket.onclose = null;
          resolve(
            new Download(socket, url, message.resource, {
              window: options.window ?? DEFAULT_WINDOW,
              timeoutMs: options.timeoutMs,
            }),
          );
        } else if (message.type === "error") {
          reject(new SpoolError(message.code, message.message));
        } else {
          reject(
            new SpoolError(
              "unexpected-message",
              `expected a status first, got ${message.type}`,
            ),
          );
        }
      } catch (error) {
        clearTimeout(timer);
        reject(error);
      }
    };
    socket.onclose = (event) => {
      clearTimeout(timer);
      reject(
        new SpoolError(
          "connection-closed",
          `download socket closed (${
            describeClose(event)
          }) before the first status`,
        ),
      );
    };
  }).catch(async (error) => {
    await closeSocket(socket);
    throw error;
  });
  options.signal?.addEventListener("abort", () => download.close(), {
    once: true,
  });
  return download;
}
