/** Internals shared by the upload and download clients. */

import { SpoolError } from "../protocol/errors.ts";

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
 * Opens a WebSocket and resolves once it is open; rejects with a
 * {@linkcode SpoolError} naming the URL when it cannot connect.
 */
export function connect(
  url: string,
  options: ConnectOptions = {},
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    // A custom CA needs its own HTTP client, released with the socket.
    const client = options.caCerts?.length
      ? Deno.createHttpClient({ caCerts: options.caCerts })
      : undefined;
    try {
      socket = new WebSocket(url, {
        client,
        headers: options.token === undefined
          ? undefined
          : { authorization: `Bearer ${options.token}` },
      });
      if (client !== undefined) {
        socket.addEventListener("close", () => client.close(), { once: true });
      }
    } catch (error) {
      client?.close();
      reject(
        new SpoolError(
          "invalid-field",
          `cannot connect to ${JSON.stringify(url)}: ${
            (error as Error).message
          }; expected a ws:, wss:, http: or https: URL`,
        ),
      );
      return;
    }
    socket.binaryType = "arraybuffer";
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const fail = (error: SpoolError) => {
      cleanup();
      reject(error);
      if (socket.readyState !== WebSocket.CLOSED) socket.close();
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
        new SpoolError(
          "connection-closed",
          `connecting to ${url} was aborted`,
          {
            cause: options.signal?.reason,
          },
        ),
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
  });
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
  return `code ${event.code}${event.reason ? `, ${event.reason}` : ""}`;
}
