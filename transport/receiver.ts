/**
 * `Receiver`: a registry of receive endpoints served by `Deno.serve` (through
 * `resilientServe`, which listens again when accepting connections fails,
 * e.g. out of file descriptors). A network is a named listener; each
 * endpoint (`trname`) on it has a handler and its own statistics.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import { errorResponse } from "../protocol/http_error.ts";
import { DEFAULT_MAX_HEADER_SIZE } from "./frame_parser.ts";
import { MAX_PDU_SIZE, SESSION_HEADER } from "./framing.ts";
import { AUTH_HEADER, RequestVerifier } from "./internal/auth.ts";
import {
  type EndpointState,
  type EndpointStats,
  receiveRequest,
  type RequestEndEvent,
} from "./recv.ts";
import type { ReceiveHandler } from "./types.ts";
import { resilientServe } from "../net/resilient_serve.ts";

/**
 * URL path prefix of every endpoint.
 *
 * @example
 * ```ts
 * import { OBJSTREAM_PATH } from "./receiver.ts";
 * const endpoint = new URL(OBJSTREAM_PATH + "demo", "http://127.0.0.1:8080");
 * console.log(endpoint.href); // "http://127.0.0.1:8080/v1/objstream/demo"
 * ```
 */
export const OBJSTREAM_PATH = "/v1/objstream/";

const TRNAME = /^[A-Za-z0-9._~-]{1,128}$/;

/**
 * Default of {@linkcode ReceiverOptions.bodyTimeoutMs}: a request body that
 * sends nothing for a minute fails. Senders end an idle request after 4 s
 * (their `idleTimeoutMs`), so only a stalled sender or a body producer that
 * pauses this long mid-object hits it.
 *
 * @example
 * ```ts
 * import { DEFAULT_BODY_TIMEOUT_MS, Receiver } from "./receiver.ts";
 * await using patient = new Receiver({ bodyTimeoutMs: 10 * DEFAULT_BODY_TIMEOUT_MS });
 * ```
 */
export const DEFAULT_BODY_TIMEOUT_MS = 60_000;

/**
 * Largest `wholeBodies` of `Receiver.register`: bodies are collected in
 * memory before their handler is called, so bigger ones go as streams.
 *
 * @example
 * ```ts
 * import { MAX_WHOLE_BODIES, Receiver } from "./receiver.ts";
 * await using receiver = new Receiver();
 * await receiver.listen("data");
 * receiver.register("data", "all", (_header, body) => {
 *   if (body instanceof Uint8Array) console.log(body.length);
 * }, { wholeBodies: MAX_WHOLE_BODIES });
 * ```
 */
export const MAX_WHOLE_BODIES = 16 * 1024 * 1024;

/**
 * Options of a {@linkcode Receiver}.
 *
 * @example
 * ```ts
 * import { Receiver, type ReceiverOptions } from "./receiver.ts";
 * const options: ReceiverOptions = { maxHeaderSize: 4096, secret: "at-least-16-characters" };
 * await using receiver = new Receiver(options);
 * ```
 */
export interface ReceiverOptions {
  /** Largest object header accepted (default 64 KiB). */
  maxHeaderSize?: number;
  /** Largest PDU payload accepted (default 1 MiB). */
  maxPduSize?: number;
  /** Called when a request ends: idle teardown, fin, or an error. */
  onRequestEnd?: (event: {
    /** The network the endpoint is on. */
    network: string;
    /** The endpoint name. */
    trname: string;
    /** The sender's session id. */
    sessionId: string;
    /** Objects delivered whole by this request. */
    objects: number;
    /** Whether this request carried the fin frame. */
    fin: boolean;
    /** The error that ended the request, or `null` for a clean end. */
    error: TransportError | null;
  }) => void;
  /**
   * A request whose body sends no byte for this long, in ms, while the
   * receiver waits for it fails with `body-timeout` (HTTP 408); its handler
   * gets the error, other requests go on. Time spent waiting for the
   * handler does not count. `0` turns the bound off. Default
   * {@linkcode DEFAULT_BODY_TIMEOUT_MS} (60 s); keep it above the senders'
   * `idleTimeoutMs` (4 s by default), which idle requests end after.
   */
  bodyTimeoutMs?: number;
  /**
   * Shared secret: only requests signed with it are accepted (HTTP 401
   * `unauthorized` otherwise, checked before anything about the endpoint or
   * method is told; 503 `nonce-cache-full` when its replay cache is full).
   * The signature proves who opened the session, not what its body carries:
   * use TLS for that. Default: none, any sender is accepted.
   */
  secret?: string;
}

/**
 * Where a network listens.
 *
 * @example
 * ```ts
 * import { type ListenOptions, Receiver } from "./receiver.ts";
 * const options: ListenOptions = { hostname: "0.0.0.0", port: 8080 };
 * const listen = (receiver: Receiver) => receiver.listen("data", options);
 * ```
 */
export interface ListenOptions {
  /** Interface to bind (default `127.0.0.1`). */
  hostname?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** PEM certificate chain: serve `https` (needs `key`). */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
}

/**
 * Receive statistics: network → endpoint name → endpoint statistics.
 *
 * @example
 * ```ts
 * import type { Receiver, ReceiverStats } from "./receiver.ts";
 * const objectsOf = (receiver: Receiver, network: string, trname: string) => {
 *   const stats: ReceiverStats = receiver.stats();
 *   return stats[network]?.[trname]?.objects ?? 0;
 * };
 * ```
 */
export type ReceiverStats = Record<
  string,
  Record<string, {
    /** Objects delivered whole, all sessions. */
    objects: number;
    /** Body bytes of those objects. */
    bytes: number;
    /** Per-session statistics by session id. */
    sessions: Record<string, {
      /** Objects delivered whole. */
      objects: number;
      /** Body bytes of those objects. */
      bytes: number;
      /** Wire bytes parsed (after decompression). */
      offset: number;
      /** HTTP requests (1 + reconnects). */
      requests: number;
      /** Requests that ended with an error. */
      errors: number;
      /** Whether the fin frame arrived. */
      finished: boolean;
      /** Code of the last error, if any. */
      lastError?: string;
    }>;
  }>
>;

interface Network {
  server: Deno.HttpServer<Deno.NetAddr>;
  url: URL;
  endpoints: Map<string, EndpointState>;
}

function copyStats(stats: EndpointStats): EndpointStats {
  const sessions: EndpointStats["sessions"] = {};
  for (const [id, session] of Object.entries(stats.sessions)) {
    sessions[id] = { ...session };
  }
  return { objects: stats.objects, bytes: stats.bytes, sessions };
}

/** The network {@linkcode startReceiver} listens on unless told otherwise. */
export const DEFAULT_NETWORK = "data";

/**
 * Starts a receiver listening on one network: the transport's
 * `startServer`. Like a server, it resolves once listening and is closed
 * with `close()` or `await using`; register endpoints on it, and
 * `listen` more networks if needed.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { startReceiver } from "./receiver.ts";
 * import { Stream } from "./stream.ts";
 *
 * await using receiver = await startReceiver({ port: 0 });
 * const names: string[] = [];
 * receiver.register("data", "demo", (header) => void names.push(header.name));
 * const stream = new Stream(receiver.url("data", "demo"));
 * await stream.send({ name: "hello" });
 * await stream.fin();
 * assertEquals(names, ["hello"]);
 * ```
 */
export async function startReceiver(
  options: ReceiverOptions & ListenOptions & {
    /** The network to listen on (default {@linkcode DEFAULT_NETWORK}). */
    network?: string;
  } = {},
): Promise<Receiver> {
  const receiver = new Receiver(options);
  await receiver.listen(options.network ?? DEFAULT_NETWORK, options);
  return receiver;
}

/**
 * Receives object streams: `listen` opens a network, `register` adds an
 * endpoint whose handler gets every object of every stream sent to it.
 *
 * @example
 * ```ts
 * import { Receiver } from "./receiver.ts";
 * import { Stream } from "./stream.ts";
 *
 * await using receiver = new Receiver();
 * await receiver.listen("data");
 * receiver.register("data", "demo", async (header, body, error) => {
 *   if (error) return console.error(error.code, error.message);
 *   console.log(header.name, body ? await new Response(body).text() : "");
 * });
 * const stream = new Stream(receiver.url("data", "demo"));
 * await stream.send({ name: "hello" }, new TextEncoder().encode("world"));
 * await stream.fin();
 * ```
 */
export class Receiver {
  #networks = new Map<string, Network>();
  #maxHeaderSize: number;
  #maxPduSize: number;
  #bodyTimeoutMs: number;
  #closing = new AbortController();
  #onRequestEnd?: (event: RequestEndEvent) => void;
  #verifier?: RequestVerifier;

  /** Creates an empty registry. */
  constructor(options: ReceiverOptions = {}) {
    this.#maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    this.#maxPduSize = options.maxPduSize ?? MAX_PDU_SIZE;
    this.#onRequestEnd = options.onRequestEnd;
    const timeout = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeout) || timeout < 0) {
      throw new TransportError(
        "invalid-argument",
        `option bodyTimeoutMs is ${timeout}, expected an integer number of ms, 0 for no bound`,
      );
    }
    this.#bodyTimeoutMs = timeout;
    if (options.secret !== undefined) {
      if (options.secret.length < 16) {
        throw new TransportError(
          "invalid-argument",
          `option secret has ${options.secret.length} characters, expected at least 16`,
        );
      }
      this.#verifier = new RequestVerifier(options.secret);
    }
  }

  /** Starts serving network `network`; resolves to its base URL. */
  listen(network: string, options: ListenOptions = {}): Promise<URL> {
    if (this.#networks.has(network)) {
      return Promise.reject(
        new TransportError(
          "duplicate-endpoint",
          `network ${JSON.stringify(network)} is already listening`,
        ),
      );
    }
    const endpoints = new Map<string, EndpointState>();
    const hostname = options.hostname ?? "127.0.0.1";
    if ((options.cert === undefined) !== (options.key === undefined)) {
      return Promise.reject(
        new TransportError(
          "invalid-argument",
          "cert and key go together; expected both PEM strings or neither",
        ),
      );
    }
    const tls = options.cert === undefined
      ? {}
      : { cert: options.cert, key: options.key! };
    const server = resilientServe(
      { hostname, port: options.port ?? 0, onListen() {}, ...tls },
      (request) => this.#serve(request, endpoints),
    );
    const host = server.addr.hostname.includes(":")
      ? `[${server.addr.hostname}]`
      : server.addr.hostname;
    const scheme = options.cert === undefined ? "http" : "https";
    const url = new URL(`${scheme}://${host}:${server.addr.port}/`);
    this.#networks.set(network, { server, url, endpoints });
    return Promise.resolve(url);
  }

  /**
   * Registers `handler` for endpoint `trname` on `network`; returns the URL
   * path senders use. Throws `duplicate-endpoint` if it exists. Every body
   * reaches the handler as a byte stream.
   */
  register(network: string, trname: string, handler: ReceiveHandler): string;
  /**
   * Registers `handler` for endpoint `trname` on `network`, with bodies of
   * known size up to `options.wholeBodies` bytes (at most
   * {@linkcode MAX_WHOLE_BODIES}) handed over as one `Uint8Array` each (the
   * handler's own), once all of it arrived; bigger and unknown-size bodies
   * come as byte streams. Small objects cost the receiver about half the
   * CPU this way (docs/transport.md, "Small bodies as bytes").
   *
   * @example
   * ```ts
   * import { Receiver } from "./receiver.ts";
   * await using receiver = new Receiver();
   * await receiver.listen("data");
   * receiver.register("data", "small", async (header, body) => {
   *   const bytes = body instanceof ReadableStream
   *     ? await new Response(body).bytes()
   *     : body;
   *   console.log(header.name, bytes?.length ?? 0);
   * }, { wholeBodies: 64 * 1024 });
   * ```
   */
  register(
    network: string,
    trname: string,
    handler: ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>>,
    options: {
      /** Largest body, in bytes, handed over as a `Uint8Array`. */
      wholeBodies: number;
    },
  ): string;
  register(
    network: string,
    trname: string,
    handler:
      | ReceiveHandler
      | ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>>,
    options?: { wholeBodies: number },
  ): string {
    const net = this.#network(network);
    const wholeBodies = options?.wholeBodies ?? -1;
    if (
      options !== undefined &&
      (!Number.isSafeInteger(wholeBodies) || wholeBodies < 0 ||
        wholeBodies > MAX_WHOLE_BODIES)
    ) {
      throw new TransportError(
        "invalid-argument",
        `option wholeBodies is ${wholeBodies}, expected an integer number of bytes from 0 to ${MAX_WHOLE_BODIES}`,
      );
    }
    if (!TRNAME.test(trname) || trname === "." || trname === "..") {
      throw new TransportError(
        "invalid-argument",
        `endpoint name ${
          JSON.stringify(trname)
        } is invalid, expected 1-128 characters of [A-Za-z0-9._~-], not "." or ".."`,
      );
    }
    if (net.endpoints.has(trname)) {
      throw new TransportError(
        "duplicate-endpoint",
        `endpoint ${JSON.stringify(trname)} is already registered on ${
          JSON.stringify(network)
        }`,
      );
    }
    net.endpoints.set(trname, {
      network,
      trname,
      onRequestEnd: this.#onRequestEnd,
      // Without wholeBodies no body comes as bytes: a stream handler fits.
      handler: handler as ReceiveHandler<
        Uint8Array | ReadableStream<Uint8Array>
      >,
      wholeBodies,
      stats: { objects: 0, bytes: 0, sessions: {} },
      maxHeaderSize: this.#maxHeaderSize,
      maxPduSize: this.#maxPduSize,
      bodyTimeoutMs: this.#bodyTimeoutMs,
    });
    return OBJSTREAM_PATH + trname;
  }

  /**
   * Removes an endpoint; new requests to it get 404, requests already
   * running finish. Returns whether it existed.
   */
  unregister(network: string, trname: string): boolean {
    return this.#network(network).endpoints.delete(trname);
  }

  /** The full URL of endpoint `trname` on `network`. */
  url(network: string, trname: string): URL {
    return new URL(OBJSTREAM_PATH + trname, this.#network(network).url);
  }

  /** A snapshot of the receive statistics. */
  stats(): ReceiverStats {
    const out: ReceiverStats = {};
    for (const [name, net] of this.#networks) {
      const endpoints: Record<string, EndpointStats> = {};
      for (const [trname, endpoint] of net.endpoints) {
        endpoints[trname] = copyStats(endpoint.stats);
      }
      out[name] = endpoints;
    }
    return out;
  }

  /**
   * Stops every network: running requests end with `receiver-closed`
   * (delivered to their handlers) and the servers shut down.
   */
  async close(): Promise<void> {
    const closing = this.#closing;
    // Networks opened after this close get a fresh signal.
    this.#closing = new AbortController();
    closing.abort();
    const networks = [...this.#networks.values()];
    this.#networks.clear();
    await Promise.all(networks.map((net) => net.server.shutdown()));
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #network(network: string): Network {
    const net = this.#networks.get(network);
    if (net === undefined) {
      throw new TransportError(
        "unknown-network",
        `network ${
          JSON.stringify(network)
        } is not listening, expected one of: ${
          [...this.#networks.keys()].join(", ") || "(none)"
        }`,
      );
    }
    return net;
  }

  #serve(
    request: Request,
    endpoints: Map<string, EndpointState>,
  ): Response | Promise<Response> {
    const path = new URL(request.url).pathname;
    // With a secret nothing about endpoints or methods is told before the
    // sender proved it holds it: every unsigned request gets the same 401.
    const refused = this.#authenticate(request, path);
    if (refused !== undefined) return refused;
    const found = this.#endpoint(path, endpoints);
    if (found instanceof Response) return found;
    if (request.method !== "PUT") {
      return errorResponse(
        new TransportError(
          "method-not-allowed",
          `method ${request.method} is not allowed, expected PUT`,
        ),
        { headers: { allow: "PUT" } },
      );
    }
    if (this.#closing.signal.aborted) {
      return errorResponse(
        new TransportError("receiver-closed", "receiver is closing"),
      );
    }
    return receiveRequest(request, found, { signal: this.#closing.signal });
  }

  /** A refusal unless the request is signed or no secret is set. */
  #authenticate(request: Request, path: string): Response | undefined {
    if (this.#verifier === undefined) return undefined;
    try {
      this.#verifier.verify(request.headers.get(AUTH_HEADER), {
        method: request.method,
        sessionId: request.headers.get(SESSION_HEADER) ?? "",
        path,
      });
      return undefined;
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      return errorResponse(error); // 401 unauthorized, 503 nonce-cache-full
    }
  }

  /** The endpoint at `path`, or the 400/404 answer saying why there is none. */
  #endpoint(
    path: string,
    endpoints: Map<string, EndpointState>,
  ): EndpointState | Response {
    if (!path.startsWith(OBJSTREAM_PATH)) {
      return errorResponse(
        new TransportError(
          "unknown-endpoint",
          `path ${JSON.stringify(path)} is not under ${OBJSTREAM_PATH}`,
        ),
      );
    }
    let trname: string;
    try {
      trname = decodeURIComponent(path.slice(OBJSTREAM_PATH.length));
    } catch (error) {
      return errorResponse(
        new TransportError(
          "bad-request",
          `path ${JSON.stringify(path)} has malformed percent-encoding (${
            (error as Error).message
          }), expected an endpoint name`,
        ),
      );
    }
    return endpoints.get(trname) ?? errorResponse(
      new TransportError(
        "unknown-endpoint",
        `no endpoint ${JSON.stringify(trname)} is registered`,
      ),
    );
  }
}
