/**
 * The server's routes: which request goes where. Upload and download
 * sockets, the plain-HTTP views of a resource, the viewer pages, and the
 * refusals (unknown paths and ids, wrong methods, missing tokens), all
 * answered through the one error body.
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import type { ServerAuth } from "./auth.ts";
import {
  CLOSE_FORBIDDEN,
  CLOSE_GONE,
  CLOSE_NOT_FOUND,
} from "../protocol/close_codes.ts";
import {
  type DownloadSocketOptions,
  serveDownloadSocket,
} from "./download_socket.ts";
import { refuseSocket } from "./_socket_messages.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { serveResourceHttp } from "./http_resource.ts";
import type { Resource } from "./resource.ts";
import type { ServerLimits } from "./limits.ts";
import type { ServerSockets } from "./_peer_socket.ts";
import type { ResourceRegistry } from "./registry.ts";
import { serveUploadSocket } from "./upload_socket.ts";
import type { UploadSessions } from "./upload_sessions.ts";
import { serveListingEvents, serveViewer } from "./viewer.ts";

const UPLOAD_PATH = "/upload";
const RESOURCE_PATH = /^\/resources\/([^/]+)(\/[^/]+)?$/;
/** The methods of every HTTP route. */
const ALLOWED_METHODS = "GET, HEAD";

/**
 * What the routes serve from.
 *
 * @example
 * ```ts ignore
 * const router = new Router({ registry, auth, sockets, sessions, downloads, ... });
 * ```
 */
export interface RouterParts {
  registry: ResourceRegistry;
  auth: ServerAuth;
  sockets: ServerSockets;
  sessions: UploadSessions;
  /** What each download socket needs from the server. */
  downloads: DownloadSocketOptions;
  limits: ServerLimits;
  /** Bytes an uploader may have unacknowledged. */
  uploadWindow: number;
  /** Base URL of references; default: the URL the uploader connected to. */
  publicUrl?: URL;
  /** For the `gone` message: how long finished resources are kept. */
  retentionMs: number;
  /** Aborted at shutdown: long HTTP responses end. */
  shutdown: AbortSignal;
}

/** A refusal, with the close code a socket gets for it. */
interface Refusal {
  error: SpoolError;
  code: number;
}

/**
 * Routes requests of one server.
 *
 * @example
 * ```ts ignore
 * Deno.serve((request) => router.route(request));
 * ```
 */
export class Router {
  readonly #parts: RouterParts;

  /** A router over `parts`. */
  constructor(parts: RouterParts) {
    this.#parts = parts;
  }

  /** The answer to `request`. */
  route(request: Request): Response | Promise<Response> {
    const path = new URL(request.url).pathname;
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
          "method-not-allowed",
          `method ${request.method.slice(0, 20)} is not allowed on ${
            path.slice(0, 200)
          }; expected ${ALLOWED_METHODS}`,
        ),
        { status: 405, headers: { allow: ALLOWED_METHODS } },
      );
    }
    const wantsSocket = request.method === "GET" &&
      request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (path === UPLOAD_PATH) return this.#upload(request, wantsSocket);
    if (path === "/view/events") {
      return serveListingEvents(request, this.#parts);
    }
    if (view) return this.#view(request, path.slice("/view/".length));
    if (match) {
      return this.#resource(request, match[1], match[2] ?? "", wantsSocket);
    }
    return Response.json({
      name: "spool",
      upload: UPLOAD_PATH,
      resources: "/resources/{id}",
    });
  }

  #upload(
    request: Request,
    wantsSocket: boolean,
  ): Response | Promise<Response> {
    if (!wantsSocket) return upgradeRequired(UPLOAD_PATH);
    const { auth, sockets, registry, limits, sessions, uploadWindow } =
      this.#parts;
    // Headers are unreadable once the request is upgraded: check first.
    const refusal = auth.uploadRefusal(request);
    return sockets.upgrade(
      request,
      "an upload socket",
      (peer) =>
        refusal
          ? refuseSocket(peer, refusal, CLOSE_FORBIDDEN)
          : serveUploadSocket(peer, {
            registry,
            reference: (id) => this.#reference(request, id),
            window: uploadWindow,
            limits,
            sessions,
          }),
    );
  }

  #resource(
    request: Request,
    rawId: string,
    subpath: string,
    wantsSocket: boolean,
  ): Response | Promise<Response> {
    const id = decodeId(rawId);
    const resource = this.#parts.registry.get(id);
    const elsewhere = resource ? undefined : this.#parts.registry.lookUp(id);
    const target = { id, subpath, wantsSocket };
    if (elsewhere) {
      return elsewhere.then((found) =>
        this.#serveResource(request, { ...target, resource: found })
      );
    }
    return this.#serveResource(request, { ...target, resource });
  }

  /** Serves `subpath` of resource `id` (found as `resource`, or not). */
  #serveResource(
    request: Request,
    { id, resource, subpath, wantsSocket }: {
      id: string;
      resource: Resource | undefined;
      subpath: string;
      wantsSocket: boolean;
    },
  ): Response | Promise<Response> {
    const { auth, sockets, downloads, shutdown } = this.#parts;
    const forbidden = resource && auth.readRefusal(request, id);
    const refusal: Refusal | undefined = resource === undefined
      ? this.#missing(id)
      : forbidden && { error: forbidden, code: CLOSE_FORBIDDEN };
    if (!wantsSocket) {
      if (refusal) return errorResponse(refusal.error);
      return serveResourceHttp(request, {
        resource: resource!,
        subpath,
        token: auth.readToken(id),
        signal: shutdown,
        watchers: downloads.watchers,
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
          ? refuseSocket(peer, refusal.error, refusal.code)
          : serveDownloadSocket(peer, resource!, downloads),
    );
  }

  #view(request: Request, rawId: string): Response | Promise<Response> {
    const { registry, auth } = this.#parts;
    const listing = !auth.readTokens;
    const resources = () => registry.all();
    if (rawId === "") return serveViewer(request, { resources, listing });
    const id = decodeId(rawId);
    const resource = registry.get(id);
    const elsewhere = resource ? undefined : registry.lookUp(id);
    if (elsewhere) {
      return elsewhere.then((found) => this.#viewOf(request, id, found));
    }
    return this.#viewOf(request, id, resource);
  }

  /** The viewer page of `id`, which names `resource` or none. */
  #viewOf(request: Request, id: string, resource?: Resource): Response {
    const { registry, auth } = this.#parts;
    return serveViewer(request, {
      resources: () => registry.all(),
      listing: !auth.readTokens,
      resource,
      token: auth.readToken(id),
      refusal: resource === undefined
        ? this.#missing(id).error
        : auth.readRefusal(request, id),
    });
  }

  /** Why `id` names no resource: it expired, or it never existed. */
  #missing(id: string): Refusal {
    const shown = JSON.stringify(id.slice(0, 64));
    if (this.#parts.registry.expired(id)) {
      return {
        error: new SpoolError(
          "gone",
          `resource ${shown} expired and was deleted (the server keeps finished resources for ${this.#parts.retentionMs} ms)`,
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
  }

  /** The download reference of `id`, for an uploader that came by `request`. */
  #reference(request: Request, id: string): string {
    const reference = new URL(
      `resources/${id}`,
      this.#parts.publicUrl ?? new URL(".", request.url),
    );
    if (reference.protocol === "https:") reference.protocol = "wss:";
    else if (reference.protocol === "http:") reference.protocol = "ws:";
    const token = this.#parts.auth.readToken(id);
    if (token !== undefined) reference.searchParams.set("token", token);
    return reference.href;
  }
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

function upgradeRequired(path: string): Response {
  return errorResponse(
    new SpoolError(
      "invalid-field",
      `${path} is a WebSocket endpoint; expected an 'Upgrade: websocket' request`,
    ),
    { status: 426, headers: { upgrade: "websocket" } },
  );
}
