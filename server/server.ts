/**
 * The Spool server: `Deno.serve` hosting the upload and download WebSocket
 * endpoints over a resource registry and a store.
 *
 * @module
 */

import { FileStore } from "./file_store.ts";
import { SendBudget, sendError } from "./_socket.ts";
import { ServerSockets } from "./_peer_socket.ts";
import { Watchers } from "./watchers.ts";
import { DATA_FRAME_HEADER_SIZE } from "../protocol/data_frame.ts";
import { ResourceRegistry } from "./registry.ts";
import type { ResourceStore } from "./store.ts";
import { serveUploadSocket } from "./upload_socket.ts";
import { UploadSessions } from "./upload_sessions.ts";
import {
  CLOSE_NOT_FOUND,
  rejectDownloadSocket,
  serveDownloadSocket,
} from "./download_socket.ts";
import { resolveLimits, type ServerLimits } from "./limits.ts";
import { fitWatchersToOpenFiles, openFileLimit } from "./_open_files.ts";
import { resilientServe } from "../net/resilient_serve.ts";
import { SpoolError } from "../protocol/errors.ts";
import { CLOSE_FORBIDDEN, ServerAuth } from "./auth.ts";
import { loadSecret, SECRET_BYTES } from "./secret.ts";
import { CLOSE_GONE, startRetention } from "./retention.ts";
import { serveResourceHttp } from "./http_resource.ts";
import { serveViewer } from "./viewer.ts";
import { errorResponse } from "./_http_error.ts";
import { guardResponse } from "./_http_guard.ts";

/**
 * Options of {@linkcode startServer}; every one has a default.
 *
 * @example
 * ```ts
 * import { type ServerOptions, startServer } from "./server.ts";
 * const options: ServerOptions = { port: 0, dataDir: "./spool-data", retentionMs: 86_400_000 };
 * const start = () => startServer(options);
 * ```
 */
export interface ServerOptions {
  /** Interface to bind. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; `0` picks a free one. Default `8787`. */
  port?: number;
  /** Directory of the embedded file store. Default `./spool-data`. */
  dataDir?: string;
  /** A store to use instead of the file store at `dataDir`. */
  store?: ResourceStore;
  /** `fdatasync` the file store at every checkpoint. Default `false`. */
  durable?: boolean;
  /** Checkpoint interval of live uploads in ms; `0` = after every write. Default `250`. */
  checkpointMs?: number;
  /** Base URL put in references, e.g. `https://spool.example.com/`. Default: the URL the uploader connected to. */
  publicUrl?: string | URL;
  /** Bytes an uploader may have unacknowledged. Default 8 MiB. */
  uploadWindow?: number;
  /**
   * Largest payload of a download data frame. Default 256 KiB: a lone
   * download sends a quarter of the frames it would at 64 KiB (1.24× the
   * plain-WebSocket baseline instead of 0.7–0.8×). With many sockets,
   * frames shrink to each one's share of the send budget, down to 24 KiB.
   */
  frameSize?: number;
  /** Credit of a read request that names none. Default 4 MiB. */
  readWindow?: number;
  /**
   * Bytes all download sockets together may hold in send buffers, shared
   * among the open ones (each gets between 24 KiB and 4 MiB, and data
   * frames shrink to a socket's share, down to 24 KiB). Default 24 MiB.
   */
  sendBufferBudget?: number;
  /** Called once the server listens, with its URL. */
  onListen?: (url: URL) => void;
  /**
   * How long an upload whose connection was lost waits to be resumed before
   * it fails, in ms; 0 fails it at once. Default 10 000.
   */
  resumeGraceMs?: number;
  /** Limits; each unset one has its default ({@linkcode DEFAULT_LIMITS}). */
  limits?: Partial<ServerLimits>;
  /** Aborting it closes the server like {@linkcode SpoolServer.close}. */
  signal?: AbortSignal;
  /**
   * Token required to create uploads (`Authorization: Bearer` or `?token=`).
   * Default: none, anyone who reaches the server may upload.
   */
  uploadToken?: string;
  /**
   * Give every resource a read token, put in its reference URL as
   * `?token=`; reads without it are refused. Default `false`.
   */
  readTokens?: boolean;
  /**
   * Secret read tokens are derived from. Default: the key in `secretFile`,
   * or a random one per process with a custom `store` and no `secretFile`.
   */
  tokenSecret?: Uint8Array;
  /**
   * Key file of the secret: 32 random bytes, raw or as 64 hex digits;
   * several servers share one. It must exist. Default: `secret.key` in
   * `dataDir`, made only when the data dir holds no resource (a missing,
   * dangling or malformed key refuses to start: a new secret would break
   * every reference handed out).
   */
  secretFile?: string;
  /** PEM certificate chain: serve `https`/`wss` (needs `key`). */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /**
   * Delete finished resources this long after they finished, in ms; later
   * requests get `gone`. Default `0`: keep them forever.
   */
  retentionMs?: number;
  /** Called after a resource expired and was deleted. */
  onExpire?: (id: string) => void;
}

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
  /** The registry of resources (for embedding applications and tests). */
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

const UPLOAD_PATH = "/upload";
const DEFAULT_DATA_DIR = "./spool-data";
/**
 * How long shutdown waits for uploads to record their end, sockets to
 * close and HTTP responses to finish; whatever is left is then cut. Peers
 * that never answer (a reset handshake, a black-holed link) cannot hold it up.
 */
const SHUTDOWN_GRACE_MS = 3000;
const RESOURCE_PATH = /^\/resources\/([^/]+)(\/[^/]+)?$/;
/** The methods of every HTTP route. */
const ALLOWED_METHODS = "GET, HEAD";

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
  const checkpointMs = options.checkpointMs ?? 250;
  if (!Number.isInteger(checkpointMs) || checkpointMs < 0) {
    throw new RangeError(
      `checkpointMs is ${checkpointMs}; expected an integer >= 0`,
    );
  }
  const store = options.store ??
    new FileStore(options.dataDir ?? DEFAULT_DATA_DIR, {
      durable: options.durable,
    });
  const fitted = fitWatchersToOpenFiles(
    resolveLimits(options.limits),
    options.limits ?? {},
    await openFileLimit(),
  );
  const limits = fitted.limits;
  const resumeGraceMs = options.resumeGraceMs ?? 10_000;
  if (!Number.isInteger(resumeGraceMs) || resumeGraceMs < 0) {
    throw new RangeError(
      `resumeGraceMs is ${resumeGraceMs}; expected an integer >= 0`,
    );
  }
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError(
      "cert and key go together; expected both PEM strings or neither",
    );
  }
  const retentionMs = options.retentionMs ?? 0;
  if (!Number.isInteger(retentionMs) || retentionMs < 0) {
    throw new RangeError(
      `retentionMs is ${retentionMs}; expected an integer >= 0 (0 keeps resources)`,
    );
  }
  const sessions = new UploadSessions({ graceMs: resumeGraceMs });
  // Long HTTP responses (follow, events) end when the server shuts down.
  const shutdown = new AbortController();
  await store.open?.();
  let registry: ResourceRegistry;
  try {
    registry = await ResourceRegistry.load(store, { checkpointMs });
  } catch (error) {
    await store.close?.();
    throw error;
  }
  let auth: ServerAuth;
  try {
    auth = new ServerAuth({
      uploadToken: options.uploadToken,
      readTokens: options.readTokens,
      secret: await tokenSecret(options, registry),
    });
  } catch (error) {
    await store.close?.();
    throw error;
  }
  const sockets = new ServerSockets(limits);
  const watchers = new Watchers(limits);
  const uploadWindow = options.uploadWindow ?? 8 * 1024 * 1024;
  const frameSize = options.frameSize ?? 256 * 1024;
  const readWindow = options.readWindow ?? 4 * 1024 * 1024;
  const downloadOptions = {
    frameSize,
    defaultWindow: readWindow,
    maxWindow: Math.max(readWindow, 64 * 1024 * 1024),
    maxRequests: limits.maxRequestsPerSocket,
    scratch: new ArrayBuffer(DATA_FRAME_HEADER_SIZE + frameSize),
    sendBudget: new SendBudget(options.sendBufferBudget ?? 24 * 1024 * 1024, {
      min: Math.min(frameSize, 24 * 1024),
      max: 4 * 1024 * 1024,
    }),
    watchers,
  };
  const publicUrl = options.publicUrl === undefined
    ? undefined
    : baseUrl(options.publicUrl);

  const referenceFor = (request: Request) => (id: string): string => {
    // Resolve against a base that ends in "/", so a path prefix is kept.
    const reference = new URL(
      `resources/${id}`,
      publicUrl ?? new URL(".", request.url),
    );
    if (reference.protocol === "https:") reference.protocol = "wss:";
    else if (reference.protocol === "http:") reference.protocol = "ws:";
    const token = auth.readToken(id);
    if (token !== undefined) reference.searchParams.set("token", token);
    return reference.href;
  };

  const serveResource = (
    request: Request,
    rawId: string,
    subpath: string,
    wantsSocket: boolean,
  ): Response | Promise<Response> => {
    const id = decodeId(rawId);
    const resource = registry.get(id);
    const forbidden = resource === undefined
      ? undefined
      : auth.readRefusal(request, id);
    const refusal = resource === undefined
      ? missingResource(id)
      : forbidden && { error: forbidden, code: CLOSE_FORBIDDEN };
    if (!wantsSocket) {
      if (refusal) return errorResponse(refusal.error);
      return serveResourceHttp(request, {
        resource: resource!,
        subpath,
        token: auth.readToken(id),
        signal: shutdown.signal,
      });
    }
    if (subpath !== "") {
      return errorResponse(
        new SpoolError(
          "not-found",
          `WebSockets are served at /resources/{id}, not at /resources/{id}${
            subpath.slice(0, 100)
          }`,
        ),
      );
    }
    return sockets.upgrade(
      request,
      `a download socket of ${JSON.stringify(id.slice(0, 64))}`,
      (peer) =>
        refusal
          ? rejectDownloadSocket(peer, refusal.error, refusal.code)
          : serveDownloadSocket(peer, resource!, downloadOptions),
    );
  };

  const serveView = (request: Request, rawId: string): Response => {
    const listing = !auth.readTokens;
    if (rawId === "") {
      return serveViewer(request, { resources: () => registry.all(), listing });
    }
    const id = decodeId(rawId);
    const resource = registry.get(id);
    const refusal = resource === undefined
      ? missingResource(id).error
      : auth.readRefusal(request, id);
    return serveViewer(request, {
      resources: () => registry.all(),
      resource,
      token: auth.readToken(id),
      listing,
      refusal,
    });
  };

  const missingResource = (
    id: string,
  ): { error: SpoolError; code: number } => {
    const shown = JSON.stringify(id.slice(0, 64));
    if (registry.expired(id)) {
      return {
        error: new SpoolError(
          "gone",
          `resource ${shown} expired and was deleted (the server keeps finished resources for ${retentionMs} ms)`,
        ),
        code: CLOSE_GONE,
      };
    }
    return {
      error: new SpoolError(
        "not-found",
        `no resource with id ${shown}; expected the id of a reference this server returned`,
      ),
      code: CLOSE_NOT_FOUND,
    };
  };

  const route = (request: Request): Response | Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname;
    const match = path.match(RESOURCE_PATH);
    const view = path === "/view" || path.startsWith("/view/");
    if (path !== "/" && path !== UPLOAD_PATH && !view && !match) {
      return errorResponse(
        new SpoolError(
          "not-found",
          `no route for ${
            path.slice(0, 200)
          }; expected /, /upload, /view/, /view/{id} or /resources/{id}[/status|/events|/lines]`,
        ),
      );
    }
    // Every route only reads (an upload is a WebSocket, opened by a GET).
    if (request.method !== "GET" && request.method !== "HEAD") {
      return errorResponse(
        new SpoolError(
          "invalid-field",
          `method ${request.method.slice(0, 20)} is not allowed on ${
            path.slice(0, 200)
          }; expected ${ALLOWED_METHODS}`,
        ),
        { status: 405, headers: { allow: ALLOWED_METHODS } },
      );
    }
    const wantsSocket = request.method === "GET" &&
      request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (path === UPLOAD_PATH) {
      if (!wantsSocket) return upgradeRequired(UPLOAD_PATH);
      // Headers are unreadable once the request is upgraded: check first.
      const refusal = auth.uploadRefusal(request);
      return sockets.upgrade(
        request,
        "an upload socket",
        (peer) =>
          refusal
            ? rejectDownloadSocket(peer, refusal, CLOSE_FORBIDDEN)
            : serveUploadSocket(peer, {
              registry,
              reference: referenceFor(request),
              window: uploadWindow,
              limits,
              sessions,
            }),
      );
    }
    if (view) return serveView(request, path.slice("/view/".length));
    if (match) {
      return serveResource(request, match[1], match[2] ?? "", wantsSocket);
    }
    return Response.json({
      name: "spool",
      upload: UPLOAD_PATH,
      resources: "/resources/{id}",
    });
  };

  // Plain HTTP responses in flight: shutdown lets them finish, within its grace.
  const inFlight = new InFlight();
  let stopping = false;
  const handler = (
    request: Request,
    info: Deno.ServeHandlerInfo,
  ): Response | Promise<Response> => {
    if (stopping) {
      return errorResponse(
        new SpoolError(
          "unavailable",
          "the server is shutting down; expected a retry against a running server",
        ),
      );
    }
    if (request.headers.get("upgrade") === null) inFlight.track(info.completed);
    return guardResponse(request, route);
  };

  let resolveListening: (url: URL) => void;
  const listening = new Promise<URL>((resolve) => resolveListening = resolve);
  const scheme = options.cert === undefined ? "http" : "https";
  // Aborting it stops Deno.serve at once; its graceful shutdown() would wait
  // forever for a socket whose client reset during the handshake.
  const stopServing = new AbortController();
  // Survives accept errors (out of descriptors): listens again, keeps serving.
  let httpServer: Deno.HttpServer;
  try {
    httpServer = resilientServe({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 8787,
      signal: stopServing.signal,
      onError: (error) => {
        // A body cut off by shutdown (a follow, say) is the plan, not news.
        if (!shutdown.signal.aborted) {
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
        resolveListening(new URL(`${scheme}://${host}:${port}/`));
      },
    }, handler);
  } catch (error) {
    // Not listening (the port is taken, say): the data dir is free again.
    await store.close?.();
    throw error;
  }
  const url = await listening;
  options.onListen?.(url);
  const retention = startRetention(registry, {
    retentionMs,
    onExpire(resource) {
      // Watchers of an expired resource learn why their socket ends.
      for (const peer of watchers.of(resource)) {
        sendError(
          peer.socket,
          new SpoolError("gone", `resource ${resource.status.id} expired`),
        );
        peer.end(CLOSE_GONE, "gone");
      }
      options.onExpire?.(resource.status.id);
    },
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stopping = true;
      const deadline = performance.now() + SHUTDOWN_GRACE_MS;
      await retention.stop();
      shutdown.abort();
      sessions.close();
      await within(deadline, registry.close(SHUTDOWN_REASON));
      await sockets.closeAll(1001, "server shutdown", deadline);
      await within(deadline, inFlight.idle());
      stopServing.abort();
      await httpServer.finished;
      await registry.flushSaves();
      await store.close?.();
    })();
    return closing;
  };
  options.signal?.addEventListener("abort", () => close(), { once: true });

  return {
    url,
    registry,
    limits,
    limitNote: fitted.note,
    close,
    finished: httpServer.finished,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The secret of read tokens: given, loaded from its key file (made only
 * for an empty data dir), or random per process when nothing is kept.
 */
async function tokenSecret(
  options: ServerOptions,
  registry: ResourceRegistry,
): Promise<Uint8Array> {
  if (options.tokenSecret) return options.tokenSecret;
  const kept = options.secretFile !== undefined ||
    (options.readTokens && options.store === undefined);
  if (!kept) return crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  const { secret, notes } = await loadSecret({
    dataDir: options.dataDir ?? DEFAULT_DATA_DIR,
    secretFile: options.secretFile,
    resources: [...registry.all()].length,
  });
  for (const note of notes) console.error(note);
  return secret;
}

/** A resource id from its URL path segment. */
function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (error) {
    // Malformed escapes name no resource: the lookup reports it as not found.
    if (error instanceof URIError) return raw;
    throw error;
  }
}

/** HTTP responses being sent, so that shutdown can wait for them. */
class InFlight {
  #count = 0;
  #idle: (() => void)[] = [];

  /** Counts a response until `completed` settles (sent, or failed to send). */
  track(completed: Promise<void>): void {
    this.#count++;
    const done = () => {
      this.#count--;
      if (this.#count === 0) {
        for (const wake of this.#idle.splice(0)) {
          wake();
        }
      }
    };
    completed.then(done, done);
  }

  /** Resolves once no response is in flight. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** Waits for `work` until `deadline` (a `performance.now()` time) at most. */
async function within(deadline: number, work: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) =>
    timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))
  );
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function baseUrl(url: string | URL): URL {
  const base = new URL(url);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return base;
}

function upgradeRequired(path: string): Response {
  return errorResponse(
    new SpoolError(
      "invalid-field",
      `${path} is a WebSocket endpoint; expected an 'Upgrade: websocket' request`,
    ),
    { status: 426, headers: { upgrade: "websocket" } },
  );
}
