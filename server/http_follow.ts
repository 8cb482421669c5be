/**
 * Follow over plain HTTP: a response body that streams a resource from an
 * offset to its end as checkpoints advance (`curl -N URL?follow=1`).
 *
 * It is a pull-based `ReadableStream` with no queue of its own: the next
 * chunk is read (through a {@linkcode FollowCursor}: the recent tail in
 * memory, or the store) only when the HTTP writer asks for it, so a slow
 * client holds at most a chunk or two in memory. It watches the resource
 * while open and stops when it ends, when the client goes away (cancel) and
 * when the server shuts down.
 *
 * @module
 */

import type { ResourceStatus } from "../protocol/status.ts";
import { lineIndexOf } from "./line_index.ts";
import { loggable } from "./_text.ts";
import type { Resource } from "./resource.ts";
import { FollowCursor } from "./follow_cursor.ts";
import { cutOffReason } from "./_http_watcher.ts";
import { Notifier } from "../protocol/notifier.ts";

/** Options of {@linkcode followBody}. */
export interface FollowBodyOptions {
  /** First byte to send. */
  start: number;
  /**
   * Line mode: while the upload runs, send only up to the last newline
   * within the checkpoint; the final unterminated line goes out once
   * `COMPLETED`.
   */
  lines: boolean;
  /** Server shutdown, or the resource expired: the body is aborted. */
  signal: AbortSignal;
  /** Called once the body ended, however it ended. */
  onEnd?: () => void;
  /** Largest chunk read at once. Default 256 KiB. */
  chunkSize?: number;
}

const DEFAULT_CHUNK_SIZE = 256 * 1024;
/** Characters of a failure reason put in the (logged) abort message. */
const MAX_LOGGED_REASON = 500;

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const joined = new Uint8Array(
    parts.reduce((total, part) => total + part.byteLength, 0),
  );
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.byteLength;
  }
  return joined;
}

/**
 * A response body following `resource` from `options.start` to its end. It
 * closes once the resource is `COMPLETED` and every byte is sent, and is
 * aborted (errored: the client sees a broken transfer) once the resource is
 * `FAILED` and the bytes readable up to its final size are sent, or when the
 * server shuts down. Deno logs the reason of an aborted body, a one-line
 * string.
 *
 * In line mode every chunk ends with a newline until `COMPLETED`, except
 * pieces of a line longer than `chunkSize`, whose rest is checkpointed and
 * follows without waiting for the uploader.
 *
 * @example
 * ```ts ignore
 * return new Response(followBody(resource, { start: 0, lines: false, signal }));
 * ```
 */
export function followBody(
  resource: Resource,
  options: FollowBodyOptions,
): ReadableStream<Uint8Array> {
  const { signal } = options;
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const id = resource.status.id;
  /** Where the next bytes come from (chunks of their own: they are given away). */
  const cursor = new FollowCursor(resource, options.start);
  /** Line mode: bytes taken but held back, the start of a line. */
  let carry: Uint8Array | undefined;
  let stopped = false;
  let pulling: Promise<void> | undefined;
  let unwatch: (() => void) | undefined;
  const changed = new Notifier();
  const notify = () => changed.notify();

  let controller: ReadableStreamDefaultController<Uint8Array>;
  const cutOff = () =>
    `spool: follow of resource ${id} cut off: ${cutOffReason(signal)}`;
  const onAbort = () => {
    // A pull in flight sees the abort; otherwise the body is cut off now,
    // even if the connection is not asking for more.
    if (pulling !== undefined || stopped) return notify();
    stopped = true;
    release().finally(() => controller.error(cutOff()));
  };

  const release = async () => {
    unwatch?.();
    unwatch = undefined;
    signal.removeEventListener("abort", onAbort);
    await cursor.close();
    options.onEnd?.();
  };

  /** The end this follower may send up to now. */
  const limitOf = async (status: ResourceStatus): Promise<number> => {
    if (!options.lines || status.status === "COMPLETED") return status.size;
    const index = lineIndexOf(resource);
    await index.extendTo(status.size, signal);
    return index.lastLineStart;
  };

  /** Takes the next bytes below `limit`, at most a chunk. */
  const take = async (limit: number): Promise<Uint8Array[]> => [
    await cursor.read(chunkSize, limit),
  ];

  /** Queues taken bytes; returns whether anything was queued. */
  const emit = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    pieces: Uint8Array[],
    atLimit: boolean,
  ): boolean => {
    if (!options.lines) {
      for (const piece of pieces) controller.enqueue(piece);
      return pieces.length > 0;
    }
    if (carry) pieces.unshift(carry);
    carry = undefined;
    const bytes = concat(pieces);
    if (bytes.byteLength === 0) return false;
    // The limit is a line end (or the final size): everything may go.
    if (atLimit) {
      controller.enqueue(bytes);
      return true;
    }
    const last = bytes.lastIndexOf(0x0a);
    if (
      last === bytes.byteLength - 1 ||
      (last === -1 && bytes.byteLength >= chunkSize)
    ) {
      controller.enqueue(bytes);
      return true;
    }
    if (last === -1) {
      carry = bytes;
      return false;
    }
    controller.enqueue(bytes.subarray(0, last + 1));
    carry = bytes.slice(last + 1);
    return true;
  };

  const step = async (
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> => {
    for (;;) {
      if (stopped) return;
      if (signal.aborted) {
        stopped = true;
        await release();
        controller.error(cutOff());
        return;
      }
      const status = resource.status;
      const limit = await limitOf(status);
      if (stopped) return;
      if (cursor.position < limit) {
        const before = cursor.position;
        const pieces = await take(limit);
        if (stopped) return;
        if (cursor.position === before) {
          throw new Error(
            `no bytes at ${before} though ${limit} are readable`,
          );
        }
        if (emit(controller, pieces, cursor.position >= limit)) return;
        continue;
      }
      if (status.status === "COMPLETED" && cursor.position >= status.size) {
        stopped = true;
        await release();
        controller.close();
        return;
      }
      if (status.status === "FAILED") {
        stopped = true;
        await release();
        controller.error(
          `spool: follow of resource ${id} aborted: the resource FAILED: ${
            loggable(status.error ?? "unknown reason", MAX_LOGGED_REASON)
          }`,
        );
        return;
      }
      // Wait for the next status (or a cancel, or shutdown).
      if (resource.status === status && !stopped && !signal.aborted) {
        await changed.wait();
      }
    }
  };

  return new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
      unwatch = resource.watch(() => notify());
      signal.addEventListener("abort", onAbort);
    },
    async pull() {
      pulling = step(controller).catch(async (error) => {
        if (stopped) return;
        stopped = true;
        await release();
        controller.error(
          signal.aborted
            ? cutOff()
            : `spool: follow of resource ${id} failed at byte ${cursor.position}: ${
              error instanceof Error ? error.message : error
            }`,
        );
      });
      await pulling;
      pulling = undefined;
    },
    async cancel() {
      stopped = true;
      notify();
      // Let a read in flight finish before its reader is closed.
      await pulling;
      await release();
    },
  }, { highWaterMark: 0 });
}
