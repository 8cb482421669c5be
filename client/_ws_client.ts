/**
 * The upload and download clients' own WebSocket: the subset of the
 * WebSocket API they use, over a TCP connection with `TCP_NODELAY` set and
 * each frame written at once. Deno's built-in client leaves Nagle's
 * algorithm on and writes a frame's header and payload separately: the
 * payload then waits for the header's ACK, which a server that answers
 * (acks, statuses) delays by up to 40 ms.
 *
 * @module
 */

import {
  encodeFrame,
  type Frame,
  FrameBuffers,
  FrameReader,
  MAX_MESSAGE_BYTES,
  Opcode,
  WsProtocolError,
} from "./_ws_frame.ts";
import { handshake, writeAll } from "./_ws_handshake.ts";

/**
 * Milliseconds the client waits for the server's close frame after sending
 * its own before it drops the connection (a dead link never answers).
 */
export const CLOSE_HANDSHAKE_MS = 1000;

/** Options of a {@linkcode WsClient}. */
export interface WsClientOptions {
  /** Extra request headers (e.g. `authorization`). */
  headers?: Record<string, string>;
  /** PEM CA certificates to trust for `wss:` besides the system ones. */
  caCerts?: string[];
}

/** A queued frame and the payload bytes it counts in `bufferedAmount`. */
interface Outgoing {
  bytes: Uint8Array<ArrayBuffer>;
  counted: number;
  /** Whether its buffer goes to the socket's pool once written. */
  pooled: boolean;
}

type Handler<E extends Event> = ((event: E) => void) | null;

/** The events a {@linkcode WsClient} fires. */
export interface WsClientEventMap {
  open: Event;
  message: MessageEvent;
  error: Event;
  close: CloseEvent;
}

/**
 * A WebSocket client: `readyState`, `send`, `close`, `bufferedAmount`, the
 * `open`/`message`/`error`/`close` events as properties and listeners.
 * Binary messages arrive as `Uint8Array`s, not `ArrayBuffer`s: a small one
 * may be a view on a buffer shared with the messages next to it (never
 * written again), so that reading costs no copy and no buffer per message.
 *
 * @example
 * ```ts ignore
 * const socket = new WsClient("ws://127.0.0.1:8787/upload", {
 *   headers: { authorization: "Bearer secret" },
 * });
 * socket.onopen = () => socket.send("hello");
 * socket.onmessage = (event) => console.log(event.data);
 * ```
 */
export class WsClient extends EventTarget {
  /** The handshake is under way. */
  static readonly CONNECTING = 0;
  /** Messages flow. */
  static readonly OPEN = 1;
  /** A close frame went out or came in; the connection is ending. */
  static readonly CLOSING = 2;
  /** The connection is gone. */
  static readonly CLOSED = 3;

  /** The URL connected to. */
  readonly url: string;
  /** Called once open. */
  onopen: Handler<Event> = null;
  /** Called for each message. */
  onmessage: Handler<MessageEvent> = null;
  /** Called when connecting fails or the connection fails. */
  onerror: Handler<Event> = null;
  /** Called once, when the connection is gone. */
  onclose: Handler<CloseEvent> = null;

  #phase: number = WsClient.CONNECTING;
  #conn: Deno.Conn | undefined;
  /** TCP and TLS connections to close when done (TLS consumes the TCP one). */
  readonly #conns: Deno.Conn[] = [];
  readonly #connecting = new AbortController();
  readonly #queue: Outgoing[] = [];
  readonly #buffers = new FrameBuffers();
  #writing = false;
  /** Why writing failed, once it did: nothing more is written. */
  #writeError: Error | undefined;
  /** Run once the queue is written (e.g. end after the close frame). */
  #whenWritten: (() => void) | undefined;
  #buffered = 0;
  /** Fragments of the message being received, and its opcode. */
  #fragments: Uint8Array[] = [];
  #fragmentsBytes = 0;
  #fragmentsOpcode = 0;
  #closeSent = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The server's close frame, once received. */
  #received: { code: number; reason: string } | undefined;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  /** The close event fired. */
  #finished = false;

  /** Starts connecting to `url` (`ws:` or `wss:`); throws for any other URL. */
  constructor(url: string | URL, options: WsClientOptions = {}) {
    super();
    const parsed = new URL(url);
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new SyntaxError(
        `only ws: and wss: URLs can be opened, got ${parsed.protocol}`,
      );
    }
    if (parsed.hash !== "") {
      throw new SyntaxError("a WebSocket URL cannot hold a fragment (#)");
    }
    this.url = parsed.href;
    this.#open(parsed, options);
  }

  /** Listens for `open`, `message`, `error` or `close`. */
  override addEventListener<K extends keyof WsClientEventMap>(
    type: K,
    listener: (this: WsClient, event: WsClientEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for an event by name. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /** `CONNECTING` (0), `OPEN` (1), `CLOSING` (2) or `CLOSED` (3). */
  get readyState(): number {
    return this.#phase;
  }

  /** Payload bytes sent and not yet written to the connection. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  async #open(url: URL, options: WsClientOptions): Promise<void> {
    let leftover: Uint8Array;
    try {
      ({ conn: this.#conn, leftover } = await handshake(url, {
        ...options,
        signal: this.#connecting.signal,
        onConn: (conn) => this.#conns.push(conn),
      }));
    } catch (error) {
      // close() while connecting already reported the end.
      if (this.#phase === WsClient.CLOSED) return;
      return this.#fail(error as Error);
    }
    if (this.#phase !== WsClient.CONNECTING) return this.#drop();
    this.#phase = WsClient.OPEN;
    this.#emit(new Event("open"), this.onopen);
    this.#readLoop(new FrameReader(this.#conn, leftover));
  }

  /**
   * Queues a message; each is written in order, in one write. Throws while
   * connecting; dropped once closing, as the WebSocket API does.
   */
  send(data: string | Uint8Array | ArrayBuffer): void {
    if (!this.#accepting()) return;
    if (typeof data === "string") {
      const bytes = new TextEncoder().encode(data);
      this.#enqueue(encodeFrame(Opcode.TEXT, bytes), bytes.byteLength);
    } else {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      this.#enqueue(
        encodeFrame(Opcode.BINARY, bytes, this.#buffers),
        bytes.byteLength,
      );
    }
  }

  /** Whether a message may be queued now; throws while connecting. */
  #accepting(): boolean {
    if (this.#phase === WsClient.CONNECTING) {
      throw new DOMException(
        "the socket is still connecting",
        "InvalidStateError",
      );
    }
    return this.#phase === WsClient.OPEN && !this.#closeSent;
  }

  /**
   * Queues a binary frame the caller encoded ({@linkcode encodeFrame}) and
   * keeps: its buffer is never reused by the socket. `counted` is its
   * payload length, for {@linkcode WsClient.bufferedAmount}. The same
   * rules as {@linkcode WsClient.send}.
   */
  sendFrame(frame: Uint8Array<ArrayBuffer>, counted: number): void {
    if (!this.#accepting()) return;
    this.#enqueue(frame, counted, false);
  }

  /**
   * Starts the close handshake with `code` (default 1000) and `reason`;
   * the `close` event fires once the server answered, or after
   * {@linkcode CLOSE_HANDSHAKE_MS}. Closing while connecting abandons it.
   */
  close(code = 1000, reason = ""): void {
    const reasonBytes = new TextEncoder().encode(reason);
    checkCloseCode(code, reasonBytes);
    if (this.#phase === WsClient.CONNECTING) {
      this.#phase = WsClient.CLOSED;
      this.#connecting.abort();
      this.#drop();
      this.#finish(1006, "", false);
      return;
    }
    if (this.#phase !== WsClient.OPEN) return;
    this.#phase = WsClient.CLOSING;
    this.#sendClose(code, reasonBytes);
    // A write error set its own timer already.
    this.#closeTimer ??= setTimeout(() => {
      this.#drop();
      this.#finish(1006, "", false);
    }, CLOSE_HANDSHAKE_MS);
  }

  #sendClose(code: number, reason: Uint8Array): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    const payload = new Uint8Array(code === 1005 ? 0 : 2 + reason.byteLength);
    if (code !== 1005) {
      new DataView(payload.buffer).setUint16(0, code);
      payload.set(reason, 2);
    }
    this.#enqueue(encodeFrame(Opcode.CLOSE, payload), 0);
  }

  #enqueue(
    bytes: Uint8Array<ArrayBuffer>,
    counted: number,
    pooled = true,
  ): void {
    if (this.#writeError !== undefined) return;
    this.#queue.push({ bytes, counted, pooled });
    this.#buffered += counted;
    if (!this.#writing) this.#writeQueued();
  }

  async #writeQueued(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && this.#conn !== undefined) {
        const next = this.#queue[0];
        await writeAll(this.#conn, next.bytes);
        this.#queue.shift();
        this.#buffered -= next.counted;
        if (next.pooled) this.#buffers.give(next.bytes.buffer);
      }
    } catch (error) {
      this.#writing = false;
      this.#onWriteError(error as Error);
      return;
    }
    this.#writing = false;
    const then = this.#whenWritten;
    this.#whenWritten = undefined;
    then?.();
  }

  /**
   * Writing failed (reset, broken pipe): what the server sent before it
   * went is still to be read, e.g. a final status and its close frame, so
   * the read side ends the socket; it is dropped if it does not end soon.
   */
  #onWriteError(error: Error): void {
    if (this.#phase === WsClient.CLOSED) return;
    this.#writeError = error;
    this.#queue.length = 0;
    this.#buffered = 0;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#fail(error), CLOSE_HANDSHAKE_MS);
    const then = this.#whenWritten;
    this.#whenWritten = undefined;
    then?.();
  }

  /** Runs `then` once every queued frame is written. */
  #afterWrites(then: () => void): void {
    if (this.#writing) this.#whenWritten = then;
    else then();
  }

  async #readLoop(reader: FrameReader): Promise<void> {
    try {
      for (;;) {
        const frame = await reader.next();
        if (frame === null) break;
        this.#onFrame(frame);
        if (this.#received !== undefined) return;
      }
    } catch (error) {
      if (this.#phase === WsClient.CLOSED) return;
      if (error instanceof WsProtocolError) return this.#protocolError(error);
      return this.#fail(error as Error);
    }
    // The connection ended without a close frame.
    if (this.#phase !== WsClient.CLOSED) {
      this.#drop();
      this.#finish(1006, "", false);
    }
  }

  #onFrame(frame: Frame): void {
    switch (frame.opcode) {
      case Opcode.PING:
        if (!this.#closeSent) {
          this.#enqueue(encodeFrame(Opcode.PONG, frame.payload), 0);
        }
        return;
      case Opcode.PONG:
        return;
      case Opcode.CLOSE:
        return this.#onClose(frame.payload);
      default:
        return this.#onData(frame);
    }
  }

  /** A data frame: a whole message, or one fragment of it. */
  #onData(frame: Frame): void {
    const continuation = frame.opcode === Opcode.CONTINUATION;
    if (continuation !== (this.#fragmentsOpcode !== 0)) {
      throw new WsProtocolError(
        1002,
        continuation
          ? "a continuation frame outside a fragmented message"
          : "a new message inside a fragmented one",
      );
    }
    if (frame.fin && !continuation) {
      return this.#deliver(frame.opcode, frame.payload);
    }
    if (!continuation) this.#fragmentsOpcode = frame.opcode;
    this.#fragments.push(frame.payload);
    this.#fragmentsBytes += frame.payload.byteLength;
    if (this.#fragmentsBytes > MAX_MESSAGE_BYTES) {
      throw new WsProtocolError(
        1009,
        `a message of over ${MAX_MESSAGE_BYTES} bytes`,
      );
    }
    if (!frame.fin) return;
    const whole = new Uint8Array(this.#fragmentsBytes);
    let at = 0;
    for (const part of this.#fragments) {
      whole.set(part, at);
      at += part.byteLength;
    }
    const opcode = this.#fragmentsOpcode;
    this.#fragments = [];
    this.#fragmentsBytes = 0;
    this.#fragmentsOpcode = 0;
    this.#deliver(opcode, whole);
  }

  #deliver(opcode: number, payload: Uint8Array<ArrayBuffer>): void {
    let data: string | Uint8Array<ArrayBuffer>;
    if (opcode === Opcode.TEXT) {
      try {
        data = this.#decoder.decode(payload);
      } catch {
        throw new WsProtocolError(1007, "a text message that is not UTF-8");
      }
    } else {
      data = payload;
    }
    // Messages after our close frame are dropped, as the WebSocket API does.
    if (this.#phase !== WsClient.OPEN) return;
    this.#emit(new MessageEvent("message", { data }), this.onmessage);
  }

  /** The server's close frame: answer it (if we have not closed) and end. */
  #onClose(payload: Uint8Array): void {
    if (payload.byteLength === 1) {
      throw new WsProtocolError(1002, "a close frame of 1 byte");
    }
    let code = 1005;
    let reason = "";
    if (payload.byteLength >= 2) {
      code = new DataView(payload.buffer, payload.byteOffset).getUint16(0);
      try {
        reason = this.#decoder.decode(payload.subarray(2));
      } catch {
        throw new WsProtocolError(1007, "a close reason that is not UTF-8");
      }
    }
    this.#received = { code, reason };
    if (this.#phase === WsClient.OPEN) this.#phase = WsClient.CLOSING;
    // Echo the code (RFC 6455 §5.5.1), then end once it is written.
    this.#sendClose(code, new Uint8Array(0));
    this.#afterWrites(() => {
      if (this.#phase === WsClient.CLOSED) return;
      this.#drop();
      this.#finish(code, reason, true);
    });
  }

  /** The server broke the protocol: close with its code, report, drop. */
  #protocolError(error: WsProtocolError): void {
    if (this.#phase === WsClient.OPEN) this.#phase = WsClient.CLOSING;
    this.#sendClose(error.closeCode, new Uint8Array(0));
    this.#emit(
      new ErrorEvent("error", { message: error.message }),
      this.onerror,
    );
    // End once the close frame is out: the server owes no answer to a
    // peer it confused.
    this.#afterWrites(() => {
      if (this.#phase === WsClient.CLOSED) return;
      this.#drop();
      this.#finish(error.closeCode, error.message, false);
    });
  }

  /** The connection failed: `error` then `close` (1006). */
  #fail(error: Error): void {
    if (this.#phase === WsClient.CLOSED) return;
    this.#drop();
    this.#emit(
      new ErrorEvent("error", { message: error.message, error }),
      this.onerror,
    );
    this.#finish(1006, "", false);
  }

  /** Closes the connections (idempotent). */
  #drop(): void {
    for (const conn of this.#conns.splice(0)) {
      try {
        conn.close();
      } catch (error) {
        // Already closed, or consumed by startTls: nothing left to release.
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    }
    this.#queue.length = 0;
    this.#buffered = 0;
  }

  /** The end: `CLOSED`, then the close event, once. */
  #finish(code: number, reason: string, wasClean: boolean): void {
    clearTimeout(this.#closeTimer);
    if (this.#finished) return;
    this.#finished = true;
    this.#phase = WsClient.CLOSED;
    this.#emit(
      new CloseEvent("close", { code, reason, wasClean }),
      this.onclose,
    );
  }

  /** Dispatches to listeners, then to the `on…` property, as a WebSocket does. */
  #emit<E extends Event>(event: E, handler: Handler<E>): void {
    this.dispatchEvent(event);
    if (handler === null) return;
    try {
      handler.call(this, event);
    } catch (error) {
      // As for any event handler: reported, and the socket goes on.
      reportError(error);
    }
  }
}

/** Throws for a close code or reason a client may not send. */
function checkCloseCode(code: number, reason: Uint8Array): void {
  const allowed = code === 1000 || (code >= 1001 && code <= 1003) ||
    (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
  if (!Number.isInteger(code) || !allowed) {
    throw new DOMException(
      `close code ${code}; expected 1000-1003, 1007-1011 or 3000-4999`,
      "InvalidAccessError",
    );
  }
  if (reason.byteLength > 123) {
    throw new DOMException(
      `a close reason of ${reason.byteLength} bytes; expected at most 123`,
      "SyntaxError",
    );
  }
}
