/**
 * One HTTP/1.1 `PUT` with a chunked body, written by hand over `Deno.connect`
 * (or `Deno.connectTls`). A socket is several times faster than `fetch` with
 * a streaming body (see bench/RESULTS.md), and a write that resolved means
 * the kernel took the bytes: that is what a send completion promises.
 *
 * @module
 */

import { TransportError } from "../transport/errors.ts";
import {
  ACK_HEADER,
  COMPRESSION_HEADER,
  SESSION_HEADER,
} from "../transport/framing.ts";
import type { TransportCompression } from "../transport/types.ts";
import {
  checkRequestHeaders,
  receiverUrl,
} from "../transport/internal/request_target.ts";
import { type HttpResponse, readResponse } from "./_http1_response.ts";
import { AUTH_HEADER, signRequest } from "../transport/internal/auth.ts";

/** One open request. */
export interface Connection {
  /**
   * Sends `lead` (small, copied) then `chunk`; resolves when the socket took
   * them, and keeps neither after that (the caller reuses its buffers). Inside a chunk that {@linkcode startChunk} opened, `chunk` is more
   * of its payload (`lead` is not allowed there) and must fit in what is left.
   */
  write(chunk: Uint8Array, lead?: Uint8Array): Promise<void>;
  /**
   * Opens one HTTP chunk of `size` bytes that starts with `lead` (small,
   * copied); the `write`s that follow fill the rest. A large body goes out
   * as one chunk this way: a receiver reads it at the same cost wherever
   * its chunks end, but Deno's server pays for every chunk boundary while
   * its reader lags behind the socket (see bench/ANALYSIS.md).
   */
  startChunk(size: number, lead?: Uint8Array): Promise<void>;
  /** Body bytes (before compression) the socket has taken so far. */
  readonly consumed: number;
  /**
   * Whether a chunk is done with once its `write` resolved (the socket
   * copied it), so the caller may reuse its buffer. Absent or `false`: the
   * chunk may still be read later (a compressor holds it).
   */
  readonly releasesWrites?: boolean;
  /** Ends the body and waits for the receiver's answer. */
  close(): Promise<void>;
  /** Drops the request at once. */
  abort(reason: TransportError): void;
}

/** What a connection reports to its send loop. */
export interface ConnectionEvents {
  /** The socket took more bytes. */
  onProgress(): void;
  /**
   * The request failed on its own (receiver gone, or it answered early),
   * so a send loop blocked on a body learns it at once. Called at most once,
   * never after `close` or `abort` was called.
   */
  onFailure(error: TransportError): void;
  /**
   * The receiver confirmed every object of this request up to the one with
   * wire sequence number `seq` (only with the `confirm` option).
   */
  onAck?(seq: number): void;
}

/** Opens requests to one URL. */
export interface Connector {
  /** Opens a request (connecting lazily, in the background). */
  open(sessionId: string, events: ConnectionEvents): Connection;
}

/** Options of {@linkcode http1Connector}. */
export interface Http1ConnectorOptions {
  /** Request body compression. */
  compression: TransportCompression;
  /** Extra request headers. */
  headers: Record<string, string>;
  /** PEM CA certificates trusted for `https` URLs, besides the system ones. */
  caCerts?: string[];
  /** Shared secret: sign each request (`Spool-Auth`). */
  secret?: string;
  /** Ask the receiver to confirm objects as it takes them (`Spool-Ack: 1`). */
  confirm?: boolean;
}

const encoder = new TextEncoder();
const LAST_CHUNK = encoder.encode("0\r\n\r\n");
const CRLF_LAST_CHUNK = encoder.encode("\r\n0\r\n\r\n");
/** Chunks up to this size are framed with one copy and one write. */
const JOIN_LIMIT = 64 * 1024;
/** Size of the buffer kept to join chunks in (a size line, a lead, a chunk). */
const JOIN_BUFFER = JOIN_LIMIT + 64 * 1024 + 32;

/**
 * A connector that writes each request itself over TCP (or TLS).
 *
 * @example
 * ```ts ignore
 * const connector = http1Connector("http://127.0.0.1:8080/v1/objstream/x", {
 *   compression: "none",
 *   headers: {},
 * });
 * ```
 */
export function http1Connector(
  url: string,
  options: Http1ConnectorOptions,
): Connector {
  const target = receiverUrl(url);
  checkRequestHeaders(options.headers);
  return {
    open: (sessionId, events) =>
      new Http1Connection(target, sessionId, events, options),
  };
}

/** The one method of a stream's requests (signed with them). */
const METHOD = "PUT";

function requestHead(
  target: URL,
  sessionId: string,
  options: Http1ConnectorOptions,
): Uint8Array {
  const lines = [
    `${METHOD} ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    ...Object.entries(options.headers).map(([name, value]) =>
      `${name}: ${value}`
    ),
    "Content-Type: application/octet-stream",
    `${SESSION_HEADER}: ${sessionId}`,
    "Transfer-Encoding: chunked",
    "Connection: close",
  ];
  if (options.compression !== "none") {
    lines.push(`${COMPRESSION_HEADER}: ${options.compression}`);
  }
  if (options.confirm) lines.push(`${ACK_HEADER}: 1`);
  if (options.secret !== undefined) {
    lines.push(
      `${AUTH_HEADER}: ${
        signRequest(options.secret, {
          method: METHOD,
          sessionId,
          path: target.pathname,
        })
      }`,
    );
  }
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) {
    at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
  }
}

/**
 * The JSON error a receiver answers with, as a transport error: a non-2xx
 * answer, or a confirmation stream's last line with a `code`.
 */
function answerError(
  response: HttpResponse,
  sessionId: string,
): TransportError | null {
  const text = new TextDecoder().decode(response.body);
  if (response.status >= 200 && response.status < 300) {
    if (!text.startsWith('{"code":')) return null;
    const { code, message } = JSON.parse(text);
    return new TransportError(
      "receiver-error",
      `receiver failed the request (after answering HTTP ${response.status} to stream confirmations) with ${code}: ${message}`,
      { sessionId, remoteCode: String(code) },
    );
  }
  let remoteCode = "";
  let remoteMessage = text;
  try {
    const parsed = JSON.parse(text);
    remoteCode = String(parsed.code ?? "");
    remoteMessage = String(parsed.message ?? text);
  } catch (error) {
    // Not our JSON (a proxy's page, say): report the raw text instead.
    remoteMessage = `${text} (${describe(error)})`;
  }
  return new TransportError(
    "receiver-error",
    `receiver answered HTTP ${response.status}${
      remoteCode ? ` ${remoteCode}` : ""
    }: ${remoteMessage}`,
    { sessionId, remoteCode },
  );
}

class Http1Connection implements Connection {
  consumed = 0;
  /** Set once: uncompressed, every write ends in the socket. */
  readonly releasesWrites: boolean;
  #sessionId: string;
  #events: ConnectionEvents;
  #conn: Promise<Deno.Conn>;
  #socket: Deno.Conn | null = null;
  #answer: Promise<TransportError | null>;
  #failure: TransportError | null = null;
  #done = false;
  #closing = false;
  /** A chunk was written whose closing CRLF is still due. */
  #chunkOpen = false;
  /** Payload bytes still due of the chunk {@linkcode startChunk} opened. */
  #chunkLeft = 0;
  #compressor: WritableStreamDefaultWriter<BufferSource> | null = null;
  #pump: Promise<void> | null = null;
  /** The buffer chunks are joined in, while no write uses it. */
  #joined: ArrayBuffer | null = null;

  constructor(
    target: URL,
    sessionId: string,
    events: ConnectionEvents,
    options: Http1ConnectorOptions,
  ) {
    this.#sessionId = sessionId;
    this.#events = events;
    const head = requestHead(target, sessionId, options);
    this.#conn = this.#connect(target, head, options);
    // The receiver answers at the end, or early when it rejects the stream
    // or streams confirmations.
    this.#answer = this.#readAnswer(options.confirm === true);
    this.#answer.then((error) => {
      if (error !== null && !this.#closing) this.#fail(error, true);
    });
    this.releasesWrites = options.compression === "none";
    if (options.compression !== "none") {
      const compression = new CompressionStream(options.compression);
      this.#compressor = compression.writable.getWriter();
      this.#pump = this.#pumpCompressed(
        compression.readable as ReadableStream<Uint8Array>,
      );
      this.#pump.catch((error) => this.#fail(this.#broken(error), true));
    }
  }

  /** Connects to `target` and sends the request's `head`. */
  async #connect(
    target: URL,
    head: Uint8Array,
    options: Http1ConnectorOptions,
  ): Promise<Deno.Conn> {
    const sessionId = this.#sessionId;
    const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(target.port) ||
      (target.protocol === "https:" ? 443 : 80);
    let conn: Deno.Conn;
    try {
      if (target.protocol === "https:") {
        conn = await Deno.connectTls({
          hostname,
          port,
          caCerts: options.caCerts,
        });
      } else {
        const tcp = await Deno.connect({ hostname, port });
        // The last small chunk of a burst must not wait for an ACK.
        tcp.setNoDelay(true);
        conn = tcp;
      }
    } catch (error) {
      throw new TransportError(
        "receiver-gone",
        `connecting to ${target.host} failed: ${describe(error)}`,
        { cause: error, sessionId },
      );
    }
    this.#socket = conn;
    if (this.#done) {
      conn.close();
      throw this.#failure;
    }
    try {
      // A TLS handshake happens here, on the first write.
      await writeAll(conn, head);
    } catch (error) {
      throw new TransportError(
        "receiver-gone",
        `sending the request to ${target.host} failed: ${describe(error)}`,
        { cause: error, sessionId },
      );
    }
    return conn;
  }

  /**
   * The receiver's answer once connected, as the error it reports (`null`:
   * success); confirmations go to `onAck` if `confirm`. Never rejects.
   */
  #readAnswer(confirm: boolean): Promise<TransportError | null> {
    const sessionId = this.#sessionId;
    const onAck = confirm
      ? (seq: number) => this.#events.onAck?.(seq)
      : undefined;
    return this.#conn.then(
      async (conn) => {
        const response = await readResponse(conn, onAck);
        if (response === null) {
          return new TransportError(
            "receiver-gone",
            "the receiver closed the connection without an answer",
            { sessionId },
          );
        }
        if (response.cut) {
          return new TransportError(
            "receiver-gone",
            "the receiver closed the connection before its final answer: objects it had not confirmed may be lost",
            { sessionId },
          );
        }
        return answerError(response, sessionId) ??
          (this.#closing ? null : new TransportError(
            "receiver-error",
            `receiver answered HTTP ${response.status} before the request body ended`,
            { sessionId },
          ));
      },
      (error) =>
        error instanceof TransportError ? error : new TransportError(
          "receiver-gone",
          `connecting failed: ${describe(error)}`,
          { cause: error, sessionId },
        ),
    ).catch((error) =>
      this.#failure ?? new TransportError(
        "receiver-gone",
        `reading the receiver's answer failed: ${describe(error)}`,
        { cause: error, sessionId },
      )
    );
  }

  async write(chunk: Uint8Array, lead?: Uint8Array): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    if (this.#chunkLeft > 0) {
      await this.#writeInChunk(chunk, lead);
    } else if (this.#compressor !== null) {
      try {
        if (lead !== undefined && lead.byteLength > 0) {
          await this.#compressor.write(lead.slice());
        }
        await this.#compressor.write(chunk as Uint8Array<ArrayBuffer>);
      } catch (error) {
        throw this.#failure ?? this.#fail(this.#broken(error), true);
      }
    } else {
      await this.#writeChunk(chunk, lead);
    }
    this.consumed += chunk.byteLength + (lead?.byteLength ?? 0);
    this.#events.onProgress();
  }

  async startChunk(size: number, lead?: Uint8Array): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    const leadSize = lead?.byteLength ?? 0;
    if (this.#chunkLeft > 0 || size < leadSize) {
      throw new TypeError(
        `startChunk(${size}) with a ${leadSize}-byte lead while ${this.#chunkLeft} bytes of the open chunk are due`,
      );
    }
    if (this.#compressor !== null) {
      // Compressed, the HTTP chunks are the compressor's: only the bytes count.
      if (leadSize > 0) await this.write(lead!);
      return;
    }
    if (size === 0) return;
    const conn = await this.#connected();
    const line = encoder.encode(
      `${this.#chunkOpen ? "\r\n" : ""}${size.toString(16)}\r\n`,
    );
    this.#chunkOpen = true;
    this.#chunkLeft = size - leadSize;
    let head = line;
    if (leadSize > 0) {
      head = new Uint8Array(line.byteLength + leadSize);
      head.set(line);
      head.set(lead!, line.byteLength);
    }
    try {
      await writeAll(conn, head);
    } catch (error) {
      throw this.#failure ?? await this.#failAfterWriteError(error);
    }
    this.consumed += leadSize;
    if (leadSize > 0) this.#events.onProgress();
  }

  /** Writes `chunk` as more payload of the chunk `startChunk` opened. */
  async #writeInChunk(chunk: Uint8Array, lead?: Uint8Array): Promise<void> {
    if (lead !== undefined && lead.byteLength > 0) {
      throw new TypeError("write() with a lead inside an open chunk");
    }
    if (chunk.byteLength > this.#chunkLeft) {
      throw new TypeError(
        `write() of ${chunk.byteLength} bytes exceeds the ${this.#chunkLeft} due in the open chunk`,
      );
    }
    const conn = await this.#connected();
    this.#chunkLeft -= chunk.byteLength;
    try {
      await writeAll(conn, chunk);
    } catch (error) {
      throw this.#failure ?? await this.#failAfterWriteError(error);
    }
  }

  /** The socket, or the failure that kept it from connecting. */
  async #connected(): Promise<Deno.Conn> {
    try {
      return await this.#conn;
    } catch (error) {
      throw this.#fail(error as TransportError, true);
    }
  }

  async close(): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    if (this.#chunkLeft > 0) {
      throw new TypeError(
        `close() while ${this.#chunkLeft} bytes of the open chunk are due`,
      );
    }
    this.#closing = true;
    try {
      if (this.#compressor !== null) {
        await this.#compressor.close();
        await this.#pump;
      }
      const conn = await this.#conn;
      await writeAll(conn, this.#chunkOpen ? CRLF_LAST_CHUNK : LAST_CHUNK);
    } catch (error) {
      throw this.#failure ?? this.#fail(this.#broken(error), false);
    }
    const error = await this.#answer;
    this.#release();
    if (error !== null) {
      this.#failure = error;
      throw error;
    }
  }

  abort(reason: TransportError): void {
    this.#closing = true;
    this.#fail(reason, false);
  }

  /**
   * Writes `lead` and `chunk` as one HTTP chunk: the size line, the previous
   * chunk's CRLF and a small `lead` share one write, the big payload gets
   * its own (no copy of it).
   */
  async #writeChunk(chunk: Uint8Array, lead?: Uint8Array): Promise<void> {
    const leadSize = lead?.byteLength ?? 0;
    const size = chunk.byteLength + leadSize;
    if (size === 0) return;
    const conn = await this.#connected();
    // The CRLF ending the previous chunk goes out with this chunk's size line.
    const line = encoder.encode(
      `${this.#chunkOpen ? "\r\n" : ""}${size.toString(16)}\r\n`,
    );
    this.#chunkOpen = true;
    try {
      if (chunk.byteLength <= JOIN_LIMIT) {
        const framed = this.#joinBuffer(line.byteLength + size);
        framed.set(line);
        if (lead !== undefined) framed.set(lead, line.byteLength);
        framed.set(chunk, line.byteLength + leadSize);
        try {
          await writeAll(conn, framed);
        } finally {
          this.#joined = framed.buffer as ArrayBuffer;
        }
      } else {
        let head = line;
        if (leadSize > 0) {
          head = new Uint8Array(line.byteLength + leadSize);
          head.set(line);
          head.set(lead!, line.byteLength);
        }
        await writeAll(conn, head);
        await writeAll(conn, chunk);
      }
    } catch (error) {
      throw this.#failure ?? await this.#failAfterWriteError(error);
    }
  }

  /**
   * A buffer of `size` bytes to join a chunk in: the one kept from the
   * last join (taken while in use, so that overlapping writes get their
   * own), else a new one.
   */
  #joinBuffer(size: number): Uint8Array {
    const kept = this.#joined;
    this.#joined = null;
    if (kept !== null && kept.byteLength >= size) {
      return new Uint8Array(kept, 0, size);
    }
    return new Uint8Array(
      new ArrayBuffer(Math.max(size, JOIN_BUFFER)),
      0,
      size,
    );
  }

  async #pumpCompressed(compressed: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of compressed) await this.#writeChunk(chunk);
  }

  /** A write failed: prefer the receiver's answer if one is already here. */
  async #failAfterWriteError(error: unknown): Promise<TransportError> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = await Promise.race([
      this.#answer,
      new Promise<null>((resolve) => timer = setTimeout(resolve, 1000, null)),
    ]);
    clearTimeout(timer);
    return this.#fail(answer ?? this.#broken(error), true);
  }

  #broken(error: unknown): TransportError {
    if (error instanceof TransportError) return error;
    return new TransportError(
      "receiver-gone",
      `writing to the receiver failed: ${describe(error)}`,
      { cause: error, sessionId: this.#sessionId },
    );
  }

  #fail(error: TransportError, notify: boolean): TransportError {
    if (this.#failure !== null) return this.#failure;
    this.#failure = error;
    this.#release();
    this.#compressor?.abort(error).catch((cause) => {
      // The compressor is already errored; nothing more to release.
      console.debug("spool transport: aborting the compressor:", cause);
    });
    if (notify && !this.#closing) this.#events.onFailure(error);
    return error;
  }

  #release(): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#socket?.close();
    } catch (error) {
      // Already closed by the peer's reset: nothing left to release.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}
