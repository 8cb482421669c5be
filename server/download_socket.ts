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
  refuseOversized,
  sendError,
  sendJson,
} from "./_socket_messages.ts";
import { drained, type SendBudget } from "./send_budget.ts";
import type { PeerSocket } from "./_peer_socket.ts";
import type { Watchers } from "./watchers.ts";
import { HEARTBEAT_TEXT } from "../protocol/heartbeat.ts";
import { MIN_SOCKET_SHARE } from "./defaults.ts";
import { FollowCursor } from "./follow_cursor.ts";
import { Notifier } from "../protocol/notifier.ts";
import { CLOSE_GONE, CLOSE_LIMIT } from "../protocol/close_codes.ts";

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

/**
 * One read or follow in flight: its cursor, its credit, a way to stop it
 * and a way to wake it (credit arrived, a new status, a cancel).
 */
class ReadSession {
  readonly cursor: FollowCursor;
  credit: number;
  cancelled = false;
  readonly #changed = new Notifier();

  constructor(cursor: FollowCursor, credit: number) {
    this.cursor = cursor;
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

  /** Wakes the session if it waits. */
  wake(): void {
    this.#changed.notify();
  }

  /** Resolves at the next wake. */
  nextWake(): Promise<void> {
    return this.#changed.wait();
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
 * return sockets.upgrade(request, "a download socket", (peer) =>
 *   serveDownloadSocket(peer, resource, options));
 * ```
 */
export function serveDownloadSocket(
  peer: PeerSocket,
  resource: Resource,
  options: DownloadSocketOptions,
): void {
  new DownloadSocket(peer, resource, options);
}

/** A read or follow request. */
type ReadRequest = ReadMessage | FollowMessage;

/** One download socket: its requests in flight and how they send. */
class DownloadSocket {
  readonly #peer: PeerSocket;
  readonly #socket: WebSocket;
  readonly #resource: Resource;
  readonly #options: DownloadSocketOptions;
  readonly #sessions = new Map<number, ReadSession>();
  /** Undo the watcher count, the send-budget share and the status watch. */
  #letGo: (() => void)[] = [];

  constructor(
    peer: PeerSocket,
    resource: Resource,
    options: DownloadSocketOptions,
  ) {
    this.#peer = peer;
    this.#socket = peer.socket;
    this.#resource = resource;
    this.#options = options;
    this.#socket.binaryType = "arraybuffer";
    this.#socket.onopen = () => this.#onOpen();
    this.#socket.onmessage = (event) => this.#onMessage(event);
    this.#socket.onerror = () => {
      // The end follows and cleans up.
    };
    peer.onEnd(() => this.#onEnd());
  }

  #onOpen(): void {
    const peer = this.#peer;
    const refusal = this.#options.watchers.admit(this.#resource, {
      kind: "a download socket",
      onEnd: (handler) => peer.onEnd(handler),
      expire: (error) => {
        sendError(this.#socket, error);
        peer.end(CLOSE_GONE, "gone");
      },
    });
    if (refusal) {
      sendError(this.#socket, refusal);
      this.#peer.end(CLOSE_LIMIT, refusal.code);
      return;
    }
    this.#letGo.push(
      this.#options.sendBudget.join(),
      this.#resource.watch((_status, message) => {
        if (this.#socket.readyState === WebSocket.OPEN) {
          this.#socket.send(message);
        }
        // Followers waiting for bytes look at the new status.
        for (const session of this.#sessions.values()) session.wake();
      }),
    );
  }

  #onEnd(): void {
    for (const undo of this.#letGo.splice(0)) undo();
    for (const session of this.#sessions.values()) session.cancel();
    this.#sessions.clear();
  }

  #onMessage(event: MessageEvent): void {
    this.#peer.touch();
    const { data } = event;
    if (data === HEARTBEAT_TEXT) return this.#peer.answerHeartbeat();
    if (typeof data !== "string") {
      const size = binaryData(data)?.byteLength ?? 0;
      sendError(
        this.#socket,
        new SpoolError(
          "unexpected-binary",
          `binary frame of ${size} bytes on a download socket; expected only JSON text messages`,
        ),
      );
      return;
    }
    if (refuseOversized(this.#peer, data)) return;
    try {
      this.#onText(data);
    } catch (error) {
      sendError(this.#socket, error, peekRequestId(data));
    }
  }

  #onText(text: string): void {
    const message = parseDownloadClientMessage(text);
    switch (message.type) {
      case "heartbeat":
        return this.#peer.answerHeartbeat();
      case "read":
      case "follow":
        return this.#start(message);
      case "credit":
        // A credit for a read that just ended is a benign race, not an error.
        return this.#sessions.get(message.requestId)?.grant(
          message.bytes,
          this.#options.maxWindow,
        );
      case "cancel":
        return this.#sessions.get(message.requestId)?.cancel();
    }
  }

  /** Refuses `request` if it cannot be served; throws the error for it. */
  #check(request: ReadRequest): void {
    const { requestId } = request;
    if (this.#sessions.has(requestId)) {
      throw new SpoolError(
        "duplicate-request",
        `request ${requestId} is already in flight; expected a new requestId`,
        { requestId },
      );
    }
    const { maxRequests } = this.#options;
    if (this.#sessions.size >= maxRequests) {
      throw limitExceeded(
        "maxRequestsPerSocket",
        maxRequests,
        `request ${requestId} (${this.#sessions.size} in flight on this socket)`,
        { requestId },
      );
    }
    const status = this.#resource.status;
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
  }

  #start(request: ReadRequest): void {
    this.#check(request);
    const { requestId } = request;
    const { defaultWindow, maxWindow } = this.#options;
    const cursor = new FollowCursor(this.#resource, request.start, {
      headroom: DATA_FRAME_HEADER_SIZE,
      reuse: true,
    });
    const session = new ReadSession(
      cursor,
      Math.min(request.window ?? defaultWindow, maxWindow),
    );
    this.#sessions.set(requestId, session);
    const serving = request.type === "read"
      ? this.#serveRead(request, session)
      : this.#serveFollow(request, session);
    serving.catch((error) =>
      sendError(
        this.#socket,
        error instanceof SpoolError
          ? error
          : new SpoolError("internal", `read failed: ${error.message}`),
        requestId,
      )
    ).finally(() => {
      this.#sessions.delete(requestId);
      return cursor.close();
    });
  }

  async #serveRead(request: ReadMessage, session: ReadSession): Promise<void> {
    const sent = await this.#sendUpTo(request.requestId, session, request.end);
    if (!session.cancelled) this.#sendEnd(request.requestId, sent);
  }

  /**
   * Streams from `start` as checkpoints advance, to the end of the resource.
   * A FAILED resource's kept bytes are sent before the failure, as over
   * HTTP: a follower gets everything that was checkpointed.
   */
  async #serveFollow(
    request: FollowMessage,
    session: ReadSession,
  ): Promise<void> {
    const { requestId } = request;
    const { cursor } = session;
    while (!session.cancelled && this.#open) {
      const status = this.#resource.status;
      const position = cursor.position;
      if (status.status === "FAILED" && position >= status.size) {
        throw new SpoolError(
          "resource-failed",
          `resource ${status.id} FAILED: ${status.error ?? "unknown reason"}`,
          { requestId },
        );
      }
      if (position < status.size) {
        await this.#sendUpTo(requestId, session, status.size);
      } else if (status.status === "COMPLETED") {
        return this.#sendEnd(requestId, position - request.start);
      } else {
        await session.waitUntil(() => this.#resource.status !== status);
      }
    }
  }

  get #open(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  /**
   * Whether `session` may send a frame now (`true`), must stop (`false`), or
   * a promise of that once it has credit and the socket drained. Only a
   * wait allocates: a thousand followers suspended per frame in nested
   * async calls were most of the heap's garbage, and it lived long enough
   * (a wait on the socket) to be promoted to the old generation.
   */
  #mayContinue(session: ReadSession): boolean | Promise<boolean> {
    if (session.cancelled || !this.#open) return false;
    if (
      session.credit > 0 &&
      this.#socket.bufferedAmount <= this.#options.sendBudget.perSocket
    ) {
      return true;
    }
    return this.#waitToSend(session);
  }

  async #waitToSend(session: ReadSession): Promise<boolean> {
    const { sendBudget } = this.#options;
    for (;;) {
      if (session.cancelled || !this.#open) return false;
      if (session.credit <= 0) await session.nextWake();
      else if (this.#socket.bufferedAmount > sendBudget.perSocket) {
        await drained(this.#socket, sendBudget.perSocket);
      } else return true;
    }
  }

  /**
   * Payload room of `session`'s next frame, at most `limit`, once it may
   * send; 0 if it must stop. A promise only when it has to wait.
   */
  #nextRoom(session: ReadSession, limit: number): number | Promise<number> {
    const room = () => Math.min(frameFor(this.#options), session.credit, limit);
    const go = this.#mayContinue(session);
    if (go === true) return room();
    if (go === false) return 0;
    return go.then((ok) => ok ? room() : 0);
  }

  /** Sends `payload`, whose buffer has room for the header before it. */
  #sendFrame(
    requestId: number,
    session: ReadSession,
    payload: Uint8Array,
  ): void {
    const frame = new Uint8Array(
      payload.buffer,
      payload.byteOffset - DATA_FRAME_HEADER_SIZE,
      DATA_FRAME_HEADER_SIZE + payload.byteLength,
    );
    this.#socket.send(stampDataFrame(frame, requestId));
    session.credit -= payload.byteLength;
  }

  #sendEnd(requestId: number, bytes: number): void {
    const end: ReadEndMessage = { type: "read-end", requestId, bytes };
    sendJson(this.#socket, end);
  }

  /**
   * Sends the cursor's bytes up to `limit` as frames, as credit and the
   * socket allow; returns how many it sent (fewer if it must stop).
   */
  async #sendUpTo(
    requestId: number,
    session: ReadSession,
    limit: number,
  ): Promise<number> {
    const { cursor } = session;
    let sent = 0;
    while (cursor.position < limit) {
      let room = this.#nextRoom(session, limit - cursor.position);
      if (typeof room !== "number") room = await room;
      if (room === 0) break;
      // From memory the copy lands in the shared frame and is sent before
      // anything else runs; from the store it has a buffer of its own.
      let payload = cursor.read(room, limit, this.#options.scratch);
      if (payload instanceof Promise) payload = await payload;
      if (payload.byteLength === 0 || session.cancelled || !this.#open) break;
      this.#sendFrame(requestId, session, payload);
      sent += payload.byteLength;
    }
    return sent;
  }
}
