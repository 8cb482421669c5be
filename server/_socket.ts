/** Internals shared by the upload and download socket handlers. */

import { SpoolError } from "../protocol/errors.ts";
import {
  type ErrorMessage,
  MAX_CONTROL_MESSAGE_CHARS,
} from "../protocol/messages.ts";
import type { PeerSocket } from "./_peer_socket.ts";
import { CLOSE_TOO_BIG } from "../protocol/close_codes.ts";

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
 * Refuses a control message longer than {@linkcode MAX_CONTROL_MESSAGE_CHARS}:
 * reports it and ends the socket (a peer that sends one is not speaking the
 * protocol). Returns whether it refused.
 */
export function refuseOversized(peer: PeerSocket, text: string): boolean {
  if (text.length <= MAX_CONTROL_MESSAGE_CHARS) return false;
  sendError(
    peer.socket,
    new SpoolError(
      "limit-exceeded",
      `a text message of ${text.length} characters exceeds the limit of ${MAX_CONTROL_MESSAGE_CHARS} for control messages; expected one small JSON object per text frame`,
    ),
  );
  peer.end(CLOSE_TOO_BIG, "control message too big");
  return true;
}

/** A socket waiting for its send buffer to drain. */
interface DrainWaiter {
  socket: WebSocket;
  highWaterMark: number;
  resolve: () => void;
}

/** Longest pause between two looks at the waiting sockets, in ms. */
const MAX_DRAIN_PAUSE = 8;
const drainWaiters = new Set<DrainWaiter>();
let drainTimer: ReturnType<typeof setTimeout> | undefined;
let drainPause = 1;

/** Looks at every waiting socket once; looks again soon while any wait. */
function pollDrains(): void {
  drainTimer = undefined;
  let released = false;
  for (const waiter of drainWaiters) {
    const { socket } = waiter;
    if (
      socket.readyState !== WebSocket.OPEN ||
      socket.bufferedAmount <= waiter.highWaterMark
    ) {
      drainWaiters.delete(waiter);
      waiter.resolve();
      released = true;
    }
  }
  if (drainWaiters.size === 0) return;
  // Sockets that drain keep the pace fast; a stalled set backs off.
  drainPause = released ? 1 : Math.min(drainPause * 2, MAX_DRAIN_PAUSE);
  drainTimer = setTimeout(pollDrains, drainPause);
}

/**
 * Resolves once the socket's send buffer is below `highWaterMark` bytes, or it
 * closed. Deno's `WebSocket.send` never blocks and has no drain event, so the
 * only way to bound memory is to poll `bufferedAmount`. One timer polls every
 * waiting socket: a thousand followers cost one timer per pause, not a
 * thousand (the per-socket timers were most of the server's garbage).
 */
export function drained(
  socket: WebSocket,
  highWaterMark: number,
): Promise<void> {
  if (
    socket.readyState !== WebSocket.OPEN ||
    socket.bufferedAmount <= highWaterMark
  ) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    drainWaiters.add({ socket, highWaterMark, resolve });
    if (drainTimer === undefined) {
      drainPause = 1;
      drainTimer = setTimeout(pollDrains, drainPause);
    }
  });
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

/**
 * Accepts a socket only to refuse it (an unknown resource, a missing token,
 * a limit): reports `error` once it opens and closes with `code`. Upload
 * and download sockets are refused alike.
 *
 * @example
 * ```ts ignore
 * refuseSocket(peer, new SpoolError("not-found", "no resource"), CLOSE_NOT_FOUND);
 * ```
 */
export function refuseSocket(
  peer: PeerSocket,
  error: SpoolError,
  code: number,
): void {
  const { socket } = peer;
  socket.onopen = () => {
    sendError(socket, error);
    peer.end(code, error.code);
  };
  socket.onerror = () => {
    // Nothing to clean up: this socket never served anything.
  };
}
