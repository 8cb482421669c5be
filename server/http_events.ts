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
  const source = new StatusSource(resource, options);
  const events = new ReadableStream<ServerSentEventMessage>({
    start: (controller) => source.start(controller),
    pull: () => source.pull(),
    cancel: () => source.release(),
  }, { highWaterMark: 0 });
  return events.pipeThrough(new ServerSentEventStream());
}

/** Keep-alive interval when {@linkcode StatusEventsOptions.keepAliveMs} is not given. */
const DEFAULT_KEEP_ALIVE_MS = 15_000;
/** Queue bound when {@linkcode StatusEventsOptions.maxQueued} is not given. */
const DEFAULT_MAX_QUEUED = 64;

/** The underlying source of one status event stream. */
class StatusSource {
  readonly #resource: Resource;
  readonly #signal: AbortSignal;
  readonly #onEnd: (() => void) | undefined;
  readonly #keepAliveMs: number;
  readonly #maxQueued: number;
  readonly #queue: ResourceStatus[] = [];
  readonly #changed = new Notifier();
  #stopped = false;
  #pulling = false;
  #unwatch: (() => void) | undefined;
  #controller!: ReadableStreamDefaultController<ServerSentEventMessage>;
  readonly #onAbort = (): void => {
    if (this.#pulling || this.#stopped) return this.#changed.notify();
    // Nobody is waiting on a pull: end the stream now.
    this.#end();
  };

  constructor(resource: Resource, options: StatusEventsOptions) {
    this.#resource = resource;
    this.#signal = options.signal;
    this.#onEnd = options.onEnd;
    this.#keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
  }

  /** Starts watching the resource. */
  start(
    controller: ReadableStreamDefaultController<ServerSentEventMessage>,
  ): void {
    this.#controller = controller;
    this.#unwatch = this.#resource.watch((status) => {
      this.#queue.push(status);
      if (this.#queue.length > this.#maxQueued) this.#queue.shift();
      this.#changed.notify();
    });
    this.#signal.addEventListener("abort", this.#onAbort);
  }

  /** The stream wants one more event. */
  async pull(): Promise<void> {
    this.#pulling = true;
    try {
      await this.#next();
    } finally {
      this.#pulling = false;
    }
  }

  /** Stops watching; the stream ended, however it ended. */
  release(): void {
    this.#stopped = true;
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#changed.notify();
    this.#onEnd?.();
  }

  #end(): void {
    this.release();
    this.#controller.close();
  }

  /** Queues the next event: a status, a keep-alive comment, or the end. */
  async #next(): Promise<void> {
    const queue = this.#queue;
    if (queue.length === 0 && !this.#stopped && !this.#signal.aborted) {
      const idle = await this.#waitForChange();
      if (this.#stopped) return;
      if (idle && queue.length === 0) {
        this.#controller.enqueue({ comment: "keep-alive" });
        return;
      }
    }
    if (this.#stopped) return;
    const status = queue.shift();
    if (status === undefined) {
      // Shut down with nothing left to say.
      this.#end();
      return;
    }
    this.#controller.enqueue({ event: "status", data: JSON.stringify(status) });
    if (isTerminal(status)) this.#end();
  }

  /** Waits for a change or the keep-alive interval; whether it was idle. */
  async #waitForChange(): Promise<boolean> {
    // The keep-alive timer wakes this same wait, so no waiter is left over.
    let idle = false;
    const timer = setTimeout(() => {
      idle = true;
      this.#changed.notify();
    }, this.#keepAliveMs);
    await this.#changed.wait();
    clearTimeout(timer);
    return idle;
  }
}
