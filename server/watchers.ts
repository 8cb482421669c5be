/**
 * Watchers per resource and in all (download sockets, HTTP follows, SSE
 * streams), for the watcher limits and for telling a resource's watchers
 * that it expired. A socket is counted once it opens, not at the upgrade:
 * a client that resets during the handshake leaves a socket that never
 * opens nor closes, and counting it leaked a slot for good.
 *
 * @module
 */

import type { SpoolError } from "../protocol/errors.ts";
import { limitExceeded, type ServerLimits } from "./limits.ts";
import type { Resource } from "./resource.ts";

/**
 * One watcher of a resource, whatever carries it: a download socket, an
 * HTTP `?follow=1` body, an SSE stream (the viewer uses both).
 *
 * @example
 * ```ts
 * import type { Watcher } from "./watchers.ts";
 * const ends: (() => void)[] = [];
 * const watcher: Watcher = {
 *   kind: "an HTTP follow",
 *   onEnd: (handler) => ends.push(handler),
 *   expire: (error) => console.log(error.message),
 * };
 * ```
 */
export interface Watcher {
  /** What it is, for refusals: "a download socket", "an HTTP follow", … */
  readonly kind: string;
  /** Calls `handler` once the watcher ends, however it ends. */
  onEnd(handler: () => void): void;
  /** Ends it because its resource expired, telling it `error`. */
  expire(error: SpoolError): void;
}

/**
 * The watchers of a server.
 *
 * @example
 * ```ts ignore
 * const watchers = new Watchers(limits);
 * const refusal = watchers.admit(resource, peer); // once the socket opened
 * ```
 */
export class Watchers {
  readonly #limits: Pick<
    ServerLimits,
    "maxWatchers" | "maxWatchersPerResource"
  >;
  readonly #byResource = new Map<Resource, Set<Watcher>>();
  #total = 0;

  /** Watchers within `limits`. */
  constructor(
    limits: Pick<ServerLimits, "maxWatchers" | "maxWatchersPerResource">,
  ) {
    this.#limits = limits;
  }

  /** Watchers in all. */
  get total(): number {
    return this.#total;
  }

  /**
   * Counts `watcher`, which just began, as a watcher of `resource` until it
   * ends; returns the `limit-exceeded` error instead if a limit is reached.
   */
  admit(resource: Resource, watcher: Watcher): SpoolError | undefined {
    const open = this.#byResource.get(resource) ?? new Set<Watcher>();
    const { maxWatchers, maxWatchersPerResource } = this.#limits;
    if (open.size >= maxWatchersPerResource) {
      return limitExceeded(
        "maxWatchersPerResource",
        maxWatchersPerResource,
        `${watcher.kind} on resource ${resource.status.id} (${open.size} open)`,
      );
    }
    if (this.#total >= maxWatchers) {
      return limitExceeded(
        "maxWatchers",
        maxWatchers,
        `${watcher.kind} (${this.#total} open on the server)`,
      );
    }
    this.#byResource.set(resource, open);
    open.add(watcher);
    this.#total++;
    watcher.onEnd(() => {
      open.delete(watcher);
      this.#total--;
      if (open.size === 0 && this.#byResource.get(resource) === open) {
        this.#byResource.delete(resource);
      }
    });
    return undefined;
  }

  /** The watchers of `resource`. */
  of(resource: Resource): Watcher[] {
    return [...this.#byResource.get(resource) ?? []];
  }
}
