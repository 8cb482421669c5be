/**
 * The connection of one Spool node to NATS JetStream: the client, the
 * stream of bytes and statuses, and the lease bucket, made when missing.
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
  type StreamInfo,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connectEngine } from "./_deno_transport.ts";
import { PiecePublisher } from "./_piece_publisher.ts";
import {
  DATA_MODEL,
  LEASE_BUCKET,
  PIECE_HEADER_ROOM,
  SEGMENT_BYTES,
  STREAM,
  STREAM_SUBJECTS,
} from "./subjects.ts";

/**
 * Options of {@linkcode NatsEngine.connect}.
 *
 * @example
 * ```ts
 * import type { EngineOptions } from "./engine.ts";
 * const options: EngineOptions = { servers: ["nats://127.0.0.1:4222"], replicas: 3 };
 * ```
 */
export interface EngineOptions {
  /** NATS server URLs, e.g. `nats://127.0.0.1:4222`; any one is enough to start. */
  servers: string[];
  /** Replicas of the stream and the bucket when this node makes them. Default 1. */
  replicas?: number;
  /** How long to wait for the first connection, in ms. Default 5000. */
  connectTimeoutMs?: number;
}

/** Publishes stored at most once within this window (`Nats-Msg-Id`), in ns. */
const DUPLICATE_WINDOW_NS = 120 * 1e9;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const RECONNECT_WAIT_MS = 250;
/**
 * A PING this often; a link with {@linkcode MAX_PINGS_OUT} unanswered is
 * dropped for a new one. A link that went dark without a FIN (a black hole,
 * a dead NAT entry) is so noticed within 3 × 2 s, well inside the lease
 * (renewed every third of its 12 s) and a publish's 30 s deadline; nats.js's
 * default (2 min, 2 out) took minutes, and the upload FAILED meanwhile.
 */
const PING_INTERVAL_MS = 2000;
const MAX_PINGS_OUT = 2;

/**
 * Thrown when no NATS server of `--nats` answers at start; names them.
 *
 * @example
 * ```ts
 * import { EngineUnreachableError } from "./engine.ts";
 * const error = new EngineUnreachableError(["nats://127.0.0.1:1"], "connection refused");
 * console.log(error.code); // engine-unreachable
 * ```
 */
export class EngineUnreachableError extends Error {
  /** The error's code. */
  readonly code = "engine-unreachable";
  /** Creates the error for `servers`, which failed with `cause`. */
  constructor(servers: string[], cause: string) {
    // A TLS engine's certificate: Deno's roots decide, as for any client.
    const expected = /certificate/i.test(cause)
      ? "a certificate this node trusts (a private CA goes in DENO_CERT, or deno run --cert)"
      : "a nats-server with JetStream (-js) listening there";
    super(
      `cannot reach NATS at ${
        servers.join(",")
      } (${cause}); expected ${expected}`,
    );
    this.name = "EngineUnreachableError";
  }
}

/**
 * Thrown at start when the engine is reachable but cannot take this node's
 * data as it is laid out: its `max_payload` is below a piece, or its stream
 * holds messages of another data model. Says what to change.
 *
 * @example
 * ```ts
 * import { EngineMismatchError } from "./engine.ts";
 * const error = new EngineMismatchError("max_payload is 65536 bytes");
 * console.log(error.code); // engine-mismatch
 * ```
 */
export class EngineMismatchError extends Error {
  /** The error's code. */
  readonly code = "engine-mismatch";
  /** Creates the error; `detail` says what was found and what to do. */
  constructor(detail: string) {
    super(`NATS cannot take Spool's data as it is: ${detail}`);
    this.name = "EngineMismatchError";
  }
}

/**
 * A node's connection to the engine.
 *
 * @example
 * ```ts ignore
 * const engine = await NatsEngine.connect({ servers: ["nats://127.0.0.1:4222"] });
 * console.log(engine.node);
 * await engine.close();
 * ```
 */
export class NatsEngine {
  /** The NATS connection. */
  readonly nc: NatsConnection;
  /** JetStream publishing and consuming. */
  readonly js: JetStreamClient;
  /** JetStream management (direct get, purge, stream info). */
  readonly jsm: JetStreamManager;
  /** The lease bucket. */
  readonly leases: KV;
  /** This node's name in leases: unique per process. */
  readonly node: string;
  /** Publishes upload pieces (statuses go through `js`). */
  readonly pieces: PiecePublisher;

  private constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    leases: KV,
  ) {
    this.nc = nc;
    this.js = jetstream(nc);
    this.pieces = new PiecePublisher(nc);
    this.jsm = jsm;
    this.leases = leases;
    this.node = `${Deno.hostname()}:${Deno.pid}:${
      crypto.randomUUID().slice(0, 8)
    }`;
  }

  /**
   * Connects (reconnecting forever once connected: the engine restarting
   * must not end the node) and makes the stream and the bucket when missing.
   * Throws {@linkcode EngineUnreachableError} when no server answers.
   */
  static async connect(options: EngineOptions): Promise<NatsEngine> {
    let nc: NatsConnection;
    try {
      nc = await connectEngine({
        servers: options.servers,
        timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        maxReconnectAttempts: -1,
        // A restarted engine is back in ~30 ms: look for it often.
        reconnectTimeWait: RECONNECT_WAIT_MS,
        pingInterval: PING_INTERVAL_MS,
        maxPingOut: MAX_PINGS_OUT,
        name: "spool",
        // Else every request (each piece's publish) builds an Error for its
        // stack up front: a tenth of an uploading node's CPU in a profile.
        noAsyncTraces: true,
      });
    } catch (error) {
      throw new EngineUnreachableError(
        options.servers,
        (error as Error).message,
      );
    }
    try {
      checkMaxPayload(nc.info?.max_payload);
      const jsm = await jetstreamManager(nc);
      const replicas = options.replicas ?? 1;
      await ensureStream(jsm, replicas);
      const leases = await new Kvm(nc).create(LEASE_BUCKET, {
        history: 1,
        replicas,
      });
      return new NatsEngine(nc, jsm, leases);
    } catch (error) {
      await nc.close();
      if (error instanceof EngineMismatchError) throw error;
      throw new Error(
        `NATS at ${options.servers.join(",")} cannot hold Spool's stream: ${
          (error as Error).message
        }; expected a server with JetStream enabled (nats-server -js)`,
        { cause: error },
      );
    }
  }

  /** Drains and closes the connection. */
  async close(): Promise<void> {
    this.pieces.close();
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch (error) {
      // Draining needs the server; without it, closing is all there is.
      console.error(
        `spool: NATS drain failed (${(error as Error).message}); closing`,
      );
      await this.nc.close();
    }
  }
}

/** Refuses a server whose messages cannot hold a whole piece. */
function checkMaxPayload(maxPayload: number | undefined): void {
  const needed = SEGMENT_BYTES + PIECE_HEADER_ROOM;
  if (maxPayload === undefined || maxPayload >= needed) return;
  throw new EngineMismatchError(
    `its max_payload is ${maxPayload} bytes; expected at least ${needed} (a piece of ${SEGMENT_BYTES} bytes and its headers): set max_payload to 1MB or more in nats-server's configuration`,
  );
}

/** Adds the stream, or checks the one there (made by another node or the operator). */
async function ensureStream(
  jsm: JetStreamManager,
  replicas: number,
): Promise<void> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(STREAM);
  } catch (error) {
    // Only a missing stream is made here; anything else is the caller's.
    if (!/stream not found/i.test((error as Error).message)) throw error;
    await jsm.streams.add({
      name: STREAM,
      description: DATA_MODEL,
      subjects: [STREAM_SUBJECTS],
      storage: StorageType.File,
      num_replicas: replicas,
      allow_direct: true,
      duplicate_window: DUPLICATE_WINDOW_NS,
    });
    return;
  }
  await adoptStream(jsm, info);
}

/**
 * Takes a stream made elsewhere if it has this data model, or is empty
 * (an operator's, made with its own replicas): it is then marked with it.
 * Either way the settings Spool relies on are made so (direct get, the
 * duplicate window, its subjects), and a message size limit below a piece
 * is refused; the operator's other settings stay.
 */
async function adoptStream(
  jsm: JetStreamManager,
  info: StreamInfo,
): Promise<void> {
  const found = info.config.description ?? "";
  const ours = found === DATA_MODEL;
  if (
    !ours && (found.startsWith("spool data model") || info.state.messages > 0)
  ) {
    const laidOut = found === ""
      ? "by an earlier Spool (no data model named: 256 KiB segments)"
      : `as "${found}"`;
    throw new EngineMismatchError(
      `stream ${STREAM} holds ${info.state.messages} message${
        info.state.messages === 1 ? "" : "s"
      } laid out ${laidOut}; expected "${DATA_MODEL}": run the Spool that wrote them, or remove the stream once nothing in it is needed (nats stream rm ${STREAM})`,
    );
  }
  const config = info.config;
  const needed = SEGMENT_BYTES + PIECE_HEADER_ROOM;
  const maxMessage = config.max_msg_size ?? -1;
  if (maxMessage >= 0 && maxMessage < needed) {
    throw new EngineMismatchError(
      `stream ${STREAM} takes messages of at most ${maxMessage} bytes (max_msg_size); expected at least ${needed} (a piece and its headers), or no limit (-1)`,
    );
  }
  const subjects = config.subjects ?? [];
  const fits = ours && config.allow_direct === true &&
    (config.duplicate_window ?? 0) >= DUPLICATE_WINDOW_NS &&
    subjects.includes(STREAM_SUBJECTS);
  if (fits) return;
  await jsm.streams.update(STREAM, {
    ...config,
    description: DATA_MODEL,
    allow_direct: true,
    duplicate_window: Math.max(
      config.duplicate_window ?? 0,
      DUPLICATE_WINDOW_NS,
    ),
    subjects: subjects.includes(STREAM_SUBJECTS)
      ? subjects
      : [...subjects, STREAM_SUBJECTS],
  });
}
