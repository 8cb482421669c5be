/**
 * Resumable uploads: which socket holds each live upload, its write token,
 * and the grace period an upload survives without one. An uploader that
 * loses its connection reconnects with `resume-upload` and continues from the
 * server's committed offset; only after the grace period does the upload
 * fail. An explicit abort fails it at once.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { SpoolError } from "../protocol/errors.ts";
import type { Resource } from "./resource.ts";
import { newResourceId } from "./resource_id.ts";

/**
 * Reason recorded when an uploader goes away before end-of-input.
 *
 * @example
 * ```ts
 * import { DISCONNECTED_REASON } from "./upload_sessions.ts";
 * import type { ResourceStatus } from "../protocol/status.ts";
 * const uploaderLeft = (status: ResourceStatus) =>
 *   status.status === "FAILED" && status.error === DISCONNECTED_REASON;
 * ```
 */
export const DISCONNECTED_REASON =
  "the uploader disconnected before end-of-input";

/** One live upload and the socket holding it, if any. */
export interface UploadSession {
  readonly resource: Resource;
  /** The write token: whoever has it may resume the upload. */
  readonly token: string;
}

interface SessionState extends UploadSession {
  /** Tells the socket holding the session to let go of it. */
  release?: () => void;
  graceTimer?: ReturnType<typeof setTimeout>;
}

/**
 * The live uploads of a server.
 *
 * @example
 * ```ts ignore
 * const sessions = new UploadSessions({ graceMs: 10_000 });
 * const session = sessions.open(resource, () => socket.close());
 * ```
 */
export class UploadSessions {
  readonly #graceMs: number;
  readonly #sessions = new Map<string, SessionState>();

  /** Creates the registry; `graceMs` 0 fails uploads as soon as their socket goes. */
  constructor(options: { graceMs: number }) {
    this.#graceMs = options.graceMs;
  }

  /** How long an upload without a socket survives. */
  get graceMs(): number {
    return this.#graceMs;
  }

  /** Starts a session for a new upload, held by the socket `release` belongs to. */
  open(resource: Resource, release: () => void): UploadSession {
    const session: SessionState = { resource, token: newResourceId(), release };
    this.#sessions.set(resource.status.id, session);
    return session;
  }

  /**
   * Hands the upload `id` to a new socket (whose `release` is given), after
   * checking `token`; the socket holding it before, if any, is released.
   * Throws `not-found`, `forbidden` or `unexpected-message`.
   */
  resume(id: string, token: string, release: () => void): UploadSession {
    const session = this.#sessions.get(id);
    if (!session) {
      throw new SpoolError(
        "not-found",
        `no upload in progress with id ${
          JSON.stringify(id.slice(0, 64))
        }; expected the id of an upload that is neither finished nor past its grace period`,
      );
    }
    if (!sameToken(session.token, token)) {
      throw new SpoolError(
        "forbidden",
        `wrong write token for upload ${id}; expected the token of its ready-for-upload`,
      );
    }
    clearTimeout(session.graceTimer);
    session.graceTimer = undefined;
    const previous = session.release;
    session.release = release;
    previous?.();
    return session;
  }

  /**
   * The socket holding `session` went away: with `abort` the upload fails
   * now, otherwise after the grace period unless it is resumed.
   */
  detach(session: UploadSession, options: { abort: boolean }): void {
    const state = this.#sessions.get(session.resource.status.id);
    if (state !== session) return;
    state.release = undefined;
    if (options.abort || this.#graceMs === 0) {
      this.#fail(state);
      return;
    }
    state.graceTimer = setTimeout(() => this.#fail(state), this.#graceMs);
  }

  /** The upload ended (completed or failed): it can no longer be resumed. */
  end(session: UploadSession): void {
    const state = this.#sessions.get(session.resource.status.id);
    if (state !== session) return;
    clearTimeout(state.graceTimer);
    this.#sessions.delete(session.resource.status.id);
  }

  /** Stops every grace timer (the server is closing). */
  close(): void {
    for (const state of this.#sessions.values()) clearTimeout(state.graceTimer);
    this.#sessions.clear();
  }

  #fail(state: SessionState): void {
    this.end(state);
    state.resource.fail(DISCONNECTED_REASON).catch((error) =>
      console.error(
        `spool: could not record failure of ${state.resource.status.id}:`,
        error,
      )
    );
  }
}

function sameToken(expected: string, given: string): boolean {
  const a = new TextEncoder().encode(expected);
  const b = new TextEncoder().encode(given);
  // Constant time, so the token cannot be guessed byte by byte.
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}
