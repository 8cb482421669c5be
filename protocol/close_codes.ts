/**
 * The WebSocket close codes of the live-resource protocol, for both ends.
 * Ours are 4000 + the HTTP status they mean, where one fits.
 *
 * @module
 */

/**
 * An uploader aborts: its upload fails at once, with no grace period.
 *
 * @example
 * ```ts
 * import { CLOSE_ABORT } from "./close_codes.ts";
 * const abortUpload = (socket: WebSocket) => socket.close(CLOSE_ABORT, "cancelled by the user");
 * ```
 */
export const CLOSE_ABORT = 4000;

/**
 * A missing or wrong token (HTTP 403).
 *
 * @example
 * ```ts
 * import { CLOSE_FORBIDDEN } from "./close_codes.ts";
 * const refused = (event: CloseEvent) => event.code === CLOSE_FORBIDDEN;
 * ```
 */
export const CLOSE_FORBIDDEN = 4403;

/**
 * The reference names no resource (HTTP 404).
 *
 * @example
 * ```ts
 * import { CLOSE_NOT_FOUND } from "./close_codes.ts";
 * const noSuchResource = (event: CloseEvent) => event.code === CLOSE_NOT_FOUND;
 * ```
 */
export const CLOSE_NOT_FOUND = 4404;

/**
 * A timeout (HTTP 408): an upload silent past its idle timeout, a peer that
 * sent nothing (not even a heartbeat) or took none of its bytes, or a
 * client giving up on a dead link.
 *
 * @example
 * ```ts
 * import { CLOSE_TIMEOUT } from "./close_codes.ts";
 * const timedOut = (event: CloseEvent) => event.code === CLOSE_TIMEOUT;
 * ```
 */
export const CLOSE_TIMEOUT = 4408;

/**
 * An upload socket whose upload was resumed on another connection (HTTP 409).
 *
 * @example
 * ```ts
 * import { CLOSE_REPLACED } from "./close_codes.ts";
 * // The upload continues on a newer socket: stop writing to this one.
 * const replaced = (event: CloseEvent) => event.code === CLOSE_REPLACED;
 * ```
 */
export const CLOSE_REPLACED = 4409;

/**
 * The resource expired and was deleted (HTTP 410).
 *
 * @example
 * ```ts
 * import { CLOSE_GONE } from "./close_codes.ts";
 * const expired = (event: CloseEvent) => event.code === CLOSE_GONE;
 * ```
 */
export const CLOSE_GONE = 4410;

/**
 * A socket refused for a server limit (HTTP 429): worth retrying later.
 *
 * @example
 * ```ts
 * import { CLOSE_LIMIT } from "./close_codes.ts";
 * const refused = (event: CloseEvent) => event.code === CLOSE_LIMIT;
 * ```
 */
export const CLOSE_LIMIT = 4429;

/**
 * A message too big to process (RFC 6455): a control message over the limit.
 *
 * @example
 * ```ts
 * import { CLOSE_TOO_BIG } from "./close_codes.ts";
 * const tooBig = (event: CloseEvent) => event.code === CLOSE_TOO_BIG;
 * ```
 */
export const CLOSE_TOO_BIG = 1009;

/**
 * The server is shutting down (RFC 6455 "going away").
 *
 * @example
 * ```ts
 * import { CLOSE_SHUTDOWN } from "./close_codes.ts";
 * const serverLeft = (event: CloseEvent) => event.code === CLOSE_SHUTDOWN;
 * ```
 */
export const CLOSE_SHUTDOWN = 1001;
