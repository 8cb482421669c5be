/**
 * The engine store: a {@linkcode ResourceStore} on NATS JetStream shared by
 * every Spool node on the same engine. Bytes are pieces on segment subjects,
 * statuses are fenced messages in the same stream (see `subjects.ts`), and
 * each upload holds a lease while it is live.
 *
 * @module
 */

import { CatchUpHash } from "./_catch_up_hash.ts";
import { headers } from "@nats-io/transport-node";
import { isTerminal, type ResourceStatus } from "../../protocol/status.ts";
import { InvalidResourceIdError } from "../file_store.ts";
import { isResourceId } from "../resource_id.ts";
import {
  type ResourceStore,
  type ResourceWriter,
  TakenOverError,
} from "../store.ts";
import type { NatsEngine } from "./engine.ts";
import { Lease } from "./lease.ts";
import { PieceWriter } from "./_piece_writer.ts";
import { readRange, segmentEnd, storedEnd } from "./_range_reader.ts";
import { StatusPublisher } from "./_status_publisher.ts";
import { FencedError } from "./_publish.ts";
import {
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
 * An upload this node took over from another: the writer continuing it,
 * the status that fenced the other node out, and the bytes already stored.
 *
 * @example
 * ```ts ignore
 * const taken = await store.takeOver(id);
 * if (taken) console.log(`resuming at ${taken.written} from ${taken.from}`);
 * ```
 */
export interface TakenOver {
  /** Writes the bytes from `written` on. */
  writer: ResourceWriter;
  /** The status this node published to take the upload (size `written`). */
  status: ResourceStatus;
  /** Bytes stored without a gap: the durable offset the uploader resumes from. */
  written: number;
  /** The SHA-256 of the upload, reading those bytes back meanwhile. */
  hash: CatchUpHash;
  /** The node that held the upload. */
  from: string;
}

/** Attempts to fence the previous holder out (it may checkpoint meanwhile). */
const FENCE_ATTEMPTS = 5;

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
  /** Statuses of other nodes may fence this node's out. */
  readonly shared = true;

  /** A store on `engine`. */
  constructor(engine: NatsEngine, options: JetStreamStoreOptions = {}) {
    this.#engine = engine;
    this.#ownsEngine = options.ownsEngine ?? false;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.statuses = new StatusPublisher(engine.js, engine.jsm, engine.node);
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
    const lease = await Lease.take(this.#engine, id, {
      node: this.#engine.node,
      leaseMs: this.#leaseMs,
    });
    try {
      await this.statuses.publish(status, { after: 0 });
    } catch (error) {
      await lease.release();
      throw error;
    }
    return this.#writer(lease, status, status.size);
  }

  /** The writer of an upload this node holds the lease of. */
  #writer(lease: Lease, status: ResourceStatus, offset: number): PieceWriter {
    const id = status.id;
    this.#leases.set(id, lease);
    const parts = {
      pieces: this.#engine.pieces,
      statuses: this.statuses,
      lease,
      yielded: () => this.#yielded(id, lease),
    };
    return new PieceWriter(parts, status, offset);
  }

  /**
   * Another node holds upload `id` now: let its lease go here. The last
   * sequence this node published is kept, so that any later status from
   * here stays fenced out (a retried save must not land after the new truth).
   */
  #yielded(id: string, lease: Lease): void {
    if (this.#leases.get(id) !== lease) return;
    this.#leases.delete(id);
    // Deletes the key only if it is still ours (a node failed the upload).
    lease.release().catch((error) =>
      console.error(`spool: could not let go of the lease of ${id}:`, error)
    );
  }

  /**
   * Takes the live upload `id` over from the node holding it (its uploader
   * resumed here): takes its lease by compare-and-set, finds where the bytes
   * stored without a gap end (reading only past the last checkpoint), and
   * publishes a status fenced after the last one, so that the other node's
   * later statuses are refused. The hash reads the stored bytes back in the
   * background. Resolves with `undefined` when the upload is not live any
   * more.
   */
  async takeOver(id: string): Promise<TakenOver | undefined> {
    checkedId(id);
    const taken = await Lease.takeOver(this.#engine, id, {
      node: this.#engine.node,
      leaseMs: this.#leaseMs,
    });
    try {
      const fenced = await this.#fence(id);
      if (fenced === undefined) {
        await taken.lease.release();
        return undefined;
      }
      const writer = this.#writer(taken.lease, fenced.status, fenced.written);
      return { ...fenced, writer, from: taken.from };
    } catch (error) {
      await taken.lease.release();
      throw error;
    }
  }

  /**
   * Publishes the status that fences the previous holder out, at the end
   * of the bytes stored without a gap; `undefined` if the upload ended
   * meanwhile.
   */
  async #fence(
    id: string,
  ): Promise<
    { status: ResourceStatus; written: number; hash: CatchUpHash } | undefined
  > {
    let written = 0;
    for (let attempt = 1;; attempt++) {
      const last = await this.statuses.last(id, { fromLeader: true });
      if (last?.status === undefined || isTerminal(last.status)) {
        return undefined;
      }
      // The checkpoint counts stored bytes only: what is past it may be too.
      written = await storedEnd(
        this.#engine.jsm,
        id,
        Math.max(written, last.status.size),
      );
      const status: ResourceStatus = {
        ...last.status,
        status: written === 0 ? last.status.status : "IN_PROGRESS",
        size: written,
        updatedAt: new Date().toISOString(),
      };
      try {
        await this.statuses.publish(status, {
          after: last.seq,
          tag: "take",
        });
        const jsm = this.#engine.jsm;
        const hash = new CatchUpHash(
          written,
          (start, end, signal) => readRange(jsm, id, start, end, signal),
        );
        return { status, written, hash };
      } catch (error) {
        // The previous holder checkpointed in between: look again.
        if (!(error instanceof FencedError) || attempt === FENCE_ATTEMPTS) {
          throw error;
        }
      }
    }
  }

  /**
   * The last status any node stored for `id`, from the stream's leader (it
   * decides look-ups and hand-overs: a replica may not have it yet).
   */
  async lastStatus(id: string): Promise<ResourceStatus | undefined> {
    const last = await this.statuses.last(checkedId(id), { fromLeader: true });
    return last?.status;
  }

  /**
   * Stores `status` after this node's last one; a final one releases the
   * lease. Throws {@linkcode TakenOverError} when another node's status
   * came in between (it took the upload over, or failed it).
   */
  async save(status: ResourceStatus): Promise<void> {
    const id = checkedId(status.id);
    try {
      await this.statuses.publish(status);
    } catch (error) {
      if (!(error instanceof FencedError)) throw error;
      const lease = this.#leases.get(id);
      if (lease) this.#yielded(id, lease);
      throw new TakenOverError(id, error.message);
    }
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
      // The furthest piece, not the last stored: pieces may come out of order.
      const end = await segmentEnd(this.#engine.jsm, id, segment);
      if (end === undefined) return Math.max(size, last?.status?.size ?? 0);
      size = end;
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
        // Not the owner's message id after the same status (see the sweeper's).
        tag: "delete",
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
