/**
 * Worker entry: the send loop of one `Stream`. It receives batches of
 * objects from the main thread, frames them onto one long-lived HTTP request
 * (opened lazily, ended after `idleTimeoutMs` with nothing to send, reopened
 * with the same session id), and reports ordered, batched completions back.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { TransportError } from "../transport/errors.ts";
import {
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
} from "../transport/framing.ts";
import {
  batchObjects,
  type FromWorker,
  type InitMessage,
  type ToWorker,
  type WireError,
  type WireObject,
  type WorkerStats,
  zeroStats,
} from "../transport/internal/messages.ts";
import { type BodySource, discardBody, openBody } from "./_body_source.ts";
import {
  type Connection,
  type Connector,
  http1Connector,
} from "./_http1_connection.ts";
import { FrameWriter } from "./_frame_writer.ts";

interface Item {
  obj: WireObject;
  packed: Uint8Array;
}

interface Pending {
  seq: number;
  /** Writer position just past the object's last byte. */
  end: number;
  bytes: number;
  error?: TransportError;
}

/** Post completions at least this often (objects) while busy. */
const POST_EVERY = 512;
/** Post statistics at most this often (ms) while writing a body. */
const PROGRESS_MS = 100;

let init: InitMessage;
/** The stream's shared copy ring, once it made one. */
let ring: SharedArrayBuffer | null = null;
let connector: Connector;
let started = 0;
const queue: Item[] = [];
let head = 0;
let finRequested = false;
let terminated: TransportError | null = null;
let ended = false;
let wake: (() => void) | null = null;
let connection: Connection | null = null;
let writer: FrameWriter | null = null;
let current: BodySource | null = null;
let pending: Pending[] = [];
let lastSeq = -1;
let through = -1;
let postedThrough = -1;
let errors: [number, WireError][] = [];
let postTimer: ReturnType<typeof setTimeout> | undefined;
const stats: WorkerStats = zeroStats();
/** When statistics were last posted (the first body write posts at once). */
let postedAt = -Infinity;

/** Body cancellations in flight; the worker closes after they settle. */
const cancelling = new Set<Promise<void>>();

/** Tracks a body cancellation; its failure is logged, the object failed anyway. */
function track(cancel: Promise<void>): void {
  const tracked = cancel.catch((cause) => {
    console.error("spool transport: cancelling a body failed:", cause);
  }).finally(() => cancelling.delete(tracked));
  cancelling.add(tracked);
}

function post(message: FromWorker): void {
  self.postMessage(message);
}

function wire(error: TransportError): WireError {
  const out: WireError = { code: error.code, message: error.message };
  if (error.remoteCode !== undefined) out.remoteCode = error.remoteCode;
  return out;
}

function asTransportError(error: unknown): TransportError {
  if (error instanceof TransportError) return error;
  return new TransportError(
    "stream_terminated",
    `send loop failed: ${
      error instanceof Error ? error.message : String(error)
    }`,
    { cause: error, sessionId: init.sessionId },
  );
}

let offsetBase = 0;

function snapshot(): WorkerStats {
  stats.totalMs = performance.now() - started;
  stats.offset = offsetBase + (writer?.written ?? 0);
  return { ...stats };
}

function postCompletions(): void {
  if (postTimer !== undefined) {
    clearTimeout(postTimer);
    postTimer = undefined;
  }
  if (ended || through === postedThrough) return;
  post({ t: "cmpl", through, errors, stats: snapshot() });
  postedAt = performance.now();
  postedThrough = through;
  errors = [];
}

/** `bytes` more body bytes were written: post statistics if it is time. */
function sentBytes(bytes: number): void {
  stats.sent += bytes;
  if (ended) return;
  const now = performance.now();
  if (now - postedAt < PROGRESS_MS) return;
  postedAt = now;
  post({ t: "prog", stats: snapshot() });
}

function complete(entry: Pending, error?: TransportError): void {
  through = entry.seq;
  const failure = entry.error ?? error;
  if (failure !== undefined) {
    stats.failed++;
    errors.push([entry.seq, wire(failure)]);
  } else {
    stats.objects++;
    stats.bytes += entry.bytes;
  }
  if (through - postedThrough >= POST_EVERY) postCompletions();
  else if (postTimer === undefined) postTimer = setTimeout(postCompletions, 0);
}

/**
 * Completes the objects that are done: taken in full by the HTTP client,
 * or with `confirm`, confirmed by the receiver (objects that failed before
 * reaching the wire complete as soon as those before them did).
 */
function progress(): void {
  const conn = connection;
  if (conn === null || pending.length === 0) return;
  let i = 0;
  if (init.confirm) {
    i = confirmedCount();
    while (i < pending.length && pending[i].error !== undefined) i++;
  } else {
    const consumed = conn.consumed;
    while (i < pending.length && pending[i].end <= consumed) i++;
  }
  if (i === 0) return;
  for (let j = 0; j < i; j++) complete(pending[j]);
  pending = pending.slice(i);
}

/**
 * With `confirm`: the wire sequence number the receiver last confirmed on
 * this request and not yet applied, or -1. Acks are cumulative.
 */
let confirmedSeq = -1;

/** How many pending objects the last confirmation covers (0 if none). */
function confirmedCount(): number {
  if (confirmedSeq < 0) return 0;
  for (let i = 0; i < pending.length; i++) {
    if (pending[i].seq >>> 0 === confirmedSeq) {
      confirmedSeq = -1;
      return i + 1;
    }
  }
  // Acked before its entry was recorded (its last write just resolved):
  // applied on the next progress.
  return 0;
}

function onAck(seq: number): void {
  confirmedSeq = seq;
  progress();
}

function settleAll(error?: TransportError): void {
  const entries = pending;
  pending = [];
  for (const entry of entries) complete(entry, error);
}

function wakeUp(): void {
  const resolve = wake;
  wake = null;
  resolve?.();
}

/** Waits for work; false if `timeoutMs` passed first. */
async function waitForWork(timeoutMs: number): Promise<boolean> {
  const since = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const woke = await new Promise<boolean>((resolve) => {
    wake = () => resolve(true);
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }
  });
  clearTimeout(timer);
  wake = null;
  stats.idleMs += performance.now() - since;
  return woke;
}

function openConnection(): FrameWriter {
  if (writer !== null) return writer;
  confirmedSeq = -1;
  const opened = connector.open(init.sessionId, {
    onProgress: progress,
    onAck(seq) {
      if (connection === opened) onAck(seq);
    },
    onFailure(error) {
      // The request failed while we may be waiting on a body: stop now.
      if (connection === opened) terminate(error);
    },
  });
  connection = opened;
  writer = new FrameWriter(connection);
  stats.requests++;
  return writer;
}

/** Ends the current request cleanly; on success every pending object completes. */
async function closeConnection(): Promise<void> {
  const w = writer;
  const conn = connection;
  if (w === null || conn === null) return;
  await w.flush();
  await conn.close();
  offsetBase += w.written;
  writer = null;
  connection = null;
  settleAll();
}

function terminate(error: TransportError, failedSeq = -1): void {
  if (terminated !== null) return;
  terminated = error;
  const others = failedSeq < 0 ? error : new TransportError(
    "stream_terminated",
    `stream terminated after object #${failedSeq} failed: ${error.message}`,
    { cause: error, sessionId: init.sessionId },
  );
  connection?.abort(others);
  if (writer !== null) offsetBase += writer.written;
  connection = null;
  writer = null;
  if (current !== null) track(current.cancel(error));
  current = null;
  settleAll(others);
  for (let i = head; i < queue.length; i++) {
    track(discardBody(queue[i].obj.body, others));
  }
  queue.length = 0;
  head = 0;
  postCompletions();
  post({ t: "end", error: wire(error), rest: wire(others), stats: snapshot() });
  ended = true;
  wakeUp();
}

async function writePdus(
  w: FrameWriter,
  source: BodySource,
  seq: number,
): Promise<number> {
  const size = init.sizePdu;
  let parts: Uint8Array[] = [];
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
        sentBytes(part.byteLength);
      } else {
        await w.bytes(part.subarray(0, need));
        parts[0] = part.subarray(need);
        sentBytes(need);
        need = 0;
      }
    }
    buffered -= length;
  };
  for (;;) {
    const chunk = await source.read();
    if (terminated !== null) throw terminated;
    if (chunk === null) break;
    parts.push(chunk);
    buffered += chunk.byteLength;
    total += chunk.byteLength;
    // Strictly more than one PDU buffered: this one cannot be the last.
    while (buffered > size) await emit(size, false);
  }
  await emit(buffered, true);
  parts = [];
  return total;
}

async function writeSized(
  w: FrameWriter,
  source: BodySource,
  seq: number,
  size: number,
): Promise<number> {
  let left = size;
  for (;;) {
    const chunk = await source.read();
    if (terminated !== null) throw terminated;
    if (chunk === null) break;
    if (chunk.byteLength > left) {
      await source.cancel("body longer than its header's size");
      throw new TransportError(
        "obj_size_mismatch",
        `body of object #${seq} has more than the ${size} bytes its header declares`,
        { sessionId: init.sessionId },
      );
    }
    await w.bytes(chunk);
    left -= chunk.byteLength;
    sentBytes(chunk.byteLength);
  }
  if (left > 0) {
    throw new TransportError(
      "obj_size_mismatch",
      `body of object #${seq} ended after ${
        size - left
      } bytes, its header declares ${size}`,
      { sessionId: init.sessionId },
    );
  }
  return size;
}

/**
 * Sends a known-size object with a packed body (or none) by staging it
 * whole, if the stage has room; returns whether it did. Most small objects
 * go this way, without the promises of {@linkcode sendObject}.
 */
function stageObject(item: Item): boolean {
  const { obj, packed } = item;
  const body = obj.body;
  if (
    obj.size < 0 ||
    (body !== null && (body.k !== "packed" || body.len !== obj.size))
  ) {
    return false;
  }
  const w = openConnection();
  const staged = w.tryStage(
    { kind: KIND_OBJECT, flags: 0, length: obj.hdrLen, seq: obj.seq },
    packed.subarray(obj.hdrOff, obj.hdrOff + obj.hdrLen),
    body === null ? null : packed.subarray(body.off, body.off + body.len),
  );
  if (!staged) return false;
  stats.sent += obj.size;
  lastSeq = obj.seq;
  pending.push({ seq: obj.seq, end: w.written, bytes: obj.size });
  return true;
}

async function sendObject(item: Item): Promise<void> {
  const { obj, packed } = item;
  lastSeq = obj.seq;
  let source: BodySource | null = null;
  if (obj.body !== null) {
    try {
      source = await openBody(obj.body, packed, obj.size, ring);
    } catch (error) {
      // Nothing of this object is on the wire yet: fail it alone, in order.
      await discardBody(obj.body, error);
      const w = writer;
      pending.push({
        seq: obj.seq,
        end: w === null ? 0 : w.written,
        bytes: 0,
        error: asTransportError(error),
      });
      if (w === null) settleAll();
      else progress();
      return;
    }
  }
  const w = openConnection();
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
    if (obj.body?.k === "stream" || obj.body?.k === "file") {
      // This body may keep us waiting: let the objects before it leave now.
      // Of known size, it goes out as one HTTP chunk with them: a receiver
      // on Deno.serve pays for every chunk boundary when it lags behind
      // (bench/ANALYSIS.md, "one big object").
      if (pdu) await w.flush();
      else await w.startRun(obj.size);
      progress();
    }
    current = source;
    try {
      bytes = pdu
        ? await writePdus(w, source, obj.seq)
        : await writeSized(w, source, obj.seq, obj.size);
    } catch (error) {
      const failure = asTransportError(error);
      if (terminated === null) {
        // Part of the object is on the wire: the request cannot continue.
        pending.push({ seq: obj.seq, end: Infinity, bytes: 0, error: failure });
        terminate(failure, failure.code.startsWith("receiver") ? -1 : obj.seq);
      }
      return;
    } finally {
      current = null;
    }
  }
  pending.push({ seq: obj.seq, end: w.written, bytes });
  progress();
}

async function finish(): Promise<void> {
  // After an idle teardown, reconnect just to say fin: the receiver then
  // knows the session ended on purpose.
  if (writer === null && stats.requests > 0) openConnection();
  if (writer !== null) {
    await writer.frame({
      kind: KIND_FIN,
      flags: 0,
      length: 0,
      seq: lastSeq + 1,
    });
    await closeConnection();
  }
  postCompletions();
  post({ t: "end", error: null, rest: null, stats: snapshot() });
  ended = true;
}

async function run(): Promise<void> {
  try {
    while (terminated === null) {
      if (head < queue.length) {
        const item = queue[head];
        queue[head++] = undefined as unknown as Item;
        if (head === queue.length) {
          queue.length = 0;
          head = 0;
        }
        if (!stageObject(item)) await sendObject(item);
        continue;
      }
      if (writer !== null) {
        await writer.flush();
        progress();
        // Objects (and the fin behind them) may have come during the flush:
        // send them before anything else, or fin would leave them behind.
        if (head < queue.length) continue;
      }
      postCompletions();
      if (finRequested) {
        await finish();
        return;
      }
      const woke = await waitForWork(
        connection !== null ? init.idleTimeoutMs : Infinity,
      );
      if (
        !woke && terminated === null && head === queue.length && !finRequested
      ) {
        await closeConnection();
      }
    }
  } catch (error) {
    terminate(asTransportError(error));
  }
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.t) {
    case "init":
      init = message;
      connector = http1Connector(message.url, {
        compression: message.compression,
        headers: message.headers,
        secret: message.secret,
        caCerts: message.caCerts,
        confirm: message.confirm,
      });
      started = performance.now();
      run();
      break;
    case "objs":
      if (terminated !== null || ended) {
        for (const [, body] of message.others) {
          track(discardBody(body, terminated));
        }
      } else {
        for (const obj of batchObjects(message)) {
          queue.push({ obj, packed: message.packed });
        }
      }
      wakeUp();
      break;
    case "ring":
      ring = message.buffer;
      break;
    case "fin":
      finRequested = true;
      wakeUp();
      break;
    case "abort":
      terminate(
        new TransportError("stream_aborted", message.reason, {
          sessionId: init?.sessionId,
        }),
      );
      break;
    case "close":
      // Cancelled bodies release their transferred ports only once their
      // cancel settled: closing the worker before would leak them.
      Promise.allSettled(cancelling).then(() => {
        post({ t: "closed" });
        self.close();
      });
      break;
  }
};
