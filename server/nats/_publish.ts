/**
 * Publishing to the stream so that an engine restart loses nothing and
 * stores nothing twice: every publish has a message id (`Nats-Msg-Id`,
 * deduplicated by the stream) and is retried until the stream acknowledges
 * it or the deadline passes.
 *
 * @module
 */

import type { MsgHdrs } from "@nats-io/transport-node";
import type {
  JetStreamClient,
  PubAck,
  StreamExpectations,
} from "@nats-io/jetstream";
import { delay } from "@std/async/delay";

/** How long a publish is retried before the upload fails, in ms. */
export const PUBLISH_DEADLINE_MS = 30_000;
/** Each attempt waits this long for the stream's acknowledgement, in ms: a publish lost with a dying connection is retried soon (the same id is stored once). */
const ATTEMPT_TIMEOUT_MS = 2000;
/** Pause between attempts (the engine is restarting or electing a leader). */
const RETRY_PAUSE_MS = 250;

/** What one publish carries besides its subject and payload. */
export interface PublishOptions {
  /** The message id: the same bytes at the same place always get the same id. */
  msgID: string;
  /** Headers of the message. */
  headers?: MsgHdrs;
  /** Conditions the stream checks (a fenced status names the last one). */
  expect?: Partial<StreamExpectations>;
}

/**
 * Thrown when a status publish was refused because another status came in
 * between: another node took the resource over (or failed it).
 *
 * @example
 * ```ts
 * import { FencedError } from "./_publish.ts";
 * console.log(new FencedError("spool.s.x", "wrong last sequence: 3").code); // fenced
 * ```
 */
export class FencedError extends Error {
  /** The error's code. */
  readonly code = "fenced";
  /** Creates the error for a refused publish on `subject`. */
  constructor(subject: string, detail: string) {
    super(
      `the engine refused a status on ${subject} (${detail}); expected this node to still hold the upload: another node took it over or failed it`,
    );
    this.name = "FencedError";
  }
}

/** An answer from the stream that retrying cannot change. */
function isRefusal(error: unknown): boolean {
  const message = (error as Error).message ?? "";
  return /wrong last sequence|wrong last msg|maximum payload|message size exceeds maximum/i
    .test(message);
}

/**
 * Publishes `payload` on `subject`, retrying timeouts and lost connections
 * until {@linkcode PUBLISH_DEADLINE_MS}; throws {@linkcode FencedError} when
 * an expectation fails, and the last error once the deadline passed.
 *
 * @example
 * ```ts ignore
 * const ack = await publishReliably(js, "spool.d.ID.0", bytes, { msgID: "ID:0" });
 * ```
 */
export function publishReliably(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array | string,
  options: PublishOptions,
): Promise<PubAck> {
  return retryPublish(subject, (timeoutMs) =>
    js.publish(subject, payload, {
      msgID: options.msgID,
      headers: options.headers,
      expect: options.expect,
      timeout: timeoutMs,
    }));
}

/**
 * Makes `attempt` (one publish on `subject`, given how long to wait for its
 * acknowledgement) until the stream acknowledges it, as
 * {@linkcode publishReliably} does; every attempt must carry the same
 * message id.
 *
 * @example
 * ```ts ignore
 * const ack = await retryPublish("spool.d.ID.0", (timeoutMs) => publisher.publish(...));
 * ```
 */
export async function retryPublish(
  subject: string,
  attempt: (timeoutMs: number) => Promise<PubAck>,
): Promise<PubAck> {
  const deadline = performance.now() + PUBLISH_DEADLINE_MS;
  for (let count = 1;; count++) {
    try {
      return await attempt(ATTEMPT_TIMEOUT_MS);
    } catch (error) {
      if (isRefusal(error)) {
        if (/wrong last/i.test((error as Error).message)) {
          throw new FencedError(subject, (error as Error).message);
        }
        throw error;
      }
      if (performance.now() + RETRY_PAUSE_MS > deadline) {
        throw new Error(
          `the engine did not store a message on ${subject} after ${count} attempts in ${PUBLISH_DEADLINE_MS} ms: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
      // Backing off between attempts is the point: the engine is away.
      await delay(RETRY_PAUSE_MS);
    }
  }
}
