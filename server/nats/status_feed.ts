/**
 * The status feed of one node: a single ordered consumer on every status
 * subject, starting with the last status of each resource and then
 * following new ones. It is how a node learns of resources other nodes
 * hold (listing, lookup) and of their checkpoints (followers): one engine
 * subscription per node, however many resources and watchers it has.
 *
 * @module
 */

import {
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
} from "@nats-io/jetstream";
import { delay } from "@std/async/delay";
import type { ResourceStatus } from "../../protocol/status.ts";
import type { NatsEngine } from "./engine.ts";
import {
  DELETED_HEADER,
  idOfStatusSubject,
  STATUS_SUBJECTS,
  STREAM,
} from "./subjects.ts";

/** Heartbeat of the feed's pulls: a lost pull (leader change) is noticed within about this, in ms. */
const FEED_HEARTBEAT_MS = 1000;
const FEED_EXPIRES_MS = 5000;
/** Heartbeats missed in a row after which the feed is opened anew. */
const FEED_STUCK_MISSES = 3;

/**
 * What the feed tells.
 *
 * @example
 * ```ts
 * import type { FeedHandlers } from "./status_feed.ts";
 * const handlers: FeedHandlers = {
 *   status: (status) => console.log(status.id, status.size),
 *   deleted: (id) => console.log(`${id} deleted`),
 * };
 * ```
 */
export interface FeedHandlers {
  /** A status of a resource (in stream order per resource). */
  status(status: ResourceStatus): void | Promise<void>;
  /** A resource was deleted. */
  deleted(id: string): void | Promise<void>;
}

/**
 * A running feed.
 *
 * @example
 * ```ts ignore
 * const feed = await StatusFeed.start(engine, handlers); // every resource is known now
 * await feed.stop();
 * ```
 */
export class StatusFeed {
  readonly #done: Promise<void>;
  readonly #stop: () => void;
  readonly #count: { handled: number };

  private constructor(
    done: Promise<void>,
    stop: () => void,
    count: { handled: number },
  ) {
    this.#done = done;
    this.#stop = stop;
    this.#count = count;
  }

  /** Status messages handled so far (for tests and metrics). */
  get handled(): number {
    return this.#count.handled;
  }

  /**
   * Starts the feed; resolves once the last status of every resource that
   * existed at start was handled.
   */
  static async start(
    engine: NatsEngine,
    handlers: FeedHandlers,
  ): Promise<StatusFeed> {
    const info = await engine.jsm.streams.info(STREAM, {
      subjects_filter: STATUS_SUBJECTS,
    });
    const loaded = Promise.withResolvers<void>();
    // num_subjects counts the whole stream; the filtered map is the statuses.
    if (Object.keys(info.state.subjects ?? {}).length === 0) loaded.resolve();
    const count = { handled: 0 };
    const feed = { messages: undefined as ConsumerMessages | undefined };
    let stopped = false;
    const done = (async () => {
      // Sequence of the last status handled: a restarted feed goes on after it.
      let last = 0;
      for (let stuck = false, restart = false; !stopped; restart = true) {
        const opened = await open(engine, last).catch((error) => {
          // The first open fails the start; a reopen waits for the engine.
          if (!restart) throw error;
          console.error("spool: reopening the status feed failed:", error);
          return delay(FEED_HEARTBEAT_MS);
        });
        if (opened === undefined) continue;
        if (stopped) {
          // Stopped while it was opening: nobody else will stop this one.
          opened.stop();
          return;
        }
        feed.messages = opened;
        const messages = opened;
        stuck = false;
        // A status stored after the last one handled, while a pull expired empty.
        const behind = () =>
          engine.jsm.direct.getMessage(STREAM, {
            seq: last + 1,
            next_by_subj: STATUS_SUBJECTS,
          }).then(
            (message) => message !== null,
            // The engine is away: the next expiry asks again.
            () => false,
          );
        const unwatch = watch(messages, behind, () => count.handled, () => {
          stuck = true;
          messages.stop();
        });
        try {
          for await (const message of messages) {
            await handle(message, handlers);
            last = message.seq;
            count.handled++;
            if (message.info.pending === 0) loaded.resolve();
          }
        } finally {
          unwatch();
        }
        if (!stuck) return;
        console.error(
          `spool: the status feed stopped delivering; following the statuses again from sequence ${
            last + 1
          }`,
        );
      }
    })();
    // Once loaded, this is a no-op; before, the start fails instead of hanging.
    done.then(
      () => loaded.reject(new Error("the status feed ended before it loaded")),
      loaded.reject,
    );
    await loaded.promise;
    return new StatusFeed(done, () => {
      stopped = true;
      feed.messages?.stop();
    }, count);
  }

  /** Stops the feed and waits for the message being handled. */
  async stop(): Promise<void> {
    this.#stop();
    try {
      await this.#done;
    } catch (error) {
      // Stopping while the engine is away: the node is leaving anyway.
      console.error("spool: the status feed ended with an error:", error);
    }
  }
}

/**
 * The feed's consumer from the start (the last status of each resource)
 * or, after `last`, every status after it.
 */
async function open(
  engine: NatsEngine,
  last: number,
): Promise<ConsumerMessages> {
  const consumer = await engine.js.consumers.get(
    STREAM,
    last === 0
      ? {
        filter_subjects: STATUS_SUBJECTS,
        deliver_policy: DeliverPolicy.LastPerSubject,
      }
      : {
        filter_subjects: STATUS_SUBJECTS,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: last + 1,
      },
  );
  return await consumer.consume({
    idle_heartbeat: FEED_HEARTBEAT_MS,
    expires: FEED_EXPIRES_MS,
  });
}

/**
 * Calls `stuck` once the consumer missed {@linkcode FEED_STUCK_MISSES}
 * heartbeats in a row (its server died, and the library keeps asking for a
 * consumer the cluster still places there), or once a pull expired empty
 * although a newer status is stored (`behind`): after a stream leader
 * change, a consumer can go on sending heartbeats and never a message
 * (seen with nats-server 2.9.10). Neither recovers by itself.
 */
function watch(
  messages: ConsumerMessages,
  behind: () => Promise<boolean>,
  handled: () => number,
  stuck: () => void,
): () => void {
  let watching = true;
  const give = (): void => {
    if (!watching) return;
    watching = false;
    stuck();
  };
  // Whatever the library tells (it may tell nothing while it recreates the
  // consumer), nothing handled for a whole pull while a status waits is stuck.
  // An expired pull alone is not: one asked for in a quiet spell expires in
  // the middle of the next burst, while its statuses are being handled.
  let seen = handled();
  let progressAt = performance.now();
  const idleForAPull = (): boolean => {
    if (handled() !== seen) {
      seen = handled();
      progressAt = performance.now();
    }
    return performance.now() - progressAt >= FEED_EXPIRES_MS;
  };
  const timer = setInterval(() => {
    if (idleForAPull()) behind().then((waiting) => waiting && give());
  }, FEED_EXPIRES_MS);
  (async () => {
    for await (const event of messages.status()) {
      const missed = event.type === "heartbeats_missed" &&
        event.count >= FEED_STUCK_MISSES;
      const expired = event.type === "debug" && event.code === 408;
      if (missed || (expired && idleForAPull() && await behind())) {
        return give();
      }
    }
  })().catch((error) =>
    // Only the watch ends; the feed itself reports its own errors.
    console.error("spool: watching the status feed failed:", error)
  );
  return () => {
    watching = false;
    clearInterval(timer);
  };
}

async function handle(message: JsMsg, handlers: FeedHandlers): Promise<void> {
  const id = idOfStatusSubject(message.subject);
  if (id === undefined) return;
  try {
    if (message.headers?.get(DELETED_HEADER)) await handlers.deleted(id);
    else await handlers.status(message.json<ResourceStatus>());
  } catch (error) {
    // One unreadable status must not stop the node learning of the others.
    console.error(
      `spool: the status at sequence ${message.seq} on ${message.subject} could not be used:`,
      error,
    );
  }
}
