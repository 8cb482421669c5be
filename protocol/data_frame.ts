/**
 * Binary frames on a download socket: a 4-byte big-endian request id, then
 * payload bytes of that read request. Tagging lets several ranges be in flight
 * on one socket.
 *
 * @module
 */

import { SpoolError } from "./errors.ts";

/**
 * Bytes before the payload in a data frame.
 *
 * @example
 * ```ts
 * import { DATA_FRAME_HEADER_SIZE } from "./data_frame.ts";
 * const frame = new Uint8Array(DATA_FRAME_HEADER_SIZE + 1024); // request id + 1 KiB payload
 * console.log(frame.byteLength - DATA_FRAME_HEADER_SIZE); // 1024
 * ```
 */
export const DATA_FRAME_HEADER_SIZE = 4;

/**
 * Writes `requestId` into the first four bytes of `frame`, whose payload the
 * caller has already placed at offset {@linkcode DATA_FRAME_HEADER_SIZE}: the
 * payload is never copied.
 *
 * @example
 * ```ts
 * import { DATA_FRAME_HEADER_SIZE, stampDataFrame } from "./data_frame.ts";
 * const frame = new Uint8Array(DATA_FRAME_HEADER_SIZE + 3);
 * frame.set([1, 2, 3], DATA_FRAME_HEADER_SIZE);
 * stampDataFrame(frame, 7);
 * ```
 */
export function stampDataFrame(
  frame: Uint8Array,
  requestId: number,
): Uint8Array {
  new DataView(frame.buffer, frame.byteOffset, DATA_FRAME_HEADER_SIZE)
    .setUint32(0, requestId);
  return frame;
}

/**
 * A decoded data frame.
 *
 * @example
 * ```ts
 * import { type DataFrame, decodeDataFrame } from "./data_frame.ts";
 * const frame: DataFrame = decodeDataFrame(new Uint8Array([0, 0, 0, 1, 42]));
 * console.log(frame.requestId, frame.payload.length); // 1 1
 * ```
 */
export interface DataFrame {
  /** The read request the payload belongs to. */
  requestId: number;
  /** The payload: a view on the frame, not a copy. */
  payload: Uint8Array;
}

/**
 * Splits a binary frame into its request id and payload.
 *
 * @example
 * ```ts
 * import { decodeDataFrame } from "./data_frame.ts";
 * const { requestId, payload } = decodeDataFrame(new Uint8Array([0, 0, 0, 7, 1]));
 * console.log(requestId, payload); // 7 Uint8Array [ 1 ]
 * ```
 */
export function decodeDataFrame(frame: Uint8Array): DataFrame {
  if (frame.byteLength < DATA_FRAME_HEADER_SIZE) {
    throw new SpoolError(
      "malformed-message",
      `data frame of ${frame.byteLength} bytes; expected at least ${DATA_FRAME_HEADER_SIZE} (the request id)`,
    );
  }
  return {
    requestId: new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0),
    payload: frame.subarray(DATA_FRAME_HEADER_SIZE),
  };
}
