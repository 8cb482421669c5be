/**
 * Download sockets per resource and in all, for the watcher limits and for
 * telling a resource's watchers that it expired. A socket is counted once
 * it opens, not at the upgrade: a client that resets during the handshake
 * leaves a socket that never opens nor closes, and counting it leaked a
 * slot for good.
 *
 * @module
 */

import type { SpoolError } from "../protocol/errors.ts";
import { limitExceeded, type ServerLimits } from "./limits.ts";
import type { PeerSocket } from "./_peer_socket.ts";
import type { Resource } from "./resource.ts";

/**
 * The open download sockets of a server.
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
  readonly #byResource = new Map<Resource, Set<PeerSocket>>();
  #total = 0;

  /** Watchers within `limits`. */
  constructor(
    limits: Pick<ServerLimits, "maxWatchers" | "maxWatchersPerResource">,
  ) {
    this.#limits = limits;
  }

  /** Open download sockets in all. */
  get total(): number {
    return this.#total;
  }

  /**
   * Counts `peer`, which just opened, as a watcher of `resource` until it
   * ends; returns the `limit-exceeded` error instead if a limit is reached.
   */
  admit(resource: Resource, peer: PeerSocket): SpoolError | undefined {
    const open = this.#byResource.get(resource) ?? new Set<PeerSocket>();
    const { maxWatchers, maxWatchersPerResource } = this.#limits;
    if (open.size >= maxWatchersPerResource) {
      return limitExceeded(
        "maxWatchersPerResource",
        maxWatchersPerResource,
        `a download socket on resource ${resource.status.id} (${open.size} open)`,
      );
    }
    if (this.#total >= maxWatchers) {
      return limitExceeded(
        "maxWatchers",
        maxWatchers,
        `a download socket (${this.#total} open on the server)`,
      );
    }
    this.#byResource.set(resource, open);
    open.add(peer);
    this.#total++;
    peer.onEnd(() => {
      open.delete(peer);
      this.#total--;
      if (open.size === 0 && this.#byResource.get(resource) === open) {
        this.#byResource.delete(resource);
      }
    });
    return undefined;
  }

  /** The open download sockets of `resource`. */
  of(resource: Resource): PeerSocket[] {
    return [...this.#byResource.get(resource) ?? []];
  }
}
