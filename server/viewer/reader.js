// @ts-check
/// <reference lib="dom" />
/**
 * The page's reads of the resource: its bytes from a starting byte to the
 * end, following it while it is live, and line ranges by number.
 *
 * The bytes: while the resource is live, one request follows it from the
 * first byte not yet read (`?follow=1&start=N`) and grows with it; once it
 * is finished, a plain read (`Range: bytes=N-`) takes what is left. So after
 * a lost connection, and after a follow cut off because the resource FAILED
 * (a broken chunked body, whose last bytes Chromium may drop), the next
 * request starts where the page is: no byte twice, none missing. Bytes count
 * as read only once they are handed on.
 *
 * @module
 */

/** Requests for a resource's bytes before the reader gives up. */
const MAX_ATTEMPTS = 20;
/** The first pause before a reconnect; it doubles each time. */
const RETRY_BASE_MS = 500;
/** The longest pause before a reconnect. */
const RETRY_MAX_MS = 10_000;

/**
 * A resource's status, as `/status` and the `status` events carry it (the
 * fields the page uses).
 *
 * @typedef {object} Status
 * @property {string} name
 * @property {string} status
 * @property {number} size
 * @property {string} createdAt
 * @property {string} updatedAt
 * @property {string} [error]
 * @property {string} [sha256]
 */

/** A read that failed; `final` when trying again cannot help. */
export class ReadError extends Error {
  /**
   * @param {string} message What went wrong.
   * @param {boolean} final Whether to stop trying.
   */
  constructor(message, final) {
    super(message);
    this.final = final;
  }
}

/**
 * @param {Status} s
 * @returns {boolean} Whether the status is final.
 */
export function terminal(s) {
  return s.status === "COMPLETED" || s.status === "FAILED";
}

/**
 * The byte an answer's body starts at: a 206's Content-Range, a follow's
 * Spool-Start, else the first.
 *
 * @param {Response} response
 * @returns {number}
 */
function firstByteOf(response) {
  if (response.status === 206) {
    const range = /^bytes (\d+)-/.exec(
      response.headers.get("content-range") || "",
    );
    return range ? Number(range[1]) : NaN;
  }
  const start = response.headers.get("spool-start");
  return start === null ? 0 : Number(start);
}

/**
 * Why the server refused a read; final for a 4xx.
 *
 * @param {Response} response
 * @returns {Promise<ReadError>}
 */
export async function refusal(response) {
  let reason = "HTTP " + response.status;
  try {
    reason += ": " + (await response.text()).slice(0, 300);
  } catch (_) {
    // The body broke: the reason is the status alone.
  }
  return new ReadError(reason, response.status >= 400 && response.status < 500);
}

/**
 * What a reader needs from its page.
 *
 * @typedef {object} ReaderContext
 * @property {(suffix: string, params?: Record<string, string> | null) => URL} urlOf
 *   A URL of the resource.
 * @property {() => Status} status The latest status the page knows.
 * @property {() => Promise<Status>} latest The status now, from the server.
 * @property {(text: string) => void} state Says what the reader does.
 * @property {(chunk: Uint8Array) => void} bytes Takes the next bytes.
 * @property {(s: Status, received: number) => void} ended Every byte is read.
 */

/**
 * Reads a resource's bytes from `start` to its end (see the module).
 *
 * @example
 * ```js ignore
 * new ByteReader(context, 0).run();
 * ```
 */
export class ByteReader {
  /**
   * @param {ReaderContext} context
   * @param {number} start The first byte to read.
   */
  constructor(context, start) {
    this.context = context;
    this.received = start;
  }

  /** @param {boolean} live Follow the resource, or read what is left. */
  async readFrom(live) {
    const received = this.received;
    const response = await fetch(
      this.context.urlOf(
        "",
        live ? { follow: "1", start: String(received) } : null,
      ),
      {
        cache: "no-store",
        headers: !live && received > 0
          ? { range: "bytes=" + received + "-" }
          : {},
      },
    );
    if (!response.ok) throw await refusal(response);
    if (!response.body) return;
    const first = firstByteOf(response);
    if (!(first <= received)) {
      response.body.cancel().catch(() => {
        // Nothing of it is used, whatever happens to it.
      });
      throw new ReadError(
        "the server answered from byte " + first + "; expected byte " +
          received + " at the latest",
        true,
      );
    }
    await this.#take(response.body.getReader(), received - first);
  }

  /**
   * Hands on what `reader` yields past its first `skip` bytes.
   *
   * @param {ReadableStreamDefaultReader<Uint8Array>} reader
   * @param {number} skip
   */
  async #take(reader, skip) {
    for (;;) {
      const step = await reader.read();
      if (step.done) return;
      let chunk = step.value;
      if (skip >= chunk.byteLength) {
        skip -= chunk.byteLength;
        continue;
      }
      if (skip > 0) {
        chunk = chunk.subarray(skip);
        skip = 0;
      }
      this.received += chunk.byteLength;
      this.context.bytes(chunk);
    }
  }

  /** Reads until the resource ended and every byte is read, or gives up. */
  async run() {
    const context = this.context;
    let s = context.status();
    for (let attempt = 0;; attempt++) {
      const live = !terminal(s);
      if (!live && this.received >= s.size) {
        return context.ended(s, this.received);
      }
      context.state(live ? "following\u2026" : "reading\u2026");
      /** @type {unknown} */
      let problem = null;
      try {
        await this.readFrom(live);
      } catch (error) {
        problem = error;
      }
      s = await context.latest();
      if (terminal(s) && this.received >= s.size) {
        return context.ended(s, this.received);
      }
      const final = problem instanceof ReadError && problem.final;
      if (final || attempt >= MAX_ATTEMPTS) {
        return context.state("stopped: " + reasonOf(problem));
      }
      // The follow ended with the resource: read the rest at once.
      if (live && terminal(s)) continue;
      // The stream broke (or ended) before the end: reconnect, from where the page is.
      context.state("connection lost; reconnecting\u2026");
      await new Promise((resolve) => {
        setTimeout(
          resolve,
          Math.min(RETRY_MAX_MS, RETRY_BASE_MS * Math.pow(2, attempt)),
        );
      });
    }
  }
}

/**
 * @param {unknown} problem
 * @returns {string}
 */
function reasonOf(problem) {
  if (problem instanceof Error) return problem.message || String(problem);
  return problem ? String(problem) : "the stream ended early";
}

/**
 * Lines `[start, end)` of the resource: their bytes, the number of the
 * first and the byte it starts at.
 *
 * @param {ReaderContext["urlOf"]} urlOf
 * @param {Record<string, string>} query `start`/`end` or `offset`/`end`.
 * @returns {Promise<{ first: number, offset: number, total: number, bytes: Uint8Array }>}
 */
export async function fetchLines(urlOf, query) {
  const response = await fetch(urlOf("/lines", query), { cache: "no-store" });
  if (!response.ok) throw await refusal(response);
  const header = (/** @type {string} */ name) => {
    const value = Number(response.headers.get(name));
    if (!Number.isSafeInteger(value)) {
      throw new ReadError("the answer of /lines has no " + name, true);
    }
    return value;
  };
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    first: header("spool-first-line"),
    offset: header("spool-start"),
    total: header("spool-lines"),
    bytes,
  };
}
