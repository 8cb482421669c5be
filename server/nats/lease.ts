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
}

/**
 * A lease held by this node; renews itself until released.
 *
 * @example
 * ```ts ignore
 * const lease = await Lease.take(engine.leases, id, { node: engine.node, leaseMs: 5000 });
 * lease.onLost = (why) => console.error(why);
 * await lease.release();
 * ```
 */
export class Lease {
  readonly #kv: KV;
  readonly #key: string;
  readonly #record: LeaseRecord;
  #revision: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> = Promise.resolve();
  #lastRenewed = performance.now();
  /** Why the lease was lost, once it was. */
  lost: string | undefined;
  /** Called once when the lease is lost. */
  onLost: ((reason: string) => void) | undefined;

  private constructor(
    kv: KV,
    key: string,
    record: LeaseRecord,
    revision: number,
  ) {
    this.#kv = kv;
    this.#key = key;
    this.#record = record;
    this.#revision = revision;
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.#renew());
    }, Math.max(1, Math.floor(record.leaseMs / 3)));
  }

  /** Takes the lease of `key`; throws if another node holds it. */
  static async take(kv: KV, key: string, record: LeaseRecord): Promise<Lease> {
    const revision = await kv.create(key, JSON.stringify(record));
    return new Lease(kv, key, record, revision);
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
      if (/wrong last sequence/i.test(message)) {
        this.#lose(`another node took the lease of ${this.#key}`);
      } else if (performance.now() - this.#lastRenewed > this.#record.leaseMs) {
        this.#lose(
          `the lease of ${this.#key} could not be renewed for ${this.#record.leaseMs} ms: ${message}`,
        );
      }
      // Otherwise the engine is briefly away: the next renewal retries.
    }
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
      await this.#kv.delete(this.#key);
    } catch (error) {
      // The key then ages out of every watcher's judgement like a dead node's.
      console.error(
        `spool: could not delete the lease of ${this.#key}:`,
        error,
      );
    }
  }
}
