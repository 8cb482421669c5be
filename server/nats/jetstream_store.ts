/**
 * The engine store: a {@linkcode ResourceStore} on NATS JetStream shared by
 * every Spool node on the same engine. Bytes are pieces on segment subjects,
 * statuses are fenced messages in the same stream (see `subjects.ts`), and
 * each upload holds a lease while it is live.
 *
 * @module
 */

import { headers } from "@nats-io/transport-node";
import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import { InvalidResourceIdError } from "../file_store.ts";
import { isResourceId } from "../resource_id.ts";
import type { ResourceStore, ResourceWriter } from "../store.ts";
import type { NatsEngine } from "./engine.ts";
import { Lease } from "./lease.ts";
import { PieceWriter } from "./_piece_writer.ts";
import { pieceOf, readRange } from "./_range_reader.ts";
import { StatusPublisher } from "./_status_publisher.ts";
import { FencedError } from "./_publish.ts";
import {
  dataSubject,
  dataSubjects,
  DELETED_HEADER,
  idOfStatusSubject,
  SEGMENT_BYTES,
  STATUS_SUBJECTS,
  statusSubject,
  STREAM,
} from "./subjects.ts";
import { DEFAULT_LEASE_MS } from "../defaults.ts";

/**
 * Options of {@linkcode JetStreamStore}.
 *
 * @example
 * ```ts
 * import type { JetStreamStoreOptions } from "./jetstream_store.ts";
 * const options: JetStreamStoreOptions = { leaseMs: 3000 };
 * ```
 */
export interface JetStreamStoreOptions {
  /** How long an upload's node may go without renewing its lease, in ms. Default 5000. */
  leaseMs?: number;
  /** Close the engine with the store. Default `false`. */
  ownsEngine?: boolean;
}

/**
 * Resources in JetStream, shared by every node on the engine.
 *
 * @example
 * ```ts ignore
 * const engine = await NatsEngine.connect({ servers: ["nats://127.0.0.1:4222"] });
 * const store = new JetStreamStore(engine);
 * console.log((await store.list()).length);
 * ```
 */
export class JetStreamStore implements ResourceStore {
  readonly #engine: NatsEngine;
  readonly #leaseMs: number;
  /** Publishes this node's statuses, fenced. */
  readonly statuses: StatusPublisher;
  readonly #leases = new Map<string, Lease>();
  readonly #ownsEngine: boolean;

  /** A store on `engine`. */
  constructor(engine: NatsEngine, options: JetStreamStoreOptions = {}) {
    this.#engine = engine;
    this.#ownsEngine = options.ownsEngine ?? false;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.statuses = new StatusPublisher(engine.js, engine.jsm);
  }

  /** The engine the store is on. */
  get engine(): NatsEngine {
    return this.#engine;
  }

  /** How long an upload's node may go without renewing its lease. */
  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** Takes the lease of the new upload, then stores its first status. */
  async create(status: ResourceStatus): Promise<ResourceWriter> {
    const id = checkedId(status.id);
    const lease = await Lease.take(this.#engine.leases, id, {
      node: this.#engine.node,
      leaseMs: this.#leaseMs,
    });
    try {
      await this.statuses.publish(status, { after: 0 });
    } catch (error) {
      await lease.release();
      throw error;
    }
    this.#leases.set(id, lease);
    const parts = { js: this.#engine.js, statuses: this.statuses, lease };
    return new PieceWriter(parts, status, status.size);
  }

  /** Stores `status` after this node's last one; a final one releases the lease. */
  async save(status: ResourceStatus): Promise<void> {
    const id = checkedId(status.id);
    await this.statuses.publish(status);
    if (!isTerminal(status)) return;
    this.statuses.forget(id);
    const lease = this.#leases.get(id);
    this.#leases.delete(id);
    await lease?.release();
  }

  /** Bytes `[start, end)` by direct get; the caller keeps `end` within the checkpoint. */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
    return readRange(this.#engine.jsm, checkedId(id), start, end);
  }

  /** The end of the last piece stored: the bytes durable in the engine. */
  async dataSize(id: string): Promise<number> {
    checkedId(id);
    const last = await this.statuses.last(id);
    let segment = Math.floor((last?.status?.size ?? 0) / SEGMENT_BYTES);
    let size = 0;
    for (;; segment++) {
      const message = await this.#engine.jsm.direct.getMessage(STREAM, {
        last_by_subj: dataSubject(id, segment),
      });
      if (message === null) return Math.max(size, last?.status?.size ?? 0);
      const piece = pieceOf(message);
      size = piece.offset + piece.bytes.byteLength;
    }
  }

  /** The last status of every resource not deleted. */
  async list(): Promise<ResourceStatus[]> {
    const info = await this.#engine.jsm.streams.info(STREAM, {
      subjects_filter: STATUS_SUBJECTS,
    });
    const statuses: ResourceStatus[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const id = idOfStatusSubject(subject);
      if (id === undefined || !isResourceId(id)) continue;
      const last = await this.statuses.last(id);
      if (last?.status) statuses.push(last.status);
    }
    return statuses;
  }

  /**
   * Purges the bytes of `id` and replaces its statuses by a deletion
   * marker, which tells every node's status feed (and later listings).
   */
  async delete(id: string): Promise<void> {
    checkedId(id);
    const jsm = this.#engine.jsm;
    await jsm.streams.purge(STREAM, { filter: dataSubjects(id) });
    const marker = headers();
    marker.set(DELETED_HEADER, "1");
    const last = await this.statuses.last(id);
    if (last !== undefined && last.status === undefined) return;
    try {
      await this.statuses.publish({ id } as ResourceStatus, {
        after: last?.seq ?? 0,
        headers: marker,
        payload: "",
      });
    } catch (error) {
      // Another node's retention deleted it first: one marker is enough.
      if (!(error instanceof FencedError)) throw error;
      if ((await this.statuses.last(id))?.status !== undefined) throw error;
      return;
    }
    this.statuses.forget(id);
    await jsm.streams.purge(STREAM, { filter: statusSubject(id), keep: 1 });
  }

  /**
   * Stops renewing leases (the server's close failed their uploads), and
   * closes the engine if the store owns it.
   */
  async close(): Promise<void> {
    const leases = [...this.#leases.values()];
    this.#leases.clear();
    await Promise.all(leases.map((lease) => lease.release()));
    if (this.#ownsEngine) await this.#engine.close();
  }
}

function checkedId(id: string): string {
  if (!isResourceId(id)) throw new InvalidResourceIdError(id);
  return id;
}
