/**
 * The Server-Sent Events stream of a resource's statuses
 * (`/resources/{id}/events`), what the viewer watches.
 *
 * It is a pull-based `ReadableStream` that queues at most a few statuses
 * for a slow client; it watches the resource while open and stops when it
 * ends, when the client goes away and when the server shuts down.
 *
 * @module
 */

import {
  type ServerSentEventMessage,
  ServerSentEventStream,
} from "@std/http/server-sent-event-stream";
import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import type { Resource } from "./resource.ts";
import { Notifier } from "../protocol/notifier.ts";

/** Options of {@linkcode statusEvents}. */
export interface StatusEventsOptions {
  /** Server shutdown, or the resource expired: the stream ends. */
  signal: AbortSignal;
  /** Called once the stream ended, however it ended. */
  onEnd?: () => void;
  /** A comment line is sent after this long without an event. Default 15 000 ms. */
  keepAliveMs?: number;
  /** Statuses queued for a slow client at most; older ones are dropped. Default 64. */
  maxQueued?: number;
}

/**
 * The statuses of `resource` as Server-Sent Events: the latest first, then
 * every update (event `status`, data the status JSON); ends after the final
 * status. A client too slow to take them loses the oldest queued statuses
 * beyond `maxQueued`, never the latest.
 *
 * @example
 * ```ts ignore
 * return new Response(statusEvents(resource, { signal }), {
 *   headers: { "content-type": "text/event-stream" },
 * });
 * ```
 */
export function statusEvents(
  resource: Resource,
  options: StatusEventsOptions,
): ReadableStream<Uint8Array> {
  const { signal } = options;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const maxQueued = options.maxQueued ?? 64;
  const queue: ResourceStatus[] = [];
  let stopped = false;
  let unwatch: (() => void) | undefined;
  const changed = new Notifier();
  const notify = () => changed.notify();
  let pulling = false;
  let controller: ReadableStreamDefaultController<ServerSentEventMessage>;
  const onAbort = () => {
    if (pulling || stopped) return notify();
    // Nobody is waiting on a pull: end the stream now.
    release();
    controller.close();
  };
  const release = () => {
    stopped = true;
    unwatch?.();
    unwatch = undefined;
    signal.removeEventListener("abort", onAbort);
    notify();
    options.onEnd?.();
  };
  /** Queues the next event: a status, a keep-alive comment, or the end. */
  const next = async (): Promise<void> => {
    if (queue.length === 0 && !stopped && !signal.aborted) {
      // The keep-alive timer wakes this same wait, so no waiter is left over.
      let idle = false;
      const timer = setTimeout(() => {
        idle = true;
        notify();
      }, keepAliveMs);
      await changed.wait();
      clearTimeout(timer);
      if (stopped) return;
      if (idle && queue.length === 0) {
        controller.enqueue({ comment: "keep-alive" });
        return;
      }
    }
    if (stopped) return;
    const status = queue.shift();
    if (status === undefined) {
      // Shut down with nothing left to say.
      release();
      controller.close();
      return;
    }
    controller.enqueue({ event: "status", data: JSON.stringify(status) });
    if (isTerminal(status)) {
      release();
      controller.close();
    }
  };
  const events = new ReadableStream<ServerSentEventMessage>({
    start(streamController) {
      controller = streamController;
      unwatch = resource.watch((status) => {
        queue.push(status);
        if (queue.length > maxQueued) queue.shift();
        notify();
      });
      signal.addEventListener("abort", onAbort);
    },
    async pull() {
      pulling = true;
      try {
        await next();
      } finally {
        pulling = false;
      }
    },
    cancel() {
      release();
    },
  }, { highWaterMark: 0 });
  return events.pipeThrough(new ServerSentEventStream());
}
