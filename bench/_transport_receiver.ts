/**
 * The receiving end of the transport benchmarks, run as its own process so
 * the receiver never shares an event loop with the sender.
 *
 *   --mode transport   a transport `Receiver` with one endpoint; its handler
 *                      reads every body to the end and checks it
 *   --mode drain       a bare `Deno.serve` that reads every request body to
 *                      the end and answers `{"bytes":N}`: the baselines'
 *                      receiver
 *   --mode ws          a bare `Deno.serve` WebSocket, one message per object
 *                      (see {@linkcode WS_ACK_EVERY} for its protocol)
 *   --mode grpc        a gRPC server (`bench/_grpc_peer.ts`, npm
 *                      `@grpc/grpc-js`), one client-streaming message per
 *                      object: the name of a header-only object
 *   --read byob        read bodies of 64 KiB and more (or of unknown size)
 *                      with a BYOB reader into reused 64 KiB buffers, and
 *                      smaller ones with a default reader (the default:
 *                      what docs/transport.md advises, the fastest for both)
 *   --read default     read bodies with a default reader: a fresh buffer
 *                      per read (`for await`, `Response.bytes()`)
 *   --whole N          transport mode: bodies up to N bytes come as bytes
 *                      (`register(..., { wholeBodies: N })`; default 65536,
 *                      the fast path docs/transport.md advises); -1: every
 *                      body as a stream
 *
 * The first stdout line is `Listening on URL` (the URL to send to). Then each
 * line on stdin is a command, answered with one JSON line on stdout:
 *
 *   stats   counters since start, see {@linkcode ReceiverCounters}
 *
 * Closing stdin closes the server and ends the process.
 *
 * For the bench's smoke test, `BENCH_GRPC_ABORT` makes a `--mode grpc`
 * receiver abort itself (SIGABRT) on the first message of a call, as Deno's
 * `node:http2` has done on its own: `always`, or a file path (only the
 * first receiver that creates that file aborts, so a restarted one lives).
 *
 * Bodies the benchmarks send start with a stamp: their slot index in the
 * sender's pool and the pool's slot count (two little-endian u32). Object
 * `name` is its index in the run, so the handler can check that every body
 * came from the right slot, whole and in order.
 *
 * @module
 */

import { TextLineStream } from "@std/streams";
import { parseFlags } from "../cli/args.ts";
import { Receiver } from "../transport/mod.ts";
import type { ReceivedHeader } from "../transport/mod.ts";

/** What a receiver process answers to `stats`. */
export interface ReceiverCounters {
  /** Objects (transport) or requests (drain) received whole. */
  objects: number;
  /** Body bytes received. */
  bytes: number;
  /** HTTP requests seen. */
  requests: number;
  /** Objects whose handler got an error (transport only). */
  errors: number;
  /** Objects not numbered one past the previous one of their session. */
  misordered: number;
  /** Bodies whose length or stamp was wrong. */
  corrupt: number;
  /** The first problem seen, if any. */
  firstProblem: string | null;
  /** Objects the transport `Receiver` itself counted (transport only). */
  receiverObjects: number;
  /** Body bytes the transport `Receiver` itself counted (transport only). */
  receiverBytes: number;
}

/** Network and endpoint names of the transport mode. */
export const NETWORK = "bench";
/** Endpoint name of the transport mode. */
export const TRNAME = "bench";
/** Length of the stamp at the start of every benchmark body. */
export const STAMP_BYTES = 8;
/**
 * The WebSocket peer's protocol, one message per object: a binary message is
 * the body of the next object, a text message other than `fin` is the name
 * of the next header-only object. Every `WS_ACK_EVERY` objects the receiver
 * sends `ack N` (N objects so far on this socket), and it answers `fin` with
 * `done N`, so the sender knows how many arrived, as the transport's
 * completions tell it.
 */
export const WS_ACK_EVERY = 256;

const counters: ReceiverCounters = {
  objects: 0,
  bytes: 0,
  requests: 0,
  errors: 0,
  misordered: 0,
  corrupt: 0,
  firstProblem: null,
  receiverObjects: 0,
  receiverBytes: 0,
};

function problem(
  kind: "errors" | "misordered" | "corrupt",
  text: string,
): void {
  counters[kind]++;
  if (counters.firstProblem === null) counters.firstProblem = text;
}

/** Size of the buffers BYOB reads go into. */
const READ_BUFFER = 64 * 1024;
/** Reused BYOB read buffers (one per body being read at once). */
const freeBuffers: Uint8Array<ArrayBuffer>[] = [];
/** How bodies are read: see `--read`. */
let readMode: "byob" | "default" = "byob";

/** The BYOB reader `readMode` asks for a body of `size` bytes, if any. */
function byobReaderOf(
  body: ReadableStream<Uint8Array>,
  size: number,
): ReadableStreamBYOBReader | null {
  if (readMode !== "byob" || (size >= 0 && size < READ_BUFFER)) return null;
  try {
    return body.getReader({ mode: "byob" });
  } catch (error) {
    // A body that is not a byte stream: read its own chunks.
    if (!(error instanceof TypeError)) throw error;
    return null;
  }
}

/** Length and first 8 bytes of a body, as chunks arrive. */
class Drained {
  length = 0;
  readonly stamp = new Uint8Array(STAMP_BYTES);

  add(chunk: Uint8Array): void {
    if (this.length < STAMP_BYTES) {
      this.stamp.set(chunk.subarray(0, STAMP_BYTES - this.length), this.length);
    }
    this.length += chunk.byteLength;
  }
}

/**
 * Reads `body` (`size` bytes, -1 if unknown) to its end: large ones with a
 * BYOB reader into a reused buffer, small ones with a default reader.
 */
async function drain(
  body: ReadableStream<Uint8Array>,
  size: number,
): Promise<Drained> {
  const drained = new Drained();
  const byob = byobReaderOf(body, size);
  if (byob === null) {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return drained;
      drained.add(value);
    }
  }
  let buffer = freeBuffers.pop() ?? new Uint8Array(READ_BUFFER);
  try {
    for (;;) {
      const { value, done } = await byob.read(buffer);
      if (value !== undefined) buffer = new Uint8Array(value.buffer);
      if (done) return drained;
      drained.add(value!);
    }
  } finally {
    if (!buffer.buffer.detached) freeBuffers.push(buffer);
  }
}

const lastSeq = new Map<string, number>();

/**
 * The transport handler. It returns nothing for a body that came whole, as
 * the WebSocket peer's `onmessage` does: a promise per object would be the
 * harness's cost, not the transport's.
 */
function handle(
  header: ReceivedHeader,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
  error?: Error,
): void | Promise<void> {
  if (error !== undefined) {
    problem(
      "errors",
      `object #${header.seq} of session ${header.sessionId} failed: ${error.message}`,
    );
    return;
  }
  const expected = (lastSeq.get(header.sessionId) ?? -1) + 1;
  lastSeq.set(header.sessionId, header.seq);
  if (header.seq !== expected) {
    problem(
      "misordered",
      `session ${header.sessionId}: object #${header.seq} arrived after #${
        expected - 1
      }`,
    );
  }
  if (body === null) {
    if (header.size !== 0) {
      problem(
        "corrupt",
        `object ${header.name} has size ${header.size} but no body`,
      );
    }
    counters.objects++;
    return;
  }
  // A whole body is checked in place, as the WebSocket peer checks its
  // messages: no copy of its stamp.
  if (body instanceof Uint8Array) return counted(header, body.byteLength, body);
  return drain(body, header.size).then(({ length, stamp }) =>
    counted(header, length, stamp)
  );
}

/** Counts the body of `header` (`length` bytes starting with `stamp`) and checks it. */
function counted(
  header: ReceivedHeader,
  length: number,
  stamp: Uint8Array,
): void {
  counters.bytes += length;
  counters.objects++;
  if (length !== header.size) {
    problem(
      "corrupt",
      `object ${header.name}: body of ${length} bytes, header size ${header.size}`,
    );
    return;
  }
  checkStamp(Number(header.name), stamp, length);
}

function littleU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) |
    (bytes[at + 3] << 24)) >>> 0;
}

/** Whether body `stamp` (of `length` bytes) is that of object `index`. */
function checkStamp(index: number, stamp: Uint8Array, length: number): void {
  if (length < STAMP_BYTES) return;
  // Byte by byte: a DataView per object cost ~0.4 µs in Deno, a share of
  // either peer's receiving that is not its own (the WebSocket's too).
  const slot = littleU32(stamp, 0);
  const slots = littleU32(stamp, 4);
  if (slots === 0 || index % slots !== slot) {
    problem(
      "corrupt",
      `object ${index}: body is from pool slot ${slot} of ${slots}, expected slot ${
        slots === 0 ? "?" : index % slots
      }`,
    );
  }
}

/** Checks that header-only object `name` is object `expected` of its stream. */
function checkName(name: string, expected: number, stream: string): void {
  if (name !== String(expected)) {
    problem(
      "misordered",
      `${stream}: object named ${
        JSON.stringify(name)
      } arrived as object #${expected}`,
    );
  }
}

interface Served {
  url: URL;
  /** Brings `counters` up to date before they are reported. */
  refresh(): void;
  close(): Promise<void>;
}

/** `--whole`: see the module doc; -1 registers a stream-only handler. */
let wholeBodies = 64 * 1024;

async function serveTransport(): Promise<Served> {
  const receiver = new Receiver({
    onRequestEnd() {
      counters.requests++;
    },
  });
  await receiver.listen(NETWORK, { hostname: "127.0.0.1", port: 0 });
  if (wholeBodies < 0) receiver.register(NETWORK, TRNAME, handle);
  else receiver.register(NETWORK, TRNAME, handle, { wholeBodies });
  return {
    url: receiver.url(NETWORK, TRNAME),
    refresh() {
      const endpoint = receiver.stats()[NETWORK]?.[TRNAME];
      counters.receiverObjects = endpoint?.objects ?? 0;
      counters.receiverBytes = endpoint?.bytes ?? 0;
    },
    close: () => receiver.close(),
  };
}

function serveDrain(): Served {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      counters.requests++;
      let length = 0;
      if (request.body !== null) ({ length } = await drain(request.body, -1));
      counters.bytes += length;
      counters.objects++;
      return Response.json({ bytes: length });
    },
  );
  return {
    url: new URL(`http://127.0.0.1:${server.addr.port}/drain`),
    refresh() {},
    close: () => server.shutdown(),
  };
}

/** One object per WebSocket message, acknowledged (see {@linkcode WS_ACK_EVERY}). */
function serveWebSocket(): Served {
  let sockets = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      counters.requests++;
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      const stream = `WebSocket ${sockets++}`;
      let count = 0;
      socket.onmessage = ({ data }) => {
        if (data === "fin") {
          socket.send(`done ${count}`);
          return;
        }
        if (typeof data === "string") checkName(data, count, stream);
        else {
          const body = new Uint8Array(data as ArrayBuffer);
          counters.bytes += body.byteLength;
          checkStamp(count, body, body.byteLength);
        }
        counters.objects++;
        if (++count % WS_ACK_EVERY === 0) socket.send(`ack ${count}`);
      };
      return response;
    },
  );
  return {
    url: new URL(`ws://127.0.0.1:${server.addr.port}/objects`),
    refresh() {},
    close: () => server.shutdown(),
  };
}

/** Whether `BENCH_GRPC_ABORT` (see the module doc) says: abort now. */
function abortsNow(abort: string): boolean {
  if (abort === "always") return true;
  try {
    Deno.writeFileSync(abort, new Uint8Array(), { createNew: true });
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
}

/** One object per message of a gRPC client stream (`bench/_grpc_peer.ts`). */
async function serveGrpcPeer(): Promise<Served> {
  // A computed specifier: only this mode loads the bench-only package.
  const module = new URL("_grpc_peer.ts", import.meta.url).href;
  const peer: {
    serveGrpc(
      onMessage: (message: Uint8Array, call: number) => void,
    ): Promise<{ port: number; close(): Promise<void> }>;
  } = await import(module);
  const counts = new Map<number, number>();
  const decoder = new TextDecoder();
  const abort = Deno.env.get("BENCH_GRPC_ABORT");
  const server = await peer.serveGrpc((message, call) => {
    const count = counts.get(call) ?? 0;
    if (count === 0 && abort !== undefined && abortsNow(abort)) {
      Deno.kill(Deno.pid, "SIGABRT");
    }
    checkName(decoder.decode(message), count, `gRPC call ${call}`);
    counts.set(call, count + 1);
    counters.objects++;
  });
  return {
    url: new URL(`http://127.0.0.1:${server.port}/`),
    refresh() {},
    // Not server.close(): a graceful shutdown sends the bench's client a
    // GOAWAY, on which Deno's node:http2 has aborted the receiving process
    // (see `GrpcChannel` in bench/_grpc_peer.ts). Exiting closes the
    // sockets without one; the bench has read every count by then.
    close: () => Promise.resolve(),
  };
}

/** `value` of flag `--name` if it is one of `allowed`; else reports and returns null. */
function oneOf<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
): T | null {
  if (allowed.includes(value as T)) return value as T;
  console.error(
    `_transport_receiver: --${name} is ${JSON.stringify(value)}; expected ${
      allowed.map((a) => JSON.stringify(a)).join(" or ")
    }`,
  );
  return null;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, { string: ["mode", "read", "whole"] });
  const mode = oneOf("mode", flags.strings.mode, [
    "transport",
    "drain",
    "ws",
    "grpc",
  ]);
  const read = oneOf("read", flags.strings.read ?? "byob", ["byob", "default"]);
  if (mode === null || read === null) return 2;
  readMode = read;
  if (flags.strings.whole !== undefined) {
    wholeBodies = Number(flags.strings.whole);
    if (!Number.isSafeInteger(wholeBodies) || wholeBodies < -1) {
      console.error(
        `_transport_receiver: --whole is ${
          JSON.stringify(flags.strings.whole)
        }; expected a byte count, or -1 for streams only`,
      );
      return 2;
    }
  }
  const served = mode === "transport"
    ? await serveTransport()
    : mode === "ws"
    ? serveWebSocket()
    : mode === "grpc"
    ? await serveGrpcPeer()
    : serveDrain();
  console.log(`Listening on ${served.url.href}`);
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream())
    .pipeThrough<string>(new TextLineStream());
  for await (const line of lines) {
    const command = line.trim();
    if (command === "stats") {
      served.refresh();
      console.log(JSON.stringify(counters));
    } else {
      console.log(JSON.stringify({
        error: `unknown command ${JSON.stringify(command)}; expected "stats"`,
      }));
    }
  }
  await served.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
