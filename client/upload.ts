/**
 * The upload client: creates a resource, streams its bytes with credit-based
 * flow control, survives lost connections by resuming from the server's
 * committed offset, and waits for the final status.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ResourceFailedError, SpoolError } from "../protocol/errors.ts";
import type {
  EndOfInputMessage,
  ReadyForUploadMessage,
  RequestUploadMessage,
  ResumeUploadMessage,
  UploadServerMessage,
} from "../protocol/messages.ts";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import { parseUploadServerMessage } from "../protocol/validate.ts";
import { CLOSE_ABORT, CLOSE_TIMEOUT } from "../protocol/close_codes.ts";
import { Notifier } from "../protocol/notifier.ts";
import {
  asSpoolError,
  connect,
  type ConnectOptions,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  describeClose,
  Liveness,
  toSocketUrl,
} from "./_connect.ts";
import { WsClient } from "./_ws_client.ts";
import {
  encodeFrame,
  FrameBuffers,
  Opcode,
  unmaskedPayload,
} from "./_ws_frame.ts";
import { openDownload } from "./download.ts";

/**
 * What to upload, and how to describe it.
 *
 * @example
 * ```ts
 * import { startUpload, type UploadOptions } from "./upload.ts";
 * const options: UploadOptions = { name: "build.log", mimeType: "text/plain", metadata: { job: "42" } };
 * const start = (server: string) => startUpload(server, options);
 * ```
 */
export interface UploadOptions {
  /** A label for the resource, e.g. a file name. */
  name: string;
  /** MIME type. Default `application/octet-stream`. */
  mimeType?: string;
  /** Custom string metadata returned in every status. */
  metadata?: Record<string, string>;
  /**
   * The bytes you mean to send, if known: a server refuses an upload over
   * its `--max-resource-bytes` at once, before there is a reference.
   */
  size?: number;
  /** Send the SHA-256 of the bytes with end-of-input, so the server verifies them. Default `true`. */
  checksum?: boolean;
  /** Reconnect and resume after a lost connection, within the server's grace period. Default `true`. */
  resume?: boolean;
  /**
   * Other nodes of the same cluster (servers sharing one engine and token
   * secret) to resume through when the server is not reachable: each round
   * of a resume tries the server last used, then these in turn. Behind a
   * load balancer none is needed. Default: none.
   */
  resumeServers?: (string | URL)[];
  /** Milliseconds to wait for the connection. Default 30 000. */
  connectTimeoutMs?: number;
  /**
   * Milliseconds without any message from the server after which the
   * connection is presumed dead (a black-holed link) and resumed. Default
   * 30 000; the server answers heartbeats, so a healthy link never idles.
   */
  timeoutMs?: number;
  /** Aborting it aborts the upload (the resource becomes `FAILED`). */
  signal?: AbortSignal;
  /** The server's upload token, if it requires one. */
  uploadToken?: string;
  /** PEM CA certificates to trust for `https:`/`wss:` servers. */
  caCerts?: string[];
}

/**
 * Largest binary frame the client sends; bigger chunks are split. 256 KiB,
 * not 1 MiB: the server copies each frame out of the socket, hashes it and
 * writes it while it is still in the CPU's cache, and its allocator reuses
 * the buffers instead of faulting in fresh pages. That cut the server's
 * CPU per GB by about a third (bench/ANALYSIS.md, "Live upload").
 */
const MAX_FRAME = 256 * 1024;

/**
 * A body the upload helpers accept: bytes, a stream of bytes, or a file path.
 *
 * @example
 * ```ts
 * import { upload, type UploadBody } from "./upload.ts";
 * const bodies: UploadBody[] = [new TextEncoder().encode("hi"), { path: "./build.log" }];
 * const send = (server: string, body: UploadBody) => upload(server, body, { name: "build.log" });
 * ```
 */
export type UploadBody = Uint8Array | ReadableStream<Uint8Array> | {
  path: string | URL;
};

/** Events that arrived between `ready-for-upload` and the Upload taking over. */
interface Held {
  messages: MessageEvent[];
  closed?: CloseEvent;
}
const heldEvents = new WeakMap<WsClient, Held>();

/**
 * Sends one upload-socket message and resolves with the server's
 * `ready-for-upload`; rejects with `timeout` if it does not come within
 * `timeoutMs` (a link that went dead after connecting).
 */
async function handshake(
  socket: WsClient,
  request: RequestUploadMessage | ResumeUploadMessage,
  options: { timeoutMs: number },
): Promise<ReadyForUploadMessage> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<ReadyForUploadMessage>((resolve, reject) => {
      timer = setTimeout(() =>
        reject(
          new SpoolError(
            "timeout",
            `no answer to ${request.type} within ${options.timeoutMs} ms`,
          ),
        ), options.timeoutMs);
      socket.onmessage = (event) => {
        try {
          const message = parseUploadServerMessage(String(event.data));
          if (message.type === "ready-for-upload") {
            // Until the Upload takes the socket over, keep what follows.
            const held: Held = { messages: [] };
            heldEvents.set(socket, held);
            socket.onmessage = (next) => held.messages.push(next);
            socket.onclose = (closed) => held.closed = closed;
            resolve(message);
          } else if (message.type === "error") {
            reject(new SpoolError(message.code, message.message));
          } else if (message.type !== "heartbeat") {
            reject(
              new SpoolError(
                "unexpected-message",
                `expected ready-for-upload, got ${message.type}`,
              ),
            );
          }
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
      socket.send(JSON.stringify(request));
    });
  } catch (error) {
    if (socket.readyState <= WsClient.OPEN) socket.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function uploadUrl(server: string | URL): string {
  const url = toSocketUrl(server);
  url.pathname = `${url.pathname.replace(/\/$/, "")}/upload`;
  return url.href;
}

/** A frame sent and not yet acknowledged; its bytes are kept for a resume. */
interface SentFrame {
  offset: number;
  length: number;
  /** The masked frame as sent, kept for a resume. */
  frame?: Uint8Array<ArrayBuffer>;
  /**
   * Whether its buffer may be reused once acknowledged: not once a lost
   * socket may still be writing it (it was pending at a resume).
   */
  reusable: boolean;
}

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
  /** Where a resume may go: the server, then the fallbacks (`resumeServers`). */
  readonly #urls: string[];
  /** The one of `#urls` last connected to. */
  #urlIndex = 0;
  readonly #connectOptions: ConnectOptions;
  readonly #token: string;
  readonly #window: number;
  readonly #frameCost: number;
  readonly #graceMs: number;
  readonly #resume: boolean;
  readonly #connectTimeoutMs: number | undefined;
  readonly #timeoutMs: number;
  readonly #hash: ReturnType<typeof createHash> | undefined;
  #socket: WsClient;
  #liveness: Liveness | undefined;
  /** False while a lost connection is being resumed. */
  #connected = true;
  #reconnects = 0;
  #sent = 0;
  #acknowledged = 0;
  /** Sent but unacknowledged frames (oldest at `#head`); the window bounds them. */
  #unacknowledged: SentFrame[] = [];
  #head = 0;
  /**
   * Buffers of acknowledged frames, for the next frames: a fresh buffer per
   * frame is zeroed, faulted in and collected, which cost the client more
   * than the masking. Sized for a window of frames.
   */
  readonly #frames: FrameBuffers;
  #failure: Error | undefined;
  /** The final status, once the server sent it (or the reference told it). */
  #outcome: ResourceStatus | undefined;
  /** `finish()` was called: no byte may follow. */
  #ended = false;
  #endOfInput: EndOfInputMessage | undefined;
  #aborted = false;
  /** Wakes writers waiting for room, a resume or the end. */
  readonly #changed = new Notifier();
  /** Serialises writes: bytes go out in call order and one writer waits at a time. */
  #writeChain: Promise<void> = Promise.resolve();
  #final: PromiseWithResolvers<ResourceStatus> = Promise.withResolvers();
  #closed: PromiseWithResolvers<void> = Promise.withResolvers();
  #writable: WritableStream<Uint8Array> | undefined;

  /** @internal Use {@linkcode startUpload}. */
  constructor(
    socket: WsClient,
    ready: ReadyForUploadMessage,
    options: {
      url: string;
      resumeServers?: (string | URL)[];
      checksum: boolean;
      resume: boolean;
      connectTimeoutMs?: number;
      timeoutMs?: number;
      uploadToken?: string;
      caCerts?: string[];
    },
  ) {
    this.id = ready.id;
    this.reference = ready.reference;
    this.#urls = [
      options.url,
      ...(options.resumeServers ?? []).map(uploadUrl),
    ];
    this.#token = ready.token;
    this.#window = ready.window;
    this.#frameCost = ready.frameCost ?? 0;
    this.#graceMs = ready.resumeGraceMs ?? 0;
    this.#resume = options.resume;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#connectOptions = {
      token: options.uploadToken,
      caCerts: options.caCerts,
    };
    this.#hash = options.checksum ? createHash("sha256") : undefined;
    this.#frames = new FrameBuffers(Math.ceil(this.#window / MAX_FRAME) + 1);
    // Nobody may be awaiting the final status yet; don't report it as unhandled.
    this.#final.promise.catch(() => {});
    this.#socket = socket;
    this.#attach(socket);
  }

  /** Bytes sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Bytes the server has written to its store. */
  get acknowledged(): number {
    return this.#acknowledged;
  }

  /** How many times a lost connection was resumed. */
  get reconnects(): number {
    return this.#reconnects;
  }

  #attach(socket: WsClient): void {
    socket.onmessage = (event) => this.#onMessage(event);
    socket.onclose = (event) => this.#onLost(socket, describeClose(event));
    this.#liveness = new Liveness(socket, {
      timeoutMs: this.#timeoutMs,
      onDead: (error) => {
        // A dead link may never deliver the close event: give up on it now.
        socket.close(CLOSE_TIMEOUT, "no message from the server");
        this.#onLost(socket, error.message);
      },
    });
    const held = heldEvents.get(socket);
    heldEvents.delete(socket);
    for (const event of held?.messages ?? []) this.#onMessage(event);
    if (held?.closed) this.#onLost(socket, describeClose(held.closed));
  }

  #onMessage(event: MessageEvent): void {
    this.#liveness?.touch();
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
        this.#acknowledge(message.offset);
        break;
      case "final-status":
        this.#settle(message.resource);
        this.#socket.close(1000, "upload completed");
        break;
      case "error":
        this.#setFailure(new SpoolError(message.code, message.message));
        break;
      case "heartbeat":
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

  #acknowledge(offset: number): void {
    this.#acknowledged = Math.max(this.#acknowledged, offset);
    const frames = this.#unacknowledged;
    while (
      this.#head < frames.length &&
      frames[this.#head].offset + frames[this.#head].length <= offset
    ) {
      const { frame, reusable } = frames[this.#head];
      if (frame !== undefined && reusable) this.#frames.give(frame.buffer);
      frames[this.#head++] = undefined as unknown as SentFrame;
    }
    if (this.#head === frames.length) {
      this.#unacknowledged = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > frames.length) {
      this.#unacknowledged = frames.slice(this.#head);
      this.#head = 0;
    }
    this.#wake();
  }

  /** The frames sent and not yet acknowledged. */
  #pending(): SentFrame[] {
    return this.#unacknowledged.slice(this.#head);
  }

  /** Window used by unacknowledged bytes and frames (each frame costs extra). */
  #unacknowledgedCost(): number {
    return this.#sent - this.#acknowledged +
      (this.#unacknowledged.length - this.#head) * this.#frameCost;
  }

  #settle(status: ResourceStatus): void {
    this.#outcome = status;
    if (status.status === "COMPLETED") this.#final.resolve(status);
    else this.#final.reject(failedError(status));
    this.#wake();
  }

  /** The connection of `socket` is gone (closed, reset, or presumed dead). */
  #onLost(socket: WsClient, reason: string): void {
    if (socket !== this.#socket || !this.#connected) return;
    this.#liveness?.stop();
    if (this.#outcome || this.#failure) {
      this.#closed.resolve();
      return;
    }
    if (!this.#aborted && this.#resume && this.#graceMs > 0) {
      this.#connected = false;
      this.#reconnect(performance.now() + this.#graceMs, reason).catch(
        (error) => {
          this.#setFailure(error);
          this.#closed.resolve();
        },
      );
      return;
    }
    this.#setFailure(
      new SpoolError(
        "connection-closed",
        `upload connection lost (${reason}) before the final status`,
      ),
    );
    this.#closed.resolve();
  }

  /**
   * Reconnects and resumes until the server's grace period runs out. An
   * upload the server no longer holds has ended (its final status was lost
   * with the connection, or the server restarted): its reference says how.
   */
  async #reconnect(deadline: number, lost: string): Promise<void> {
    let pause = 50;
    let lastError: Error = new SpoolError(
      "connection-closed",
      `upload connection lost (${lost})`,
    );
    while (performance.now() < deadline && !this.#aborted) {
      try {
        await this.#resumeRound(deadline);
        return;
      } catch (error) {
        lastError = error as Error;
        if (error instanceof SpoolError && error.code === "forbidden") {
          throw error;
        }
        if (error instanceof SpoolError && error.code === "not-found") {
          try {
            return await this.#finalFromReference(deadline);
          } catch (caught) {
            // Not reachable right now: the next round tries both again.
            lastError = caught as Error;
            if (caught instanceof SpoolError && caught.code === "not-found") {
              throw new SpoolError(
                "not-found",
                `the server knows neither upload ${this.id} nor its resource (restarted with another data dir?): ${caught.message}`,
                { cause: caught },
              );
            }
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 1000);
    }
    throw new SpoolError(
      "connection-closed",
      `upload connection lost (${lost}) and not resumed within the server's grace period of ${this.#graceMs} ms; last attempt: ${lastError.message}`,
      { cause: lastError },
    );
  }

  /** One attempt to reconnect and resume. */
  /** How long one reconnect attempt may take before the deadline. */
  #attemptTimeout(deadline: number): number {
    return Math.min(
      this.#connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      Math.max(1, deadline - performance.now()),
    );
  }

  /**
   * Tries the server last used, then each other one, until one resumes;
   * throws the error of the last one (at once for `forbidden` or
   * `not-found`: every node of a cluster gives the same answer).
   */
  async #resumeRound(deadline: number): Promise<void> {
    for (let tried = 1;; tried++) {
      try {
        return await this.#resumeOnce(this.#urls[this.#urlIndex], deadline);
      } catch (error) {
        const final = error instanceof SpoolError &&
          (error.code === "forbidden" || error.code === "not-found");
        if (final || tried >= this.#urls.length) throw error;
        this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
      }
    }
  }

  async #resumeOnce(url: string, deadline: number): Promise<void> {
    const timeoutMs = this.#attemptTimeout(deadline);
    const socket = await connect(url, {
      ...this.#connectOptions,
      timeoutMs,
    });
    const ready = await handshake(socket, {
      type: "resume-upload",
      id: this.id,
      token: this.#token,
    }, { timeoutMs });
    this.#resumeOn(socket, ready.offset);
  }

  #resumeOn(socket: WsClient, offset: number): void {
    const pending = this.#pending();
    const first = pending[0]?.offset ?? this.#sent;
    if (offset < first || offset > this.#sent) {
      socket.close();
      throw new SpoolError(
        "unexpected-message",
        `the server resumed at byte ${offset}; expected an offset from ${first} to ${this.#sent}`,
      );
    }
    this.#socket = socket;
    this.#attach(socket);
    this.#reconnects++;
    this.#acknowledge(offset);
    for (const sent of this.#pending()) {
      // The lost socket may still be writing it: never reused.
      sent.reusable = false;
      const frame = sent.frame!;
      if (offset <= sent.offset) socket.sendFrame(frame, sent.length);
      else {
        socket.send(unmaskedPayload(frame, sent.length, offset - sent.offset));
      }
    }
    if (this.#endOfInput) socket.send(JSON.stringify(this.#endOfInput));
    this.#connected = true;
    this.#wake();
  }

  /** Settles with the terminal status the reference reports. */
  async #finalFromReference(deadline: number): Promise<void> {
    await using download = await openDownload(this.reference, {
      caCerts: this.#connectOptions.caCerts,
      connectTimeoutMs: this.#attemptTimeout(deadline),
      timeoutMs: this.#timeoutMs,
    });
    const status = await download.waitForStatus(isTerminal);
    this.#settle(status);
    this.#closed.resolve();
  }

  #setFailure(error: Error): void {
    this.#failure ??= error;
    this.#final.reject(this.#failure);
    this.#wake();
  }

  #wake(): void {
    this.#changed.notify();
  }

  /** Why no byte may be written now, if none may. */
  #writeRefusal(): Error | undefined {
    if (this.#failure) return this.#failure;
    if (this.#outcome?.status === "FAILED") return failedError(this.#outcome);
    if (this.#outcome || this.#ended) {
      return new SpoolError(
        "unexpected-message",
        "write after finish(); expected all bytes before end-of-input",
      );
    }
    return undefined;
  }

  async #waitUntil(ready: () => boolean): Promise<void> {
    for (;;) {
      const refusal = this.#writeRefusal();
      if (refusal) throw refusal;
      if (ready()) return;
      await this.#changed.wait();
    }
  }

  /**
   * Sends `chunk`; resolves once it is handed to the socket. Waits while the
   * server's window is full or a lost connection is being resumed, so memory
   * stays bounded whatever the producer.
   */
  write(chunk: Uint8Array): Promise<void> {
    const written = this.#writeChain.then(() => this.#writeNow(chunk));
    this.#writeChain = written.catch(
      () => {/* the caller of write() gets the error */},
    );
    return written;
  }

  async #writeNow(chunk: Uint8Array): Promise<void> {
    const refusal = this.#writeRefusal();
    if (refusal) throw refusal;
    // A frame must fit the window on its own, or it would wait forever.
    const frame = Math.max(
      1,
      Math.min(MAX_FRAME, this.#window - this.#frameCost),
    );
    for (let offset = 0; offset < chunk.byteLength; offset += frame) {
      const piece = chunk.subarray(offset, offset + frame);
      const cost = piece.byteLength + this.#frameCost;
      await this.#waitUntil(() =>
        this.#connected && this.#unacknowledgedCost() + cost <= this.#window
      );
      this.#hash?.update(piece);
      this.#unacknowledged.push({
        offset: this.#sent,
        length: piece.byteLength,
        frame: this.#send(piece),
        reusable: true,
      });
      this.#sent += piece.byteLength;
    }
  }

  /**
   * Sends `piece`; returns its frame when a resume may need it again. The
   * caller may reuse its buffer once write() resolved, so a resume resends
   * the frame as it went out (masked, one copy of the bytes), not `piece`.
   */
  #send(piece: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
    if (!this.#resume || this.#graceMs === 0) {
      this.#socket.send(piece);
      return undefined;
    }
    const frame = encodeFrame(Opcode.BINARY, piece, this.#frames);
    this.#socket.sendFrame(frame, piece.byteLength);
    return frame;
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
  async finish(): Promise<ResourceStatus> {
    await this.#writeChain;
    if (this.#failure) throw this.#failure;
    if (!this.#ended && !this.#outcome) {
      this.#ended = true;
      const message: EndOfInputMessage = { type: "end-of-input" };
      if (this.#hash) message.sha256 = this.#hash.digest("hex");
      this.#endOfInput = message;
      if (this.#connected) this.#socket.send(JSON.stringify(message));
    }
    return await this.#final.promise;
  }

  /** Resolves with the final status once the server sent it (after {@linkcode Upload.finish}). */
  get finalStatus(): Promise<ResourceStatus> {
    return this.#final.promise;
  }

  /**
   * Aborts: closes the socket before end-of-input, so the server marks the
   * resource `FAILED` at once.
   */
  abort(reason?: unknown): void {
    this.#aborted = true;
    this.#setFailure(
      new SpoolError(
        "connection-closed",
        `upload aborted: ${reason ?? "by the caller"}`,
        {
          cause: reason,
        },
      ),
    );
    if (this.#socket.readyState <= WsClient.OPEN) {
      this.#socket.close(CLOSE_ABORT, "upload aborted");
    }
  }

  /**
   * Resolves (never rejects) once the upload is over and its socket closed:
   * with `undefined` when it ended `COMPLETED`, else with the
   * {@linkcode SpoolError} that ended it: the error `send` or `finish` rejected
   * with (e.g. `limit-exceeded`; `connection-closed` when the connection was
   * lost or the upload aborted), or a {@linkcode ResourceFailedError} for a
   * `FAILED` final status. `Download.closed()` resolves alike.
   */
  async closed(): Promise<SpoolError | undefined> {
    await this.#closed.promise;
    if (this.#outcome?.status === "COMPLETED") return undefined;
    // What send() or finish() rejected with, else the FAILED status's reason.
    if (this.#failure) return asSpoolError(this.#failure);
    return this.#outcome ? failedError(this.#outcome) : asSpoolError(undefined);
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

function failedError(status: ResourceStatus): ResourceFailedError {
  return new ResourceFailedError(status.id, status.error ?? "unknown reason");
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
  const url = uploadUrl(server);
  const socket = await connect(url, {
    timeoutMs: options.connectTimeoutMs,
    signal: options.signal,
    token: options.uploadToken,
    caCerts: options.caCerts,
  });
  const ready = await handshake(socket, {
    type: "request-upload",
    name: options.name,
    mimeType: options.mimeType ?? "application/octet-stream",
    metadata: options.metadata ?? {},
    ...(options.size === undefined ? {} : { size: options.size }),
  }, { timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  const upload = new Upload(socket, ready, {
    url,
    resumeServers: options.resumeServers,
    checksum: options.checksum ?? true,
    resume: options.resume ?? true,
    connectTimeoutMs: options.connectTimeoutMs,
    timeoutMs: options.timeoutMs,
    uploadToken: options.uploadToken,
    caCerts: options.caCerts,
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
