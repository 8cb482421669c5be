/**
 * The server side of a download socket: pushes the latest status on connect
 * and every later one, and serves tagged range reads. Each read flows in
 * bounded frames, limited by the reader's credit (end-to-end back-pressure)
 * and by the socket's send buffer.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import type { ReadEndMessage, ReadMessage } from "../protocol/messages.ts";
import {
  DATA_FRAME_HEADER_SIZE,
  stampDataFrame,
} from "../protocol/data_frame.ts";
import {
  parseDownloadClientMessage,
  peekRequestId,
} from "../protocol/validate.ts";
import type { Resource } from "./resource.ts";
import { binaryData, drained, sendError, sendJson } from "./_socket.ts";

/** Limits of a download socket. */
export interface DownloadSocketOptions {
  /** Largest payload of one data frame. */
  frameSize: number;
  /** Credit a read starts with when the request names none. */
  defaultWindow: number;
  /** Largest credit a reader may grant. */
  maxWindow: number;
  /** Send-buffer level above which frames wait. */
  highWaterMark: number;
}

/** Close code when the reference names no resource (4000 + HTTP 404). */
export const CLOSE_NOT_FOUND = 4404;

/** One read in flight: its credit and a way to stop it. */
class ReadSession {
  credit: number;
  cancelled = false;
  #wake: (() => void) | undefined;

  constructor(credit: number) {
    this.credit = credit;
  }

  grant(bytes: number, limit: number): void {
    this.credit = Math.min(this.credit + bytes, limit);
    this.#wake?.();
  }

  cancel(): void {
    this.cancelled = true;
    this.#wake?.();
  }

  /** Resolves when there is credit or the read was cancelled. */
  async waitForCredit(): Promise<void> {
    while (this.credit <= 0 && !this.cancelled) {
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }
}

/**
 * Serves one download socket for `resource` until it closes.
 *
 * @example
 * ```ts ignore
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * serveDownloadSocket(socket, resource, options);
 * return response;
 * ```
 */
export function serveDownloadSocket(
  socket: WebSocket,
  resource: Resource,
  options: DownloadSocketOptions,
): void {
  socket.binaryType = "arraybuffer";
  const reads = new Map<number, ReadSession>();
  let unwatch: (() => void) | undefined;

  const serveRead = async (request: ReadMessage, session: ReadSession) => {
    const stream = resource.read(request.start, request.end);
    const reader = stream.getReader({ mode: "byob" });
    let sent = 0;
    try {
      let buffer = new ArrayBuffer(DATA_FRAME_HEADER_SIZE + options.frameSize);
      while (sent < request.end - request.start) {
        await session.waitForCredit();
        await drained(socket, options.highWaterMark);
        if (session.cancelled || socket.readyState !== WebSocket.OPEN) return;
        const room = Math.min(options.frameSize, session.credit);
        // Read straight behind the frame header: the payload is never copied.
        const { value, done } = await reader.read(
          new Uint8Array(buffer, DATA_FRAME_HEADER_SIZE, room),
        );
        if (done || !value) break;
        buffer = value.buffer as ArrayBuffer;
        const frame = new Uint8Array(
          buffer,
          0,
          DATA_FRAME_HEADER_SIZE + value.byteLength,
        );
        if (session.cancelled || socket.readyState !== WebSocket.OPEN) return;
        // send() copies the frame, so the buffer is free for the next read.
        socket.send(stampDataFrame(frame, request.requestId));
        sent += value.byteLength;
        session.credit -= value.byteLength;
      }
      const end: ReadEndMessage = {
        type: "read-end",
        requestId: request.requestId,
        bytes: sent,
      };
      sendJson(socket, end);
    } finally {
      reads.delete(request.requestId);
      await reader.cancel().catch((error) =>
        console.error(
          `spool: closing read of ${resource.status.id} failed:`,
          error,
        )
      );
    }
  };

  const startRead = (request: ReadMessage) => {
    if (reads.has(request.requestId)) {
      throw new SpoolError(
        "duplicate-request",
        `read request ${request.requestId} is already in flight; expected a new requestId`,
        { requestId: request.requestId },
      );
    }
    const size = resource.status.size;
    if (request.end > size) {
      throw new SpoolError(
        "range-not-satisfiable",
        `range [${request.start}, ${request.end}) ends past the checkpointed size ${size}; expected end <= ${size}`,
        { requestId: request.requestId },
      );
    }
    const window = Math.min(
      request.window ?? options.defaultWindow,
      options.maxWindow,
    );
    const session = new ReadSession(window);
    reads.set(request.requestId, session);
    serveRead(request, session).catch((error) =>
      sendError(
        socket,
        new SpoolError("internal", `read failed: ${error.message}`),
        request.requestId,
      )
    );
  };

  socket.onopen = () => {
    unwatch = resource.watch((_status, message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(message);
    });
  };
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") {
      const size = binaryData(event.data)?.byteLength ?? 0;
      sendError(
        socket,
        new SpoolError(
          "unexpected-binary",
          `binary frame of ${size} bytes on a download socket; expected only JSON text messages`,
        ),
      );
      return;
    }
    try {
      const message = parseDownloadClientMessage(event.data);
      switch (message.type) {
        case "read":
          startRead(message);
          break;
        case "credit":
          // A credit for a read that just ended is a benign race, not an error.
          reads.get(message.requestId)?.grant(message.bytes, options.maxWindow);
          break;
        case "cancel":
          reads.get(message.requestId)?.cancel();
          break;
      }
    } catch (error) {
      sendError(socket, error, peekRequestId(event.data));
    }
  };
  socket.onclose = () => {
    unwatch?.();
    for (const session of reads.values()) session.cancel();
    reads.clear();
  };
  socket.onerror = () => {
    // The close event follows and cleans up.
  };
}

/**
 * Accepts a download socket whose reference names no resource: reports
 * `not-found` and closes with {@linkcode CLOSE_NOT_FOUND}.
 *
 * @example
 * ```ts ignore
 * rejectDownloadSocket(socket, "no resource with id 'x'");
 * ```
 */
export function rejectDownloadSocket(socket: WebSocket, message: string): void {
  socket.onopen = () => {
    sendError(socket, new SpoolError("not-found", message));
    socket.close(CLOSE_NOT_FOUND, "resource not found");
  };
  socket.onerror = () => {
    // Nothing to clean up: this socket never had a resource.
  };
}
