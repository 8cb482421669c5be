/**
 * The NATS client's socket, handing its protocol parser each message whole.
 *
 * nats.js assembles a message that spans socket reads by growing a buffer
 * and copying it at every doubling. Node B receives pieces of up to 1020
 * KiB in 64 KiB reads: in a profile that growth and its garbage were a
 * third of B's CPU. Here reads that hold whole messages pass as they are
 * (views, no copy), and a message that spans reads is gathered once into a
 * buffer of its exact size, so the parser never grows one.
 *
 * @module
 */

import {
  type ConnectionOptions,
  type NatsConnection,
  NatsConnectionImpl,
  setTransportFactory,
} from "@nats-io/transport-node";
import {
  nodeResolveHost,
  NodeTransport,
} from "@nats-io/transport-node/lib/node_transport.js";
import { concat } from "@std/bytes/concat";

const CR = 13;
const LF = 10;
/**
 * A message announced larger than this is passed on as it comes: the
 * server's `max_payload` keeps real ones far below, and a corrupt size
 * must not allocate.
 */
const MAX_GATHERED_BYTES = 64 * 1024 * 1024;

/**
 * Splits a NATS server's byte stream into units that each hold whole
 * protocol lines and whole messages (`MSG`/`HMSG` with their payloads).
 *
 * @example
 * ```ts
 * import { MessageGatherer } from "./_gathering_transport.ts";
 * const gatherer = new MessageGatherer();
 * const text = new TextEncoder();
 * console.log(gatherer.push(text.encode("MSG a 1 5\r\nhel")).length); // 0
 * const [unit] = gatherer.push(text.encode("lo\r\nPING\r\n"));
 * console.log(new TextDecoder().decode(unit)); // "MSG a 1 5\r\nhello\r\nPING\r\n"
 * ```
 */
export class MessageGatherer {
  /** The start of a protocol line whose end has not come yet. */
  #carry: Uint8Array | undefined;
  /** A message being gathered, of its exact size, and how much is in. */
  #message: Uint8Array | undefined;
  #filled = 0;

  /** Takes the next read; returns what can go to the parser now, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const units: Uint8Array[] = [];
    let data = chunk;
    if (this.#message !== undefined) {
      const taken = Math.min(
        this.#message.byteLength - this.#filled,
        data.byteLength,
      );
      this.#message.set(data.subarray(0, taken), this.#filled);
      this.#filled += taken;
      if (this.#filled < this.#message.byteLength) return units;
      units.push(this.#message);
      this.#message = undefined;
      data = data.subarray(taken);
    } else if (this.#carry !== undefined) {
      data = concat([this.#carry, data]);
      this.#carry = undefined;
    }
    this.#scan(data, units);
    return units;
  }

  /** Passes `data`'s whole lines and messages on; keeps what is cut off. */
  #scan(data: Uint8Array, units: Uint8Array[]): void {
    let at = 0;
    while (at < data.byteLength) {
      const eol = lineEnd(data, at);
      if (eol < 0) {
        this.#carry = data.slice(at);
        break;
      }
      const next = eol + 2 + payloadBytes(data, at, eol);
      if (next > data.byteLength) {
        this.#message = new Uint8Array(next - at);
        this.#message.set(data.subarray(at));
        this.#filled = data.byteLength - at;
        break;
      }
      at = next;
    }
    if (at > 0) units.push(data.subarray(0, at));
  }
}

/** The index of the `\r` of the first `\r\n` at or after `from`, or -1. */
function lineEnd(data: Uint8Array, from: number): number {
  for (
    let at = data.indexOf(CR, from);
    at >= 0;
    at = data.indexOf(CR, at + 1)
  ) {
    if (at + 1 >= data.byteLength) return -1;
    if (data[at + 1] === LF) return at;
  }
  return -1;
}

/**
 * Bytes after the line `[start, eol)` that belong to it: a `MSG` or `HMSG`
 * line's last field plus the `\r\n` after the payload; 0 for other lines
 * (and for a size the parser will refuse or that is too large to gather).
 */
function payloadBytes(data: Uint8Array, start: number, eol: number): number {
  const isMsg = data[start] === 0x4d && data[start + 1] === 0x53 &&
    data[start + 2] === 0x47 && data[start + 3] === 0x20;
  const isHmsg = data[start] === 0x48 && data[start + 1] === 0x4d &&
    data[start + 2] === 0x53 && data[start + 3] === 0x47 &&
    data[start + 4] === 0x20;
  if (!isMsg && !isHmsg) return 0;
  let size = 0;
  let scale = 1;
  let at = eol - 1;
  for (; at > start && data[at] >= 0x30 && data[at] <= 0x39; at--) {
    size += (data[at] - 0x30) * scale;
    scale *= 10;
  }
  if (at === eol - 1 || data[at] !== 0x20 || size > MAX_GATHERED_BYTES) {
    return 0;
  }
  return size + 2;
}

/** nats.js's Node transport, its reads regrouped by a {@linkcode MessageGatherer}. */
class GatheringTransport extends NodeTransport {
  readonly #gatherer = new MessageGatherer();

  override async *iterate(): AsyncIterableIterator<Uint8Array> {
    for await (const chunk of super.iterate()) {
      for (const unit of this.#gatherer.push(chunk)) yield unit;
    }
  }
}

/**
 * Connects like `connect` of `@nats-io/transport-node`, over a transport
 * that hands the parser whole messages (a new one per dial, reconnects
 * included). nats.js's transport factory is global to the process: a later
 * plain `connect` elsewhere in it (tests make some; the server does not)
 * makes this connection's reconnects plain again, slower but correct.
 */
export function connectGathering(
  options: ConnectionOptions,
): Promise<NatsConnection> {
  setTransportFactory({
    factory: () => new GatheringTransport(),
    dnsResolveFn: nodeResolveHost,
  });
  return NatsConnectionImpl.connect(options);
}
