/** How the upload and download clients connect, watch and close their sockets. */

import { SpoolError } from "../protocol/errors.ts";
import { HEARTBEAT_TEXT, heartbeatInterval } from "../protocol/heartbeat.ts";
import { WsClient } from "./_ws_client.ts";

/** How a client opens a socket. */
export interface ConnectOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Aborts connecting. */
  signal?: AbortSignal;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** PEM CA certificates to trust for `wss:` besides the system ones. */
  caCerts?: string[];
}

/** Milliseconds a client waits for a socket to open by default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

/**
 * Milliseconds without any message from the server after which a client
 * presumes its connection dead (a black-holed link sends no FIN) by default.
 */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Opens a socket and resolves once it is open; rejects with a
 * {@linkcode SpoolError} naming the URL when it cannot connect.
 */
export function connect(
  url: string,
  options: ConnectOptions = {},
): Promise<WsClient> {
  let socket: WsClient;
  try {
    socket = newSocket(url, options);
  } catch (error) {
    return Promise.reject(error);
  }
  return whenOpen(socket, url, options);
}

/**
 * A new socket to `url` (our own client: `TCP_NODELAY` on, one write per
 * frame); throws `invalid-argument` for a URL it cannot use.
 */
function newSocket(url: string, options: ConnectOptions): WsClient {
  try {
    return new WsClient(url, {
      caCerts: options.caCerts,
      headers: options.token === undefined
        ? undefined
        : { authorization: `Bearer ${options.token}` },
    });
  } catch (error) {
    throw new SpoolError(
      "invalid-argument",
      `cannot connect to ${JSON.stringify(url)}: ${
        (error as Error).message
      }; expected a ws:, wss:, http: or https: URL`,
    );
  }
}

/** Resolves with `socket` once open; rejects on error, timeout or abort. */
function whenOpen(
  socket: WsClient,
  url: string,
  options: ConnectOptions,
): Promise<WsClient> {
  const { promise, resolve, reject } = Promise.withResolvers<WsClient>();
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const fail = (error: SpoolError) => {
    cleanup();
    reject(error);
    if (socket.readyState !== WsClient.CLOSED) socket.close();
  };
  const timer = setTimeout(
    () =>
      fail(
        new SpoolError(
          "timeout",
          `no connection to ${url} within ${timeoutMs} ms`,
        ),
      ),
    timeoutMs,
  );
  const onAbort = () =>
    fail(
      new SpoolError("connection-closed", `connecting to ${url} was aborted`, {
        cause: options.signal?.reason,
      }),
    );
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const cleanup = () => {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    socket.onopen = null;
    socket.onerror = null;
    socket.onclose = null;
  };
  socket.onopen = () => {
    cleanup();
    resolve(socket);
  };
  socket.onerror = (event) => {
    const detail = (event as ErrorEvent).message ?? "connection failed";
    cleanup();
    reject(
      new SpoolError(
        "connection-closed",
        `cannot connect to ${url}: ${detail}`,
      ),
    );
  };
  return promise;
}

/** Turns an `http(s):` URL into the matching `ws(s):` URL; leaves others. */
export function toSocketUrl(url: string | URL): URL {
  const result = new URL(url);
  if (result.protocol === "http:") result.protocol = "ws:";
  else if (result.protocol === "https:") result.protocol = "wss:";
  return result;
}

/** Describes a close event for error messages. */
export function describeClose(event: CloseEvent): string {
  // No status: the link went away without a close handshake.
  if (event.code === 0 || event.code === 1006) {
    return "the connection was lost without a close handshake: reset, or the server went away";
  }
  return `code ${event.code}${event.reason ? `, ${event.reason}` : ""}`;
}

/**
 * Watches a client socket for signs of life: sends a heartbeat every
 * {@linkcode heartbeatInterval} and reports the socket dead once nothing
 * at all came from the server for `timeoutMs`. Any message counts, so a
 * slow download that still moves bytes is never taken for a dead one.
 */
export class Liveness {
  readonly #socket: WsClient;
  readonly #timeoutMs: number;
  readonly #onDead: (error: SpoolError) => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #lastInbound = performance.now();

  /** Starts watching `socket`; `onDead` is called at most once. */
  constructor(
    socket: WsClient,
    options: { timeoutMs: number; onDead: (error: SpoolError) => void },
  ) {
    this.#socket = socket;
    this.#timeoutMs = options.timeoutMs;
    this.#onDead = options.onDead;
    this.#timer = setInterval(
      () => this.#tick(),
      heartbeatInterval(options.timeoutMs),
    );
  }

  /** A message arrived. */
  touch(): void {
    this.#lastInbound = performance.now();
  }

  /** Stops watching (the socket is done with). */
  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    if (this.#socket.readyState !== WsClient.OPEN) return this.stop();
    const silent = performance.now() - this.#lastInbound;
    if (silent > this.#timeoutMs) {
      this.stop();
      this.#onDead(
        new SpoolError(
          "timeout",
          `no message from the server for ${
            Math.round(silent)
          } ms (timeout ${this.#timeoutMs} ms); the connection is presumed dead`,
        ),
      );
      return;
    }
    // Bytes on their way already tell the server we are here.
    if (this.#socket.bufferedAmount === 0) this.#socket.send(HEARTBEAT_TEXT);
  }
}

/** How long closing waits for the server's side of the close handshake. */
const CLOSE_WAIT_MS = 2000;

/**
 * Closes `socket` and resolves once its close event fired, or after a short
 * wait: over a dead link the server never answers, and Deno then fires no
 * close event at all.
 */
export async function closeSocket(
  socket: WsClient,
  code = 1000,
  reason = "done",
): Promise<void> {
  if (socket.readyState === WsClient.CLOSED) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closed = new Promise<void>((resolve) => {
    socket.addEventListener("close", () => resolve(), { once: true });
    timer = setTimeout(resolve, CLOSE_WAIT_MS);
  });
  if (socket.readyState <= WsClient.OPEN) socket.close(code, reason);
  await closed;
  clearTimeout(timer);
}

/**
 * The reason a connection ended, as a {@linkcode SpoolError}: `error` itself
 * when it is one, else a `connection-closed` error that keeps it as the cause.
 */
export function asSpoolError(error: unknown): SpoolError {
  if (error instanceof SpoolError) return error;
  return new SpoolError(
    "connection-closed",
    `connection ended: ${(error as Error)?.message ?? String(error)}`,
    { cause: error },
  );
}
