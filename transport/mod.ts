/**
 * Object transport: ordered streams of objects (header + body) to HTTP
 * endpoints over one long-lived request each, modelled on AIStore's
 * `transport` package. Each stream's send loop runs in its own Web Worker.
 *
 * - {@linkcode Stream}: send objects to one receiver URL.
 * - {@linkcode StreamBundle}: send to N destinations, broadcast or unicast.
 * - {@linkcode Receiver}: serve endpoints and hand objects to handlers.
 *
 * The wire format is documented in `docs/transport.md`.
 *
 * @example
 * ```ts
 * import { Receiver, Stream } from "./mod.ts";
 *
 * await using receiver = new Receiver();
 * await receiver.listen("data");
 * receiver.register("data", "demo", async (header, body) => {
 *   console.log(header.name, body ? (await new Response(body).bytes()).length : 0);
 * });
 * const stream = new Stream(receiver.url("data", "demo"));
 * await stream.send({ name: "a.bin" }, new Uint8Array(1024));
 * await stream.fin();
 * ```
 *
 * @module
 */

export { ERROR_CODES, type ErrorCode, SpoolError } from "../protocol/errors.ts";
export * from "./errors.ts";
export * from "./types.ts";
export * from "./header_codec.ts";
export * from "./framing.ts";
export * from "./frame_parser.ts";
export * from "./stream.ts";
export * from "./bundle.ts";
export * from "./receiver.ts";
export type { EndpointStats, RequestEndEvent, SessionStats } from "./recv.ts";
