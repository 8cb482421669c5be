/**
 * A node's one data subscription per followed resource: a core NATS
 * subscription on the resource's segment subjects, which receives each
 * piece as the writer publishes it. Not a JetStream consumer: it costs the
 * engine no consumer state (creating one costs 11–18 ms here) and needs no
 * watchdog for a leader change (on nats-server 2.9.10 an ordered consumer
 * can go on heartbeating without delivering, see `status_feed.ts`). What it
 * misses (published while this node's connection was away, or before it
 * subscribed) is simply not in the tail, and followers read it by direct
 * get. What it receives may not all be stored (a publish the stream did
 * not take, a retry stored once and received twice), which is harmless:
 * followers are served only up to the checkpoint, which counts stored
 * bytes alone, and every piece holding a byte holds the same byte.
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { dataSubjects, OFFSET_HEADER } from "./subjects.ts";

/**
 * Starts receiving the pieces of resource `id`; returns the function that stops.
 *
 * @example
 * ```ts ignore
 * const stop = subscribePieces(engine.nc, id, (offset, bytes) => tail.add(offset, bytes, limit));
 * stop();
 * ```
 */
export type PieceSubscriber = (
  id: string,
  take: (offset: number, bytes: Uint8Array) => void,
) => () => void;

/**
 * The {@linkcode PieceSubscriber} of connection `nc`.
 *
 * @example
 * ```ts ignore
 * const subscribe = pieceSubscriber(engine.nc);
 * ```
 */
export function pieceSubscriber(nc: NatsConnection): PieceSubscriber {
  return (id, take) => {
    const subscription = nc.subscribe(dataSubjects(id), {
      callback(error, message) {
        if (error) {
          // Only the tail misses pieces: followers read them from the engine.
          console.error(`spool: the data subscription of ${id} failed:`, error);
          return;
        }
        const offset = Number(message.headers?.get(OFFSET_HEADER));
        // Not a piece of ours: nothing to place.
        if (!Number.isSafeInteger(offset) || offset < 0) return;
        const data = message.data;
        // A small piece is copied: its view would keep the whole socket read alive.
        take(
          offset,
          data.byteLength * 2 < data.buffer.byteLength ? data.slice() : data,
        );
      },
    });
    return () => subscription.unsubscribe();
  };
}
