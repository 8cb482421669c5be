/**
 * The server side of an upload socket: one upload per socket, new or
 * resumed. Flow control: the uploader may have at most `window` bytes sent
 * but not acknowledged, and the server acknowledges bytes only once the store
 * has written them, so a fast producer on a slow disk never grows server
 * memory without bound.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
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
import { binaryData, sendError, sendJson } from "./_socket.ts";
import { limitExceeded, type ServerLimits } from "./limits.ts";
import type { UploadSession, UploadSessions } from "./upload_sessions.ts";

export { DISCONNECTED_REASON } from "./upload_sessions.ts";

/**
 * Close code for an upload socket that stayed silent too long (4000 + HTTP 408).
 *
 * @example
 * ```ts
 * import { CLOSE_IDLE } from "./upload_socket.ts";
 * const timedOut = (event: CloseEvent) => event.code === CLOSE_IDLE;
 * ```
 */
export const CLOSE_IDLE = 4408;
/**
 * Close code for an upload socket whose upload was resumed on another socket.
 *
 * @example
 * ```ts
 * import { CLOSE_REPLACED } from "./upload_socket.ts";
 * // The upload continues on a newer socket: stop writing to this one.
 * const replaced = (event: CloseEvent) => event.code === CLOSE_REPLACED;
 * ```
 */
export const CLOSE_REPLACED = 4409;
/**
 * Close code an uploader uses to abort: the upload fails at once, no grace period.
 *
 * @example
 * ```ts
 * import { CLOSE_ABORT } from "./upload_socket.ts";
 * const abortUpload = (socket: WebSocket) => socket.close(CLOSE_ABORT, "cancelled by the user");
 * ```
 */
export const CLOSE_ABORT = 4000;

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
 * Serves one upload socket until it closes.
 *
 * @example
 * ```ts ignore
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * serveUploadSocket(socket, context);
 * return response;
 * ```
 */
export function serveUploadSocket(
  socket: WebSocket,
  context: UploadSocketContext,
): void {
  socket.binaryType = "arraybuffer";
  let phase: Phase = "awaiting-request";
  let session: UploadSession | undefined;
  let received = 0;
  let acknowledged = 0;
  let unwatch: (() => void) | undefined;

  /**
   * While this socket holds the upload, an end decided elsewhere (shutdown,
   * a limit, a grace period) reaches the uploader as its final status, so it
   * does not try to resume an upload that is over.
   */
  const hold = (held: UploadSession) => {
    session = held;
    unwatch = held.resource.watch((status) => {
      if (status.status !== "FAILED" || phase === "finishing") return;
      unwatch?.();
      const final: FinalStatusMessage = {
        type: "final-status",
        resource: status,
      };
      sendJson(socket, final);
    });
  };

  /** Another socket resumed this upload: stop serving it here. */
  const release = () => {
    phase = "done";
    unwatch?.();
    if (socket.readyState <= WebSocket.OPEN) {
      socket.close(CLOSE_REPLACED, "upload resumed on another connection");
    }
  };

  const failUpload = (reason: string, error?: SpoolError) => {
    if (error) sendError(socket, error);
    // No byte is taken from here on; the FAILED status reaches the uploader
    // through the watcher once it is recorded.
    phase = "done";
    if (!session) return;
    context.sessions.end(session);
    session.resource.fail(reason).catch((cause) =>
      console.error(
        `spool: could not record failure of ${session?.resource.status.id}:`,
        cause,
      )
    );
  };

  const sendReady = (offset: number) => {
    const { resource, token } = session!;
    const ready: ReadyForUploadMessage = {
      type: "ready-for-upload",
      id: resource.status.id,
      reference: context.reference(resource.status.id),
      window: context.window,
      token,
      offset,
      resumeGraceMs: context.sessions.graceMs,
    };
    sendJson(socket, ready);
  };

  const startUpload = async (message: RequestUploadMessage) => {
    const live = [...context.registry.live()].length;
    if (live >= context.limits.maxUploads) {
      throw limitExceeded(
        "maxUploads",
        context.limits.maxUploads,
        `a new upload (${live} in progress)`,
      );
    }
    phase = "creating";
    let resource;
    try {
      resource = await context.registry.create({
        name: message.name,
        mimeType: message.mimeType!,
        metadata: message.metadata ?? {},
      });
    } catch (error) {
      phase = "awaiting-request";
      throw error;
    }
    hold(context.sessions.open(resource, release));
    if (socket.readyState !== WebSocket.OPEN) {
      // The uploader left while the resource was being created.
      context.sessions.detach(session!, { abort: false });
      phase = "done";
      return;
    }
    phase = "uploading";
    sendReady(0);
  };

  const resumeUpload = async (message: ResumeUploadMessage) => {
    phase = "creating";
    try {
      hold(context.sessions.resume(message.id, message.token, release));
    } catch (error) {
      phase = "awaiting-request";
      throw error;
    }
    // Bytes the old connection delivered are written before we name the offset.
    await session!.resource.settled();
    received = acknowledged = session!.resource.written;
    if (socket.readyState !== WebSocket.OPEN) {
      context.sessions.detach(session!, { abort: false });
      phase = "done";
      return;
    }
    phase = "uploading";
    sendReady(received);
  };

  const endOfInput = async (message: EndOfInputMessage) => {
    phase = "finishing";
    const status = await session!.resource.complete(message.sha256);
    context.sessions.end(session!);
    phase = "done";
    const final: FinalStatusMessage = {
      type: "final-status",
      resource: status,
    };
    sendJson(socket, final);
  };

  const onText = async (text: string) => {
    const message = parseUploadClientMessage(text);
    const expected: Record<typeof message.type, Phase> = {
      "request-upload": "awaiting-request",
      "resume-upload": "awaiting-request",
      "end-of-input": "uploading",
    };
    if (phase !== expected[message.type]) {
      throw new SpoolError(
        "unexpected-message",
        message.type === "end-of-input"
          ? `end-of-input received while ${phase}; expected it after ready-for-upload, once`
          : `${message.type} received while ${phase}; expected it only once, as the first message`,
      );
    }
    if (message.type === "request-upload") await startUpload(message);
    else if (message.type === "resume-upload") await resumeUpload(message);
    else await endOfInput(message);
  };

  const onBinary = (chunk: Uint8Array) => {
    if (phase !== "uploading") {
      if (phase === "done" && session) return; // frames in flight after a release or failure
      sendError(
        socket,
        new SpoolError(
          "unexpected-binary",
          `binary frame of ${chunk.byteLength} bytes received while ${phase}; expected bytes only between ready-for-upload and end-of-input`,
        ),
      );
      return;
    }
    received += chunk.byteLength;
    if (received > context.limits.maxResourceBytes) {
      const error = limitExceeded(
        "maxResourceBytes",
        context.limits.maxResourceBytes,
        `an upload of ${received} bytes or more`,
      );
      failUpload(error.message, error);
      return;
    }
    // A client that ignores the window would make us buffer without bound.
    if (received - acknowledged > 2 * context.window) {
      failUpload(
        `flow control violated: ${
          received - acknowledged
        } bytes unacknowledged, window is ${context.window}`,
        new SpoolError(
          "flow-control",
          `${
            received - acknowledged
          } bytes sent beyond the last acknowledgement; expected at most the window of ${context.window} bytes`,
        ),
      );
      return;
    }
    const { resource } = session!;
    resource.append(chunk).then((written) => {
      if (phase === "done") return;
      // Acknowledge in batches: a message per frame would double the message rate.
      if (
        written - acknowledged >= context.window / 4 ||
        resource.pendingWrites === 0
      ) {
        acknowledged = written;
        const ack: AckMessage = { type: "ack", offset: written };
        sendJson(socket, ack);
      }
    }, (error) => {
      if (phase === "done") return;
      failUpload(
        `store write failed: ${error.message}`,
        new SpoolError(
          "upload-failed",
          `the store could not write the upload: ${error.message}`,
        ),
      );
    });
  };

  // One timer, re-armed lazily: resetting a timer on every frame costs more.
  let lastActivity = performance.now();
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const watchIdle = (delay: number) => {
    idleTimer = setTimeout(() => {
      idleTimer = undefined;
      if (phase === "done" || socket.readyState !== WebSocket.OPEN) return;
      const silent = performance.now() - lastActivity;
      const timeout = context.limits.uploadIdleTimeoutMs;
      if (silent < timeout) return watchIdle(timeout - silent);
      const error = limitExceeded(
        "uploadIdleTimeoutMs",
        timeout,
        `an upload socket silent for ${Math.round(silent)} ms`,
      );
      if (phase === "uploading") failUpload(error.message, error);
      else sendError(socket, error);
      phase = "done";
      socket.close(CLOSE_IDLE, "idle timeout");
    }, delay);
  };
  watchIdle(context.limits.uploadIdleTimeoutMs);

  socket.onmessage = (event) => {
    lastActivity = performance.now();
    if (typeof event.data === "string") {
      onText(event.data).catch((error) => sendError(socket, error));
      return;
    }
    const chunk = binaryData(event.data);
    if (chunk) onBinary(chunk);
  };
  socket.onclose = (event) => {
    clearTimeout(idleTimer);
    unwatch?.();
    // In "finishing" the end-of-input arrived and completion runs on.
    if (phase === "uploading" && session) {
      phase = "done";
      context.sessions.detach(session, { abort: event.code === CLOSE_ABORT });
    }
  };
  socket.onerror = () => {
    // The close event follows and decides; nothing more to do here.
  };
}
