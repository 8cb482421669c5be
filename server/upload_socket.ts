/**
 * The server side of an upload socket: one resource per socket. Flow control:
 * the uploader may have at most `window` bytes sent but not acknowledged, and
 * the server acknowledges bytes only once the store has written them, so a
 * fast producer on a slow disk never grows server memory without bound.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import type {
  AckMessage,
  FinalStatusMessage,
  ReadyForUploadMessage,
} from "../protocol/messages.ts";
import { parseUploadClientMessage } from "../protocol/validate.ts";
import type { ResourceRegistry } from "./registry.ts";
import type { Resource } from "./resource.ts";
import { binaryData, sendError, sendJson } from "./_socket.ts";
import { limitExceeded, type ServerLimits } from "./limits.ts";

/** Close code for an upload socket that stayed silent too long (4000 + HTTP 408). */
export const CLOSE_IDLE = 4408;

/** Reason recorded when an uploader goes away before end-of-input. */
export const DISCONNECTED_REASON =
  "the uploader disconnected before end-of-input";

/** Settings an upload socket needs from its server. */
export interface UploadSocketContext {
  registry: ResourceRegistry;
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
  let resource: Resource | undefined;
  let received = 0;
  let acknowledged = 0;

  const failUpload = (reason: string, error?: SpoolError) => {
    if (error) sendError(socket, error);
    phase = "done";
    resource?.fail(reason).catch((cause) =>
      console.error(
        `spool: could not record failure of ${resource?.status.id}:`,
        cause,
      )
    );
  };

  const onText = async (text: string) => {
    const message = parseUploadClientMessage(text);
    if (message.type === "request-upload") {
      if (phase !== "awaiting-request") {
        throw new SpoolError(
          "unexpected-message",
          `request-upload received while ${phase}; expected it only once, as the first message`,
        );
      }
      const live = [...context.registry.live()].length;
      if (live >= context.limits.maxUploads) {
        throw limitExceeded(
          "maxUploads",
          context.limits.maxUploads,
          `a new upload (${live} in progress)`,
        );
      }
      phase = "creating";
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
      if (socket.readyState !== WebSocket.OPEN) {
        // The uploader left while the resource was being created.
        failUpload(DISCONNECTED_REASON);
        return;
      }
      phase = "uploading";
      const ready: ReadyForUploadMessage = {
        type: "ready-for-upload",
        id: resource.status.id,
        reference: context.reference(resource.status.id),
        window: context.window,
      };
      sendJson(socket, ready);
      return;
    }
    // end-of-input
    if (phase !== "uploading") {
      throw new SpoolError(
        "unexpected-message",
        `end-of-input received while ${phase}; expected it after ready-for-upload, once`,
      );
    }
    phase = "finishing";
    const status = await resource!.complete(message.sha256);
    phase = "done";
    const final: FinalStatusMessage = {
      type: "final-status",
      resource: status,
    };
    sendJson(socket, final);
  };

  const onBinary = (chunk: Uint8Array) => {
    if (phase !== "uploading") {
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
    resource!.append(chunk).then((written) => {
      // Acknowledge in batches: a message per frame would double the message rate.
      if (
        written - acknowledged >= context.window / 4 ||
        resource!.pendingWrites === 0
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
  socket.onclose = () => {
    clearTimeout(idleTimer);
    if (phase === "uploading" || phase === "finishing") {
      // In "finishing" the end-of-input arrived and completion runs on.
      if (phase === "uploading") failUpload(DISCONNECTED_REASON);
    }
  };
  socket.onerror = () => {
    // The close event follows and decides; nothing more to do here.
  };
}
