/**
 * The Spool server: `Deno.serve` hosting the upload and download WebSocket
 * endpoints and the plain-HTTP views over a resource registry and a store.
 * `startServer` wires the parts together: options ({@linkcode resolveOptions}),
 * the store and its secret, the routes (`router.ts`), the listener, and the
 * shutdown.
 *
 * @module
 */

import { FileStore } from "./file_store.ts";
import { SendBudget } from "./send_budget.ts";
import { ServerSockets } from "./_peer_socket.ts";
import { Watchers } from "./watchers.ts";
import { DATA_FRAME_HEADER_SIZE } from "../protocol/data_frame.ts";
import { ResourceRegistry } from "./registry.ts";
import type { ResourceStore } from "./store.ts";
import { UploadSessions } from "./upload_sessions.ts";
import type { DownloadSocketOptions } from "./download_socket.ts";
import type { ServerLimits } from "./limits.ts";
import { resilientServe } from "../net/resilient_serve.ts";
import { SpoolError } from "../protocol/errors.ts";
import { ServerAuth } from "./auth.ts";
import { loadSecret, SECRET_BYTES } from "./secret.ts";
import { type Retention, startRetention } from "./retention.ts";
import { CLOSE_SHUTDOWN } from "../protocol/close_codes.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { guardResponse } from "./_http_guard.ts";
import { InFlight, within } from "./_in_flight.ts";
import { Router } from "./router.ts";
import type { Resource } from "./resource.ts";
import type { Cluster } from "./nats/cluster.ts";
import type { Shared } from "./nats/shared.ts";
import {
  type ResolvedOptions,
  resolveOptions,
  type ServerOptions,
} from "./options.ts";
import {
  MAX_READ_WINDOW,
  MAX_SOCKET_SHARE,
  MIN_SOCKET_SHARE,
  SHUTDOWN_GRACE_MS,
} from "./defaults.ts";

export type { ServerOptions } from "./options.ts";

/**
 * A running server.
 *
 * @example
 * ```ts ignore
 * const server = await startServer({ port: 0, dataDir: await Deno.makeTempDir() });
 * console.log(server.url.href);
 * await server.close();
 * ```
 */
export interface SpoolServer {
  /** The base URL, e.g. `http://127.0.0.1:8787/`. */
  readonly url: URL;
  /**
   * The registry of resources: server internals, for tests and embedding
   * code that knows them (import `ResourceRegistry` from `./server`).
   *
   * @internal
   */
  readonly registry: ResourceRegistry;
  /** The limits in force (defaults filled in, fitted to `ulimit -n`). */
  readonly limits: ServerLimits;
  /** Why a limit in force differs from what was asked, if it does. */
  readonly limitNote?: string;
  /** Stops listening, fails live uploads, closes every socket. */
  close(): Promise<void>;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Closes the server. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Reason recorded for uploads cut off by a server shutdown.
 *
 * @example
 * ```ts
 * import { SHUTDOWN_REASON } from "./server.ts";
 * import type { ResourceStatus } from "../protocol/status.ts";
 * const cutOffByShutdown = (status: ResourceStatus) => status.error === SHUTDOWN_REASON;
 * ```
 */
export const SHUTDOWN_REASON =
  "the server shut down while the upload was in progress";

/**
 * Starts a Spool server.
 *
 * @example
 * ```ts
 * import { startServer } from "./server.ts";
 * await using server = await startServer({
 *   port: 0,
 *   dataDir: await Deno.makeTempDir(),
 * });
 * console.log(`upload at ${new URL("upload", server.url)}`);
 * ```
 */
export async function startServer(
  options: ServerOptions = {},
): Promise<SpoolServer> {
  const config = await resolveOptions(options);
  const shared = await openEngine(options, config);
  const store: ResourceStore = shared?.store ?? options.store ??
    new FileStore(config.dataDir, { durable: options.durable });
  await store.open?.();
  try {
    const registry = await ResourceRegistry.load(store, {
      checkpointMs: config.checkpointMs,
      shared: shared !== undefined,
    });
    const auth = new ServerAuth({
      uploadToken: options.uploadToken,
      readTokens: options.readTokens,
      secret: await tokenSecret(options, config, registry),
    });
    return await serve(options, config, { store, registry, auth, shared });
  } catch (error) {
    // Not started (a bad secret, a taken port): the data dir is free again.
    await store.close?.();
    throw error;
  }
}

/** The parts a server has once its store is open. */
interface Opened {
  store: ResourceStore;
  registry: ResourceRegistry;
  auth: ServerAuth;
  /** The engine, with `nats`. */
  shared?: Shared;
}

/** Listens and serves `opened`; resolves once listening. */
async function serve(
  options: ServerOptions,
  config: ResolvedOptions,
  { store, registry, auth, shared }: Opened,
): Promise<SpoolServer> {
  const { limits } = config;
  const sockets = new ServerSockets(limits);
  const watchers = new Watchers(limits);
  const cluster = shared
    ? await joinCluster(shared, registry, { options, config, watchers })
    : undefined;
  const sessions = new UploadSessions({
    graceMs: config.resumeGraceMs,
    writeToken: (id) => auth.writeToken(id),
    takeOver: cluster?.takeOver,
  });
  // Long HTTP responses (follow, events) end when the server shuts down.
  const shutdown = new AbortController();
  const router = new Router({
    registry,
    auth,
    sockets,
    sessions,
    downloads: downloadOptions(config, watchers),
    limits,
    uploadWindow: config.uploadWindow,
    publicUrl: config.publicUrl,
    retentionMs: config.retentionMs,
    shutdown: shutdown.signal,
  });
  const front = new FrontDoor(router);
  const { httpServer, url, stopServing } = await listen(
    config,
    options,
    front,
    shutdown.signal,
  ).catch(async (error) => {
    // Not listening (a taken port): the engine's feed must not outlive it.
    await cluster?.leave();
    throw error;
  });
  options.onListen?.(url);
  const retention = startRetention(registry, {
    retentionMs: config.retentionMs,
    onExpire(resource) {
      endWatchers(watchers, resource, "expired");
      options.onExpire?.(resource.status.id);
    },
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    closing ??= shutDown({
      front,
      retention,
      shutdown,
      sessions,
      registry,
      sockets,
      stopServing,
      httpServer,
      store,
      cluster,
    });
  options.signal?.addEventListener("abort", () => close(), { once: true });
  return {
    url,
    registry,
    limits,
    limitNote: config.limitNote,
    close,
    finished: httpServer.finished,
    [Symbol.asyncDispose]: close,
  };
}

/** Puts this node on the shared engine: its feed fills `registry`. */
function joinCluster(
  shared: Shared,
  registry: ResourceRegistry,
  { options, config, watchers }: {
    options: ServerOptions;
    config: ResolvedOptions;
    watchers: Watchers;
  },
): ReturnType<Shared["join"]> {
  return shared.join(registry, {
    graceMs: config.resumeGraceMs,
    checkpointMs: config.checkpointMs,
    // Write tokens of other nodes are valid here only with one secret.
    sharedSecret: options.secretFile !== undefined ||
      options.tokenSecret !== undefined,
    onDeleted: (resource) => endWatchers(watchers, resource, "was deleted"),
  });
}

/** What each download socket needs from the server. */
function downloadOptions(
  config: ResolvedOptions,
  watchers: Watchers,
): DownloadSocketOptions {
  const { frameSize, readWindow, limits } = config;
  return {
    frameSize,
    defaultWindow: readWindow,
    maxWindow: Math.max(readWindow, MAX_READ_WINDOW),
    maxRequests: limits.maxRequestsPerSocket,
    scratch: new ArrayBuffer(DATA_FRAME_HEADER_SIZE + frameSize),
    sendBudget: new SendBudget(config.sendBufferBudget, {
      min: Math.min(frameSize, MIN_SOCKET_SHARE),
      max: MAX_SOCKET_SHARE,
    }),
    watchers,
  };
}

/**
 * Where requests come in: refused once the server is stopping, counted
 * while in flight (shutdown waits for them), and answered by the router
 * through the guard (no header can crash the process, no HEAD has a body).
 */
class FrontDoor {
  readonly #router: Router;
  readonly inFlight = new InFlight();
  stopping = false;

  constructor(router: Router) {
    this.#router = router;
  }

  handle(
    request: Request,
    info: Deno.ServeHandlerInfo,
  ): Response | Promise<Response> {
    if (this.stopping) {
      return errorResponse(
        new SpoolError(
          "unavailable",
          "the server is shutting down; expected a retry against a running server",
        ),
      );
    }
    if (request.headers.get("upgrade") === null) {
      this.inFlight.track(info.completed);
    }
    return guardResponse(request, (r) => this.#router.route(r));
  }
}

/** Starts listening; resolves with the server and its URL once it listens. */
async function listen(
  config: ResolvedOptions,
  options: ServerOptions,
  front: FrontDoor,
  shutdown: AbortSignal,
): Promise<
  { httpServer: Deno.HttpServer; url: URL; stopServing: AbortController }
> {
  const listening = Promise.withResolvers<URL>();
  const scheme = options.cert === undefined ? "http" : "https";
  // Aborting it stops Deno.serve at once; its graceful shutdown() would wait
  // forever for a socket whose client reset during the handshake.
  const stopServing = new AbortController();
  // Survives accept errors (out of descriptors): listens again, keeps serving.
  const httpServer = resilientServe({
    hostname: config.hostname,
    port: config.port,
    signal: stopServing.signal,
    onError: (error) => {
      // A body cut off by shutdown (a follow, say) is the plan, not news.
      if (!shutdown.aborted) {
        console.error("spool: answering a request failed:", error);
      }
      return errorResponse(
        new SpoolError("internal", `the answer failed: ${String(error)}`),
      );
    },
    ...(options.cert === undefined
      ? {}
      : { cert: options.cert, key: options.key! }),
    onListen({ hostname, port }) {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      listening.resolve(new URL(`${scheme}://${host}:${port}/`));
    },
  }, (request, info) => front.handle(request, info));
  return { httpServer, url: await listening.promise, stopServing };
}

/** The parts a shutdown stops, in its order. */
interface Running {
  front: FrontDoor;
  retention: Retention;
  shutdown: AbortController;
  sessions: UploadSessions;
  registry: ResourceRegistry;
  sockets: ServerSockets;
  stopServing: AbortController;
  httpServer: Deno.HttpServer;
  store: ResourceStore;
  cluster?: Cluster;
}

/**
 * Stops a server within {@linkcode SHUTDOWN_GRACE_MS}: no new request, long
 * responses end, live uploads fail with {@linkcode SHUTDOWN_REASON},
 * sockets close, responses finish; then whatever is left is cut.
 */
async function shutDown(running: Running): Promise<void> {
  running.front.stopping = true;
  const deadline = performance.now() + SHUTDOWN_GRACE_MS;
  await running.retention.stop();
  running.shutdown.abort();
  running.sessions.close();
  await within(deadline, running.registry.close(SHUTDOWN_REASON));
  await running.sockets.closeAll(CLOSE_SHUTDOWN, "server shutdown", deadline);
  await within(deadline, running.front.inFlight.idle());
  running.stopServing.abort();
  await running.httpServer.finished;
  await running.registry.flushSaves();
  await running.cluster?.leave();
  await running.store.close?.();
}

/** Watchers of `resource` learn why they end: it `what` ("expired"). */
function endWatchers(
  watchers: Watchers,
  resource: Resource,
  what: string,
): void {
  const gone = new SpoolError("gone", `resource ${resource.status.id} ${what}`);
  for (const watcher of watchers.of(resource)) watcher.expire(gone);
}

/** The engine with `nats` (its NATS clients loaded only then). */
async function openEngine(
  options: ServerOptions,
  config: ResolvedOptions,
): Promise<Shared | undefined> {
  if (config.nats === undefined) return undefined;
  if (options.store !== undefined) {
    throw new SpoolError(
      "invalid-argument",
      "store and nats exclude each other; expected one place for resources",
    );
  }
  if (options.readTokens && !options.secretFile && !options.tokenSecret) {
    throw new SpoolError(
      "invalid-argument",
      "readTokens with nats need one secret on every node; expected secretFile (--secret-file) naming a key file the nodes share",
    );
  }
  const { openShared } = await import("./nats/shared.ts");
  return await openShared({ servers: config.nats, leaseMs: config.leaseMs });
}

/**
 * The secret of read tokens: given, loaded from its key file (made only
 * for an empty data dir), or random per process when nothing is kept.
 */
async function tokenSecret(
  options: ServerOptions,
  config: ResolvedOptions,
  registry: ResourceRegistry,
): Promise<Uint8Array> {
  if (options.tokenSecret) return options.tokenSecret;
  const kept = options.secretFile !== undefined ||
    (options.readTokens && options.store === undefined);
  if (!kept) return crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  const { secret, notes } = await loadSecret({
    dataDir: config.dataDir,
    secretFile: options.secretFile,
    resources: [...registry.all()].length,
  });
  for (const note of notes) console.error(note);
  return secret;
}
