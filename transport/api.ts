/**
 * The object transport as its users call it: a {@linkcode Stream} of objects
 * to one endpoint, a {@linkcode StreamBundle} for several, a
 * {@linkcode Receiver} of endpoints, their options, handlers and errors.
 * The wire codecs are in `./mod.ts` (`@spool/spool/transport`).
 *
 * @module
 */

export { Stream } from "./stream.ts";
export {
  type BundleBody,
  type BundleOptions,
  type BundleSendOptions,
  StreamBundle,
} from "./bundle.ts";
export {
  type ListenOptions,
  Receiver,
  type ReceiverOptions,
  type ReceiverStats,
} from "./receiver.ts";
export type { EndpointStats, RequestEndEvent, SessionStats } from "./recv.ts";
export type {
  Checksum,
  DecodedHeader,
  FileBody,
  ObjectBody,
  ObjectHeader,
  ReceivedHeader,
  ReceiveHandler,
  SendOptions,
  SentCallback,
  StreamOptions,
  StreamStats,
  TransportCompression,
} from "./types.ts";
export {
  TRANSPORT_ERROR_CODES,
  TransportError,
  type TransportErrorCode,
} from "./errors.ts";
