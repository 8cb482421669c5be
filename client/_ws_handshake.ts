/**
 * The client side of the WebSocket opening handshake (RFC 6455 §4.1) over a
 * TCP connection of our own, with `TCP_NODELAY` set: Deno's built-in
 * WebSocket client leaves it off, and small frames then wait for delayed
 * ACKs.
 *
 * @module
 */

/** The GUID RFC 6455 appends to the key before hashing it. */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Longest response head accepted from a server. */
const MAX_HEAD_BYTES = 16 * 1024;

/** Bytes of a refusal's body quoted in the error. */
const MAX_QUOTED_BODY = 512;

/** How a handshake is made. */
export interface HandshakeOptions {
  /** Extra request headers (e.g. `authorization`). */
  headers?: Record<string, string>;
  /** PEM CA certificates to trust for `wss:` besides the system ones. */
  caCerts?: string[];
  /** Aborts connecting. */
  signal?: AbortSignal;
  /** Called with the TCP connection once made, so a caller can close it. */
  onConn?: (conn: Deno.Conn) => void;
}

/** An upgraded connection and the bytes already read past the response head. */
export interface Upgraded {
  conn: Deno.Conn;
  leftover: Uint8Array;
}

/**
 * Connects to `url` (`ws:` or `wss:`), sets `TCP_NODELAY`, and upgrades.
 * Rejects with an error whose message says what went wrong: the network
 * error, or the status the server answered instead of 101.
 *
 * @example
 * ```ts ignore
 * const { conn, leftover } = await handshake(new URL("ws://127.0.0.1:8787/upload"), {});
 * ```
 */
export async function handshake(
  url: URL,
  options: HandshakeOptions,
): Promise<Upgraded> {
  const secure = url.protocol === "wss:";
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const tcp = await Deno.connect({
    hostname,
    port: Number(url.port || (secure ? 443 : 80)),
    signal: options.signal,
  });
  options.onConn?.(tcp);
  tcp.setNoDelay(true);
  const conn: Deno.Conn = secure
    ? await Deno.startTls(tcp, { hostname, caCerts: options.caCerts })
    : tcp;
  if (conn !== tcp) options.onConn?.(conn);
  const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
  await writeAll(conn, new TextEncoder().encode(request(url, key, options)));
  const { head, rest } = await readHead(conn);
  await checkResponse(conn, head, rest, key);
  return { conn, leftover: rest };
}

/** The upgrade request. */
function request(url: URL, key: string, options: HandshakeOptions): string {
  const lines = [
    `GET ${url.pathname}${url.search} HTTP/1.1`,
    `host: ${url.host}`,
    "upgrade: websocket",
    "connection: Upgrade",
    `sec-websocket-key: ${key}`,
    "sec-websocket-version: 13",
    `user-agent: Deno/${Deno.version.deno} spool`,
  ];
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (/[\r\n]/.test(name + value)) {
      throw new TypeError(`header ${JSON.stringify(name)} holds a line break`);
    }
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** Writes every byte of `bytes` (a write may take only part). */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
    at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
  }
}

/** Reads up to the blank line that ends the response head. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ head: string; rest: Uint8Array }> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let end = 0;
  for (;;) {
    const read = await conn.read(buffer.subarray(end));
    if (read === null) {
      throw new Error(
        end === 0
          ? "the server closed the connection without answering the upgrade request"
          : "the server closed the connection inside its response head",
      );
    }
    const from = Math.max(0, end - 3);
    end += read;
    checkHttp(buffer.subarray(0, end));
    const blank = indexOfBlankLine(buffer, from, end);
    if (blank >= 0) {
      return {
        head: new TextDecoder().decode(buffer.subarray(0, blank)),
        rest: buffer.slice(blank + 4, end),
      };
    }
    if (end === buffer.byteLength) {
      throw new Error(
        `the server's response head exceeds ${MAX_HEAD_BYTES} bytes`,
      );
    }
  }
}

/** Throws once the first bytes show the answer is not HTTP (e.g. TLS). */
function checkHttp(start: Uint8Array): void {
  const prefix = [..."HTTP/"].map((c) => c.charCodeAt(0));
  if (start.every((byte, i) => i >= prefix.length || byte === prefix[i])) {
    return;
  }
  // A TLS record: content type 20-23 (an alert, most likely), version 3.x.
  if (
    start[0] >= 20 && start[0] <= 23 && (start.length < 2 || start[1] === 3)
  ) {
    throw new Error(
      "the server answered with TLS, not HTTP: it speaks TLS (https:, wss:)",
    );
  }
  throw new Error(
    `the server's answer is not HTTP: it starts with ${
      JSON.stringify(new TextDecoder().decode(start.subarray(0, 16)))
    }`,
  );
}

function indexOfBlankLine(bytes: Uint8Array, from: number, end: number) {
  for (let i = from; i + 3 < end; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) {
      return i;
    }
  }
  return -1;
}

/** Throws unless the head is a 101 that accepts `key`. */
async function checkResponse(
  conn: Deno.Conn,
  head: string,
  rest: Uint8Array,
  key: string,
): Promise<void> {
  const [statusLine, ...fields] = head.split("\r\n");
  const headers = new Map<string, string>();
  for (const field of fields) {
    const colon = field.indexOf(":");
    if (colon > 0) {
      headers.set(
        field.slice(0, colon).trim().toLowerCase(),
        field.slice(colon + 1).trim(),
      );
    }
  }
  const status = statusLine.match(/^HTTP\/1\.[01] (\d{3})(?: (.*))?$/);
  if (status === null) {
    throw new Error(
      `the server answered ${
        JSON.stringify(statusLine.slice(0, 80))
      }; expected an HTTP/1.1 status line`,
    );
  }
  if (status[1] !== "101") {
    const body = await quotedBody(conn, headers, rest);
    throw new Error(
      `the server answered ${status[1]} ${status[2] ?? ""}`.trimEnd() +
        ` instead of 101 Switching Protocols${body}`,
    );
  }
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new Error("the server's 101 lacks `upgrade: websocket`");
  }
  const expected = await acceptFor(key);
  if (headers.get("sec-websocket-accept") !== expected) {
    throw new Error(
      `the server's sec-websocket-accept is ${
        JSON.stringify(headers.get("sec-websocket-accept") ?? null)
      }; expected ${JSON.stringify(expected)}`,
    );
  }
}

/** The start of a refusal's body, for the error message (`""` if none). */
async function quotedBody(
  conn: Deno.Conn,
  headers: Map<string, string>,
  rest: Uint8Array,
): Promise<string> {
  const length = Math.min(
    Number(headers.get("content-length") ?? 0) || 0,
    MAX_QUOTED_BODY,
  );
  const body = new Uint8Array(length);
  let filled = Math.min(length, rest.byteLength);
  body.set(rest.subarray(0, filled));
  while (filled < length) {
    const read = await conn.read(body.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  const text = new TextDecoder().decode(body.subarray(0, filled)).trim();
  return text === "" ? "" : `: ${text}`;
}

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** `Sec-WebSocket-Accept` for `key`: base64 of SHA-1 of key + GUID. */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(key + ACCEPT_GUID),
  );
  return encodeBase64(new Uint8Array(digest));
}
