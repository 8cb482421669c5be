/**
 * Upload leases: the node taking an upload holds a key in the lease bucket
 * and rewrites it every third of the lease, each write conditional on the
 * revision it wrote last (a compare-and-set): a node that lost the key to
 * another learns it at its next renewal. Other nodes judge a lease by
 * whether its revision moves, on their own clocks, so clock skew between
 * nodes does not matter.
 *
 * @module
 */

import type { KV } from "@nats-io/kv";
import type { JetStreamManager } from "@nats-io/jetstream";
import { LEASE_BUCKET } from "./subjects.ts";

/**
 * The lease bucket and the manager that reads it from its stream's leader:
 * a KV `get` is a direct get, which a replica may answer from before the
 * latest write, and a stale read must not decide that a lease was lost.
 */
export interface LeaseBucket {
  /** The bucket. */
  leases: KV;
  /** Reads its keys from the leader. */
  jsm: JetStreamManager;
}

/** A key as the bucket's leader has it. */
interface LeaderEntry {
  revision: number;
  /** The record, or `undefined` for a deleted or purged key. */
  record: LeaseRecord | undefined;
}

/**
 * What a lease key holds.
 *
 * @example
 * ```ts
 * import type { LeaseRecord } from "./lease.ts";
 * const record: LeaseRecord = { node: "host:123:ab12cd34", leaseMs: 5000 };
 * ```
 */
export interface LeaseRecord {
  /** The node holding the upload. */
  node: string;
  /** How long the holder may go without renewing. */
  leaseMs: number;
  /**
   * Which take of the lease wrote the key (random per {@linkcode Lease}):
   * a write of ours whose acknowledgement was lost is then told apart from
   * another node's (or an earlier take's) write.
   */
  holder?: string;
}

/**
 * A lease held by this node; renews itself until released.
 *
 * @example
 * ```ts ignore
 * const lease = await Lease.take(engine, id, { node: engine.node, leaseMs: 12_000 });
 * lease.onLost = (why) => console.error(why);
 * await lease.release();
 * ```
 */
export class Lease {
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #key: string;
  readonly #record: LeaseRecord;
  #revision: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> = Promise.resolve();
  #lastRenewed = performance.now();
  /** Why the lease was lost, once it was. */
  lost: string | undefined;
  /** Whether it was lost to another node that took it (not to an absent engine). */
  taken = false;
  /** Called once when the lease is lost. */
  onLost: ((reason: string) => void) | undefined;
  readonly #takenOver = Promise.withResolvers<string>();

  private constructor(
    bucket: LeaseBucket,
    key: string,
    record: LeaseRecord,
    revision: number,
  ) {
    this.#kv = bucket.leases;
    this.#jsm = bucket.jsm;
    this.#key = key;
    this.#record = record;
    this.#revision = revision;
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.#renew());
    }, Math.max(1, Math.floor(record.leaseMs / 3)));
  }

  /** Takes the lease of `key`; throws if another node holds it. */
  static async take(
    bucket: LeaseBucket,
    key: string,
    record: LeaseRecord,
  ): Promise<Lease> {
    const held = { ...record, holder: crypto.randomUUID() };
    const revision = await bucket.leases.create(key, JSON.stringify(held));
    return new Lease(bucket, key, held, revision);
  }

  /**
   * Takes the lease of `key` from the node holding it: a write conditional
   * on the revision just read (a compare-and-set), retried when the holder
   * renewed in between. That node learns it at its next renewal. A key no
   * node holds (a takeover that failed half-way let it go) is created.
   * Whether the upload is still live is the caller's to check, by its
   * status. Resolves with the lease and the node it was taken from.
   */
  static async takeOver(
    bucket: LeaseBucket,
    key: string,
    record: LeaseRecord,
  ): Promise<{ lease: Lease; from: string }> {
    const kv = bucket.leases;
    const ours = { ...record, holder: crypto.randomUUID() };
    for (let attempt = 1;; attempt++) {
      const entry = await readOnLeader(bucket.jsm, key);
      const held = entry?.record !== undefined;
      const from = entry?.record?.node ?? "no node";
      try {
        const revision = held
          ? await kv.update(key, JSON.stringify(ours), entry!.revision)
          : await kv.create(key, JSON.stringify(ours));
        return { lease: new Lease(bucket, key, ours, revision), from };
      } catch (error) {
        // The holder renewed between our read and write: read again.
        if (!isWrongRevision(error) || attempt === TAKE_OVER_ATTEMPTS) {
          throw error;
        }
      }
    }
  }

  /**
   * Looks whether the key is still this lease's (after any renewal under
   * way); if another node took it, the lease is lost as taken. Resolves
   * with whether it is still held.
   */
  check(): Promise<boolean> {
    const checking = this.#renewing.then(() => this.#check());
    this.#renewing = checking.then(() => {});
    return checking;
  }

  async #check(): Promise<boolean> {
    if (this.lost) return false;
    if (await this.#stillOurs()) return true;
    this.#loseTaken();
    return false;
  }

  /**
   * Whether the key still holds this take's record. A renewal whose
   * acknowledgement was lost (a timeout while the bucket elects a leader)
   * may have been stored: its revision is then adopted, since only this
   * take writes its `holder`.
   */
  async #stillOurs(): Promise<boolean> {
    const entry = await readOnLeader(this.#jsm, this.#key);
    if (entry?.record === undefined) return false;
    if (entry.revision === this.#revision) return true;
    if (entry.record.holder !== this.#record.holder) return false;
    this.#revision = entry.revision;
    return true;
  }

  #loseTaken(): void {
    this.taken = true;
    this.#lose(`another node took the lease of ${this.#key}`);
    this.#takenOver.resolve(this.lost!);
  }

  /** Resolves with the reason once another node took this lease (never otherwise). */
  get takenOver(): Promise<string> {
    return this.#takenOver.promise;
  }

  async #renew(): Promise<void> {
    if (this.#timer === undefined || this.lost) return;
    try {
      this.#revision = await this.#kv.update(
        this.#key,
        JSON.stringify(this.#record),
        this.#revision,
      );
      this.#lastRenewed = performance.now();
    } catch (error) {
      const message = (error as Error).message;
      if (isWrongRevision(error)) {
        await this.#afterWrongRevision();
      } else if (performance.now() - this.#lastRenewed > this.#record.leaseMs) {
        this.#lose(
          `the lease of ${this.#key} could not be renewed for ${this.#record.leaseMs} ms: ${message}`,
        );
      }
      // Otherwise the engine is briefly away: the next renewal retries.
    }
  }

  /** A renewal was refused: lost, unless the key is still this take's. */
  async #afterWrongRevision(): Promise<void> {
    try {
      if (await this.#stillOurs()) {
        this.#lastRenewed = performance.now();
        return;
      }
    } catch (error) {
      // The engine is away: the next renewal looks again.
      console.error(`spool: could not read the lease of ${this.#key}:`, error);
      return;
    }
    this.#loseTaken();
  }

  #lose(reason: string): void {
    this.lost = reason;
    this.#stop();
    this.onLost?.(reason);
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops renewing and deletes the key (the upload ended). */
  async release(): Promise<void> {
    this.#stop();
    await this.#renewing;
    if (this.lost) return;
    try {
      // Only our own revision: a node that took the key keeps it.
      await this.#kv.delete(this.#key, { previousSeq: this.#revision });
    } catch (error) {
      if (isWrongRevision(error)) {
        // A renewal stored without its acknowledgement moved the revision.
        if (await this.#stillOurs()) return await this.release();
        return;
      }
      // The key then ages out of every watcher's judgement like a dead node's.
      console.error(
        `spool: could not delete the lease of ${this.#key}:`,
        error,
      );
    }
  }
}

/**
 * Key `key` of the lease bucket as its stream's leader has it (a message
 * get, not a direct get), or `null` if it was never written.
 */
async function readOnLeader(
  jsm: JetStreamManager,
  key: string,
): Promise<LeaderEntry | null> {
  const message = await jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, {
    last_by_subj: `$KV.${LEASE_BUCKET}.${key}`,
  });
  if (message === null) return null;
  const operation = message.header?.get(KV_OPERATION_HEADER) ?? "";
  const deleted = operation === "DEL" || operation === "PURGE";
  return {
    revision: message.seq,
    record: deleted ? undefined : message.json<LeaseRecord>(),
  };
}

/** The header a KV bucket marks deletes and purges with. */
const KV_OPERATION_HEADER = "KV-Operation";

/** Attempts of {@linkcode Lease.takeOver}: a holder renews every third of its lease, so two suffice unless several nodes race. */
const TAKE_OVER_ATTEMPTS = 5;

/** Whether a conditional write was refused because the key had moved on. */
function isWrongRevision(error: unknown): boolean {
  return /wrong last sequence/i.test((error as Error).message ?? "");
}
