/**
 * The upload client: creates a resource, streams its bytes with credit-based
 * flow control and waits for the final status.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ResourceFailedError, SpoolError } from "../protocol/errors.ts";
import type {
  EndOfInputMessage,
  RequestUploadMessage,
  UploadServerMessage,
} from "../protocol/messages.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { parseUploadServerMessage } from "../protocol/validate.ts";
import { connect, describeClose, toSocketUrl } from "./_socket.ts";

/** What to upload, and how to describe it. */
export interface UploadOptions {
  /** A label for the resource, e.g. a file name. */
  name: string;
  /** MIME type. Default `application/octet-stream`. */
  mimeType?: string;
  /** Custom string metadata returned in every status. */
  metadata?: Record<string, string>;
  /** Send the SHA-256 of the bytes with end-of-input, so the server verifies them. Default `true`. */
  checksum?: boolean;
  /** Milliseconds to wait for the connection. Default 30 000. */
  connectTimeoutMs?: number;
  /** Aborting it aborts the upload (the resource becomes `FAILED`). */
  signal?: AbortSignal;
}

/** Largest binary frame the client sends; bigger chunks are split. */
const MAX_FRAME = 1024 * 1024;

/** A body the upload helpers accept: bytes, a stream of bytes, or a file path. */
export type UploadBody = Uint8Array | ReadableStream<Uint8Array> | {
  path: string | URL;
};

/**
 * An upload in progress. Obtain one with {@linkcode startUpload}; write bytes
 * with {@linkcode Upload.write} or {@linkcode Upload.writable}, then
 * {@linkcode Upload.finish}.
 *
 * @example
 * ```ts ignore
 * const upload = await startUpload("ws://127.0.0.1:8787/", { name: "build.log" });
 * console.log(upload.reference);
 * await upload.write(new TextEncoder().encode("hello\n"));
 * const status = await upload.finish();
 * ```
 */
export class Upload {
  /** The resource id. */
  readonly id: string;
  /** The download reference (`ws:` URL) anyone may open. */
  readonly reference: string;
  readonly #socket: WebSocket;
  readonly #window: number;
  readonly #hash: ReturnType<typeof createHash> | undefined;
  #sent = 0;
  #acknowledged = 0;
  #failure: Error | undefined;
  #ended = false;
  #wakeWriter: (() => void) | undefined;
  /** Serialises writes: bytes go out in call order and one writer waits at a time. */
  #writeChain: Promise<void> = Promise.resolve();
  #final: PromiseWithResolvers<ResourceStatus> = Promise.withResolvers();
  #writable: WritableStream<Uint8Array> | undefined;

  /** @internal Use {@linkcode startUpload}. */
  constructor(
    socket: WebSocket,
    ready: { id: string; reference: string; window: number },
    options: { checksum: boolean },
  ) {
    this.#socket = socket;
    this.id = ready.id;
    this.reference = ready.reference;
    this.#window = ready.window;
    this.#hash = options.checksum ? createHash("sha256") : undefined;
    // Nobody may be awaiting the final status yet; don't report it as unhandled.
    this.#final.promise.catch(() => {});
    socket.onmessage = (event) => this.#onMessage(event);
    socket.onclose = (event) => {
      this.#setFailure(
        new SpoolError(
          "connection-closed",
          `upload socket closed (${
            describeClose(event)
          }) before the final status`,
        ),
      );
    };
  }

  /** Bytes sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Bytes the server has written to its store. */
  get acknowledged(): number {
    return this.#acknowledged;
  }

  #onMessage(event: MessageEvent): void {
    let message: UploadServerMessage;
    try {
      if (typeof event.data !== "string") {
        throw new SpoolError(
          "unexpected-binary",
          "the server sent binary data on an upload socket",
        );
      }
      message = parseUploadServerMessage(event.data);
    } catch (error) {
      this.#setFailure(error as Error);
      this.#socket.close(1002, "protocol error");
      return;
    }
    switch (message.type) {
      case "ack":
        this.#acknowledged = message.offset;
        this.#wake();
        break;
      case "final-status":
        this.#ended = true;
        if (message.resource.status === "COMPLETED") {
          this.#final.resolve(message.resource);
        } else {
          this.#final.reject(
            new ResourceFailedError(
              message.resource.id,
              message.resource.error ?? "unknown reason",
            ),
          );
        }
        this.#socket.close(1000, "upload completed");
        break;
      case "error":
        this.#setFailure(new SpoolError(message.code, message.message));
        break;
      case "ready-for-upload":
        this.#setFailure(
          new SpoolError(
            "unexpected-message",
            "ready-for-upload received twice",
          ),
        );
        break;
    }
  }

  #setFailure(error: Error): void {
    this.#failure ??= error;
    this.#final.reject(this.#failure);
    this.#wake();
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }

  /**
   * Sends `chunk`; resolves once it is handed to the socket. Waits while the
   * server's window is full, so memory stays bounded whatever the producer.
   */
  write(chunk: Uint8Array): Promise<void> {
    const written = this.#writeChain.then(() => this.#writeNow(chunk));
    this.#writeChain = written.catch(
      () => {/* the caller of write() gets the error */},
    );
    return written;
  }

  async #writeNow(chunk: Uint8Array): Promise<void> {
    if (this.#ended) {
      throw new SpoolError(
        "unexpected-message",
        "write after finish(); expected all bytes before end-of-input",
      );
    }
    for (let offset = 0; offset < chunk.byteLength; offset += MAX_FRAME) {
      const piece = chunk.subarray(offset, offset + MAX_FRAME);
      while (
        !this.#failure &&
        this.#sent - this.#acknowledged + piece.byteLength > this.#window
      ) {
        await new Promise<void>((resolve) => this.#wakeWriter = resolve);
      }
      if (this.#failure) throw this.#failure;
      this.#socket.send(piece);
      this.#hash?.update(piece);
      this.#sent += piece.byteLength;
    }
  }

  /** A writable stream over {@linkcode Upload.write}; closing it finishes the upload. */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: async () => {
        await this.finish();
      },
      abort: (reason) => this.abort(reason),
    });
    return this.#writable;
  }

  /**
   * Signals end of input and resolves with the final `COMPLETED` status;
   * rejects with {@linkcode ResourceFailedError} if the server failed it.
   */
  finish(): Promise<ResourceStatus> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#ended) {
      this.#ended = true;
      const message: EndOfInputMessage = { type: "end-of-input" };
      if (this.#hash) message.sha256 = this.#hash.digest("hex");
      this.#socket.send(JSON.stringify(message));
    }
    return this.#final.promise;
  }

  /** Resolves with the final status once the server sent it (after {@linkcode Upload.finish}). */
  get finalStatus(): Promise<ResourceStatus> {
    return this.#final.promise;
  }

  /**
   * Aborts: closes the socket before end-of-input, so the server marks the
   * resource `FAILED`.
   */
  abort(reason?: unknown): void {
    this.#setFailure(
      new SpoolError(
        "connection-closed",
        `upload aborted: ${reason ?? "by the caller"}`,
        {
          cause: reason,
        },
      ),
    );
    if (this.#socket.readyState <= WebSocket.OPEN) {
      this.#socket.close(4000, "upload aborted");
    }
  }

  /** Waits for the socket to be closed. */
  closed(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) =>
      this.#socket.addEventListener("close", () => resolve())
    );
  }

  /** Sends every byte of `body`, then finishes; resolves with the final status. */
  async send(body: UploadBody): Promise<ResourceStatus> {
    try {
      if (body instanceof Uint8Array) {
        await this.write(body);
      } else {
        const stream = body instanceof ReadableStream
          ? body
          : (await Deno.open(body.path)).readable;
        for await (const chunk of stream) await this.write(chunk);
      }
    } catch (error) {
      this.abort(error instanceof Error ? error.message : error);
      throw error;
    }
    return await this.finish();
  }
}

/**
 * Connects to `server`, requests an upload and resolves once the server is
 * ready, with the reference already known.
 *
 * @example
 * ```ts ignore
 * import { startUpload } from "./upload.ts";
 * const upload = await startUpload("http://127.0.0.1:8787/", { name: "a.txt", mimeType: "text/plain" });
 * const status = await upload.send(new TextEncoder().encode("hi"));
 * ```
 */
export async function startUpload(
  server: string | URL,
  options: UploadOptions,
): Promise<Upload> {
  const url = toSocketUrl(server);
  url.pathname = `${url.pathname.replace(/\/$/, "")}/upload`;
  const socket = await connect(url.href, {
    timeoutMs: options.connectTimeoutMs,
    signal: options.signal,
  });
  const ready = await new Promise<
    { id: string; reference: string; window: number }
  >(
    (resolve, reject) => {
      socket.onmessage = (event) => {
        try {
          const message = parseUploadServerMessage(String(event.data));
          if (message.type === "ready-for-upload") resolve(message);
          else if (message.type === "error") {
            reject(new SpoolError(message.code, message.message));
          } else {reject(
              new SpoolError(
                "unexpected-message",
                `expected ready-for-upload, got ${message.type}`,
              ),
            );}
        } catch (error) {
          reject(error);
        }
      };
      socket.onclose = (event) =>
        reject(
          new SpoolError(
            "connection-closed",
            `upload socket closed (${
              describeClose(event)
            }) before ready-for-upload`,
          ),
        );
      const request: RequestUploadMessage = {
        type: "request-upload",
        name: options.name,
        mimeType: options.mimeType ?? "application/octet-stream",
        metadata: options.metadata ?? {},
      };
      socket.send(JSON.stringify(request));
    },
  ).catch((error) => {
    socket.close();
    throw error;
  });
  const upload = new Upload(socket, ready, {
    checksum: options.checksum ?? true,
  });
  options.signal?.addEventListener(
    "abort",
    () => upload.abort(options.signal?.reason),
    {
      once: true,
    },
  );
  return upload;
}

/**
 * Uploads `body` in one call: resolves with the final status. `onReady`
 * receives the upload (and so its reference) as soon as the server is ready,
 * before any byte is sent.
 *
 * @example
 * ```ts ignore
 * import { upload } from "./upload.ts";
 * const status = await upload("http://127.0.0.1:8787/", new TextEncoder().encode("hi"), {
 *   name: "hi.txt",
 *   onReady: (u) => console.log(u.reference),
 * });
 * ```
 */
export async function upload(
  server: string | URL,
  body: UploadBody,
  options: UploadOptions & { onReady?: (upload: Upload) => void },
): Promise<ResourceStatus> {
  const started = await startUpload(server, options);
  options.onReady?.(started);
  try {
    return await started.send(body);
  } finally {
    await started.closed();
  }
}
