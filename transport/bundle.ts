/**
 * `StreamBundle`: objects to many destinations. Each destination gets
 * `multiplier` streams used round-robin; an object goes to every destination
 * (broadcast) or to the ones named in `to` (unicast/multicast), and its
 * completion fires once, after every replica completed, with the first error.
 *
 * @module
 */

import { TransportError } from "./errors.ts";
import { Stream } from "./stream.ts";
import type {
  ObjectBody,
  ObjectHeader,
  SentCallback,
  StreamOptions,
  StreamStats,
} from "./types.ts";

/**
 * Options of a {@linkcode StreamBundle}.
 *
 * @example
 * ```ts
 * import { type BundleOptions, StreamBundle } from "./bundle.ts";
 * const options: BundleOptions = { multiplier: 4, compression: "gzip" };
 * const open = (urls: string[]) => new StreamBundle(urls, options);
 * ```
 */
export interface BundleOptions extends StreamOptions {
  /** Streams per destination, used round-robin (default 1, at most 64). */
  multiplier?: number;
}

interface Pending {
  header: ObjectHeader;
  onSent?: SentCallback;
  remaining: number;
  error?: TransportError;
}

interface Destination {
  streams: Stream[];
  next: number;
}

/**
 * Sends objects to N destinations over `multiplier` streams each.
 *
 * @example
 * ```ts ignore
 * import { StreamBundle } from "./bundle.ts";
 * const bundle = new StreamBundle([
 *   "http://127.0.0.1:8081/v1/objstream/demo",
 *   "http://127.0.0.1:8082/v1/objstream/demo",
 * ], { multiplier: 2 });
 * await bundle.send({ name: "everyone" }, new Uint8Array(100));
 * await bundle.send({ name: "just-one" }, null, {
 *   to: ["http://127.0.0.1:8082/v1/objstream/demo"],
 * });
 * await bundle.fin();
 * ```
 */
export class StreamBundle {
  /** Destination URLs, normalised, in the order given. */
  readonly destinations: readonly string[];
  #byUrl = new Map<string, Destination>();
  #onSent?: SentCallback;
  #pending: (Pending | undefined)[] = [];
  #head = 0;
  #terminated = false;
  #signal?: AbortSignal;
  #onAbort?: () => void;

  /** Creates the streams; none connects before its first object. */
  constructor(urls: readonly (string | URL)[], options: BundleOptions = {}) {
    const multiplier = options.multiplier ?? 1;
    if (
      !Number.isSafeInteger(multiplier) || multiplier < 1 || multiplier > 64
    ) {
      throw new TransportError(
        "invalid-argument",
        `option multiplier is ${multiplier}, expected an integer in [1, 64]`,
      );
    }
    if (urls.length === 0) {
      throw new TransportError(
        "invalid-argument",
        "a bundle needs at least one destination URL, got none",
      );
    }
    const { onSent, signal, multiplier: _, ...streamOptions } = options;
    this.#onSent = onSent;
    for (const url of urls) {
      const href = new URL(url).href;
      if (this.#byUrl.has(href)) {
        throw new TransportError(
          "invalid-argument",
          `destination ${href} is listed twice, expected distinct URLs`,
        );
      }
      const streams = Array.from(
        { length: multiplier },
        () => new Stream(href, streamOptions),
      );
      this.#byUrl.set(href, { streams, next: 0 });
    }
    this.destinations = [...this.#byUrl.keys()];
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => void this.abort(signal.reason);
      if (signal.aborted) this.#onAbort();
      else signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /**
   * Sends one object to every destination, or to those in `options.to`.
   * Resolves once every replica is queued (each waits on its stream's
   * back-pressure); rejects with the first replica's error after its
   * completion has fired.
   */
  async send(
    header: ObjectHeader,
    body?: ObjectBody | (() => ObjectBody),
    options: {
      /** Destination URLs to send to (default: all of them). */
      to?: readonly (string | URL)[];
      /** Completion callback for this object; overrides the bundle's `onSent`. */
      onSent?: SentCallback;
    } = {},
  ): Promise<void> {
    const pending: Pending = { header, onSent: options.onSent, remaining: 1 };
    this.#pending.push(pending);
    let targets: Destination[];
    try {
      targets = this.#targets(options.to);
      if (
        targets.length > 1 && body instanceof ReadableStream
      ) {
        throw new TransportError(
          "invalid-argument",
          `body of ${
            JSON.stringify(header?.name)
          } is one stream for ${targets.length} destinations, expected a factory (() => stream) giving one per replica`,
        );
      }
    } catch (error) {
      if (body instanceof ReadableStream) {
        body.cancel(error).catch((cause) => {
          console.error("spool bundle: cancelling a body failed:", cause);
        });
      }
      this.#settle(pending, error as TransportError);
      throw error;
    }
    pending.remaining = targets.length;
    let first: TransportError | undefined;
    for (const [i, destination] of targets.entries()) {
      const stream = destination.streams[destination.next];
      destination.next = (destination.next + 1) % destination.streams.length;
      const last = i === targets.length - 1;
      let replica: ObjectBody;
      try {
        replica = typeof body === "function" ? body() : body;
      } catch (error) {
        const failure = new TransportError(
          "body-failed",
          `body factory of ${
            JSON.stringify(header.name)
          } threw for ${stream.url}: ${
            error instanceof Error ? error.message : String(error)
          }`,
          { cause: error },
        );
        first ??= failure;
        this.#settle(pending, failure);
        continue;
      }
      try {
        await stream.send(header, replica, {
          // Bytes shared by several replicas must not be moved to one worker.
          copy: !last && replica instanceof Uint8Array,
          onSent: (_header, error) => this.#settle(pending, error),
        });
      } catch (error) {
        // The replica's completion already fired with this error.
        first ??= error as TransportError;
      }
    }
    if (first !== undefined) throw first;
  }

  /** Ends every stream cleanly; rejects with the first stream's error. */
  async fin(): Promise<void> {
    this.#terminated = true;
    this.#detach();
    const results = await Promise.allSettled(
      this.#streams().map((stream) => stream.fin()),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  /** Aborts every stream; resolves when every completion has fired. */
  async abort(reason?: unknown): Promise<void> {
    this.#terminated = true;
    this.#detach();
    await Promise.all(this.#streams().map((stream) => stream.abort(reason)));
  }

  /** Send statistics of each stream, by destination URL. */
  stats(): Record<string, StreamStats[]> {
    const out: Record<string, StreamStats[]> = {};
    for (const [url, destination] of this.#byUrl) {
      out[url] = destination.streams.map((stream) => stream.stats());
    }
    return out;
  }

  /** Aborts the bundle unless it already ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort("disposed");
  }

  #streams(): Stream[] {
    return [...this.#byUrl.values()].flatMap((d) => d.streams);
  }

  #detach(): void {
    if (this.#signal !== undefined && this.#onAbort !== undefined) {
      this.#signal.removeEventListener("abort", this.#onAbort);
    }
  }

  #targets(to: readonly (string | URL)[] | undefined): Destination[] {
    if (this.#terminated) {
      throw new TransportError(
        "stream-terminated",
        "bundle is terminated (fin or abort was called)",
      );
    }
    if (to === undefined) return [...this.#byUrl.values()];
    if (to.length === 0) {
      throw new TransportError(
        "invalid-argument",
        "option to is empty, expected at least one destination URL",
      );
    }
    const seen = new Set<string>();
    return to.map((url) => {
      const href = new URL(url).href;
      const destination = this.#byUrl.get(href);
      if (destination === undefined || seen.has(href)) {
        throw new TransportError(
          destination === undefined
            ? "destination-missing"
            : "invalid-argument",
          `destination ${href} is ${
            destination ? "listed twice" : "not in the bundle"
          }, expected one of: ${this.destinations.join(", ")}`,
        );
      }
      seen.add(href);
      return destination;
    });
  }

  /** Records one replica's outcome; fires completions in send order. */
  #settle(pending: Pending, error: TransportError | undefined): void {
    pending.error ??= error;
    if (--pending.remaining > 0) return;
    const list = this.#pending;
    while (this.#head < list.length && list[this.#head]!.remaining <= 0) {
      const done = list[this.#head]!;
      list[this.#head++] = undefined;
      const callback = done.onSent ?? this.#onSent;
      try {
        callback?.(done.header, done.error);
      } catch (thrown) {
        // The caller's bug: report it like a listener's, keep completing.
        reportError(thrown);
      }
    }
    if (this.#head === list.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > list.length) {
      this.#pending = list.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * A body for every replica: a value shared by all replicas (bytes, a file,
 * or nothing), or a factory called once per replica (needed for streams
 * sent to more than one destination).
 *
 * @example
 * ```ts
 * import type { BundleBody } from "./bundle.ts";
 * const shared: BundleBody = new Uint8Array(1024); // the same bytes for every replica
 * const perReplica: BundleBody = () => ReadableStream.from([new Uint8Array(1024)]);
 * ```
 */
export type BundleBody = Parameters<StreamBundle["send"]>[1];

/**
 * Per-object options of {@linkcode StreamBundle.send}.
 *
 * @example
 * ```ts
 * import type { BundleSendOptions, StreamBundle } from "./bundle.ts";
 * const sendTo = (bundle: StreamBundle, url: string) => {
 *   const options: BundleSendOptions = { to: [url] }; // unicast
 *   return bundle.send({ name: "just-one" }, null, options);
 * };
 * ```
 */
export type BundleSendOptions = NonNullable<
  Parameters<StreamBundle["send"]>[2]
>;
