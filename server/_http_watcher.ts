/**
 * A watcher carried by an HTTP response (a `?follow=1` body, an SSE
 * stream): counted in the watcher limits like a download socket, ended with
 * its body, and cut off when the server shuts down or the resource expires.
 *
 * @module
 */

import type { SpoolError } from "../protocol/errors.ts";
import type { Watcher } from "./watchers.ts";

/** One HTTP watcher. */
export class HttpWatcher implements Watcher {
  /** What it is, for refusals. */
  readonly kind: string;
  /** Aborts at server shutdown, or (with the error) when the resource expires. */
  readonly signal: AbortSignal;
  readonly #expired = new AbortController();
  readonly #endHandlers: (() => void)[] = [];
  #ended = false;

  /** A watcher of `kind`, cut off by `shutdown` too. */
  constructor(kind: string, shutdown: AbortSignal) {
    this.kind = kind;
    this.signal = AbortSignal.any([shutdown, this.#expired.signal]);
  }

  /** Calls `handler` once the body ends. */
  onEnd(handler: () => void): void {
    if (this.#ended) handler();
    else this.#endHandlers.push(handler);
  }

  /** Cuts the body off: its resource expired. */
  expire(error: SpoolError): void {
    this.#expired.abort(error);
  }

  /** The body ended (sent whole, cancelled by the client, or cut off). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const handler of this.#endHandlers.splice(0)) handler();
  }
}

/** Why a body watching a resource was cut off, in words. */
export function cutOffReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.name === "SpoolError"
    ? reason.message
    : "the server shut down";
}
