/**
 * The options of a server: what can be set ({@linkcode ServerOptions}),
 * and the same checked and filled with defaults ({@linkcode resolveOptions}).
 *
 * @module
 */

import { SpoolError } from "../protocol/errors.ts";
import { resolveLimits, type ServerLimits } from "./limits.ts";
import { fitWatchersToOpenFiles, openFileLimit } from "./_open_files.ts";
import type { ResourceStore } from "./store.ts";
import {
  DEFAULT_CHECKPOINT_MS,
  DEFAULT_DATA_DIR,
  DEFAULT_FRAME_SIZE,
  DEFAULT_HOSTNAME,
  DEFAULT_LEASE_MS,
  DEFAULT_PORT,
  DEFAULT_READ_WINDOW,
  DEFAULT_RESUME_GRACE_MS,
  DEFAULT_RETENTION_MS,
  DEFAULT_SEND_BUFFER_BUDGET,
  DEFAULT_UPLOAD_WINDOW,
  MIN_UPLOAD_WINDOW,
} from "./defaults.ts";

/**
 * Options of {@linkcode startServer}; every one has a default.
 *
 * @example
 * ```ts
 * import type { ServerOptions } from "./options.ts";
 * import { startServer } from "./server.ts";
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
  /**
   * Bytes an uploader may have sent and not yet seen acknowledged (each
   * frame also costs 64 bytes of it); the server acknowledges once the
   * store wrote them, so one upload holds at most this much in server
   * memory. Default 8 MiB; at least 1 KiB.
   */
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
  /**
   * NATS server URLs (`nats://HOST:PORT`, several as an array or comma
   * separated): the node stores resources in JetStream, shared with every
   * node on the same servers, instead of in `dataDir`. Default: none.
   */
  nats?: string | string[];
  /**
   * With `nats`: how long the node taking an upload may go without renewing
   * its lease before other nodes count it lost, in ms. Default 5000.
   */
  leaseMs?: number;
}

/**
 * {@linkcode ServerOptions} checked, with every default filled in.
 *
 * @example
 * ```ts
 * import { resolveOptions, type ResolvedOptions } from "./options.ts";
 * const resolved: ResolvedOptions = await resolveOptions({ port: 0 });
 * console.log(resolved.checkpointMs); // 250
 * ```
 */
export interface ResolvedOptions {
  /** Interface to bind. */
  hostname: string;
  /** Port to listen on. */
  port: number;
  /** Directory of the file store (and of the default key file). */
  dataDir: string;
  /** Checkpoint interval in ms. */
  checkpointMs: number;
  /** Resume grace period in ms. */
  resumeGraceMs: number;
  /** Retention in ms (0 keeps). */
  retentionMs: number;
  /** Upload window in bytes. */
  uploadWindow: number;
  /** Largest download frame payload in bytes. */
  frameSize: number;
  /** Default read credit in bytes. */
  readWindow: number;
  /** Send-buffer budget of all download sockets in bytes. */
  sendBufferBudget: number;
  /** Base URL of references, if set. */
  publicUrl?: URL;
  /** The limits in force (fitted to the open-file limit). */
  limits: ServerLimits;
  /** Why a limit in force differs from what was asked, if it does. */
  limitNote?: string;
  /** NATS server URLs of the shared engine, if any. */
  nats?: string[];
  /** Lease of uploads on the shared engine, in ms. */
  leaseMs: number;
}

/**
 * Checks `options` and fills in the defaults; throws `RangeError` or
 * `TypeError` naming the option and what was expected.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 * const { port, limits } = await resolveOptions({ port: 0, limits: { maxUploads: 5 } });
 * console.log(port, limits.maxUploads); // 0 5
 * ```
 */
export async function resolveOptions(
  options: ServerOptions,
): Promise<ResolvedOptions> {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new SpoolError(
      "invalid-argument",
      "cert and key go together; expected both PEM strings or neither",
    );
  }
  const fitted = fitWatchersToOpenFiles(
    resolveLimits(options.limits),
    options.limits ?? {},
    await openFileLimit(),
  );
  return {
    hostname: options.hostname ?? DEFAULT_HOSTNAME,
    port: options.port ?? DEFAULT_PORT,
    dataDir: options.dataDir ?? DEFAULT_DATA_DIR,
    checkpointMs: whole(options, "checkpointMs", DEFAULT_CHECKPOINT_MS),
    resumeGraceMs: whole(options, "resumeGraceMs", DEFAULT_RESUME_GRACE_MS),
    retentionMs: whole(options, "retentionMs", DEFAULT_RETENTION_MS),
    uploadWindow: uploadWindow(options.uploadWindow),
    frameSize: options.frameSize ?? DEFAULT_FRAME_SIZE,
    readWindow: options.readWindow ?? DEFAULT_READ_WINDOW,
    sendBufferBudget: options.sendBufferBudget ?? DEFAULT_SEND_BUFFER_BUDGET,
    publicUrl: options.publicUrl === undefined
      ? undefined
      : baseUrl(options.publicUrl),
    limits: fitted.limits,
    limitNote: fitted.note,
    nats: natsServers(options.nats),
    leaseMs: whole(options, "leaseMs", DEFAULT_LEASE_MS),
  };
}

/** The URLs of `nats`, split at commas; `undefined` when there are none. */
function natsServers(
  nats: string | string[] | undefined,
): string[] | undefined {
  if (nats === undefined) return undefined;
  const servers = (Array.isArray(nats) ? nats : [nats])
    .flatMap((url) => url.split(","))
    .map((url) => url.trim())
    .filter((url) => url !== "");
  for (const url of servers) {
    if (!/^(nats|tls|wss?):\/\/[^/\s]+\/?$/.test(url)) {
      throw new SpoolError(
        "invalid-argument",
        `nats holds ${
          JSON.stringify(url.slice(0, 200))
        }; expected URLs like nats://HOST:PORT`,
      );
    }
  }
  if (servers.length === 0) {
    throw new SpoolError(
      "invalid-argument",
      "nats is empty; expected URLs like nats://HOST:PORT",
    );
  }
  return servers;
}

type WholeOption =
  | "checkpointMs"
  | "resumeGraceMs"
  | "retentionMs"
  | "leaseMs";

/** An option that is a whole number of ms, 0 or more. */
function whole(
  options: ServerOptions,
  name: WholeOption,
  fallback: number,
): number {
  const value = options[name] ?? fallback;
  if (!Number.isInteger(value) || value < 0) {
    throw new SpoolError(
      "invalid-argument",
      `${name} is ${value}; expected an integer >= 0`,
    );
  }
  return value;
}

/** The upload window, checked: a window under one frame would stall uploads. */
function uploadWindow(value = DEFAULT_UPLOAD_WINDOW): number {
  if (!Number.isInteger(value) || value < MIN_UPLOAD_WINDOW) {
    throw new SpoolError(
      "invalid-argument",
      `uploadWindow is ${value}; expected an integer >= ${MIN_UPLOAD_WINDOW}`,
    );
  }
  return value;
}

/** `url` as a base that ends in "/", so that a path prefix is kept. */
function baseUrl(url: string | URL): URL {
  const base = new URL(url);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return base;
}
