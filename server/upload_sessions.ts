/**
 * Resumable uploads: which socket holds each live upload, its write token,
 * and the grace period an upload survives without one. An uploader that
 * loses its connection reconnects with `resume-upload` and continues from the
 * server's committed offset; only after the grace period does the upload
 * fail. An explicit abort fails it at once. Write tokens are derived from
 * the server secret, so nodes sharing it accept each other's: on a shared
 * store an upload another node holds is taken over (see
 * {@linkcode TakeOver}).
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { SpoolError } from "../protocol/errors.ts";
import type { Resource } from "./resource.ts";

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

/**
 * How a node of a shared store takes over an upload another node holds,
 * when its uploader resumes here.
 *
 * @example
 * ```ts ignore
 * const sessions = new UploadSessions({ graceMs, writeToken, takeOver: cluster.takeOver });
 * ```
 */
export interface TakeOver {
  /**
   * Why upload `id` cannot be taken over here, checked before its token:
   * `not-found` when no node holds it live, `unavailable` when this node
   * cannot check its token. `undefined` when it can be taken.
   */
  refusal(id: string): Promise<SpoolError | undefined>;
  /** Takes the upload over; resolves with its live resource here. */
  take(id: string): Promise<Resource>;
}

/**
 * Options of {@linkcode UploadSessions}.
 *
 * @example
 * ```ts
 * import type { UploadSessionsOptions } from "./upload_sessions.ts";
 * const options: UploadSessionsOptions = { graceMs: 10_000, writeToken: (id) => `token-of-${id}` };
 * ```
 */
export interface UploadSessionsOptions {
  /** How long an upload without a socket survives; 0 fails it at once. */
  graceMs: number;
  /** The write token of upload `id` (derived from the server secret). */
  writeToken(id: string): string;
  /** With a shared store: takes over uploads other nodes hold. */
  takeOver?: TakeOver;
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
 * const sessions = new UploadSessions({ graceMs: 10_000, writeToken: (id) => auth.writeToken(id) });
 * const session = sessions.open(resource, () => socket.close());
 * ```
 */
export class UploadSessions {
  readonly #graceMs: number;
  readonly #writeToken: (id: string) => string;
  readonly #takeOver: TakeOver | undefined;
  readonly #sessions = new Map<string, SessionState>();
  /** Takeovers under way: a second resume of the same upload waits for the first. */
  readonly #taking = new Map<string, Promise<Resource>>();

  /** Creates the registry. */
  constructor(options: UploadSessionsOptions) {
    this.#graceMs = options.graceMs;
    this.#writeToken = options.writeToken;
    this.#takeOver = options.takeOver;
  }

  /** How long an upload without a socket survives. */
  get graceMs(): number {
    return this.#graceMs;
  }

  /** Starts a session for a new upload, held by the socket `release` belongs to. */
  open(resource: Resource, release: () => void): UploadSession {
    const id = resource.status.id;
    const session: SessionState = {
      resource,
      token: this.#writeToken(id),
      release,
    };
    this.#sessions.set(id, session);
    // Another node took it over: let go here without failing it.
    resource.handedOver.then(() => this.#letGo(session));
    return session;
  }

  /** Ends `session` here (another node holds it) and frees its socket. */
  #letGo(session: SessionState): void {
    if (this.#sessions.get(session.resource.status.id) !== session) return;
    this.end(session);
    const holder = session.release;
    session.release = undefined;
    holder?.();
  }

  /**
   * Hands the upload `id` to a new socket (whose `release` is given), after
   * checking `token`; the socket holding it before, if any, is released.
   * An upload another node holds is taken over (shared stores). Throws
   * `not-found`, `forbidden`, `unavailable` or `unexpected-message`.
   */
  async resume(
    id: string,
    token: string,
    release: () => void,
  ): Promise<UploadSession> {
    const session = this.#sessions.get(id);
    if (!session) return await this.#takeOverUpload(id, token, release);
    this.#checkToken(id, token);
    // Shared store: another node may hold it now, this node not knowing yet.
    if (this.#takeOver && !(await session.resource.stillHeld())) {
      this.#letGo(session);
      return await this.#takeOverUpload(id, token, release);
    }
    if (this.#sessions.get(id) !== session) {
      // It ended while the store was asked (its grace ran out).
      return await this.#takeOverUpload(id, token, release);
    }
    clearTimeout(session.graceTimer);
    session.graceTimer = undefined;
    const previous = session.release;
    session.release = release;
    previous?.();
    return session;
  }

  /** Takes over `id` from another node, once, and opens its session here. */
  async #takeOverUpload(
    id: string,
    token: string,
    release: () => void,
  ): Promise<UploadSession> {
    const taking = this.#taking.get(id);
    if (taking) {
      this.#checkToken(id, token);
      await taking;
      return await this.resume(id, token, release);
    }
    if (this.#takeOver === undefined) throw noUpload(id);
    const refusal = await this.#takeOver.refusal(id);
    if (refusal) throw refusal;
    this.#checkToken(id, token);
    const take = this.#takeOver.take(id);
    this.#taking.set(id, take);
    try {
      return this.open(await take, release);
    } finally {
      this.#taking.delete(id);
    }
  }

  #checkToken(id: string, token: string): void {
    if (!sameToken(this.#writeToken(id), token)) {
      throw new SpoolError(
        "forbidden",
        `wrong write token for upload ${id}; expected the token of its ready-for-upload`,
      );
    }
  }

  /**
   * The socket holding `session` (the one whose `release` it was given)
   * went away: with `abort` the upload fails now, otherwise after the grace
   * period unless it is resumed. A socket a later resume released holds
   * nothing: its leaving changes nothing.
   */
  detach(
    session: UploadSession,
    options: { abort: boolean; release: () => void },
  ): void {
    const state = this.#sessions.get(session.resource.status.id);
    if (state !== session || state.release !== options.release) return;
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

/**
 * The refusal of a resume for an upload no node holds live.
 *
 * @example
 * ```ts
 * import { noUpload } from "./upload_sessions.ts";
 * console.log(noUpload("AAAAAAAAAAAAAAAAAAAAAA").code); // not-found
 * ```
 */
export function noUpload(id: string): SpoolError {
  return new SpoolError(
    "not-found",
    `no upload in progress with id ${
      JSON.stringify(id.slice(0, 64))
    }; expected the id of an upload that is neither finished nor past its grace period`,
  );
}

function sameToken(expected: string, given: string): boolean {
  const a = new TextEncoder().encode(expected);
  const b = new TextEncoder().encode(given);
  // Constant time, so the token cannot be guessed byte by byte.
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}
