/**
 * A plain HTTP body of checkpointed bytes: `GET /resources/{id}` with or
 * without `Range`, and finished line ranges.
 *
 * @module
 */

import { logReleaseFailure } from "./_release.ts";
import type { Resource } from "./resource.ts";

/**
 * A response body of the checkpointed bytes `[start, end)`. The store read
 * begins at the first pull, not before: a body the client never takes (it
 * went away first) opens nothing, and a cancel waits for a read in flight
 * before it closes the store reader.
 *
 * @example
 * ```ts ignore
 * return new Response(rangeBody(resource, 0, resource.status.size));
 * ```
 */
export function rangeBody(
  resource: Resource,
  start: number,
  end: number,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let pulling: Promise<unknown> | undefined;
  let stopped = false;
  let onAbort: (() => void) | undefined;
  const release = () => {
    if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      // Server shutdown: a client that stopped reading must not hold it up,
      // so the body fails now rather than at a pull that may never come.
      onAbort = () => {
        stopped = true;
        controller.error(new Error("the server is shutting down"));
        reader?.cancel(signal?.reason).catch(logReleaseFailure);
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      reader ??= resource.read(start, end).getReader();
      pulling = reader.read();
      const { value, done } = await pulling as ReadableStreamReadResult<
        Uint8Array
      >;
      pulling = undefined;
      if (stopped) return;
      if (done) {
        release();
        controller.close();
      } else controller.enqueue(value);
    },
    async cancel(reason) {
      stopped = true;
      release();
      // A read in flight fails with the cancel: its error is the cancel's.
      await pulling?.catch(logReleaseFailure);
      await reader?.cancel(reason).catch(logReleaseFailure);
    },
  }, { highWaterMark: 0 });
}
