/**
 * The send loop's view of one HTTP request: a byte sink with back-pressure
 * and a count of bytes the HTTP client has taken. Kept behind a small
 * interface so the `fetch` implementation can be swapped for a hand-written
 * HTTP/1.1 client.
 *
 * @module
 */

import { TransportError } from "../transport/errors.ts";
import { COMPRESSION_HEADER, SESSION_HEADER } from "../transport/framing.ts";
import type { TransportCompression } from "../transport/types.ts";

/** One open request. */
export interface Connection {
  /** Queues `chunk`; resolves when the connection can take more. */
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes the HTTP client has taken from the queue so far. */
  readonly consumed: number;
  /** Ends the body and waits for the receiver's answer. */
  close(): Promise<void>;
  /** Drops the request at once. */
  abort(reason: TransportError): void;
}

/** Opens requests to one URL. */
export interface Connector {
  /**
   * Opens a request; `onProgress` runs when the client took more bytes,
   * `onFailure` once if the request fails on its own (receiver gone or
   * answered early), so a send loop blocked on a body learns it at once.
   */
  open(
    sessionId: string,
    onProgress: () => void,
    onFailure: (error: TransportError) => void,
  ): Connection;
}

/** Options of {@linkcode fetchConnector}. */
export interface FetchConnectorOptions {
  compression: TransportCompression;
  headers: Record<string, string>;
  /** Bytes queued before `write` waits. */
  highWaterMark?: number;
}

/** A connector that streams each request body with `fetch`. */
export function fetchConnector(
  url: string,
  options: FetchConnectorOptions,
): Connector {
  return {
    open: (sessionId, onProgress, onFailure) =>
      new FetchConnection(url, sessionId, { onProgress, onFailure }, options),
  };
}

async function outcomeOf(
  response: Promise<Response>,
  sessionId: string,
): Promise<TransportError | null> {
  let res: Response;
  try {
    res = await response;
  } catch (error) {
    return new TransportError(
      "receiver_gone",
      `the request failed before the receiver answered: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, sessionId },
    );
  }
  let text: string;
  try {
    text = await res.text();
  } catch (error) {
    return new TransportError(
      "receiver_gone",
      `reading the receiver's answer (HTTP ${res.status}) failed`,
      { cause: error, sessionId },
    );
  }
  if (res.ok) return null;
  let remoteCode = "";
  let remoteMessage = text;
  try {
    const parsed = JSON.parse(text);
    remoteCode = String(parsed.code ?? "");
    remoteMessage = String(parsed.message ?? text);
  } catch (error) {
    // Not our JSON (a proxy's page, say): report the raw text instead.
    remoteMessage = `${text} (${(error as Error).message})`;
  }
  return new TransportError(
    "receiver_error",
    `receiver answered HTTP ${res.status}${
      remoteCode ? ` ${remoteCode}` : ""
    }: ${remoteMessage}`,
    { sessionId, remoteCode },
  );
}

class FetchConnection implements Connection {
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #highWaterMark: number;
  #enqueued = 0;
  #wake: (() => void) | null = null;
  #failure: TransportError | null = null;
  #closing = false;
  #abort = new AbortController();
  #outcome: Promise<TransportError | null>;
  #onProgress: () => void;
  #onFailure: (error: TransportError) => void;
  #sessionId: string;

  constructor(
    url: string,
    sessionId: string,
    events: {
      onProgress: () => void;
      onFailure: (error: TransportError) => void;
    },
    options: FetchConnectorOptions,
  ) {
    this.#sessionId = sessionId;
    this.#onProgress = events.onProgress;
    this.#onFailure = events.onFailure;
    this.#highWaterMark = options.highWaterMark ?? 1 << 20;
    let body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        this.#onProgress();
        this.#wakeUp();
      },
      cancel: (reason) => {
        this.#fail(
          new TransportError(
            "receiver_gone",
            `the HTTP client cancelled the request body: ${reason}`,
            { cause: reason, sessionId },
          ),
        );
      },
    }, {
      highWaterMark: this.#highWaterMark,
      size: (chunk) => chunk.byteLength,
    });
    const headers: Record<string, string> = {
      ...options.headers,
      "content-type": "application/octet-stream",
      [SESSION_HEADER]: sessionId,
    };
    if (options.compression !== "none") {
      body = body.pipeThrough(
        new CompressionStream(
          options.compression,
        ) as unknown as TransformStream<
          Uint8Array,
          Uint8Array
        >,
      );
      headers[COMPRESSION_HEADER] = options.compression;
    }
    this.#outcome = outcomeOf(
      fetch(url, {
        method: "PUT",
        body,
        headers,
        signal: this.#abort.signal,
      }),
      sessionId,
    );
    this.#outcome.then((error) => {
      if (this.#closing) return;
      this.#fail(
        error ??
          new TransportError(
            "receiver_error",
            "receiver answered before the request body ended",
            { sessionId },
          ),
      );
    });
  }

  get consumed(): number {
    const desired = this.#controller.desiredSize ?? 0;
    return this.#enqueued - (this.#highWaterMark - desired);
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #gone(cause: unknown): TransportError {
    return new TransportError(
      "receiver_gone",
      `the request body was closed by the HTTP client: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause, sessionId: this.#sessionId },
    );
  }

  #fail(error: TransportError): void {
    if (this.#failure !== null) return;
    this.#failure = error;
    this.#abort.abort(error);
    this.#wakeUp();
    if (!this.#closing) this.#onFailure(error);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    this.#enqueued += chunk.byteLength;
    try {
      this.#controller.enqueue(chunk);
    } catch (error) {
      // The client cancelled the body between our check and the enqueue.
      this.#fail(this.#gone(error));
      throw this.#failure;
    }
    while ((this.#controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((resolve) => this.#wake = resolve);
      if (this.#failure !== null) throw this.#failure;
    }
  }

  async close(): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    this.#closing = true;
    try {
      this.#controller.close();
    } catch (error) {
      this.#fail(this.#gone(error));
      throw this.#failure;
    }
    const error = await this.#outcome;
    if (error !== null) {
      this.#failure = error;
      throw error;
    }
  }

  abort(reason: TransportError): void {
    this.#closing = true;
    this.#fail(reason);
  }
}
