/**
 * The server side of an upload socket: one upload per socket, new or
 * resumed. Flow control: the uploader may have at most `window` of sent but
 * unacknowledged bytes, where each frame also costs `frameCost` (a flood of
 * tiny frames is paced like bytes), and the server acknowledges bytes only
 * once the store has written them, so a fast producer on a slow disk never
 * grows server memory without bound.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import { HEARTBEAT_TEXT } from "../protocol/heartbeat.ts";
import type {
  AckMessage,
  EndOfInputMessage,
  FinalStatusMessage,
  ReadyForUploadMessage,
  RequestUploadMessage,
  ResumeUploadMessage,
} from "../protocol/messages.ts";
import { parseUploadClientMessage } from "../protocol/validate.ts";
import type { ResourceRegistry } from "./registry.ts";
import {
  binaryData,
  refuseOversized,
  sendError,
  sendJson,
} from "./_socket_messages.ts";
import type { PeerSocket } from "./_peer_socket.ts";
import { limitExceeded, type ServerLimits } from "./limits.ts";
import type { UploadSession, UploadSessions } from "./upload_sessions.ts";
import {
  CLOSE_ABORT,
  CLOSE_REPLACED,
  CLOSE_TIMEOUT,
} from "../protocol/close_codes.ts";

export { DISCONNECTED_REASON } from "./upload_sessions.ts";

/**
 * Bytes of the window one binary frame costs beyond its payload: 250,000
 * empty frames are 16 MB of window, not nothing.
 */
export const FRAME_COST = 64;

/** Settings an upload socket needs from its server. */
export interface UploadSocketContext {
  registry: ResourceRegistry;
  /** Live uploads, their tokens and grace periods. */
  sessions: UploadSessions;
  /** Builds the download reference of a resource id. */
  reference(id: string): string;
  /** Bytes an uploader may send beyond the last acknowledgement. */
  window: number;
  /** The server's limits. */
  limits: ServerLimits;
}

type Phase =
  | "awaiting-request"
  | "creating"
  | "uploading"
  | "finishing"
  | "done";

/**
 * Serves one upload socket until it ends.
 *
 * @example
 * ```ts ignore
 * const { peer, response } = sockets.upgrade(request);
 * serveUploadSocket(peer, context);
 * return response;
 * ```
 */
export function serveUploadSocket(
  peer: PeerSocket,
  context: UploadSocketContext,
): void {
  new UploadSocket(peer, context);
}

/** One upload socket: its phase, its upload and its flow-control counters. */
class UploadSocket {
  readonly #peer: PeerSocket;
  readonly #socket: WebSocket;
  readonly #context: UploadSocketContext;
  #phase: Phase = "awaiting-request";
  #session: UploadSession | undefined;
  /** Bytes and frames received, and those acknowledged. */
  #received = 0;
  #frames = 0;
  #ackedBytes = 0;
  #ackedFrames = 0;
  /** Undoes the status watch and write observer of the held upload. */
  #letGo: (() => void)[] = [];
  #lastActivity = performance.now();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(peer: PeerSocket, context: UploadSocketContext) {
    this.#peer = peer;
    this.#socket = peer.socket;
    this.#context = context;
    this.#socket.binaryType = "arraybuffer";
    this.#socket.onmessage = (event) => this.#onMessage(event);
    this.#socket.onerror = () => {
      // The end follows and decides; nothing more to do here.
    };
    peer.onEnd((code) => this.#onEnd(code));
    this.#watchIdle(context.limits.uploadIdleTimeoutMs);
  }

  #onMessage(event: MessageEvent): void {
    this.#peer.touch();
    const { data } = event;
    if (typeof data === "string") {
      if (data === HEARTBEAT_TEXT) return this.#peer.answerHeartbeat();
      if (refuseOversized(this.#peer, data)) return;
      this.#lastActivity = performance.now();
      this.#onText(data).catch((error) => sendError(this.#socket, error));
      return;
    }
    this.#lastActivity = performance.now();
    const chunk = binaryData(data);
    if (chunk) this.#onBinary(chunk);
  }

  async #onText(text: string): Promise<void> {
    const message = parseUploadClientMessage(text);
    if (message.type === "heartbeat") return this.#peer.answerHeartbeat();
    const expected: Record<typeof message.type, Phase> = {
      "request-upload": "awaiting-request",
      "resume-upload": "awaiting-request",
      "end-of-input": "uploading",
    };
    if (this.#phase !== expected[message.type]) {
      throw new SpoolError(
        "unexpected-message",
        message.type === "end-of-input"
          ? `end-of-input received while ${this.#phase}; expected it after ready-for-upload, once`
          : `${message.type} received while ${this.#phase}; expected it only once, as the first message`,
      );
    }
    if (message.type === "request-upload") await this.#start(message);
    else if (message.type === "resume-upload") await this.#resume(message);
    else await this.#endOfInput(message);
  }

  /**
   * While this socket holds the upload, an end decided elsewhere (shutdown,
   * a limit, a grace period, the store) reaches the uploader as its final
   * status, so it does not try to resume an upload that is over; and bytes
   * the store wrote are acknowledged.
   */
  #hold(held: UploadSession): void {
    this.#session = held;
    const { resource } = held;
    this.#letGo.push(
      resource.watch((status) => {
        if (status.status !== "FAILED" || this.#phase === "finishing") return;
        const final: FinalStatusMessage = {
          type: "final-status",
          resource: status,
        };
        this.#phase = "done";
        sendJson(this.#socket, final);
      }),
      resource.observeWrites({
        written: (bytes, appends) => this.#written(bytes, appends),
        failed: (error) =>
          this.#fail(
            `store write failed: ${error.message}`,
            new SpoolError(
              "upload-failed",
              `the store could not write the upload: ${error.message}`,
            ),
          ),
      }),
    );
  }

  #unhold(): void {
    for (const undo of this.#letGo.splice(0)) undo();
  }

  /** Another socket resumed this upload: stop serving it here. */
  #release = (): void => {
    this.#phase = "done";
    this.#unhold();
    this.#peer.end(CLOSE_REPLACED, "upload resumed on another connection");
  };

  #fail(reason: string, error?: SpoolError): void {
    if (error) sendError(this.#socket, error);
    // No byte is taken from here on; the FAILED status reaches the uploader
    // through the watcher once it is published.
    this.#phase = "done";
    const session = this.#session;
    if (!session) return;
    this.#context.sessions.end(session);
    session.resource.fail(reason).catch((cause) =>
      console.error(
        `spool: could not record failure of ${session.resource.status.id}:`,
        cause,
      )
    );
  }

  #sendReady(offset: number): void {
    const { resource, token } = this.#session!;
    const ready: ReadyForUploadMessage = {
      type: "ready-for-upload",
      id: resource.status.id,
      reference: this.#context.reference(resource.status.id),
      window: this.#context.window,
      token,
      offset,
      resumeGraceMs: this.#context.sessions.graceMs,
      frameCost: FRAME_COST,
    };
    sendJson(this.#socket, ready);
  }

  async #start(message: RequestUploadMessage): Promise<void> {
    const { maxResourceBytes } = this.#context.limits;
    if (message.size !== undefined && message.size > maxResourceBytes) {
      throw limitExceeded(
        "maxResourceBytes",
        maxResourceBytes,
        `an upload of ${message.size} bytes`,
      );
    }
    this.#phase = "creating";
    let resource;
    try {
      resource = await this.#context.registry.create({
        name: message.name,
        mimeType: message.mimeType!,
        metadata: message.metadata ?? {},
      }, { maxLive: this.#context.limits.maxUploads });
    } catch (error) {
      this.#phase = "awaiting-request";
      throw error;
    }
    this.#hold(this.#context.sessions.open(resource, this.#release));
    this.#begin(0);
  }

  async #resume(message: ResumeUploadMessage): Promise<void> {
    this.#phase = "creating";
    try {
      this.#hold(
        await this.#context.sessions.resume(
          message.id,
          message.token,
          this.#release,
        ),
      );
    } catch (error) {
      this.#phase = "awaiting-request";
      throw error;
    }
    // Bytes the old connection delivered are written before we name the offset.
    await this.#session!.resource.settled();
    this.#begin(this.#session!.resource.written);
  }

  /** Starts taking bytes at `offset`, unless the uploader left meanwhile. */
  #begin(offset: number): void {
    if (this.#peer.ended) {
      // Held after the end was handled (a resume awaited the store).
      this.#unhold();
      this.#context.sessions.detach(this.#session!, {
        abort: false,
        release: this.#release,
      });
      this.#phase = "done";
      return;
    }
    const { resource } = this.#session!;
    this.#received = this.#ackedBytes = offset;
    this.#frames = this.#ackedFrames = resource.appendsWritten;
    this.#phase = "uploading";
    this.#sendReady(offset);
  }

  async #endOfInput(message: EndOfInputMessage): Promise<void> {
    this.#phase = "finishing";
    const session = this.#session!;
    const status = await session.resource.complete(message.sha256);
    this.#context.sessions.end(session);
    this.#phase = "done";
    const final: FinalStatusMessage = {
      type: "final-status",
      resource: status,
    };
    sendJson(this.#socket, final);
  }

  /** Window used by bytes and frames not yet acknowledged. */
  #unacknowledged(): number {
    return this.#received - this.#ackedBytes +
      (this.#frames - this.#ackedFrames) * FRAME_COST;
  }

  #onBinary(chunk: Uint8Array): void {
    if (this.#phase !== "uploading") {
      // Frames in flight after a release or failure are dropped.
      if (this.#phase === "done" && this.#session) return;
      sendError(
        this.#socket,
        new SpoolError(
          "unexpected-binary",
          `binary frame of ${chunk.byteLength} bytes received while ${this.#phase}; expected bytes only between ready-for-upload and end-of-input`,
        ),
      );
      return;
    }
    this.#received += chunk.byteLength;
    this.#frames++;
    const { limits, window } = this.#context;
    if (this.#received > limits.maxResourceBytes) {
      const error = limitExceeded(
        "maxResourceBytes",
        limits.maxResourceBytes,
        `an upload of ${this.#received} bytes or more`,
      );
      return this.#fail(error.message, error);
    }
    // A client that ignores the window would make us buffer without bound.
    const unacknowledged = this.#unacknowledged();
    if (unacknowledged > 2 * window) {
      return this.#fail(
        `flow control violated: ${unacknowledged} bytes of window unacknowledged, window is ${window}`,
        new SpoolError(
          "flow-control",
          `${unacknowledged} bytes of window (payload plus ${FRAME_COST} per frame) sent beyond the last acknowledgement; expected at most the window of ${window}`,
        ),
      );
    }
    // The resource keeps the chunk: each message has a buffer of its own.
    this.#session!.resource.append(chunk);
  }

  /** The store wrote up to `bytes`: acknowledge in batches. */
  #written(bytes: number, appends: number): void {
    if (this.#phase !== "uploading" && this.#phase !== "finishing") return;
    // A message per frame would double the message rate.
    const newly = bytes - this.#ackedBytes +
      (appends - this.#ackedFrames) * FRAME_COST;
    // Empty frames alone earn an ack only per quarter window of their cost:
    // acking each one would answer a flood message for message.
    const idle = this.#session!.resource.pendingWrites === 0 &&
      bytes > this.#ackedBytes;
    if (newly >= this.#context.window / 4 || idle) {
      this.#ackedBytes = bytes;
      this.#ackedFrames = appends;
      const ack: AckMessage = { type: "ack", offset: bytes };
      sendJson(this.#socket, ack);
    }
  }

  /** One timer, re-armed lazily: resetting a timer on every frame costs more. */
  #watchIdle(delay: number): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#phase === "done" || this.#peer.ended) return;
      const silent = performance.now() - this.#lastActivity;
      const timeout = this.#context.limits.uploadIdleTimeoutMs;
      if (silent < timeout) return this.#watchIdle(timeout - silent);
      const error = limitExceeded(
        "uploadIdleTimeoutMs",
        timeout,
        `an upload socket silent for ${Math.round(silent)} ms`,
      );
      if (this.#phase === "uploading") this.#fail(error.message, error);
      else sendError(this.#socket, error);
      this.#phase = "done";
      this.#peer.end(CLOSE_TIMEOUT, "idle timeout");
    }, delay);
  }

  #onEnd(code: number): void {
    clearTimeout(this.#idleTimer);
    this.#unhold();
    // In "finishing" the end-of-input arrived and completion runs on.
    if (this.#phase === "uploading" && this.#session) {
      this.#phase = "done";
      this.#context.sessions.detach(this.#session, {
        abort: code === CLOSE_ABORT,
        release: this.#release,
      });
    }
  }
}
