/**
 * nats.js's socket, on Deno's own TCP (and TLS) connections instead of
 * Node's `net` layer: reads go through a {@linkcode UnitReader}, so the
 * parser gets whole messages and a large one is read straight into the
 * buffer it stays in; writes go to the connection in order, as nats.js
 * sends them.
 * A server that requires TLS (or offers it) gets it after its INFO line, as
 * with nats.js's own transports, its certificate checked against Deno's
 * roots (a private CA: `DENO_CERT` or `deno run --cert`); Spool gives the
 * engine no client certificate, so none is supported here.
 *
 * nats.js's transport factory is global to the process: after a
 * `connectEngine`, every connection's reconnects go through this transport
 * (a plain `connect` of `@nats-io/transport-node` included), and after a
 * later plain `connect` (tests make some; the server does not), the
 * engine's go through Node's layer again: slower (pieces then go through
 * nats.js's queue, `_piece_publisher.ts`) but correct.
 *
 * @module
 */

import {
  type ConnectionOptions,
  type NatsConnection,
  NatsConnectionImpl,
  setTransportFactory,
} from "@nats-io/transport-node";
import { nodeResolveHost } from "@nats-io/transport-node/lib/node_transport.js";
import {
  checkOptions,
  errors,
  INFO,
  type Server,
  type Transport,
} from "@nats-io/transport-node/lib/nats-base-client.js";
import { version } from "@nats-io/transport-node/lib/version.js";
import { UnitReader } from "./_unit_reader.ts";

/** An INFO line longer than this is not a NATS server's. */
const MAX_INFO_BYTES = 64 * 1024;

/** A connection's phase: dialing, carrying the protocol, or closed. */
type Phase = "dialing" | "open" | "closed";

/** One connection to a NATS server, as nats.js's protocol handler drives it. */
export class DenoTransport implements Transport {
  readonly lang = "nats.js";
  readonly version = version;
  closeError?: Error;
  #phase: Phase = "dialing";
  #conn: Deno.Conn | undefined;
  #reader: UnitReader | undefined;
  /** Frames not yet written, oldest first; `#writing` while one is. */
  #outbound: Uint8Array[] = [];
  #writing = false;
  #encrypted = false;
  /** Aborts a dial still connecting once the protocol handler gave up on it. */
  readonly #dialing = new AbortController();
  readonly #closed = Promise.withResolvers<void | Error>();

  get isClosed(): boolean {
    return this.#phase === "closed";
  }

  async connect(server: Server, options: ConnectionOptions): Promise<void> {
    try {
      await this.#dial(server, options);
    } catch (error) {
      this.#release();
      if (error instanceof Deno.errors.ConnectionRefused) {
        throw new errors.ConnectionError("connection refused", {
          cause: error,
        });
      }
      throw error;
    }
  }

  async #dial(server: Server, options: ConnectionOptions): Promise<void> {
    const tcp = await Deno.connect({
      hostname: server.hostname,
      port: server.port,
      signal: this.#dialing.signal,
    });
    tcp.setNoDelay(true);
    this.#conn = tcp;
    this.#checkDialing();
    const first = await this.#peekInfo(tcp);
    const info = JSON.parse(first.line);
    checkOptions(info, options);
    const wanted = info.tls_required === true ||
      (info.tls_available === true && options.tls !== null);
    if (wanted) {
      const tls = await Deno.startTls(tcp as Deno.TcpConn, {
        hostname: server.tlsName || server.hostname,
      });
      this.#conn = tls;
      this.#checkDialing();
      // Now, so that a certificate refused fails the dial, naming why.
      await tls.handshake();
      this.#encrypted = true;
      // A server upgrading sends nothing after INFO in plain text.
      first.rest = new Uint8Array(0);
    }
    this.#checkDialing();
    this.#reader = this.#unitReader(this.#conn, first.info, first.rest);
    this.#phase = "open";
  }

  /** Throws if the protocol handler gave up on this dial (its timeout). */
  #checkDialing(): void {
    if (this.isClosed) {
      throw new errors.ConnectionError("the connection closed while dialing");
    }
  }

  /** Reads the server's INFO line; returns it, its bytes and what came after. */
  async #peekInfo(
    conn: Deno.Conn,
  ): Promise<{ line: string; info: Uint8Array; rest: Uint8Array }> {
    const buffer = new Uint8Array(MAX_INFO_BYTES);
    let filled = 0;
    for (;;) {
      const end = buffer.subarray(0, filled).indexOf(10);
      if (end >= 0) {
        const text = new TextDecoder().decode(buffer.subarray(0, end + 1));
        const match = INFO.exec(text);
        if (!match) {
          throw new errors.ConnectionError(
            `expected the server's INFO line, got ${
              JSON.stringify(text.slice(0, 80))
            }`,
          );
        }
        return {
          line: match[1],
          info: buffer.subarray(0, end + 1),
          rest: buffer.subarray(end + 1, filled),
        };
      }
      if (filled === buffer.byteLength) {
        throw new errors.ConnectionError(
          `the server's INFO line is longer than ${MAX_INFO_BYTES} bytes`,
        );
      }
      const read = await conn.read(buffer.subarray(filled));
      if (read === null) {
        throw new errors.ConnectionError(
          "the server closed before its INFO line",
        );
      }
      filled += read;
    }
  }

  /** A reader that first returns INFO and what came with it, then reads `conn`. */
  #unitReader(conn: Deno.Conn, info: Uint8Array, rest: Uint8Array): UnitReader {
    const early = [info, rest];
    return new UnitReader((into) => {
      const next = early.shift();
      if (next === undefined) return conn.read(into);
      // INFO is at most MAX_INFO_BYTES, what came with it less: each fits
      // the reader's first buffer (READ_BYTES, as large).
      into.set(next);
      return Promise.resolve(next.byteLength);
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this.#iterate();
  }

  async *#iterate(): AsyncIterableIterator<Uint8Array> {
    const reader = this.#reader;
    if (reader === undefined) return;
    let failure: Error | undefined;
    try {
      for (;;) {
        const unit = await reader.next();
        if (unit === null) break;
        yield unit;
      }
    } catch (error) {
      // Reads end with an error once the connection is closed here.
      if (this.#phase !== "closed") failure = error as Error;
    } finally {
      // Also when nats.js stops iterating (its parser threw): nobody would
      // read the socket, and a server going away would go unnoticed.
      this.#close(failure);
    }
  }

  isEncrypted(): boolean {
    return this.#encrypted;
  }

  send(frame: Uint8Array): void {
    if (this.#phase !== "open") return;
    this.#outbound.push(frame);
    if (!this.#writing) this.#writeAll();
  }

  /** Writes the queued frames in order; a failed write closes the connection. */
  async #writeAll(): Promise<void> {
    this.#writing = true;
    try {
      for (
        let frame = this.#outbound.shift();
        frame;
        frame = this.#outbound.shift()
      ) {
        for (let at = 0; at < frame.byteLength;) {
          at += await this.#conn!.write(frame.subarray(at));
        }
      }
    } catch (error) {
      if (this.#phase !== "closed") this.#close(error as Error);
    } finally {
      this.#writing = false;
    }
  }

  close(error?: Error): Promise<void> {
    // As nats.js's Node transport: frames not written yet are dropped (a
    // drain wrote them already); waiting on a peer that stopped reading
    // would never end.
    this.#close(error);
    return Promise.resolve();
  }

  disconnect(): void {
    this.#close(undefined);
  }

  closed(): Promise<void | Error> {
    return this.#closed.promise;
  }

  /** Drops the connection without telling the protocol handler. */
  discard(): void {
    this.#phase = "closed";
    this.#release();
  }

  #close(error: Error | undefined): void {
    if (this.#phase === "closed") return;
    const wasOpen = this.#phase === "open";
    this.#phase = "closed";
    this.closeError = error;
    this.#release();
    // As nats.js's own transports: a dial that failed is reported by `connect`.
    if (wasOpen) this.#closed.resolve(error);
  }

  #release(): void {
    this.#dialing.abort();
    this.#outbound = [];
    const conn = this.#conn;
    this.#conn = undefined;
    try {
      conn?.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

/**
 * Connects like `connect` of `@nats-io/transport-node`, over
 * {@linkcode DenoTransport} (a new one per dial, reconnects included).
 */
export function connectEngine(
  options: ConnectionOptions,
): Promise<NatsConnection> {
  setTransportFactory({
    factory: () => new DenoTransport(),
    dnsResolveFn: nodeResolveHost,
  });
  return NatsConnectionImpl.connect(options);
}
