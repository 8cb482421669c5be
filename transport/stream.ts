/**
 * `Stream`: the main-thread facade of one object stream. It validates and
 * encodes headers, queues objects with back-pressure, hands them in batches
 * to its send-loop worker (buffers transferred, not copied) and runs the
 * ordered completions the worker reports back. The batch is the send queue
 * (`_send_queue.ts`, AIStore's SQ), the completions the completion queue
 * (`_completion_queue.ts`, its SCQ).
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import { encodeHeader, measureHeader } from "./header_codec.ts";
import { checkRequestHeaders, receiverUrl } from "./internal/request_target.ts";
import { CopyRing, type RingSlot } from "./_copy_ring.ts";
import { isFileBody, spansBuffer } from "./_bodies.ts";
import { PACK_LIMIT, SendQueue } from "./_send_queue.ts";
import { CompletionQueue } from "./_completion_queue.ts";
import {
  type FromWorker,
  type InitMessage,
  type WireError,
  type WorkerStats,
  zeroStats,
} from "./internal/messages.ts";
import type {
  ObjectBody,
  ObjectHeader,
  SendOptions,
  SentCallback,
  StreamOptions,
  StreamStats,
  TransportCompression,
} from "./types.ts";

const DEFAULT_BURST = 256;
const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
const DEFAULT_IDLE_TIMEOUT_MS = 4000;
const DEFAULT_SIZE_PDU = 64 * 1024;
const MAX_SIZE_PDU = 1 << 20;
const DEFAULT_MAX_HEADER_SIZE = 64 * 1024;
const COMPRESSIONS: readonly TransportCompression[] = [
  "none",
  "gzip",
  "deflate",
  "deflate-raw",
];

/** What `send` returns when the object was queued at once. */
const QUEUED: Promise<void> = Promise.resolve();
const NO_OPTIONS: SendOptions = Object.freeze({});

/** Shared copy ring of a stream, made on the first kept large body. */
const RING_BYTES = 16 * 1024 * 1024;
/** Largest body copied through the ring (a quarter of it). */
const RING_MAX_BODY = RING_BYTES / 4;

function positiveInteger(
  name: string,
  value: number | undefined,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new TransportError(
      "invalid-argument",
      `option ${name} is ${value}, expected an integer in [1, ${max}]`,
    );
  }
  return value;
}

function fromWire(error: WireError, sessionId: string): TransportError {
  return new TransportError(error.code, error.message, {
    sessionId,
    remoteCode: error.remoteCode,
  });
}

let sessionCounter = 0;

/**
 * One ordered stream of objects to one receiver URL, sent over a single
 * long-lived HTTP request by a dedicated worker.
 *
 * @example
 * ```ts ignore
 * import { Stream } from "./stream.ts";
 * const stream = new Stream("http://127.0.0.1:8080/v1/objstream/demo", {
 *   onSent: (header, error) => console.log(header.name, error?.code ?? "ok"),
 * });
 * await stream.send({ name: "a" }, new TextEncoder().encode("hello"));
 * await stream.send({ name: "b" }); // header-only
 * await stream.fin();
 * ```
 */
export class Stream {
  /** The receiver URL. */
  readonly url: string;
  /** The session id sent with every request of this stream. */
  readonly sessionId: string;
  #burst: number;
  #maxBytes: number;
  #idleTimeoutMs: number;
  #confirm: boolean;
  #sizePdu: number;
  #maxHeaderSize: number;
  #compression: TransportCompression;
  #headers: Record<string, string>;
  #secret?: string;
  #caCerts?: string[];
  #onProgress?: (stats: StreamStats) => void;
  #signal?: AbortSignal;
  #onAbort?: () => void;
  #worker: Worker | null = null;
  #nextSeq = 0;
  /** Objects sent and refused, until their completions fire (SCQ). */
  #completions: CompletionQueue;
  #ring: CopyRing | null = null;
  /** Objects of the next batch (SQ). */
  #sendQueue = new SendQueue();
  /** Headers and small bodies of the next batch, copied at send time. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #waiters: (() => void)[] = [];
  #state: "open" | "finishing" | "ended" = "open";
  #termination: TransportError | null = null;
  #stats: WorkerStats = zeroStats();
  #closed: Promise<void>;
  #resolveClosed!: () => void;
  #closedDone = false;
  /** Every object completed with an error, wherever it failed. */

  /** Creates a stream to `url`; nothing connects before the first send. */
  constructor(url: string | URL, options: StreamOptions = {}) {
    this.url = receiverUrl(url).href;
    this.sessionId = `${Date.now().toString(36)}-${
      (++sessionCounter).toString(36)
    }-${crypto.randomUUID().slice(0, 8)}`;
    this.#burst = positiveInteger("burst", options.burst, DEFAULT_BURST);
    this.#maxBytes = positiveInteger(
      "maxInFlightBytes",
      options.maxInFlightBytes,
      DEFAULT_MAX_IN_FLIGHT_BYTES,
    );
    this.#idleTimeoutMs = positiveInteger(
      "idleTimeoutMs",
      options.idleTimeoutMs,
      DEFAULT_IDLE_TIMEOUT_MS,
    );
    if (options.confirm !== undefined && typeof options.confirm !== "boolean") {
      throw new TransportError(
        "invalid-argument",
        `option confirm is ${
          JSON.stringify(options.confirm)
        }, expected true or false`,
      );
    }
    this.#confirm = options.confirm ?? false;
    this.#sizePdu = positiveInteger(
      "sizePdu",
      options.sizePdu,
      DEFAULT_SIZE_PDU,
      MAX_SIZE_PDU,
    );
    this.#maxHeaderSize = positiveInteger(
      "maxHeaderSize",
      options.maxHeaderSize,
      DEFAULT_MAX_HEADER_SIZE,
      16 * 1024 * 1024,
    );
    const compression = options.compression ?? "none";
    if (!COMPRESSIONS.includes(compression)) {
      throw new TransportError(
        "invalid-argument",
        `option compression is ${
          JSON.stringify(compression)
        }, expected one of ${COMPRESSIONS.join(", ")}`,
      );
    }
    this.#compression = compression;
    this.#headers = { ...options.headers };
    checkRequestHeaders(this.#headers);
    if (options.secret !== undefined && options.secret.length < 16) {
      throw new TransportError(
        "invalid-argument",
        `option secret has ${options.secret.length} characters, expected at least 16`,
      );
    }
    this.#secret = options.secret;
    this.#caCerts = options.caCerts;
    this.#completions = new CompletionQueue({
      onSent: options.onSent,
      releaseRing: (cost) => this.#ring!.release(cost),
      onRoom: () => this.#wakeWaiters(),
    });
    this.#onProgress = options.onProgress;
    this.#closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const signal = options.signal;
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => void this.abort(signal.reason);
      if (signal.aborted) this.#onAbort();
      else signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** Whether the stream was ended by `fin`, `abort` or an error. */
  get terminated(): boolean {
    return this.#state !== "open";
  }

  /** Why the stream ended with an error, or `null`. */
  get termination(): TransportError | null {
    return this.#termination;
  }

  /**
   * Queues an object. Resolves once it is queued; waits while `burst`
   * objects or `maxInFlightBytes` body bytes are in flight. If it rejects,
   * the object's completion has already fired with the same error.
   */
  send(
    header: ObjectHeader,
    body?: ObjectBody,
    options: SendOptions = NO_OPTIONS,
  ): Promise<void> {
    try {
      if (
        this.#state === "open" &&
        (body === undefined || body === null ||
          (body instanceof Uint8Array && body.byteLength <= PACK_LIMIT))
      ) {
        const queued = this.#sendSmall(header, body ?? null, options.onSent);
        if (queued !== null) return queued;
      }
    } catch (error) {
      // As from the async path: send never throws, it rejects.
      return Promise.reject(error);
    }
    return this.#send(header, body, options);
  }

  /**
   * Queues a small object (a packed body or none) that need not wait, with
   * its header written straight into the batch: no promise, no copy of the
   * header, no object but its completion entry. `null` if it must wait
   * (then {@linkcode Stream.#send} takes it).
   */
  #sendSmall(
    header: ObjectHeader,
    body: Uint8Array | null,
    onSent: SentCallback | undefined,
  ): Promise<void> | null {
    let size: number;
    let length: number;
    try {
      size = this.#sizeOf(header, body);
      length = measureHeader(header, size);
      this.#checkHeaderLength(header, length);
    } catch (error) {
      return Promise.reject(this.#refused(header, body, onSent, error));
    }
    // Of unknown size (-1), it goes as PDUs: not framed whole here.
    if (size < 0 || this.#mustWait(size)) return null;
    const seq = this.#nextSeq++;
    this.#completions.push({
      seq,
      header,
      onSent,
      budget: size,
      ringCost: undefined,
      body,
    });
    this.#sendQueue.addMeasured(seq, size, length, body);
    this.#scheduleFlush();
    return QUEUED;
  }

  /** {@linkcode Stream.send} of an object that may wait or travel on its own. */
  async #send(
    header: ObjectHeader,
    body: ObjectBody,
    options: SendOptions,
  ): Promise<void> {
    const onSent = options.onSent;
    const { encoded, size } = this.#encode(header, body, onSent);
    // Shared memory is read in place (the caller waits for the completion
    // before reusing it). Other bodies the caller keeps are copied: into the
    // shared ring when they fit (after the wait below), else right now.
    const keep = body instanceof Uint8Array && body.byteLength > PACK_LIMIT &&
      (options.copy === true ||
        (!spansBuffer(body) && !(body.buffer instanceof SharedArrayBuffer)));
    const toRing = keep && (body as Uint8Array).byteLength <= RING_MAX_BODY;
    if (keep && !toRing) body = (body as Uint8Array).slice();
    const budget = size > 0 ? size : 0;
    while (this.#mustWait(budget)) await this.#room();
    let slot: RingSlot | null = null;
    if (toRing) {
      // Awaited only when full: a send that need not wait queues at once.
      const ring = this.#ring ??= this.#makeRing();
      while (
        this.#state === "open" && (slot = ring.put(body as Uint8Array)) === null
      ) await this.#room();
    }
    if (this.#state !== "open") {
      if (slot !== null) this.#ring!.release(slot.cost);
      return this.send(header, body, options);
    }
    const seq = this.#nextSeq++;
    this.#completions.push({
      seq,
      header,
      onSent,
      budget,
      ringCost: slot?.cost,
      body: slot === null ? body ?? null : null,
    });
    this.#sendQueue.add(seq, size, encoded, body, slot);
    this.#scheduleFlush();
  }

  /**
   * The object's size and encoded header; if the stream is terminated or
   * the header is wrong, fails the object's completion and throws.
   */
  #encode(
    header: ObjectHeader,
    body: ObjectBody,
    onSent: SentCallback | undefined,
  ): { encoded: Uint8Array; size: number } {
    if (this.#state !== "open") {
      const error = new TransportError(
        "stream-terminated",
        `stream ${this.sessionId} is terminated${
          this.#termination ? ` (${this.#termination.message})` : ""
        }: dropping object ${JSON.stringify(header?.name)}`,
        { sessionId: this.sessionId, cause: this.#termination ?? undefined },
      );
      this.#failEarly(header, body, onSent, error);
      throw error;
    }
    try {
      const size = this.#sizeOf(header, body);
      const encoded = encodeHeader({ ...header, size });
      this.#checkHeaderLength(header, encoded.byteLength);
      return { encoded, size };
    } catch (error) {
      throw this.#refused(header, body, onSent, error);
    }
  }

  /** Throws `hdr-too-large` if `length` is over `maxHeaderSize`. */
  #checkHeaderLength(header: ObjectHeader, length: number): void {
    if (length > this.#maxHeaderSize) {
      throw new TransportError(
        "hdr-too-large",
        `header of ${
          JSON.stringify(header.name)
        } encodes to ${length} bytes, the limit (maxHeaderSize) is ${this.#maxHeaderSize}`,
      );
    }
  }

  /**
   * The error `send` rejects with for an object it refused because of
   * `error`; the object's completion has fired (or will, in its turn).
   */
  #refused(
    header: ObjectHeader,
    body: ObjectBody,
    onSent: SentCallback | undefined,
    error: unknown,
  ): TransportError {
    const failure = error instanceof TransportError
      ? error
      : new TransportError(
        "obj-hdr-invalid",
        `object header is invalid: ${(error as Error).message}`,
        { cause: error },
      );
    this.#failEarly(header, body, onSent, failure);
    return failure;
  }

  /** Whether an object of `budget` body bytes must wait for room. */
  #mustWait(budget: number): boolean {
    return this.#state === "open" &&
      (this.#completions.inFlight >= this.#burst ||
        (this.#completions.inFlight > 0 &&
          this.#completions.inFlightBytes + budget > this.#maxBytes));
  }

  /** Sends what is queued; resolves when a completion makes room. */
  #room(): Promise<void> {
    this.#flush();
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Sends a full batch now, else the batch on the next macrotask. */
  #scheduleFlush(): void {
    if (this.#sendQueue.full) {
      this.#flush();
    } else if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => this.#flush(), 0);
    }
  }

  /**
   * Sends everything queued, ends the stream cleanly and resolves when every
   * completion has fired. Rejects with the termination error if the stream
   * ended with one.
   */
  async fin(): Promise<void> {
    if (this.#state === "open") {
      this.#state = "finishing";
      this.#wakeWaiters();
      if (this.#worker === null && this.#sendQueue.length === 0) {
        this.#endWithoutWorker(null);
      } else {
        this.#flush();
        this.#worker!.postMessage({ t: "fin" });
      }
    }
    await this.#closed;
    if (this.#termination !== null) throw this.#termination;
  }

  /**
   * Stops at once: every object not yet completed completes with a
   * `stream-aborted` error. Resolves when all completions have fired.
   */
  async abort(reason?: unknown): Promise<void> {
    if (this.#state !== "ended" && this.#termination === null) {
      const message = reason instanceof Error
        ? reason.message
        : reason === undefined
        ? "aborted by the caller"
        : String(reason);
      const error = new TransportError(
        "stream-aborted",
        `stream ${this.sessionId} aborted: ${message}`,
        { sessionId: this.sessionId, cause: reason },
      );
      this.#termination = error;
      this.#state = "finishing";
      this.#wakeWaiters();
      this.#clearFlushTimer();
      // Objects not yet posted never reach the worker: release their bodies.
      this.#sendQueue.drop(error);
      if (this.#worker === null) this.#endWithoutWorker(error);
      else this.#worker.postMessage({ t: "abort", reason: error.message });
    }
    await this.#closed;
  }

  /** Send-side statistics (as last reported by the worker). */
  stats(): StreamStats {
    const s = this.#stats;
    return {
      ...s,
      failed: this.#completions.failed,
      idlePct: s.totalMs > 0 ? (100 * s.idleMs) / s.totalMs : 0,
    };
  }

  /** Aborts the stream unless it already ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort("disposed");
  }

  #sizeOf(header: ObjectHeader, body: ObjectBody): number {
    if (
      typeof header !== "object" || header === null ||
      typeof header.name !== "string"
    ) {
      throw new TransportError(
        "obj-hdr-invalid",
        `object header must be an object with a string name, got ${typeof header}`,
      );
    }
    const given = header.size;
    if (body === null || body === undefined) {
      if (given !== undefined && given !== 0) {
        throw new TransportError(
          "obj-size-mismatch",
          `object ${
            JSON.stringify(header.name)
          } has no body but size ${given}, expected 0`,
        );
      }
      return 0;
    }
    if (body instanceof Uint8Array) {
      if ((body.buffer as ArrayBuffer).detached) {
        throw new TransportError(
          "invalid-argument",
          `body of ${
            JSON.stringify(header.name)
          } is a detached buffer (an earlier send moved it to the worker), expected live bytes; pass { copy: true } to keep sending one buffer`,
        );
      }
      if (given !== undefined && given !== -1 && given !== body.byteLength) {
        throw new TransportError(
          "obj-size-mismatch",
          `object ${
            JSON.stringify(header.name)
          } has a ${body.byteLength}-byte body but size ${given}`,
        );
      }
      return given ?? body.byteLength;
    }
    if (!(body instanceof ReadableStream) && !isFileBody(body)) {
      throw new TransportError(
        "invalid-argument",
        `body of ${
          JSON.stringify(header.name)
        } is not a Uint8Array, ReadableStream, { path } or null`,
      );
    }
    if (body instanceof ReadableStream && body.locked) {
      throw new TransportError(
        "invalid-argument",
        `body stream of ${
          JSON.stringify(header.name)
        } is locked, expected an unread stream`,
      );
    }
    return given ?? -1;
  }

  #failEarly(
    header: ObjectHeader,
    body: ObjectBody,
    onSent: SentCallback | undefined,
    error: TransportError,
  ): void {
    this.#completions.refuse({
      seq: null,
      header,
      onSent,
      budget: 0,
      body: body ?? null,
      error,
    });
  }

  #makeRing(): CopyRing {
    const ring = new CopyRing(RING_BYTES);
    // Messages keep their order: the worker has the ring before any slot.
    (this.#worker ?? this.#startWorker()).postMessage({
      t: "ring",
      buffer: ring.buffer,
    });
    return ring;
  }

  #clearFlushTimer(): void {
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
  }

  #startWorker(): Worker {
    const worker = new Worker(
      new URL("../workers/send_loop.ts", import.meta.url),
      { type: "module", name: `spool-stream-${this.sessionId}` },
    );
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      this.#onMessage(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#onMessage({
        t: "end",
        error: {
          code: "stream-terminated",
          message: `send-loop worker failed: ${event.message}`,
        },
        rest: null,
        stats: this.#stats,
      });
      this.#onMessage({ t: "closed" });
    };
    const init: InitMessage = {
      t: "init",
      url: this.url,
      sessionId: this.sessionId,
      idleTimeoutMs: this.#idleTimeoutMs,
      confirm: this.#confirm,
      compression: this.#compression,
      sizePdu: this.#sizePdu,
      headers: this.#headers,
      secret: this.#secret,
      caCerts: this.#caCerts,
    };
    worker.postMessage(init);
    this.#worker = worker;
    return worker;
  }

  #flush(): void {
    this.#clearFlushTimer();
    const batch = this.#sendQueue.take();
    if (batch === null) return;
    const worker = this.#worker ?? this.#startWorker();
    // Posted: termination paths no longer cancel these bodies here.
    this.#completions.posted();
    worker.postMessage(batch.message, batch.transfer);
  }

  #progress(): void {
    if (this.#onProgress === undefined) return;
    try {
      this.#onProgress(this.stats());
    } catch (thrown) {
      // The caller's bug, surfaced like a throwing onSent callback.
      reportError(thrown);
    }
  }

  #wakeWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #endWithoutWorker(error: TransportError | null): void {
    this.#completions.completeThrough(
      -1,
      new Map(),
      error ?? new TransportError(
        "stream-terminated",
        `stream ${this.sessionId} ended`,
        { sessionId: this.sessionId },
      ),
    );
    this.#finishClosed();
  }

  #finishClosed(): void {
    this.#state = "ended";
    if (this.#signal !== undefined && this.#onAbort !== undefined) {
      this.#signal.removeEventListener("abort", this.#onAbort);
    }
    if (!this.#closedDone) {
      this.#closedDone = true;
      this.#resolveClosed();
    }
  }

  #onMessage(message: FromWorker): void {
    switch (message.t) {
      case "cmpl": {
        this.#stats = message.stats;
        for (const buffer of message.spent ?? []) {
          this.#sendQueue.recycle(buffer);
        }
        const errors = new Map<number, TransportError>();
        for (const [seq, error] of message.errors) {
          errors.set(seq, fromWire(error, this.sessionId));
        }
        this.#completions.completeThrough(message.through, errors);
        this.#progress();
        break;
      }
      case "prog":
        this.#stats = message.stats;
        this.#progress();
        break;
      case "end": {
        this.#stats = message.stats;
        const error = message.error === null
          ? null
          : fromWire(message.error, this.sessionId);
        if (error !== null && this.#termination === null) {
          this.#termination = error;
        }
        if (this.#state === "open") this.#state = "finishing";
        this.#clearFlushTimer();
        const rest = message.rest === null
          ? this.#termination
          : fromWire(message.rest, this.sessionId);
        this.#completions.completeThrough(
          -1,
          new Map(),
          rest ?? new TransportError(
            "stream-terminated",
            `stream ${this.sessionId} ended before this object was sent`,
            { sessionId: this.sessionId },
          ),
        );
        this.#worker?.postMessage({ t: "close" });
        break;
      }
      case "closed":
        this.#worker?.terminate();
        this.#worker = null;
        this.#finishClosed();
        break;
    }
  }
}
