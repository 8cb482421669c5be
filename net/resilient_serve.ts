/**
 * `Deno.serve` that survives its accept loop failing.
 *
 * In Deno 2.9.6, when `accept` fails (`EMFILE`, "Too many open files", is the
 * one that happens), `Deno.serve` stops for good: its `finished` promise
 * rejects with `Deno.errors.Http` and the listening socket is closed, so new
 * connections are refused. Requests already running go on and finish.
 * {@linkcode resilientServe} watches for that, reports it, and listens again
 * on the same address after a back-off (100 ms, doubling up to 2 s), for as
 * long as it is not shut down. Each listener is a **generation**; a failed
 * generation is shut down once its last running request finished, which
 * closes the connections it still holds that never sent a request (Deno
 * 2.9.6 has no header read timeout, so nothing else would). Shutting it
 * down earlier would cut those requests: Deno drops every connection of a
 * server whose accept loop failed when it is shut down, upgraded ones
 * (WebSockets) too, so a failed generation that was asked for an upgrade
 * is kept until `shutdown()`.
 *
 * It returns a `Deno.HttpServer`, so it replaces `Deno.serve(options,
 * handler)` as is.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { resilientServe } from "./resilient_serve.ts";
 *
 * const server = resilientServe(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("ok"),
 * );
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assertEquals(await response.text(), "ok");
 * await server.shutdown();
 * ```
 *
 * @module
 */

/** First wait before listening again after the accept loop failed, in ms. */
export const RELISTEN_DELAY_MS = 100;
/** Longest wait between attempts to listen again (the delay doubles), in ms. */
export const MAX_RELISTEN_DELAY_MS = 2000;

/**
 * What happened to a {@linkcode resilientServe} listener.
 *
 * - `accept_failed`: the accept loop failed; requests already running go on,
 *   new connections are refused until `listening`.
 * - `listen_failed`: listening again failed (no descriptor yet, or the port
 *   was taken); it is tried again after `retryInMs`.
 * - `listening`: it listens again on `addr`.
 *
 * @example
 * ```ts
 * import type { ServeEvent } from "./resilient_serve.ts";
 * const onEvent = (event: ServeEvent) => {
 *   if (event.type !== "listening") console.warn(event.error.message);
 * };
 * ```
 */
export type ServeEvent =
  | {
    type: "accept_failed" | "listen_failed";
    addr: Deno.NetAddr;
    error: Error;
    retryInMs: number;
  }
  | { type: "listening"; addr: Deno.NetAddr };

/**
 * Options of {@linkcode resilientServe}: those of `Deno.serve` on TCP (with
 * `cert` and `key` for TLS), plus `onEvent`.
 *
 * @example
 * ```ts
 * import type { ResilientServeOptions } from "./resilient_serve.ts";
 * const options: ResilientServeOptions = {
 *   hostname: "127.0.0.1",
 *   port: 8080,
 *   onEvent: (event) => console.error(event.type),
 * };
 * ```
 */
export type ResilientServeOptions =
  & Deno.ServeTcpOptions
  & Partial<Deno.TlsCertifiedKeyPem>
  & {
    /** Told about accept failures and listening again (default: one line on stderr each). */
    onEvent?: (event: ServeEvent) => void;
  };

/**
 * The one-line description of `event` that {@linkcode resilientServe} logs
 * by default.
 *
 * @example
 * ```ts
 * import { describeServeEvent } from "./resilient_serve.ts";
 * const addr = { transport: "tcp", hostname: "127.0.0.1", port: 8080 } as const;
 * console.log(describeServeEvent({ type: "listening", addr })); // "spool: listening again on 127.0.0.1:8080"
 * ```
 */
export function describeServeEvent(event: ServeEvent): string {
  const at = `${event.addr.hostname}:${event.addr.port}`;
  switch (event.type) {
    case "accept_failed":
      return `spool: accepting connections on ${at} failed (${event.error.message}); requests already running go on; listening again in ${event.retryInMs} ms`;
    case "listen_failed":
      return `spool: listening again on ${at} failed (${event.error.message}); trying again in ${event.retryInMs} ms`;
    case "listening":
      return `spool: listening again on ${at}`;
  }
}

/** One `Deno.serve` listener and the requests it is running. */
interface Generation {
  server: Deno.HttpServer<Deno.NetAddr>;
  /**
   * Stops it at once. Its own signal, not the caller's: aborting a
   * `Deno.serve` whose graceful `shutdown()` began, or whose accept loop
   * failed, throws an uncaught `BadResource` from Deno's abort listener
   * (Deno 2.9.6, its resource is closed), which ends the process.
   */
  stop: AbortController;
  /** `shutdown()` was called on it: it must not be aborted any more. */
  graceful: boolean;
  startedAt: number;
  running: number;
  failed: boolean;
  /** It was asked for an upgrade: shutting it down would close the socket. */
  upgrades: boolean;
  /** Set once it is shut down after a failure. */
  retired?: Promise<void>;
}

/**
 * Serves like `Deno.serve(options, handler)`, and listens again when the
 * accept loop fails (see the module documentation). `onListen` is called
 * for the first listener only; `finished` resolves once `shutdown` (or
 * `signal`) ended every listener, and accept failures never reject it.
 *
 * @example
 * ```ts
 * import { resilientServe } from "./resilient_serve.ts";
 * await using server = resilientServe(
 *   { hostname: "127.0.0.1", port: 0, onListen() {}, onEvent: (e) => console.error(e.type) },
 *   () => new Response("ok"),
 * );
 * ```
 */
export function resilientServe(
  options: ResilientServeOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Deno.HttpServer<Deno.NetAddr> {
  return new ResilientServer(options, handler);
}

class ResilientServer implements Deno.HttpServer<Deno.NetAddr> {
  readonly addr: Deno.NetAddr;
  readonly #options: Deno.ServeTcpOptions & Partial<Deno.TlsCertifiedKeyPem>;
  readonly #handler: Deno.ServeHandler<Deno.NetAddr>;
  readonly #report: (event: ServeEvent) => void;
  readonly #generations = new Set<Generation>();
  readonly #finished = Promise.withResolvers<void>();
  #closing: Promise<void> | null = null;
  #delay = RELISTEN_DELAY_MS;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #referenced = true;

  constructor(
    options: ResilientServeOptions,
    handler: Deno.ServeHandler<Deno.NetAddr>,
  ) {
    const { onEvent, signal: _signal, ...serveOptions } = options;
    this.#options = serveOptions;
    this.#handler = handler;
    this.#report = onEvent ??
      ((event: ServeEvent) => console.error(describeServeEvent(event)));
    this.addr = this.#start(serveOptions.port, true).server.addr;
    options.signal?.addEventListener("abort", () => {
      // Stop every listener now, and stop listening again.
      this.#closing ??= this.#finished.promise;
      clearTimeout(this.#timer);
      for (const generation of this.#generations) {
        if (generation.failed) this.#retire(generation);
        else if (!generation.graceful) generation.stop.abort();
      }
      this.#settleIfDone();
    }, { once: true });
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  shutdown(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      // Failed listeners shut down once their requests finished (those that
      // upgraded connections, now).
      await Promise.all(
        [...this.#generations].map((g) => {
          if (g.failed) return this.#retire(g);
          g.graceful = true;
          return g.server.shutdown();
        }),
      );
      this.#settleIfDone();
      await this.#finished.promise;
    })();
    return this.#closing;
  }

  ref(): void {
    this.#referenced = true;
    for (const generation of this.#generations) generation.server.ref();
    if (this.#timer !== undefined) Deno.refTimer(this.#timer);
  }

  unref(): void {
    this.#referenced = false;
    for (const generation of this.#generations) generation.server.unref();
    if (this.#timer !== undefined) Deno.unrefTimer(this.#timer);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #start(port: number | undefined, first: boolean): Generation {
    const generation = {
      stop: new AbortController(),
      graceful: false,
      startedAt: performance.now(),
      running: 0,
      failed: false,
      upgrades: false,
    } as Generation;
    const done = () => {
      generation.running--;
      this.#retireIfIdle(generation);
    };
    generation.server = Deno.serve({
      ...this.#options,
      signal: generation.stop.signal,
      port,
      onListen: first ? this.#options.onListen : () => {},
    }, (request, info) => {
      generation.running++;
      // `completed` settles once an upgrade's 101 went out, long before
      // its socket closes.
      if (request.headers.has("upgrade")) generation.upgrades = true;
      info.completed.then(done, done);
      return this.#handler(request, info);
    });
    if (!this.#referenced) generation.server.unref();
    this.#generations.add(generation);
    generation.server.finished.then(() => {
      this.#generations.delete(generation);
      this.#settleIfDone();
    }, (error) => this.#failed(generation, error));
    return generation;
  }

  #failed(generation: Generation, error: unknown): void {
    generation.failed = true;
    this.#retireIfIdle(generation);
    if (this.#closing !== null) return;
    // A listener that served a while before failing starts the back-off over.
    if (performance.now() - generation.startedAt > MAX_RELISTEN_DELAY_MS) {
      this.#delay = RELISTEN_DELAY_MS;
    }
    this.#report({
      type: "accept_failed",
      addr: this.addr,
      error: error instanceof Error ? error : new Error(String(error)),
      retryInMs: this.#delay,
    });
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => this.#listenAgain(), this.#delay);
    if (!this.#referenced) Deno.unrefTimer(this.#timer);
    this.#delay = Math.min(this.#delay * 2, MAX_RELISTEN_DELAY_MS);
  }

  #listenAgain(): void {
    this.#timer = undefined;
    if (this.#closing !== null) return;
    try {
      this.#start(this.addr.port, false);
    } catch (error) {
      this.#report({
        type: "listen_failed",
        addr: this.addr,
        error: error as Error,
        retryInMs: this.#delay,
      });
      this.#schedule();
      return;
    }
    this.#report({ type: "listening", addr: this.addr });
  }

  /** Shuts a failed listener down once it runs no request. */
  #retireIfIdle(generation: Generation): void {
    if (
      generation.failed && generation.running === 0 && !generation.upgrades
    ) this.#retire(generation);
  }

  /** Shuts a failed listener down (it can no longer be aborted, see `stop`). */
  #retire(generation: Generation): Promise<void> {
    generation.graceful = true;
    generation.retired ??= generation.server.shutdown().catch((error) => {
      // Its accept loop already failed and was reported; closing what is
      // left of it can only fail the same way.
      console.debug("spool: shutting down a failed listener:", error);
    }).finally(() => {
      this.#generations.delete(generation);
      this.#settleIfDone();
    });
    return generation.retired;
  }

  #settleIfDone(): void {
    if (this.#closing !== null && this.#generations.size === 0) {
      this.#finished.resolve();
    }
  }
}
