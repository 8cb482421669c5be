/** Internals shared by the upload and download clients. */

import { SpoolError } from "../protocol/errors.ts";

/** Milliseconds a client waits for a socket to open by default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

/**
 * Opens a WebSocket and resolves once it is open; rejects with a
 * {@linkcode SpoolError} naming the URL when it cannot connect.
 */
export function connect(
  url: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
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
