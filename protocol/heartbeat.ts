/**
 * Heartbeats: how both ends of a socket tell a quiet connection from a dead
 * one. A black-holed link (no FIN, no reset) is otherwise silent forever.
 * Clients send a heartbeat whenever they have sent nothing for a while (at
 * most {@linkcode HEARTBEAT_MAX_INTERVAL_MS}); the server answers each one.
 * Any message counts as a sign of life, so a slow link that is still moving
 * bytes is never mistaken for a dead one.
 *
 * @module
 */

/**
 * Either direction, on both sockets: "I am still here". Carries nothing.
 *
 * @example
 * ```ts
 * import type { HeartbeatMessage } from "./heartbeat.ts";
 * const beat: HeartbeatMessage = { type: "heartbeat" };
 * ```
 */
export interface HeartbeatMessage {
  /** The message type. */
  type: "heartbeat";
}

/**
 * The heartbeat as sent on the wire (one text frame).
 *
 * @example
 * ```ts
 * import { HEARTBEAT_TEXT } from "./heartbeat.ts";
 * console.log(JSON.parse(HEARTBEAT_TEXT).type); // "heartbeat"
 * ```
 */
export const HEARTBEAT_TEXT = '{"type":"heartbeat"}';

/**
 * Longest silence after which a client sends a heartbeat, in ms. The
 * server's peer timeout (default 30 s) is a multiple of it.
 *
 * @example
 * ```ts
 * import { HEARTBEAT_MAX_INTERVAL_MS } from "./heartbeat.ts";
 * console.log(HEARTBEAT_MAX_INTERVAL_MS); // 10000
 * ```
 */
export const HEARTBEAT_MAX_INTERVAL_MS = 10_000;

/**
 * How often a client with timeout `timeoutMs` sends a heartbeat: three
 * chances per timeout, and never less often than the server expects.
 *
 * @example
 * ```ts
 * import { heartbeatInterval } from "./heartbeat.ts";
 * console.log(heartbeatInterval(30_000), heartbeatInterval(600)); // 10000 200
 * ```
 */
export function heartbeatInterval(timeoutMs: number): number {
  return Math.max(
    1,
    Math.min(HEARTBEAT_MAX_INTERVAL_MS, Math.floor(timeoutMs / 3)),
  );
}
