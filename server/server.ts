/**
 * The Spool server: `Deno.serve` hosting the upload and download WebSocket
 * endpoints over a resource registry and a store.
 *
 * @module
 */

import { FileStore } from "./file_store.ts";
import { SendBudget } from "./_socket.ts";
import { DATA_FRAME_HEADER_SIZE } from "../protocol/data_frame.ts";
import { ResourceRegistry } from "./registry.ts";
import type { ResourceStore } from "./store.ts";
import { serveUploadSocket } from "./upload_socket.ts";
import { UploadSessions } from "./upload_sessions.ts";
import {
  CLOSE_LIMIT,
  CLOSE_NOT_FOUND,
  rejectDownloadSocket,
  serveDownloadSocket,
} from "./download_socket.ts";
import { limitExceeded, resolveLimits, type ServerLimits } from "./limits.ts";
import type { Resource } from "./resource.ts";
import { SpoolError } from "../protocol/errors.ts";

/** Options of {@linkcode startServer}; every one has a default. */
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
   * Largest payload of a download data frame. Default 64 KiB: frames under
   * glibc's 128 KiB mmap threshold keep fan-out out of mmap and page faults.
   */
  frameSize?: number;
  /** Credit of a read request that names none. Default 4 MiB. */
  readWindow?: number;
  /**
   * Bytes all download sockets together may hold in send buffers, shared
   * among the open ones (each gets between one frame and 4 MiB). Default 64 MiB.
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
  /** Stops listening, fails live uploads, closes every socket. */
  close(): Promise<void>;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Closes the server. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Reason recorded for uploads cut off by a server shutdown. */
export const SHUTDOWN_REASON =
  "the server shut down while the upload was in progress";

const UPLOAD_PATH = "/upload";
/** How long shutdown waits for peers to answer the close handshake. */
const CLOSE_GRACE_MS = 3000;
const RESOURCE_PATH = /^\/resources\/([^/]+)$/;

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
    new FileStore(options.dataDir ?? "./spool-data", {
      durable: options.durable,
    });
  const limits = resolveLimits(options.limits);
  const resumeGraceMs = options.resumeGraceMs ?? 10_000;
  if (!Number.isInteger(resumeGraceMs) || resumeGraceMs < 0) {
    throw new RangeError(
      `resumeGraceMs is ${resumeGraceMs}; expected an integer >= 0`,
    );
  }
  const sessions = new UploadSessions({ graceMs: resumeGraceMs });
  const registry = await ResourceRegistry.load(store, { checkpointMs });
  const sockets = new Set<WebSocket>();
  const uploadWindow = options.uploadWindow ?? 8 * 1024 * 1024;
  const frameSize = options.frameSize ?? 64 * 1024;
  const readWindow = options.readWindow ?? 4 * 1024 * 1024;
  const downloadOptions = {
    frameSize,
    defaultWindow: readWindow,
    maxWindow: Math.max(readWindow, 64 * 1024 * 1024),
    maxRequests: limits.maxRequestsPerSocket,
    scratch: new ArrayBuffer(DATA_FRAME_HEADER_SIZE + frameSize),
    sendBudget: new SendBudget(options.sendBufferBudget ?? 64 * 1024 * 1024, {
      min: frameSize,
      max: 4 * 1024 * 1024,
    }),
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
    return reference.href;
  };

  // Download sockets per resource and in all, counted from the upgrade on.
  const watchers = new WeakMap<Resource, number>();
  let totalWatchers = 0;
  const downloadRefusal = (
    id: string,
    resource: Resource | undefined,
  ): { error: SpoolError; code: number } | undefined => {
    if (!resource) {
      return {
        error: new SpoolError(
          "not-found",
          `no resource with id ${
            JSON.stringify(id.slice(0, 64))
          }; expected the id of a reference this server returned`,
        ),
        code: CLOSE_NOT_FOUND,
      };
    }
    const onResource = watchers.get(resource) ?? 0;
    if (onResource >= limits.maxWatchersPerResource) {
      return {
        error: limitExceeded(
          "maxWatchersPerResource",
          limits.maxWatchersPerResource,
          `a download socket on resource ${resource.status.id} (${onResource} open)`,
        ),
        code: CLOSE_LIMIT,
      };
    }
    if (totalWatchers >= limits.maxWatchers) {
      return {
        error: limitExceeded(
          "maxWatchers",
          limits.maxWatchers,
          `a download socket (${totalWatchers} open on the server)`,
        ),
        code: CLOSE_LIMIT,
      };
    }
    return undefined;
  };

  const upgrade = (
    request: Request,
  ): { socket: WebSocket; response: Response } => {
    const upgraded = Deno.upgradeWebSocket(request);
    sockets.add(upgraded.socket);
    upgraded.socket.addEventListener(
      "close",
      () => sockets.delete(upgraded.socket),
    );
    return upgraded;
  };

  const handler = (request: Request): Response => {
    const url = new URL(request.url);
    const wantsSocket =
      request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (url.pathname === UPLOAD_PATH) {
      if (!wantsSocket) return upgradeRequired(UPLOAD_PATH);
      const { socket, response } = upgrade(request);
      serveUploadSocket(socket, {
        registry,
        reference: referenceFor(request),
        window: uploadWindow,
        limits,
        sessions,
      });
      return response;
    }
    const match = url.pathname.match(RESOURCE_PATH);
    if (match) {
      const id = decodeURIComponent(match[1]);
      const resource = registry.get(id);
      if (!wantsSocket) {
        return resource ? Response.json(resource.status) : Response.json({
          error: `no resource with id ${JSON.stringify(id)}`,
        }, {
          status: 404,
        });
      }
      const { socket, response } = upgrade(request);
      const refusal = downloadRefusal(id, resource);
      if (refusal) {
        rejectDownloadSocket(socket, refusal.error, refusal.code);
        return response;
      }
      const counted = resource!;
      watchers.set(counted, (watchers.get(counted) ?? 0) + 1);
      totalWatchers++;
      socket.addEventListener("close", () => {
        watchers.set(counted, watchers.get(counted)! - 1);
        totalWatchers--;
      });
      serveDownloadSocket(socket, counted, downloadOptions);
      return response;
    }
    if (url.pathname === "/") {
      return Response.json({
        name: "spool",
        upload: UPLOAD_PATH,
        resources: "/resources/{id}",
      });
    }
    return Response.json({ error: `no route for ${url.pathname}` }, {
      status: 404,
    });
  };

  let resolveListening: (url: URL) => void;
  const listening = new Promise<URL>((resolve) => resolveListening = resolve);
  const httpServer = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8787,
    onListen({ hostname, port }) {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      resolveListening(new URL(`http://${host}:${port}/`));
    },
  }, handler);
  const url = await listening;
  options.onListen?.(url);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      sessions.close();
      const live = [...registry.live()];
      await Promise.all(live.map((resource) => resource.fail(SHUTDOWN_REASON)));
      const closed = Promise.all(
        [...sockets].map((socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === WebSocket.CLOSED) return resolve();
            socket.addEventListener("close", () => resolve());
            socket.close(1001, "server shutdown");
          })
        ),
      );
      // A peer that never answers the close handshake must not hold shutdown up.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const gaveUp = new Promise<void>((resolve) =>
        timer = setTimeout(resolve, CLOSE_GRACE_MS)
      );
      await Promise.race([closed, gaveUp]);
      clearTimeout(timer);
      await httpServer.shutdown();
    })();
    return closing;
  };
  options.signal?.addEventListener("abort", () => close(), { once: true });

  return {
    url,
    registry,
    close,
    finished: httpServer.finished,
    [Symbol.asyncDispose]: close,
  };
}

function baseUrl(url: string | URL): URL {
  const base = new URL(url);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return base;
}

function upgradeRequired(path: string): Response {
  return Response.json(
    {
      error:
        `${path} is a WebSocket endpoint; expected an 'Upgrade: websocket' request`,
    },
    { status: 426, headers: { upgrade: "websocket" } },
  );
}
