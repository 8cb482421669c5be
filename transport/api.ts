/**
 * The object transport as its users call it: a {@linkcode Stream} of objects
 * to one endpoint, a {@linkcode StreamBundle} for several, a
 * {@linkcode Receiver} of endpoints, their options, handlers and errors.
 * The wire codecs are in `./mod.ts` (`@spool/spool/transport`).
 *
 * @module
 */

export { Stream } from "./stream.ts";
export { type BundleOptions, StreamBundle } from "./bundle.ts";
export {
  type ListenOptions,
  Receiver,
  type ReceiverOptions,
  type ReceiverStats,
  startReceiver,
} from "./receiver.ts";
export type {
  ObjectBody,
  ObjectHeader,
  ReceivedHeader,
  ReceiveHandler,
  SendOptions,
  SentCallback,
  StreamOptions,
  StreamStats,
} from "./types.ts";
export { TransportError, type TransportErrorCode } from "./errors.ts";
