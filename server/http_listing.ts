/**
 * The listing's live feed, `GET /view/events`: Server-Sent Events of every
 * resource's status, what `/view/` updates its rows from.
 *
 * The stream starts with the status of every resource (event `status`, data
 * the status JSON, as on `/resources/{id}/events`), then sends each change:
 * a new upload, a checkpoint, the end (`status`), an expiry (`removed`, data
 * `{"id": …}`). Changes are coalesced per resource and sent at most every
 * {@linkcode LISTING_BATCH_MS} ms, so a listing costs a few events a second
 * however many uploads checkpoint. It never ends by itself (a resource
 * appears at any time); server shutdown and the client leaving end it. Like
 * the listing, it is `403` on servers with read tokens.
 *
 * @module
 */

import {
  type ServerSentEventMessage,
  ServerSentEventStream,
} from "@std/http/server-sent-event-stream";
import type { ResourceStatus } from "../protocol/status.ts";
import { SpoolError } from "../protocol/errors.ts";
import { Notifier } from "../protocol/notifier.ts";
import { errorResponse } from "../protocol/http_error.ts";
import type { RegistryListener } from "./registry.ts";
import type { Resource } from "./resource.ts";

/** The path of the feed. */
export const LISTING_EVENTS_PATH = "/view/events";
/** Least time between two batches of changes, in ms. */
export const LISTING_BATCH_MS = 250;
/** Feeds one server serves at once; more are `429`. */
export const MAX_LISTING_STREAMS = 64;
/** A comment line is sent after this long without an event. */
const KEEP_ALIVE_MS = 15_000;

/** What the feed reads (parts of the router's). */
export interface ListingEventsContext {
  /** The resources, and news of created and expired ones. */
  registry: {
    all(): Iterable<Resource>;
    listen(listener: RegistryListener): () => void;
  };
  /** Whether the server has read tokens (then there is no listing). */
  auth: { readonly readTokens: boolean };
  /** Server shutdown: the feed ends. */
  shutdown: AbortSignal;
}

/** Feeds open per registry (one registry per server). */
const open = new WeakMap<object, number>();

/**
 * Answers `GET /view/events` (and its `HEAD`).
 *
 * @example
 * ```ts ignore
 * if (path === LISTING_EVENTS_PATH) return serveListingEvents(request, parts);
 * ```
 */
export function serveListingEvents(
  request: Request,
  context: ListingEventsContext,
): Response {
  if (context.auth.readTokens) {
    return errorResponse(
      new SpoolError(
        "forbidden",
        "the listing is off on this server (it has read tokens); expected /resources/{id}/events?token=… for one resource",
      ),
    );
  }
  const headers = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  };
  if (request.method === "HEAD") return new Response(null, { headers });
  const count = open.get(context.registry) ?? 0;
  if (count >= MAX_LISTING_STREAMS) {
    return errorResponse(
      new SpoolError(
        "limit-exceeded",
        `${count} listing feeds are open; expected at most ${MAX_LISTING_STREAMS} at once`,
      ),
      { status: 429 },
    );
  }
  open.set(context.registry, count + 1);
  const feed = new ListingFeed(context, () => {
    open.set(context.registry, (open.get(context.registry) ?? 1) - 1);
  });
  return new Response(feed.stream(), { headers });
}

/** One client's feed: what changed since its last batch, per resource. */
class ListingFeed {
  readonly #context: ListingEventsContext;
  readonly #onEnd: () => void;
  /** The latest status of each changed resource, or `null` once removed. */
  #pending = new Map<string, ResourceStatus | null>();
  readonly #unwatch = new Map<string, () => void>();
  #stopListening: (() => void) | undefined;
  readonly #changed = new Notifier();
  #lastBatch = 0;
  #stopped = false;

  constructor(context: ListingEventsContext, onEnd: () => void) {
    this.#context = context;
    this.#onEnd = onEnd;
  }

  /** The feed as an event stream. */
  stream(): ReadableStream<Uint8Array> {
    const events = new ReadableStream<ServerSentEventMessage>({
      start: () => this.#start(),
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#stop(),
    }, { highWaterMark: 0 });
    return events.pipeThrough(new ServerSentEventStream());
  }

  #start(): void {
    const { registry, shutdown } = this.#context;
    for (const resource of registry.all()) this.#watch(resource);
    this.#stopListening = registry.listen((resource, change) => {
      if (change === "created") return this.#watch(resource);
      const id = resource.status.id;
      this.#unwatch.get(id)?.();
      this.#unwatch.delete(id);
      this.#pending.set(id, null);
      this.#changed.notify();
    });
    shutdown.addEventListener("abort", this.#wake);
  }

  readonly #wake = (): void => this.#changed.notify();

  #watch(resource: Resource): void {
    const unwatch = resource.watch((status) => {
      this.#pending.set(status.id, status);
      this.#changed.notify();
    }, { statusOnly: true });
    this.#unwatch.set(resource.status.id, unwatch);
  }

  /** Sends the next batch, a keep-alive, or ends the stream at shutdown. */
  async #pull(
    controller: ReadableStreamDefaultController<ServerSentEventMessage>,
  ): Promise<void> {
    const idle = this.#pending.size === 0 &&
      !await this.#waitFor(() => this.#pending.size > 0, KEEP_ALIVE_MS);
    const early = this.#lastBatch + LISTING_BATCH_MS - Date.now();
    if (!idle && early > 0) await this.#waitFor(() => false, early);
    if (this.#stopped) return;
    if (this.#context.shutdown.aborted) {
      this.#stop();
      controller.close();
      return;
    }
    if (idle) return controller.enqueue({ comment: "keep-alive" });
    this.#lastBatch = Date.now();
    const batch = this.#pending;
    this.#pending = new Map();
    for (const [id, status] of batch) {
      controller.enqueue(
        status === null
          ? { event: "removed", data: JSON.stringify({ id }) }
          : { event: "status", data: JSON.stringify(status) },
      );
    }
  }

  /**
   * Waits until `ready()` holds (true), `ms` pass (false) or the server
   * shuts down (false).
   */
  async #waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      this.#changed.notify();
    }, ms);
    try {
      while (
        !ready() && !late && !this.#stopped && !this.#context.shutdown.aborted
      ) {
        await this.#changed.wait();
      }
      return ready();
    } finally {
      clearTimeout(timer);
    }
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const unwatch of this.#unwatch.values()) unwatch();
    this.#unwatch.clear();
    this.#stopListening?.();
    this.#context.shutdown.removeEventListener("abort", this.#wake);
    this.#changed.notify();
    this.#onEnd();
  }
}
