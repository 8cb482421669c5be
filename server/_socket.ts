/** Internals shared by the upload and download socket handlers. */

import { SpoolError } from "../protocol/errors.ts";
import type { ErrorMessage } from "../protocol/messages.ts";

/** Sends `message` as JSON if the socket is still open. */
export function sendJson(socket: WebSocket, message: object): void {
  if (socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
  }
}

/** Reports `error` to the peer as an `error` message; the socket stays open. */
export function sendError(
  socket: WebSocket,
  error: unknown,
  requestId?: number,
): void {
  const spool = error instanceof SpoolError ? error : new SpoolError(
    "internal",
    `internal error: ${(error as Error)?.message ?? String(error)}`,
  );
  const message: ErrorMessage = {
    type: "error",
    code: spool.code,
    message: spool.message,
  };
  const id = spool.requestId ?? requestId;
  if (id !== undefined) message.requestId = id;
  sendJson(socket, message);
}

/**
 * Resolves once the socket's send buffer is below `highWaterMark` bytes, or it
 * closed. Deno's `WebSocket.send` never blocks and has no drain event, so the
 * only way to bound memory is to poll `bufferedAmount`.
 */
export async function drained(
  socket: WebSocket,
  highWaterMark: number,
): Promise<void> {
  let pause = 1;
  while (
    socket.readyState === WebSocket.OPEN &&
    socket.bufferedAmount > highWaterMark
  ) {
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 16);
  }
}

/** The bytes of a binary WebSocket message (`binaryType` is "arraybuffer"). */
export function binaryData(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Uint8Array) return data;
  return undefined;
}

/**
 * Bytes all download sockets together may hold in their send buffers,
 * shared evenly among the open ones: one download gets a deep buffer (speed),
 * a thousand followers get a shallow one each (bounded server memory).
 */
export class SendBudget {
  readonly #total: number;
  readonly #min: number;
  readonly #max: number;
  #sockets = 0;

  constructor(total: number, options: { min: number; max: number }) {
    this.#total = total;
    this.#min = options.min;
    this.#max = options.max;
  }

  /** Counts a socket in; returns the function that counts it out. */
  join(): () => void {
    this.#sockets++;
    let left = false;
    return () => {
      if (!left) this.#sockets--;
      left = true;
    };
  }

  /** The send-buffer level one socket may fill now. */
  get perSocket(): number {
    // Whole bytes: the share sizes frames, and a fractional one would
    // misalign payload offsets.
    const share = Math.floor(this.#total / Math.max(1, this.#sockets));
    return Math.min(this.#max, Math.max(this.#min, share));
  }
}
