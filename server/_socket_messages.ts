/**
 * What the upload and download sockets send and refuse: JSON messages, the
 * `error` message, oversized control messages, refused sockets.
 */

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

/** The bytes of a binary WebSocket message (`binaryType` is "arraybuffer"). */
export function binaryData(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Uint8Array) return data;
  return undefined;
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
