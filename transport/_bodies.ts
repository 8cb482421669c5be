/**
 * What the stream's queues ask of an object body: is it a file, does it span
 * its whole buffer, and how to release a stream body that will not be sent.
 *
 * @module
 */

import type { ObjectBody } from "./types.ts";

/** Whether `bytes` spans its whole, plain `ArrayBuffer` (so it can move). */
export function spansBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.buffer instanceof ArrayBuffer &&
    bytes.byteLength === bytes.buffer.byteLength && !bytes.buffer.resizable;
}

/** Whether `body` is a `{ path }` file body. */
export function isFileBody(body: ObjectBody): body is { path: string } {
  return typeof body === "object" && body !== null &&
    !(body instanceof Uint8Array) && !(body instanceof ReadableStream) &&
    typeof (body as { path?: unknown }).path === "string";
}

/** Cancels a stream body that will never be sent (others need nothing). */
export function cancelBody(body: ObjectBody, reason: unknown): void {
  if (body instanceof ReadableStream && !body.locked) {
    body.cancel(reason).catch((cause) => {
      // The caller's cancel hook threw; the object has failed regardless.
      console.error("spool transport: cancelling a body failed:", cause);
    });
  }
}
