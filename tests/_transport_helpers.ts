/** Helpers for the object-transport tests. */

import {
  type ReceivedHeader,
  type Receiver,
  type ReceiverOptions,
  type RequestEndEvent,
  startReceiver,
  type TransportError,
} from "../transport/mod.ts";
import { sha256 } from "./_helpers.ts";

export { randomBytes, sha256 } from "./_helpers.ts";
export { prng } from "../testing/seeded_random.ts";

/** A stream that yields `bytes` in pieces of at most `piece` bytes. */
export function chunked(
  bytes: Uint8Array,
  piece: number,
): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

/** What a recording handler saw. */
export interface Received {
  header: ReceivedHeader;
  sha?: string;
  length: number;
  error?: TransportError;
}

/** A receiver with one network "data", plus request-end events. */
export interface TestReceiver {
  receiver: Receiver;
  /** Resolves on the next request end matching `filter`. */
  nextRequestEnd(
    filter?: (event: RequestEndEvent) => boolean,
  ): Promise<RequestEndEvent>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a receiver on 127.0.0.1 with network "data". */
export async function startTestReceiver(
  options: Omit<ReceiverOptions, "onRequestEnd"> = {},
): Promise<TestReceiver> {
  const waiters: {
    filter: (event: RequestEndEvent) => boolean;
    resolve: (event: RequestEndEvent) => void;
  }[] = [];
  const receiver = await startReceiver({
    ...options,
    onRequestEnd(event) {
      for (let i = 0; i < waiters.length; i++) {
        if (waiters[i].filter(event)) {
          waiters[i].resolve(event);
          waiters.splice(i, 1);
          i--;
        }
      }
    },
  });
  return {
    receiver,
    nextRequestEnd(filter = () => true) {
      return new Promise((resolve) => waiters.push({ filter, resolve }));
    },
    [Symbol.asyncDispose]: () => receiver.close(),
  };
}

/** Registers a handler that hashes every body and records it in `into`. */
export function recordInto(
  receiver: Receiver,
  trname: string,
  into: Received[],
): URL {
  receiver.register("data", trname, async (header, body, error) => {
    if (error !== undefined) {
      into.push({ header, length: 0, error });
      return;
    }
    if (body === null) {
      into.push({ header, length: 0 });
      return;
    }
    const bytes = await new Response(body).bytes();
    into.push({ header, length: bytes.length, sha: await sha256(bytes) });
  });
  return receiver.url("data", trname);
}
