/**
 * Reads the one HTTP/1.1 response a receiver sends on a connection: status,
 * headers and a small body (`Content-Length`, chunked, or up to EOF). A
 * confirmation stream (`Spool-Ack: 1`, chunked JSON lines) is read as it
 * comes: each `{"ack":seq}` line is reported at once, the last line is the
 * body.
 *
 * @module
 */

/** A parsed response. */
export interface HttpResponse {
  /** Status code. */
  status: number;
  /** Header fields, names lowercased. */
  headers: Map<string, string>;
  /** The whole body (of a confirmation stream: its last line). */
  body: Uint8Array;
  /**
   * A confirmation stream the connection cut before its last line (the
   * receiver died): `body` is empty.
   */
  cut?: boolean;
}

/** Receivers answer with small JSON: anything bigger is not ours. */
const MAX_RESPONSE = 1 << 20;
import { ACK_HEADER } from "../transport/framing.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

class ResponseReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Reads more bytes; false at EOF. */
  async fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#end === this.#buffer.length && this.#start > 0) {
      // A long confirmation stream reuses the buffer instead of growing it.
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    } else if (this.#end === this.#buffer.length) {
      if (this.#buffer.length >= MAX_RESPONSE) {
        throw new Error(
          `response exceeds ${MAX_RESPONSE} bytes, expected a small JSON answer`,
        );
      }
      const bigger = new Uint8Array(this.#buffer.length * 2);
      bigger.set(this.#buffer.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#buffer = bigger;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /** The next CRLF-terminated line (without CRLF), or null at EOF. */
  async line(): Promise<string | null> {
    for (;;) {
      const view = this.#buffer.subarray(this.#start, this.#end);
      const at = view.indexOf(0x0a);
      if (at >= 0) {
        this.#start += at + 1;
        const end = at > 0 && view[at - 1] === 0x0d ? at - 1 : at;
        return decoder.decode(view.subarray(0, end));
      }
      if (!(await this.fill())) return null;
    }
  }

  /** Exactly `n` bytes, or null at EOF. */
  async take(n: number): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (!(await this.fill())) return null;
    }
    const out = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** Everything up to EOF. */
  async rest(): Promise<Uint8Array> {
    while (await this.fill());
    return this.#buffer.slice(this.#start, this.#end);
  }
}

function malformed(what: string): Error {
  return new Error(`malformed HTTP response: ${what}`);
}

async function chunkedBody(reader: ResponseReader): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const sizeLine = await reader.line();
    if (sizeLine === null) throw malformed("body ended inside a chunk size");
    const size = parseInt(sizeLine.split(";")[0].trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw malformed(`chunk size ${JSON.stringify(sizeLine)}`);
    }
    if (size === 0) break;
    total += size;
    if (total > MAX_RESPONSE) {
      throw malformed(`body exceeds ${MAX_RESPONSE} bytes`);
    }
    const part = await reader.take(size + 2);
    if (part === null) throw malformed("body ended inside a chunk");
    parts.push(part.subarray(0, size));
  }
  // Trailers, then the empty line.
  for (let line = await reader.line(); line; line = await reader.line());
  const body = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return body;
}

/**
 * Reads a confirmation stream's chunked body, calling `onAck` per ack line;
 * resolves to its last line, or `null` if the connection ended first.
 */
async function confirmations(
  reader: ResponseReader,
  onAck: (seq: number) => void,
): Promise<Uint8Array | null> {
  const lines = new TextDecoder();
  let text = "";
  let last: string | null = null;
  for (;;) {
    const sizeLine = await reader.line();
    if (sizeLine === null) return null;
    const size = parseInt(sizeLine.split(";")[0].trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_RESPONSE) {
      throw malformed(`chunk size ${JSON.stringify(sizeLine)}`);
    }
    if (size === 0) break;
    const part = await reader.take(size + 2);
    if (part === null) return null;
    text += lines.decode(part.subarray(0, size), { stream: true });
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (last !== null) throw malformed("a line after the final answer");
      const seq = ackOf(line);
      if (seq === null) last = line;
      else onAck(seq);
    }
    if (text.length > MAX_RESPONSE) {
      throw malformed(`a confirmation line over ${MAX_RESPONSE} bytes`);
    }
  }
  for (let line = await reader.line(); line; line = await reader.line());
  if (last === null || text !== "") {
    throw malformed("the confirmation stream ended without its final answer");
  }
  return encoder.encode(last);
}

/** The sequence number of an ack line, or `null` for any other line. */
function ackOf(line: string): number | null {
  if (!line.startsWith('{"ack":')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw malformed(
      `confirmation ${JSON.stringify(line.slice(0, 80))} (${
        (error as Error).message
      })`,
    );
  }
  const seq = (parsed as { ack?: unknown }).ack;
  if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 0) {
    throw malformed(`confirmation ${JSON.stringify(line.slice(0, 80))}`);
  }
  return seq;
}

/**
 * Reads one response from `conn`. Resolves to `null` if the connection
 * ended before any byte of it; throws on a malformed response. With
 * `onAck`, a 2xx confirmation stream is read as it comes.
 *
 * @example
 * ```ts ignore
 * const response = await readResponse(conn, (seq) => console.log("ack", seq));
 * console.log(response?.status);
 * ```
 */
export async function readResponse(
  conn: Deno.Conn,
  onAck?: (seq: number) => void,
): Promise<HttpResponse | null> {
  const reader = new ResponseReader(conn);
  let statusLine = await reader.line();
  // Skip interim 1xx responses (100 Continue and friends).
  for (;;) {
    if (statusLine === null) {
      if (reader.buffered === 0) return null;
      throw malformed("connection ended inside the status line");
    }
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (match === null) {
      throw malformed(`status line ${JSON.stringify(statusLine.slice(0, 80))}`);
    }
    const status = Number(match[1]);
    const headers = new Map<string, string>();
    for (;;) {
      const line = await reader.line();
      if (line === null) throw malformed("connection ended inside the headers");
      if (line === "") break;
      const colon = line.indexOf(":");
      if (colon <= 0) throw malformed(`header line ${JSON.stringify(line)}`);
      headers.set(
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
    if (status >= 100 && status < 200) {
      statusLine = await reader.line();
      continue;
    }
    let body: Uint8Array;
    const length = headers.get("content-length");
    const chunked =
      headers.get("transfer-encoding")?.toLowerCase() === "chunked";
    if (
      onAck !== undefined && chunked && status < 300 &&
      headers.get(ACK_HEADER.toLowerCase()) === "1"
    ) {
      const last = await confirmations(reader, onAck);
      if (last === null) {
        return { status, headers, body: new Uint8Array(0), cut: true };
      }
      return { status, headers, body: last };
    }
    if (chunked) {
      body = await chunkedBody(reader);
    } else if (length !== undefined) {
      const n = Number(length);
      if (!Number.isSafeInteger(n) || n < 0 || n > MAX_RESPONSE) {
        throw malformed(`content-length ${JSON.stringify(length)}`);
      }
      const bytes = await reader.take(n);
      if (bytes === null) throw malformed("connection ended inside the body");
      body = bytes;
    } else {
      body = await reader.rest();
    }
    return { status, headers, body };
  }
}
