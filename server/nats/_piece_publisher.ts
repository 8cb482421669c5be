/**
 * JetStream publishes of pieces, written to the engine's socket without
 * copying their large parts.
 *
 * nats.js's `js.publish` hands the protocol its line, the headers, the
 * payload and a CRLF as four buffers, which its outbound queue joins into
 * one: with the writer's own joining of appends, every byte of a piece was
 * copied twice (a sixth of an uploading node's CPU in a profile), and each
 * request built an `Error` on its way out. Here a piece goes as frames
 * written in order: the appends of 16 KiB or more as they are (an uploader's
 * frames), smaller ones joined with the line, the headers and the CRLF;
 * straight to the connection when it is a {@linkcode DenoTransport} that is
 * up (after what nats.js queued before), else through nats.js's queue.
 * Acknowledgements come on one subscription of the node's.
 *
 * @module
 */

import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type NatsConnectionImpl,
  type Subscription,
} from "@nats-io/transport-node";
import { concat } from "@std/bytes/concat";
import { DenoTransport } from "./_deno_transport.ts";
import {
  type ApiError,
  JetStreamApiError,
  type PubAck,
} from "@nats-io/jetstream";

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");
/** A part this large goes to the socket as it is; smaller ones are joined. */
const OWN_FRAME_BYTES = 16 * 1024;

/** A header JetStream deduplicates on (what `js.publish`'s `msgID` sets). */
const MSG_ID_HEADER = "Nats-Msg-Id";

/** What of nats.js's protocol handler is used (`flushPending` is private in its types, not in its code). */
interface Protocol {
  connected: boolean;
  transport: unknown;
  flushPending(): void;
  sendCommand(command: Uint8Array, ...payloads: Uint8Array[]): void;
}

/** An acknowledgement not come yet. */
interface Waiting {
  resolve(ack: PubAck): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Publishes pieces on one connection; each publish resolves with the
 * stream's acknowledgement.
 *
 * @example
 * ```ts ignore
 * const publisher = new PiecePublisher(engine.nc);
 * const ack = await publisher.publish("spool.d.ID.0", headers(), [bytes], { msgID: "ID:0:5", timeoutMs: 2000 });
 * publisher.close();
 * ```
 */
export class PiecePublisher {
  readonly #nc: NatsConnectionImpl;
  readonly #inbox: string;
  readonly #subscription: Subscription;
  readonly #waiting = new Map<string, Waiting>();
  #next = 0;
  #closed = false;
  /** Why the reply subscription ended: every later publish fails with it. */
  #failure: Error | undefined;

  /** A publisher on `nc`, with its own reply subscription. */
  constructor(nc: NatsConnection) {
    this.#nc = nc as NatsConnectionImpl;
    this.#inbox = createInbox();
    this.#subscription = nc.subscribe(`${this.#inbox}.*`, {
      callback: (error, message) => {
        if (error) {
          this.#failure = new Error(
            `the subscription for acknowledgements failed: ${error.message}`,
            { cause: error },
          );
          this.#failAll(this.#failure);
        } else this.#answer(message);
      },
    });
  }

  /**
   * Publishes `parts`, joined, on `subject` with `headers` plus the message
   * id; rejects if the stream refused it, if no stream took the subject, or
   * if no answer came within `timeoutMs`.
   */
  publish(
    subject: string,
    headers: MsgHdrs,
    parts: Uint8Array[],
    options: { msgID: string; timeoutMs: number },
  ): Promise<PubAck> {
    if (this.#closed || this.#nc.isClosed()) {
      return Promise.reject(
        new Error(
          `cannot publish on ${subject}: the engine connection is closed`,
        ),
      );
    }
    if (this.#failure) return Promise.reject(this.#failure);
    const token = (this.#next++).toString(36);
    headers.set(MSG_ID_HEADER, options.msgID);
    const message = hpub(subject, `${this.#inbox}.${token}`, headers, parts);
    const limit = this.#nc.info?.max_payload ?? Infinity;
    if (message.payloadBytes > limit) {
      return Promise.reject(
        new Error(
          `a piece of ${message.payloadBytes} bytes on ${subject} exceeds the server's maximum payload of ${limit} bytes`,
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<PubAck>();
    const timer = setTimeout(() => {
      this.#waiting.delete(token);
      reject(
        new Error(
          `no acknowledgement of the message on ${subject} within ${options.timeoutMs} ms`,
        ),
      );
    }, options.timeoutMs);
    this.#waiting.set(token, { resolve, reject, timer });
    this.#send(message.frames);
    return promise;
  }

  /**
   * Hands `frames` to the connection: straight to a {@linkcode DenoTransport}
   * that is up, after whatever nats.js queued before (so the order is
   * kept), else to nats.js's outbound queue (which joins them).
   */
  #send(frames: Uint8Array[]): void {
    const protocol = this.#nc.protocol as unknown as Protocol;
    const transport = protocol.transport;
    if (protocol.connected && transport instanceof DenoTransport) {
      protocol.flushPending();
      for (const frame of frames) transport.send(frame);
    } else {
      protocol.sendCommand(frames[0], ...frames.slice(1));
    }
  }

  /** Settles the publish `message` answers. */
  #answer(message: Msg): void {
    const token = message.subject.slice(this.#inbox.length + 1);
    const waiting = this.#waiting.get(token);
    if (waiting === undefined) return; // timed out before
    this.#waiting.delete(token);
    clearTimeout(waiting.timer);
    if (message.data.byteLength === 0 && message.headers !== undefined) {
      const { code, description } = message.headers;
      waiting.reject(
        new Error(
          code === 503
            ? "no responders: no stream takes the subject"
            : `the engine answered with status ${code} (${description}); expected the stream's acknowledgement`,
        ),
      );
      return;
    }
    try {
      waiting.resolve(parseAck(message.data));
    } catch (error) {
      waiting.reject(error as Error);
    }
  }

  #failAll(error: Error): void {
    for (const [token, waiting] of this.#waiting) {
      this.#waiting.delete(token);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }

  /** Stops the reply subscription; publishes still waiting reject. */
  close(): void {
    this.#closed = true;
    this.#failAll(new Error("the piece publisher is closed"));
    this.#subscription.unsubscribe();
  }
}

/** The stream's answer to a publish; throws the error it names. */
function parseAck(data: Uint8Array): PubAck {
  const answer = JSON.parse(new TextDecoder().decode(data)) as
    & Partial<PubAck>
    & { error?: ApiError };
  // As `js.publish` throws it: its message is the stream's description.
  if (answer.error) throw new JetStreamApiError(answer.error);
  if (!answer.stream || typeof answer.seq !== "number") {
    throw new Error(
      `expected the stream's acknowledgement, got ${
        JSON.stringify(answer).slice(0, 200)
      }`,
    );
  }
  return { ...answer, duplicate: answer.duplicate ?? false } as PubAck;
}

/**
 * The `HPUB` message for `parts` on `subject`, as frames to write in order
 * (parts of at least {@linkcode OWN_FRAME_BYTES} as they are, the rest
 * joined with the line, the headers and the final CRLF), and its payload's
 * size.
 */
function hpub(
  subject: string,
  reply: string,
  headers: MsgHdrs,
  parts: Uint8Array[],
): { frames: Uint8Array[]; payloadBytes: number } {
  const head = (headers as MsgHdrs & { encode(): Uint8Array }).encode();
  let dataBytes = 0;
  for (const part of parts) dataBytes += part.byteLength;
  const payloadBytes = head.byteLength + dataBytes;
  const line = encoder.encode(
    `HPUB ${subject} ${reply} ${head.byteLength} ${payloadBytes}\r\n`,
  );
  const frames: Uint8Array[] = [];
  let small: Uint8Array[] = [line, head];
  for (const part of parts) {
    if (part.byteLength < OWN_FRAME_BYTES) {
      small.push(part);
      continue;
    }
    if (small.length > 0) frames.push(concat(small));
    frames.push(part);
    small = [];
  }
  small.push(CRLF);
  frames.push(concat(small));
  return { frames, payloadBytes };
}
