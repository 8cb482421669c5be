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
  const body = new FollowBody(resource, options);
  return new ReadableStream<Uint8Array>({
    start: (controller) => body.start(controller),
    pull: () => body.pull(),
    cancel: () => body.cancel(),
  }, { highWaterMark: 0 });
}

/** One follow body: its cursor, its line carry and how it ends. */
class FollowBody {
  readonly #resource: Resource;
  readonly #options: FollowBodyOptions;
  readonly #signal: AbortSignal;
  readonly #chunkSize: number;
  /** Where the next bytes come from (chunks of their own: they are given away). */
  readonly #cursor: FollowCursor;
  readonly #changed = new Notifier();
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Line mode: bytes taken but held back, the start of a line. */
  #carry: Uint8Array | undefined;
  #stopped = false;
  #pulling: Promise<void> | undefined;
  #unwatch: (() => void) | undefined;
  readonly #onAbort = () => this.#abort();

  constructor(resource: Resource, options: FollowBodyOptions) {
    this.#resource = resource;
    this.#options = options;
    this.#signal = options.signal;
    this.#chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.#cursor = new FollowCursor(resource, options.start);
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
    this.#unwatch = this.#resource.watch(() => this.#changed.notify());
    this.#signal.addEventListener("abort", this.#onAbort);
  }

  async pull(): Promise<void> {
    this.#pulling = this.#step().catch((error) => this.#failed(error));
    await this.#pulling;
    this.#pulling = undefined;
  }

  async cancel(): Promise<void> {
    this.#stopped = true;
    this.#changed.notify();
    // Let a read in flight finish before its reader is closed.
    await this.#pulling;
    await this.#release();
  }

  get #id(): string {
    return this.#resource.status.id;
  }

  #cutOff(): string {
    return `spool: follow of resource ${this.#id} cut off: ${
      cutOffReason(this.#signal)
    }`;
  }

  /**
   * Shutdown or expiry: a pull in flight sees it; otherwise the body is
   * cut off now, even if the connection is not asking for more.
   */
  #abort(): void {
    if (this.#pulling !== undefined || this.#stopped) {
      return this.#changed.notify();
    }
    this.#end({ error: this.#cutOff() });
  }

  async #release(): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#signal.removeEventListener("abort", this.#onAbort);
    await this.#cursor.close();
    this.#options.onEnd?.();
  }

  /** Ends the body: closes it, or errors it with `error` (a one-line reason). */
  async #end(how: { error?: string } = {}): Promise<void> {
    if (this.#stopped && how.error === undefined) return;
    this.#stopped = true;
    await this.#release();
    if (how.error === undefined) this.#controller.close();
    else this.#controller.error(how.error);
  }

  async #failed(error: unknown): Promise<void> {
    if (this.#stopped) return;
    await this.#end({
      error: this.#signal.aborted
        ? this.#cutOff()
        : `spool: follow of resource ${this.#id} failed at byte ${this.#cursor.position}: ${
          error instanceof Error ? error.message : error
        }`,
    });
  }

  /** The end this follower may send up to now. */
  async #limitOf(status: ResourceStatus): Promise<number> {
    if (!this.#options.lines || status.status === "COMPLETED") {
      return status.size;
    }
    const index = lineIndexOf(this.#resource);
    await index.extendTo(status.size, this.#signal);
    return index.lastLineStart;
  }

  /** Queues the bytes of one pull; returns when one chunk went out or the body ended. */
  async #step(): Promise<void> {
    for (;;) {
      if (this.#stopped) return;
      if (this.#signal.aborted) {
        return await this.#end({ error: this.#cutOff() });
      }
      const status = this.#resource.status;
      const limit = await this.#limitOf(status);
      if (this.#stopped) return;
      const position = this.#cursor.position;
      if (position < limit) {
        const chunk = await this.#cursor.read(this.#chunkSize, limit);
        if (this.#stopped) return;
        if (this.#cursor.position === position) {
          throw new Error(
            `no bytes at ${position} though ${limit} are readable`,
          );
        }
        if (this.#emit(chunk, this.#cursor.position >= limit)) return;
        continue;
      }
      if (status.status === "COMPLETED" && position >= status.size) {
        return await this.#end();
      }
      if (status.status === "FAILED") {
        return await this.#end({
          error:
            `spool: follow of resource ${this.#id} aborted: the resource FAILED: ${
              loggable(status.error ?? "unknown reason", MAX_LOGGED_REASON)
            }`,
        });
      }
      // Wait for the next status (or a cancel, or shutdown).
      if (
        this.#resource.status === status && !this.#stopped &&
        !this.#signal.aborted
      ) {
        await this.#changed.wait();
      }
    }
  }

  /** Queues `bytes` (in line mode, up to a line end); returns whether anything went out. */
  #emit(bytes: Uint8Array, atLimit: boolean): boolean {
    const controller = this.#controller;
    if (!this.#options.lines) {
      controller.enqueue(bytes);
      return bytes.byteLength > 0;
    }
    const pending = this.#carry ? concat([this.#carry, bytes]) : bytes;
    this.#carry = undefined;
    if (pending.byteLength === 0) return false;
    // The limit is a line end (or the final size): everything may go.
    if (atLimit) {
      controller.enqueue(pending);
      return true;
    }
    const last = pending.lastIndexOf(0x0a);
    if (
      last === pending.byteLength - 1 ||
      (last === -1 && pending.byteLength >= this.#chunkSize)
    ) {
      controller.enqueue(pending);
      return true;
    }
    if (last === -1) {
      this.#carry = pending;
      return false;
    }
    controller.enqueue(pending.subarray(0, last + 1));
    this.#carry = pending.slice(last + 1);
    return true;
  }
}
