/**
 * The server side of a download socket: pushes the latest status on connect
 * and every later one, and serves tagged range reads and follows (a read that
 * goes on as checkpoints advance, to the end of the resource). Each flows in
 * bounded frames, limited by the reader's credit (end-to-end back-pressure)
 * and by the socket's send buffer.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import type {
  FollowMessage,
  ReadEndMessage,
  ReadMessage,
} from "../protocol/messages.ts";
import { isTerminal } from "../protocol/status.ts";
import { limitExceeded } from "./limits.ts";
import {
  DATA_FRAME_HEADER_SIZE,
  stampDataFrame,
} from "../protocol/data_frame.ts";
import {
  parseDownloadClientMessage,
  peekRequestId,
} from "../protocol/validate.ts";
import type { Resource } from "./resource.ts";
import {
  binaryData,
  drained,
  refuseOversized,
  type SendBudget,
  sendError,
  sendJson,
} from "./_socket.ts";
import type { PeerSocket } from "./_peer_socket.ts";
import type { Watchers } from "./watchers.ts";
import { HEARTBEAT_TEXT } from "../protocol/heartbeat.ts";
import { MIN_SOCKET_SHARE } from "./defaults.ts";

/** Limits of a download socket. */
export interface DownloadSocketOptions {
  /** Largest payload of one data frame. */
  frameSize: number;
  /** Credit a read starts with when the request names none. */
  defaultWindow: number;
  /** Largest credit a reader may grant. */
  maxWindow: number;
  /** Reads and follows in flight on one socket. */
  maxRequests: number;
  /** Send-buffer memory shared by all download sockets of the server. */
  sendBudget: SendBudget;
  /** The server's download sockets, for the watcher limits. */
  watchers: Watchers;
  /**
   * A frame buffer (header + `frameSize`) shared by every socket of the
   * server for bytes copied from memory: between the copy and `send()`
   * (which copies) nothing awaits, so one buffer serves all.
   */
  scratch: ArrayBuffer;
}

/**
 * Close code when the reference names no resource (4000 + HTTP 404).
 *
 * @example
 * ```ts
 * import { CLOSE_NOT_FOUND } from "./download_socket.ts";
 * const noSuchResource = (event: CloseEvent) => event.code === CLOSE_NOT_FOUND;
 * ```
 */
export const CLOSE_NOT_FOUND = 4404;

/**
 * Payload of the next data frame: `frameSize`, or down to 24 KiB when many
 * sockets share the send budget, so that a thousand followers each queue a
 * smaller frame (server memory) while one download keeps large ones (speed).
 */
function frameFor(options: DownloadSocketOptions): number {
  return Math.min(
    options.frameSize,
    Math.max(MIN_SOCKET_SHARE, options.sendBudget.perSocket),
  );
}

/** One read or follow in flight: its credit, a way to stop it, a way to wake it. */
class ReadSession {
  credit: number;
  cancelled = false;
  #wake: (() => void) | undefined;

  constructor(credit: number) {
    this.credit = credit;
  }

  grant(bytes: number, limit: number): void {
    this.credit = Math.min(this.credit + bytes, limit);
    this.wake();
  }

  cancel(): void {
    this.cancelled = true;
    this.wake();
  }

  /** Wakes a waiting session (credit arrived, a new status, a cancel). */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Resolves at the next wake. */
  nextWake(): Promise<void> {
    return new Promise<void>((resolve) => this.#wake = resolve);
  }

  /** Resolves once `ready()` holds or the session was cancelled. */
  async waitUntil(ready: () => boolean): Promise<void> {
    while (!ready() && !this.cancelled) await this.nextWake();
  }
}

/**
 * Serves one download socket for `resource` until it ends. It counts as a
 * watcher (within the limits) once it opens.
 *
 * @example
 * ```ts ignore
 * const { peer, response } = sockets.upgrade(request);
 * serveDownloadSocket(peer, resource, options);
 * return response;
 * ```
 */
export function serveDownloadSocket(
  peer: PeerSocket,
  resource: Resource,
  options: DownloadSocketOptions,
): void {
  const { socket } = peer;
  socket.binaryType = "arraybuffer";
  const sessions = new Map<number, ReadSession>();
  let unwatch: (() => void) | undefined;

  const sharedFrame = options.scratch;

  /**
   * Whether `session` may send a frame now (`true`), must stop (`false`), or
   * a promise of that once it has credit and the socket drained. Only a
   * wait allocates: a thousand followers suspended per frame in nested
   * async calls were most of the heap's garbage, and it lived long enough
   * (a wait on the socket) to be promoted to the old generation.
   */
  const mayContinue = (session: ReadSession): boolean | Promise<boolean> => {
    if (session.cancelled || socket.readyState !== WebSocket.OPEN) return false;
    if (
      session.credit > 0 &&
      socket.bufferedAmount <= options.sendBudget.perSocket
    ) {
      return true;
    }
    return waitToSend(session);
  };

  /**
   * Payload room of `session`'s next frame, at most `limit`, once it may
   * send; 0 if it must stop. A promise only when it has to wait.
   */
  const nextRoom = (
    session: ReadSession,
    limit: number,
  ): number | Promise<number> => {
    const go = mayContinue(session);
    if (go === true) return Math.min(frameFor(options), session.credit, limit);
    if (go === false) return 0;
    return go.then((ok) =>
      ok ? Math.min(frameFor(options), session.credit, limit) : 0
    );
  };

  const waitToSend = async (session: ReadSession): Promise<boolean> => {
    for (;;) {
      if (session.cancelled || socket.readyState !== WebSocket.OPEN) {
        return false;
      }
      if (session.credit <= 0) await session.nextWake();
      else if (socket.bufferedAmount > options.sendBudget.perSocket) {
        await drained(socket, options.sendBudget.perSocket);
      } else return true;
    }
  };

  const sendFrame = (
    requestId: number,
    session: ReadSession,
    buffer: ArrayBuffer,
    payloadLength: number,
  ) => {
    const frame = new Uint8Array(
      buffer,
      0,
      DATA_FRAME_HEADER_SIZE + payloadLength,
    );
    socket.send(stampDataFrame(frame, requestId));
    session.credit -= payloadLength;
  };

  /**
   * Sends `[start, end)` from recent bytes in memory while they are there;
   * returns the bytes sent (fewer if it stopped, or the bytes left memory).
   */
  const sendRecent = async (
    requestId: number,
    session: ReadSession,
    start: number,
    end: number,
  ): Promise<number> => {
    let sent = 0;
    while (sent < end - start) {
      let room = nextRoom(session, end - start - sent);
      if (typeof room !== "number") room = await room;
      if (room === 0) break;
      const length = resource.copyRecent(
        start + sent,
        new Uint8Array(sharedFrame, DATA_FRAME_HEADER_SIZE, room),
      );
      if (length === 0) break;
      sendFrame(requestId, session, sharedFrame, length);
      sent += length;
    }
    return sent;
  };

  /** Sends `[start, end)` of the resource as frames; returns the bytes sent. */
  const sendRange = async (
    requestId: number,
    session: ReadSession,
    start: number,
    end: number,
  ): Promise<number> => {
    const recent = await sendRecent(requestId, session, start, end);
    if (
      recent === end - start || session.cancelled ||
      socket.readyState !== WebSocket.OPEN
    ) {
      return recent;
    }
    // Not (or no longer) in memory: the rest comes from the store.
    start += recent;
    const reader = resource.read(start, end).getReader({ mode: "byob" });
    // BYOB reads transfer the buffer they fill, so this one is the request's
    // own: as large as this socket's frames now (a thousand followers reading
    // the store must not each hold a full-size frame).
    let buffer = new ArrayBuffer(
      DATA_FRAME_HEADER_SIZE + Math.min(frameFor(options), end - start),
    );
    let sent = 0;
    try {
      while (sent < end - start) {
        let room = nextRoom(
          session,
          buffer.byteLength - DATA_FRAME_HEADER_SIZE,
        );
        if (typeof room !== "number") room = await room;
        if (room === 0) break;
        // Read straight behind the frame header: the payload is never copied.
        const { value, done } = await reader.read(
          new Uint8Array(buffer, DATA_FRAME_HEADER_SIZE, room),
        );
        if (done || !value) break;
        buffer = value.buffer as ArrayBuffer;
        if (session.cancelled || socket.readyState !== WebSocket.OPEN) break;
        sendFrame(requestId, session, buffer, value.byteLength);
        sent += value.byteLength;
      }
    } finally {
      await reader.cancel().catch((error) =>
        console.error(
          `spool: closing a read of ${resource.status.id} failed:`,
          error,
        )
      );
    }
    return recent + sent;
  };

  const sendEnd = (requestId: number, bytes: number) => {
    const end: ReadEndMessage = { type: "read-end", requestId, bytes };
    sendJson(socket, end);
  };

  const serveRead = async (request: ReadMessage, session: ReadSession) => {
    const sent = await sendRange(
      request.requestId,
      session,
      request.start,
      request.end,
    );
    if (!session.cancelled) sendEnd(request.requestId, sent);
  };

  /**
   * Streams from `start` as checkpoints advance, to the end of the resource.
   * A FAILED resource's kept bytes are sent before the failure, as over
   * HTTP: a follower gets everything that was checkpointed.
   */
  const serveFollow = async (request: FollowMessage, session: ReadSession) => {
    let position = request.start;
    while (!session.cancelled && socket.readyState === WebSocket.OPEN) {
      const status = resource.status;
      if (status.status === "FAILED" && position >= status.size) {
        throw new SpoolError(
          "resource-failed",
          `resource ${status.id} FAILED: ${status.error ?? "unknown reason"}`,
          { requestId: request.requestId },
        );
      }
      if (position < status.size) {
        position += await sendRange(
          request.requestId,
          session,
          position,
          status.size,
        );
      } else if (status.status === "COMPLETED") {
        sendEnd(request.requestId, position - request.start);
        return;
      } else {
        await session.waitUntil(() => resource.status !== status);
      }
    }
  };

  const start = (request: ReadMessage | FollowMessage) => {
    const { requestId } = request;
    if (sessions.has(requestId)) {
      throw new SpoolError(
        "duplicate-request",
        `request ${requestId} is already in flight; expected a new requestId`,
        { requestId },
      );
    }
    if (sessions.size >= options.maxRequests) {
      throw limitExceeded(
        "maxRequestsPerSocket",
        options.maxRequests,
        `request ${requestId} (${sessions.size} in flight on this socket)`,
        { requestId },
      );
    }
    const status = resource.status;
    if (request.type === "read" && request.end > status.size) {
      throw new SpoolError(
        "range-not-satisfiable",
        `range [${request.start}, ${request.end}) ends past the checkpointed size ${status.size}; expected end <= ${status.size}`,
        { requestId },
      );
    }
    if (
      request.type === "follow" && request.start > status.size &&
      isTerminal(status)
    ) {
      throw new SpoolError(
        "range-not-satisfiable",
        `follow from ${request.start} starts past the final size ${status.size}; expected start <= ${status.size}`,
        { requestId },
      );
    }
    const window = Math.min(
      request.window ?? options.defaultWindow,
      options.maxWindow,
    );
    const session = new ReadSession(window);
    sessions.set(requestId, session);
    const serve = request.type === "read"
      ? serveRead(request, session)
      : serveFollow(request, session);
    serve.catch((error) =>
      sendError(
        socket,
        error instanceof SpoolError
          ? error
          : new SpoolError("internal", `read failed: ${error.message}`),
        requestId,
      )
    ).finally(() => sessions.delete(requestId));
  };

  let leaveBudget: (() => void) | undefined;
  socket.onopen = () => {
    const refusal = options.watchers.admit(resource, peer);
    if (refusal) {
      sendError(socket, refusal);
      peer.end(CLOSE_LIMIT, refusal.code);
      return;
    }
    leaveBudget = options.sendBudget.join();
    unwatch = resource.watch((_status, message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(message);
      // Followers waiting for bytes look at the new status.
      for (const session of sessions.values()) session.wake();
    });
  };
  socket.onmessage = (event) => {
    peer.touch();
    if (event.data === HEARTBEAT_TEXT) return peer.answerHeartbeat();
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
    if (refuseOversized(peer, event.data)) return;
    try {
      const message = parseDownloadClientMessage(event.data);
      switch (message.type) {
        case "heartbeat":
          peer.answerHeartbeat();
          break;
        case "read":
        case "follow":
          start(message);
          break;
        case "credit":
          // A credit for a read that just ended is a benign race, not an error.
          sessions.get(message.requestId)?.grant(
            message.bytes,
            options.maxWindow,
          );
          break;
        case "cancel":
          sessions.get(message.requestId)?.cancel();
          break;
      }
    } catch (error) {
      sendError(socket, error, peekRequestId(event.data));
    }
  };
  peer.onEnd(() => {
    leaveBudget?.();
    unwatch?.();
    for (const session of sessions.values()) session.cancel();
    sessions.clear();
  });
  socket.onerror = () => {
    // The end follows and cleans up.
  };
}

/**
 * Close code when a download socket is refused for a limit (4000 + HTTP 429).
 *
 * @example
 * ```ts
 * import { CLOSE_LIMIT } from "./download_socket.ts";
 * // Refused for a server limit: worth retrying later.
 * const refused = (event: CloseEvent) => event.code === CLOSE_LIMIT;
 * ```
 */
export const CLOSE_LIMIT = 4429;

/**
 * Accepts a download socket only to refuse it: reports `error` and closes
 * with `code` ({@linkcode CLOSE_NOT_FOUND} or {@linkcode CLOSE_LIMIT}).
 *
 * @example
 * ```ts ignore
 * rejectDownloadSocket(socket, new SpoolError("not-found", "no resource"), CLOSE_NOT_FOUND);
 * ```
 */
export function rejectDownloadSocket(
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
    // Nothing to clean up: this socket never served a resource.
  };
}
