/**
 * A WebSocket server built on `Deno.listen`, frame by frame, for client
 * tests that need what `Deno.upgradeWebSocket` never sends: fragments,
 * pings, 64-bit lengths, frames split across writes, protocol errors. Its
 * handshake is written from RFC 6455 independently of the client's.
 */

import { createHash } from "node:crypto";

/** A frame as the client sent it, unmasked. */
export interface ClientFrame {
  fin: boolean;
  opcode: number;
  /** The masking key; `undefined` if the frame was not masked. */
  mask: number | undefined;
  payload: Uint8Array;
}

/** The server side of one connection. */
export class RawPeer {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Reads until `count` bytes are buffered; false if the client closed first. */
  async #fill(count: number): Promise<boolean> {
    while (this.#buffer.byteLength < count) {
      const chunk = new Uint8Array(64 * 1024);
      const read = await this.conn.read(chunk);
      if (read === null) return false;
      const next = new Uint8Array(this.#buffer.byteLength + read);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, read), this.#buffer.byteLength);
      this.#buffer = next;
    }
    return true;
  }

  #take(count: number): Uint8Array {
    const taken = this.#buffer.slice(0, count);
    this.#buffer = this.#buffer.slice(count);
    return taken;
  }

  /** Answers the upgrade request; resolves with its head (request line and headers). */
  async accept(): Promise<string> {
    for (;;) {
      const text = new TextDecoder().decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#take(end + 4);
        const head = text.slice(0, end);
        const key = head.match(/^sec-websocket-key: *(.+)$/im)?.[1].trim();
        const accept = createHash("sha1")
          .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
          .digest("base64");
        await this.write(
          "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n" +
            `connection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
        );
        return head;
      }
      if (!(await this.#fill(this.#buffer.byteLength + 1))) {
        throw new Error("the client closed during the handshake");
      }
    }
  }

  /** Writes raw bytes (or text). */
  async write(data: Uint8Array | string): Promise<void> {
    let bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    while (bytes.byteLength > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /** The next frame from the client; `null` if it closed the connection. */
  async readFrame(): Promise<ClientFrame | null> {
    if (!(await this.#fill(2))) return null;
    const second = this.#buffer[1];
    let length = second & 0x7f;
    const extra = length === 126 ? 2 : length === 127 ? 8 : 0;
    const masked = (second & 0x80) !== 0;
    await this.#fill(2 + extra + (masked ? 4 : 0));
    const head = this.#take(2 + extra);
    const view = new DataView(head.buffer);
    if (extra === 2) length = view.getUint16(2);
    if (extra === 8) length = Number(view.getBigUint64(2));
    const key = masked ? this.#take(4) : undefined;
    if (!(await this.#fill(length))) {
      throw new Error("the client closed mid-frame");
    }
    const payload = this.#take(length);
    if (key) { for (let i = 0; i < length; i++) payload[i] ^= key[i & 3]; }
    return {
      fin: (head[0] & 0x80) !== 0,
      opcode: head[0] & 0x0f,
      mask: key ? new DataView(key.buffer).getUint32(0) : undefined,
      payload,
    };
  }
}

/** A server frame: unmasked, any length, FIN as given. */
export function serverFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: { fin?: boolean; longLength?: boolean } = {},
): Uint8Array {
  const bytes = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  const length = bytes.byteLength;
  const long = options.longLength || length >= 0x1_0000;
  const extra = long ? 8 : length >= 126 ? 2 : 0;
  const frame = new Uint8Array(2 + extra + length);
  const view = new DataView(frame.buffer);
  frame[0] = (options.fin === false ? 0 : 0x80) | opcode;
  frame[1] = long ? 127 : extra === 2 ? 126 : length;
  if (extra === 2) view.setUint16(2, length);
  if (extra === 8) view.setBigUint64(2, BigInt(length));
  frame.set(bytes, 2 + extra);
  return frame;
}

/** A close frame's payload: the code, then the reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const payload = new Uint8Array(2 + text.byteLength);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(text, 2);
  return payload;
}

/** Listens on 127.0.0.1 and runs `serve` for each connection. */
export class RawWsServer {
  readonly #listener: Deno.TcpListener;
  readonly #served: Promise<void>[] = [];
  readonly #accepting: Promise<void>;
  readonly url: string;

  constructor(serve: (peer: RawPeer) => Promise<void>) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.url = `ws://127.0.0.1:${listener.addr.port}/`;
    this.#accepting = (async () => {
      for await (const conn of listener) {
        const peer = new RawPeer(conn);
        this.#served.push(
          serve(peer).finally(() => {
            try {
              conn.close();
            } catch (error) {
              // The test closed it already.
              if (!(error instanceof Deno.errors.BadResource)) throw error;
            }
          }),
        );
      }
    })();
  }

  /** Stops listening and waits for every connection's `serve` to finish. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await Promise.all(this.#served);
  }
}
