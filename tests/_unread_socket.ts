/**
 * A WebSocket client over a bare TCP connection that sends text messages but
 * never reads after the handshake: a peer that is alive (its heartbeats
 * arrive) yet takes none of the bytes sent to it, which no WebSocket API
 * client can imitate (they all read their socket).
 */

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A connected, never-reading WebSocket client. */
export class UnreadSocket {
  readonly #conn: Deno.TcpConn;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Opens `url` (`http://` or `ws://`): sends the upgrade, reads the 101. */
  static async open(url: URL): Promise<UnreadSocket> {
    const conn = await Deno.connect({
      hostname: url.hostname,
      port: Number(url.port),
    });
    const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\n` +
      `Host: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(request));
    // Read the response head only; whatever follows it stays unread.
    const buffer = new Uint8Array(1024);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const read = await conn.read(buffer);
      if (read === null) {
        conn.close();
        throw new Error(`the server closed before answering the upgrade`);
      }
      head += new TextDecoder().decode(buffer.subarray(0, read));
    }
    if (!head.startsWith("HTTP/1.1 101")) {
      conn.close();
      throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
    }
    return new UnreadSocket(conn);
  }

  /** Sends one text message (masked with a zero key, as clients must mask). */
  async sendText(text: string): Promise<void> {
    const payload = new TextEncoder().encode(text);
    const length = payload.byteLength;
    const header = length < 126
      ? [0x81, 0x80 | length]
      : [0x81, 0x80 | 126, length >> 8, length & 0xff];
    const frame = new Uint8Array(header.length + 4 + length);
    frame.set(header);
    frame.set(payload, header.length + 4); // mask key 0: payload unchanged
    await writeAll(this.#conn, frame);
  }

  /** Closes the connection. */
  close(): void {
    this.#conn.close();
  }
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.byteLength;) {
    written += await conn.write(bytes.subarray(written));
  }
}
