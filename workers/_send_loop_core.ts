/**
 * `SendLoop`: the send loop of one `Stream`, as an object the worker entry
 * (`send_loop.ts`) wires to its port. It takes batches of objects, frames
 * them onto one long-lived request of its {@linkcode Connector} (opened
 * lazily, ended after `idleTimeoutMs` with nothing to send, reopened with
 * the same session id), and posts ordered, batched completions back.
 * AIStore's `sendLoop`/`doRequest`/`eoObj` in one place.
 *
 * @module
 */

import { TransportError } from "../transport/errors.ts";
import {
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  FRAME_HEADER_SIZE,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
} from "../transport/framing.ts";
import { Fifo } from "../transport/internal/fifo.ts";
import {
  batchObject,
  BODY_OTHER,
  BODY_PACKED,
  type FromWorker,
  type InitMessage,
  type ObjectsMessage,
  STRIDE,
  type ToWorker,
  type WireError,
  type WireObject,
  type WorkerStats,
  zeroStats,
} from "../transport/internal/messages.ts";
import { type BodySource, discardBody, openBody } from "./_body_source.ts";
import type { Connection, Connector } from "./_http1_connection.ts";
import { FrameWriter } from "./_frame_writer.ts";

/** An object of the send queue, with the batch buffer its header is in. */
interface Item {
  obj: WireObject;
  packed: Uint8Array;
}

/** A batch of the send queue (AIStore's SQ), and how far the loop is in it. */
interface QueuedBatch {
  message: ObjectsMessage;
  /** Objects in the batch. */
  count: number;
  /** The next object to send. */
  next: number;
  /** Index in `message.others` of the next body that is one of them. */
  other: number;
}

/** An object on the wire (or failed in turn), not yet completed. */
interface Pending {
  seq: number;
  /** Writer position just past the object's last byte. */
  end: number;
  bytes: number;
  error?: TransportError;
}

/** What the loop gets from the `Stream` after `init`. */
export type SendLoopMessage = Exclude<ToWorker, InitMessage | { t: "close" }>;

/** Post completions at least this often (objects) while busy. */
const POST_EVERY = 512;
/** A run of framed objects written at once is at most this long (bytes). */
const RUN_BYTES = 1024 * 1024;
/** Post statistics at most this often (ms) while writing a body. */
const PROGRESS_MS = 100;

function wire(error: TransportError): WireError {
  const out: WireError = { code: error.code, message: error.message };
  if (error.remoteCode !== undefined) out.remoteCode = error.remoteCode;
  return out;
}

/**
 * The send loop of one stream. Every message it posts goes to `post`;
 * every request goes through `connector`.
 *
 * @example
 * ```ts ignore
 * import { SendLoop } from "./_send_loop_core.ts";
 * const loop = new SendLoop(init, connector, (message) => self.postMessage(message));
 * loop.start();
 * self.onmessage = (event) => loop.handle(event.data);
 * ```
 */
export class SendLoop {
  readonly #init: InitMessage;
  readonly #connector: Connector;
  readonly #post: (message: FromWorker, transfer?: Transferable[]) => void;
  /** The stream's shared copy ring, once it made one. */
  #ring: SharedArrayBuffer | null = null;
  #started = 0;
  /** The send queue (AIStore's SQ): batches with objects not yet written. */
  #queue = new Fifo<QueuedBatch>();
  #finRequested = false;
  #terminated: TransportError | null = null;
  #ended = false;
  #wake: (() => void) | null = null;
  #connection: Connection | null = null;
  #writer: FrameWriter | null = null;
  /** The body being written, cancelled if the stream terminates. */
  #current: BodySource | null = null;
  /** Objects written (or failed in turn) and not yet completed. */
  #pending: Pending[] = [];
  #lastSeq = -1;
  #through = -1;
  #postedThrough = -1;
  #errors: [number, WireError][] = [];
  /** Packed buffers of batches sent in full, to hand back to the Stream. */
  #spent: ArrayBuffer[] = [];
  #postTimer: ReturnType<typeof setTimeout> | undefined;
  #stats: WorkerStats = zeroStats();
  /** When statistics were last posted (the first body write posts at once). */
  #postedAt = -Infinity;
  /** Wire bytes of the requests before the current one. */
  #offsetBase = 0;
  /**
   * With `confirm`: the wire sequence number the receiver last confirmed on
   * this request and not yet applied, or -1. Acks are cumulative.
   */
  #confirmedSeq = -1;
  /** Body cancellations in flight; the worker closes after they settle. */
  #cancelling = new Set<Promise<void>>();

  /** A loop for the stream `init` describes; nothing runs before `start`. */
  constructor(
    init: InitMessage,
    connector: Connector,
    post: (message: FromWorker, transfer?: Transferable[]) => void,
  ) {
    this.#init = init;
    this.#connector = connector;
    this.#post = post;
  }

  /** Starts the loop; it ends after `fin` or a termination. */
  start(): void {
    this.#started = performance.now();
    this.#run();
  }

  /** Handles one message of the `Stream`. */
  handle(message: SendLoopMessage): void {
    switch (message.t) {
      case "objs":
        if (this.#terminated !== null || this.#ended) {
          for (const [, body] of message.others) {
            this.#track(discardBody(body, this.#terminated));
          }
        } else {
          const count = message.meta.length / STRIDE;
          if (count > 0) {
            this.#queue.push({ message, count, next: 0, other: 0 });
          }
        }
        this.#wakeUp();
        break;
      case "ring":
        this.#ring = message.buffer;
        break;
      case "fin":
        this.#finRequested = true;
        this.#wakeUp();
        break;
      case "abort":
        this.#terminate(
          new TransportError("stream-aborted", message.reason, {
            sessionId: this.#init.sessionId,
          }),
        );
        break;
    }
  }

  /**
   * Resolves once every body cancellation settled: cancelled bodies release
   * their transferred ports only then, so the worker must not close before.
   */
  async close(): Promise<void> {
    await Promise.allSettled(this.#cancelling);
  }

  /** Tracks a body cancellation; its failure is logged, the object failed anyway. */
  #track(cancel: Promise<void>): void {
    const tracked = cancel.catch((cause) => {
      console.error("spool transport: cancelling a body failed:", cause);
    }).finally(() => this.#cancelling.delete(tracked));
    this.#cancelling.add(tracked);
  }

  #asTransportError(error: unknown): TransportError {
    if (error instanceof TransportError) return error;
    return new TransportError(
      "stream-terminated",
      `send loop failed: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, sessionId: this.#init.sessionId },
    );
  }

  #snapshot(): WorkerStats {
    const stats = this.#stats;
    stats.totalMs = performance.now() - this.#started;
    stats.offset = this.#offsetBase + (this.#writer?.written ?? 0);
    return { ...stats };
  }

  #postCompletions(): void {
    if (this.#postTimer !== undefined) {
      clearTimeout(this.#postTimer);
      this.#postTimer = undefined;
    }
    if (this.#ended || this.#through === this.#postedThrough) return;
    const spent = this.#spent;
    this.#spent = [];
    this.#post({
      t: "cmpl",
      through: this.#through,
      errors: this.#errors,
      stats: this.#snapshot(),
      spent,
    }, spent);
    this.#postedAt = performance.now();
    this.#postedThrough = this.#through;
    this.#errors = [];
  }

  /** `bytes` more body bytes were written: post statistics if it is time. */
  #sentBytes(bytes: number): void {
    this.#stats.sent += bytes;
    if (this.#ended) return;
    const now = performance.now();
    if (now - this.#postedAt < PROGRESS_MS) return;
    this.#postedAt = now;
    this.#post({ t: "prog", stats: this.#snapshot() });
  }

  #complete(entry: Pending, error?: TransportError): void {
    this.#through = entry.seq;
    const failure = entry.error ?? error;
    if (failure !== undefined) {
      this.#stats.failed++;
      this.#errors.push([entry.seq, wire(failure)]);
    } else {
      this.#stats.objects++;
      this.#stats.bytes += entry.bytes;
    }
    if (this.#through - this.#postedThrough >= POST_EVERY) {
      this.#postCompletions();
    } else if (this.#postTimer === undefined) {
      this.#postTimer = setTimeout(() => this.#postCompletions(), 0);
    }
  }

  /**
   * Completes the objects that are done: taken in full by the connection,
   * or with `confirm`, confirmed by the receiver (objects that failed before
   * reaching the wire complete as soon as those before them did).
   */
  #progress(): void {
    const conn = this.#connection;
    const pending = this.#pending;
    if (conn === null || pending.length === 0) return;
    let i = 0;
    if (this.#init.confirm) {
      i = this.#confirmedCount();
      while (i < pending.length && pending[i].error !== undefined) i++;
    } else {
      const consumed = conn.consumed;
      while (i < pending.length && pending[i].end <= consumed) i++;
    }
    if (i === 0) return;
    for (let j = 0; j < i; j++) this.#complete(pending[j]);
    this.#pending = pending.slice(i);
  }

  /** How many pending objects the last confirmation covers (0 if none). */
  #confirmedCount(): number {
    if (this.#confirmedSeq < 0) return 0;
    const pending = this.#pending;
    for (let i = 0; i < pending.length; i++) {
      if (pending[i].seq >>> 0 === this.#confirmedSeq) {
        this.#confirmedSeq = -1;
        return i + 1;
      }
    }
    // Acked before its entry was recorded (its last write just resolved):
    // applied on the next progress.
    return 0;
  }

  #settleAll(error?: TransportError): void {
    const entries = this.#pending;
    this.#pending = [];
    for (const entry of entries) this.#complete(entry, error);
  }

  #wakeUp(): void {
    const resolve = this.#wake;
    this.#wake = null;
    resolve?.();
  }

  /** Waits for work; false if `timeoutMs` passed first. */
  async #waitForWork(timeoutMs: number): Promise<boolean> {
    const since = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const woke = await new Promise<boolean>((resolve) => {
      this.#wake = () => resolve(true);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }
    });
    clearTimeout(timer);
    this.#wake = null;
    this.#stats.idleMs += performance.now() - since;
    return woke;
  }

  #openConnection(): FrameWriter {
    if (this.#writer !== null) return this.#writer;
    this.#confirmedSeq = -1;
    const opened = this.#connector.open(this.#init.sessionId, {
      onProgress: () => this.#progress(),
      onAck: (seq) => {
        if (this.#connection !== opened) return;
        this.#confirmedSeq = seq;
        this.#progress();
      },
      onFailure: (error) => {
        // The request failed while we may be waiting on a body: stop now.
        if (this.#connection === opened) this.#terminate(error);
      },
    });
    this.#connection = opened;
    this.#writer = new FrameWriter(opened);
    this.#stats.requests++;
    return this.#writer;
  }

  /** Ends the current request cleanly; on success every pending object completes. */
  async #closeConnection(): Promise<void> {
    const w = this.#writer;
    const conn = this.#connection;
    if (w === null || conn === null) return;
    await w.flush();
    await conn.close();
    this.#offsetBase += w.written;
    this.#writer = null;
    this.#connection = null;
    this.#settleAll();
  }

  #terminate(error: TransportError, failedSeq = -1): void {
    if (this.#terminated !== null) return;
    this.#terminated = error;
    const others = failedSeq < 0 ? error : new TransportError(
      "stream-terminated",
      `stream terminated after object #${failedSeq} failed: ${error.message}`,
      { cause: error, sessionId: this.#init.sessionId },
    );
    this.#connection?.abort(others);
    if (this.#writer !== null) this.#offsetBase += this.#writer.written;
    this.#connection = null;
    this.#writer = null;
    if (this.#current !== null) this.#track(this.#current.cancel(error));
    this.#current = null;
    this.#settleAll(others);
    for (const batch of this.#queue.drain()) {
      for (const [index, body] of batch.message.others) {
        if (index >= batch.next) this.#track(discardBody(body, others));
      }
    }
    this.#postCompletions();
    this.#post({
      t: "end",
      error: wire(error),
      rest: wire(others),
      stats: this.#snapshot(),
    });
    this.#ended = true;
    this.#wakeUp();
  }

  /** Writes a body of unknown size as PDUs; returns its length. */
  async #writePdus(
    w: FrameWriter,
    source: BodySource,
    seq: number,
  ): Promise<number> {
    const size = this.#init.sizePdu;
    const parts: Uint8Array[] = [];
    let buffered = 0;
    let total = 0;
    const emit = async (length: number, last: boolean) => {
      await w.frame({
        kind: KIND_PDU,
        flags: last ? FLAG_PDU_LAST : 0,
        length,
        seq,
      });
      let need = length;
      while (need > 0) {
        const part = parts[0];
        if (part.byteLength <= need) {
          await w.bytes(part);
          parts.shift();
          need -= part.byteLength;
          this.#sentBytes(part.byteLength);
        } else {
          await w.bytes(part.subarray(0, need));
          parts[0] = part.subarray(need);
          this.#sentBytes(need);
          need = 0;
        }
      }
      buffered -= length;
    };
    for (;;) {
      const chunk = await source.read();
      if (this.#terminated !== null) throw this.#terminated;
      if (chunk === null) break;
      parts.push(chunk);
      buffered += chunk.byteLength;
      total += chunk.byteLength;
      // Strictly more than one PDU buffered: this one cannot be the last.
      while (buffered > size) await emit(size, false);
    }
    await emit(buffered, true);
    return total;
  }

  /** Writes a body of known size, checking it has exactly that size. */
  async #writeSized(
    w: FrameWriter,
    source: BodySource,
    seq: number,
    size: number,
  ): Promise<number> {
    let left = size;
    for (;;) {
      const chunk = await source.read();
      if (this.#terminated !== null) throw this.#terminated;
      if (chunk === null) break;
      if (chunk.byteLength > left) {
        await source.cancel("body longer than its header's size");
        throw new TransportError(
          "obj-size-mismatch",
          `body of object #${seq} has more than the ${size} bytes its header declares`,
          { sessionId: this.#init.sessionId },
        );
      }
      await w.bytes(chunk);
      left -= chunk.byteLength;
      this.#sentBytes(chunk.byteLength);
      if (w.connection.releasesWrites === true) source.recycle?.(chunk);
    }
    if (left > 0) {
      throw new TransportError(
        "obj-size-mismatch",
        `body of object #${seq} ended after ${
          size - left
        } bytes, its header declares ${size}`,
        { sessionId: this.#init.sessionId },
      );
    }
    return size;
  }

  /**
   * Sends the next objects of `batch` (taking them from it): a run of
   * framed ones, else one. `undefined` if that took no waiting.
   */
  #sendFrom(batch: QueuedBatch): Promise<void> | undefined {
    const run = this.#framedRun(batch);
    if (run > 0) return this.#sendRun(batch, run);
    const index = batch.next++;
    const meta = batch.message.meta;
    const other = meta[index * STRIDE + 4] === BODY_OTHER
      ? batch.message.others[batch.other++][1]
      : null;
    const item = {
      obj: batchObject(meta, index, other),
      packed: batch.message.packed,
    };
    return this.#stageObject(item) ? undefined : this.#sendObject(item);
  }

  /**
   * How many objects from the next of `batch` on are framed (see
   * {@linkcode STRIDE}) and lie side by side in its packed buffer, up to
   * {@linkcode RUN_BYTES} of them (at least one if the next one is).
   */
  #framedRun(batch: QueuedBatch): number {
    const meta = batch.message.meta;
    let at = batch.next * STRIDE;
    if (meta[at + 7] !== 1) return 0;
    const start = meta[at + 2] - FRAME_HEADER_SIZE;
    let end = start;
    let count = 0;
    for (let index = batch.next; index < batch.count; index++, at += STRIDE) {
      if (meta[at + 7] !== 1 || meta[at + 2] - FRAME_HEADER_SIZE !== end) break;
      const objectEnd = meta[at + 4] === BODY_PACKED
        ? meta[at + 5] + meta[at + 6]
        : meta[at + 2] + meta[at + 3];
      if (count > 0 && objectEnd - start > RUN_BYTES) break;
      end = objectEnd;
      count++;
    }
    return count;
  }

  /**
   * Writes the next `count` objects of `batch`, framed and side by side in
   * its packed buffer, with one copy into the stage or one write: no
   * promise, view or copy per object. `undefined` if that took no waiting.
   */
  #sendRun(batch: QueuedBatch, count: number): Promise<void> | undefined {
    const { meta, packed } = batch.message;
    const w = this.#openConnection();
    let at = batch.next * STRIDE;
    const start = meta[at + 2] - FRAME_HEADER_SIZE;
    // Where byte `start` of the packed buffer lands in the writer's count.
    const base = w.written - start;
    let end = start;
    for (let i = 0; i < count; i++, at += STRIDE) {
      const seq = meta[at];
      const size = meta[at + 1];
      end = meta[at + 4] === BODY_PACKED
        ? meta[at + 5] + meta[at + 6]
        : meta[at + 2] + meta[at + 3];
      this.#stats.sent += size;
      this.#lastSeq = seq;
      // Recorded before the write: if it fails, they fail with the stream.
      this.#pending.push({ seq, end: base + end, bytes: size });
    }
    batch.next += count;
    const bytes = packed.subarray(start, end);
    return w.tryStageBytes(bytes) ? undefined : w.bytes(bytes);
  }

  /**
   * Sends a known-size object with a packed body (or none) by staging it
   * whole, if the stage has room; returns whether it did. Most small objects
   * go this way, without the promises of {@linkcode SendLoop.#sendObject}.
   */
  #stageObject(item: Item): boolean {
    const { obj, packed } = item;
    const body = obj.body;
    if (
      obj.size < 0 ||
      (body !== null && (body.k !== "packed" || body.len !== obj.size))
    ) {
      return false;
    }
    const w = this.#openConnection();
    const frame = {
      kind: KIND_OBJECT,
      flags: 0,
      length: obj.hdrLen,
      seq: obj.seq,
    };
    const hdrEnd = obj.hdrOff + obj.hdrLen;
    // A batch packs a small body right behind its header: one copy of both.
    const staged = body === null || body.off === hdrEnd
      ? w.tryStageSlice(
        frame,
        packed,
        obj.hdrOff,
        body === null ? hdrEnd : hdrEnd + body.len,
        body === null ? 0 : body.len,
      )
      : w.tryStage(
        frame,
        packed.subarray(obj.hdrOff, hdrEnd),
        packed.subarray(body.off, body.off + body.len),
      );
    if (!staged) return false;
    this.#stats.sent += obj.size;
    this.#lastSeq = obj.seq;
    this.#pending.push({ seq: obj.seq, end: w.written, bytes: obj.size });
    return true;
  }

  /**
   * Opens the body of `obj`; `null` if it has none, or if it failed to open
   * (the object then fails alone, in order: none of it is on the wire).
   */
  async #openBody(obj: WireObject, packed: Uint8Array): Promise<
    BodySource | null | "failed"
  > {
    if (obj.body === null) return null;
    try {
      return await openBody(obj.body, packed, obj.size, this.#ring);
    } catch (error) {
      await discardBody(obj.body, error);
      const w = this.#writer;
      this.#pending.push({
        seq: obj.seq,
        end: w === null ? 0 : w.written,
        bytes: 0,
        error: this.#asTransportError(error),
      });
      if (w === null) this.#settleAll();
      else this.#progress();
      return "failed";
    }
  }

  /** Writes one object: its frames, header and body. */
  async #sendObject(item: Item): Promise<void> {
    const { obj, packed } = item;
    this.#lastSeq = obj.seq;
    const source = await this.#openBody(obj, packed);
    if (source === "failed") return;
    const w = this.#openConnection();
    const pdu = obj.size === -1;
    await w.frame({
      kind: KIND_OBJECT,
      flags: pdu ? FLAG_PDU_MODE : 0,
      length: obj.hdrLen,
      seq: obj.seq,
    });
    await w.bytes(packed.subarray(obj.hdrOff, obj.hdrOff + obj.hdrLen));
    let bytes = 0;
    if (source === null && pdu) {
      // Unknown size and no bytes: the object is its empty last PDU.
      await w.frame({
        kind: KIND_PDU,
        flags: FLAG_PDU_LAST,
        length: 0,
        seq: obj.seq,
      });
    }
    if (source !== null) {
      const written = await this.#sendBody(w, obj, source);
      if (written === null) return;
      bytes = written;
    }
    this.#pending.push({ seq: obj.seq, end: w.written, bytes });
    this.#progress();
  }

  /**
   * Writes the body of `obj` after its header; returns its length, or
   * `null` if it failed (the stream is then terminated).
   */
  async #sendBody(
    w: FrameWriter,
    obj: WireObject,
    source: BodySource,
  ): Promise<number | null> {
    const pdu = obj.size === -1;
    if (obj.body?.k === "stream" || obj.body?.k === "file") {
      // This body may keep us waiting: let the objects before it leave now.
      // Of known size, it goes out as one HTTP chunk with them: a receiver
      // on Deno.serve pays for every chunk boundary when it lags behind
      // (bench/ANALYSIS.md, "one big object").
      if (pdu) await w.flush();
      else await w.startRun(obj.size);
      this.#progress();
    }
    this.#current = source;
    try {
      return pdu
        ? await this.#writePdus(w, source, obj.seq)
        : await this.#writeSized(w, source, obj.seq, obj.size);
    } catch (error) {
      const failure = this.#asTransportError(error);
      if (this.#terminated === null) {
        // Part of the object is on the wire: the request cannot continue.
        this.#pending.push({
          seq: obj.seq,
          end: Infinity,
          bytes: 0,
          error: failure,
        });
        this.#terminate(
          failure,
          failure.code.startsWith("receiver") ? -1 : obj.seq,
        );
      }
      return null;
    } finally {
      this.#current = null;
    }
  }

  async #finish(): Promise<void> {
    // After an idle teardown, reconnect just to say fin: the receiver then
    // knows the session ended on purpose.
    if (this.#writer === null && this.#stats.requests > 0) {
      this.#openConnection();
    }
    if (this.#writer !== null) {
      await this.#writer.frame({
        kind: KIND_FIN,
        flags: 0,
        length: 0,
        seq: this.#lastSeq + 1,
      });
      await this.#closeConnection();
    }
    this.#postCompletions();
    this.#post({ t: "end", error: null, rest: null, stats: this.#snapshot() });
    this.#ended = true;
  }

  async #run(): Promise<void> {
    try {
      while (this.#terminated === null) {
        const batch = this.#queue.peek();
        if (batch !== undefined) {
          const sending = this.#sendFrom(batch);
          const last = batch.next === batch.count;
          if (last) this.#queue.shift();
          if (sending !== undefined) await sending;
          // All of it went out (writes keep no buffer): the Stream reuses it.
          if (last) {
            this.#spent.push(batch.message.packed.buffer as ArrayBuffer);
          }
          continue;
        }
        if (this.#writer !== null) {
          await this.#writer.flush();
          this.#progress();
          // Objects (and the fin behind them) may have come during the
          // flush: send them before anything else, or fin would leave them
          // behind.
          if (this.#queue.length > 0) continue;
        }
        this.#postCompletions();
        if (this.#finRequested) {
          await this.#finish();
          return;
        }
        await this.#idle();
      }
    } catch (error) {
      this.#terminate(this.#asTransportError(error));
    }
  }

  /**
   * Waits for work; ends the request if none came within `idleTimeoutMs`
   * (idle teardown: the next object opens a new one).
   */
  async #idle(): Promise<void> {
    const woke = await this.#waitForWork(
      this.#connection !== null ? this.#init.idleTimeoutMs : Infinity,
    );
    if (
      !woke && this.#terminated === null && this.#queue.length === 0 &&
      !this.#finRequested
    ) {
      await this.#closeConnection();
    }
  }
}
