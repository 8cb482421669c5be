/**
 * The gRPC peer of the transport benchmarks: client streaming with npm
 * `@grpc/grpc-js` (a bench-only dependency, see README), one message per
 * object, the object count as the answer. The service is defined by hand
 * with raw-bytes serializers, so no `.proto` file or protobuf library is
 * involved: what is measured is grpc-js's HTTP/2 framing and flow control.
 *
 * Retries are off (`grpc.enable_retries: 0`): with them on, grpc-js keeps
 * every message of a call for a possible retry, which makes a long stream
 * quadratic.
 *
 * Only ever loaded with a dynamic `import()` of a computed specifier
 * ({@linkcode GRPC_PEER_MODULE}), so that nothing else needs the package:
 * where it cannot be loaded, its benchmark rows say so and are skipped.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as grpc from "bench-only/grpc-js";

/** The URL to `import()` this module from. */
export const GRPC_PEER_MODULE = import.meta.url;

/** The npm package this peer needs, for the "skipped" text. */
export const GRPC_PACKAGE = "npm:@grpc/grpc-js@1.14.7";

/** Channel options of both ends: no retries, no message size limits. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.enable_retries": 0,
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
};

/** Messages written between turns of the event loop when never pushed back. */
const YIELD_EVERY = 256;

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** `Objects/Put`: a stream of raw messages in, their count (decimal) out. */
const PUT: grpc.MethodDefinition<Uint8Array, number> = {
  path: "/spool.bench.Objects/Put",
  requestStream: true,
  responseStream: false,
  requestSerialize: toBuffer,
  requestDeserialize: (bytes: Buffer) => bytes,
  responseSerialize: (count: number) => Buffer.from(String(count)),
  responseDeserialize: (bytes: Buffer) => Number(bytes.toString()),
};

/** A running gRPC server. */
export interface GrpcServing {
  port: number;
  /**
   * A graceful shutdown: it sends every client a GOAWAY, which Deno's
   * `node:http2` has aborted on (see {@linkcode GrpcChannel}), so the
   * bench's receiver exits without it.
   */
  close(): Promise<void>;
}

/**
 * Serves `Objects/Put` on 127.0.0.1 (a free port): `onMessage` sees every
 * message of a call in order, and the call answers with their count.
 *
 * @example
 * ```ts ignore
 * const server = await serveGrpc(() => {});
 * await server.close();
 * ```
 */
export async function serveGrpc(
  onMessage: (message: Uint8Array, call: number) => void,
): Promise<GrpcServing> {
  const server = new grpc.Server(CHANNEL_OPTIONS);
  let calls = 0;
  server.addService({ put: PUT }, {
    put(
      call: grpc.ServerReadableStream<Uint8Array, number>,
      callback: grpc.sendUnaryData<number>,
    ) {
      const id = calls++;
      let count = 0;
      call.on("data", (message: Uint8Array) => {
        onMessage(message, id);
        count++;
      });
      call.on("end", () => callback(null, count));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/**
 * One gRPC channel to `127.0.0.1:port`, for every run of a benchmark. Why
 * not one per call: closing a channel closes its HTTP/2 session, which sends
 * the server a GOAWAY, and Deno 2.9.6's `node:http2` has aborted the
 * server's process on it (an nghttp2 assertion in
 * `find_stream_on_goaway_func`, as in denoland/deno issue 36788; see
 * bench/ANALYSIS.md), right after the first call of a bench run. So the channel
 * stays open until the server's process has exited (see
 * `bench/_transport_receiver.ts`, which exits without a GOAWAY too).
 */
export interface GrpcChannel {
  /**
   * One client-streaming `Objects/Put` call: writes `next()` until it
   * returns `null` (waiting for `drain` whenever grpc-js's buffer is full),
   * then ends the call; resolves with how many messages the server counted.
   */
  stream(next: () => Uint8Array | null, signal: AbortSignal): Promise<number>;
  /** Closes the channel: only once the server's process has exited. */
  close(): void;
}

/**
 * Opens a {@linkcode GrpcChannel} and waits until it is connected, so that
 * no measured call includes connecting.
 *
 * @example
 * ```ts ignore
 * const channel = await openGrpc(port);
 * let left = 3;
 * const count = await channel.stream(() => left-- > 0 ? new Uint8Array(1) : null, signal);
 * ```
 */
export async function openGrpc(port: number): Promise<GrpcChannel> {
  const client = new grpc.Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  try {
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(
        Date.now() + 10_000,
        (error) => error ? reject(error) : resolve(),
      )
    );
  } catch (error) {
    client.close();
    throw error;
  }
  return {
    stream: (next, signal) => streamCall(client, next, signal),
    close: () => client.close(),
  };
}

/** {@linkcode GrpcChannel.stream} on `client`. */
async function streamCall(
  client: grpc.Client,
  next: () => Uint8Array | null,
  signal: AbortSignal,
): Promise<number> {
  let call: grpc.ClientWritableStream<Uint8Array> | undefined;
  const answer = new Promise<number>((resolve, reject) => {
    call = client.makeClientStreamRequest(
      PUT.path,
      PUT.requestSerialize,
      PUT.responseDeserialize,
      (error: grpc.ServiceError | null, count?: number) =>
        error ? reject(error) : resolve(count!),
    );
  });
  // Awaited below; until then a failed call must not count as unhandled.
  answer.catch(() => {});
  const onAbort = () => call!.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let written = 0;
    for (let message = next(); message !== null; message = next()) {
      if (!call!.write(message)) {
        // A call that fails meanwhile never drains: its answer rejects.
        await Promise.race([
          new Promise((resolve) => call!.once("drain", resolve)),
          answer,
        ]);
      } else if (++written % YIELD_EVERY === 0) {
        // write() may accept without pushing back for a long time: let
        // the event loop move the bytes (as a real producer would).
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    call!.end();
    return await answer;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
