/**
 * The vocabulary both ends of the live-resource protocol share: message
 * types, the status model, validation with precise errors and the binary data
 * frame codec.
 *
 * @example
 * ```ts
 * import { parseDownloadClientMessage } from "./mod.ts";
 * const read = parseDownloadClientMessage(
 *   '{"type":"read","requestId":1,"start":0,"end":4}',
 * );
 * ```
 *
 * @module
 */

export * from "./status.ts";
export * from "./errors.ts";
export * from "./messages.ts";
export * from "./validate.ts";
export * from "./data_frame.ts";
export * from "./heartbeat.ts";
export * from "./close_codes.ts";
