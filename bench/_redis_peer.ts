/**
 * The Redis pub/sub peer of the fan-out benchmark: Debian's `redis-server`
 * on a free 127.0.0.1 port with a temporary directory and no persistence,
 * and npm `ioredis` (a bench-only dependency, see README) to publish and
 * subscribe. Publishing sends each write once to every subscriber, the
 * design the fan-out issue compares Spool with.
 *
 * Only ever loaded with a dynamic `import()` of a computed specifier, so
 * that nothing else needs the package: where it cannot be loaded, or
 * `redis-server` is missing, the benchmark says so and skips the peer.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "bench-only/ioredis";
import { TextLineStream } from "@std/streams";
import { rssOf } from "../testing/process_memory.ts";

/** Where Debian installs the server. */
export const REDIS_SERVER = "/usr/bin/redis-server";
/** The channel the benchmark publishes on. */
export const CHANNEL = "fanout";
/** How long `redis-server` may take to say it is ready. */
const READY_MS = 10_000;

/** A running `redis-server`. */
export interface RedisServer {
  port: number;
  pid: number;
  /** Resident memory of the server in bytes. */
  rss(): Promise<number>;
  /** Stops it by its pid (SIGTERM) and removes its directory. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (free when asked: the server binds it next). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Waits for `redis-server`'s "Ready to accept connections" line. */
async function ready(
  process: Deno.ChildProcess,
  port: number,
): Promise<void> {
  const lines = process.stdout.pipeThrough(new TextDecoderStream())
    .pipeThrough<string>(new TextLineStream()).getReader();
  const seen: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `redis-server on port ${port} not ready after ${READY_MS} ms: ${
              seen.slice(-5).join(" | ")
            }`,
          ),
        ),
      READY_MS,
    )
  );
  try {
    await Promise.race([
      late,
      (async () => {
        for (;;) {
          const { value, done } = await lines.read();
          if (done) {
            throw new Error(
              `redis-server on port ${port} exited before it was ready: ${
                seen.slice(-5).join(" | ")
              }`,
            );
          }
          seen.push(value);
          if (value.includes("Ready to accept connections")) return;
        }
      })(),
    ]);
  } finally {
    clearTimeout(timer);
  }
  // Keep reading its log so it never blocks on a full pipe.
  (async () => {
    while (!(await lines.read()).done) { /* drain */ }
  })();
}

/**
 * Starts `redis-server` on a free 127.0.0.1 port: no snapshots, no append
 * log, no limit on a subscriber's output buffer (so a slow subscriber is
 * not dropped: it must get every byte, as a Spool follower does).
 *
 * @example
 * ```ts ignore
 * const redis = await startRedis();
 * await redis.stop();
 * ```
 */
export async function startRedis(maxClients: number): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "spool-bench-redis-" });
  const port = freePort();
  const process = new Deno.Command(REDIS_SERVER, {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--logfile",
      "",
      "--maxclients",
      String(maxClients),
      "--client-output-buffer-limit",
      "pubsub 0 0 0",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    try {
      Deno.kill(process.pid, "SIGTERM");
    } catch (error) {
      // It exited already (its status says how).
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await process.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await ready(process, port);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, pid: process.pid, rss: () => rssOf(process.pid), stop };
}

/** A connection that publishes on {@linkcode CHANNEL}. */
export interface Publisher {
  /** Publishes `message`; resolves once Redis has it. */
  publish(message: Uint8Array | string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects a publisher to the server on `port`.
 *
 * @example
 * ```ts ignore
 * const publisher = await connectPublisher(redis.port);
 * await publisher.publish("end 0");
 * ```
 */
export async function connectPublisher(port: number): Promise<Publisher> {
  const redis = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
  await redis.connect();
  return {
    async publish(message) {
      await redis.publish(
        CHANNEL,
        typeof message === "string"
          ? message
          : Buffer.from(message.buffer, message.byteOffset, message.byteLength),
      );
    },
    async close() {
      await redis.quit();
    },
  };
}

/** A subscriber's connection. */
export interface Subscriber {
  close(): Promise<void>;
}

/**
 * Subscribes a new connection to {@linkcode CHANNEL} on `port`; resolves
 * once subscribed. `onMessage` gets every message's bytes (the producer
 * ends a run with a short `end BYTES`).
 *
 * @example
 * ```ts ignore
 * const subscriber = await subscribe(redis.port, (bytes) => count += bytes.length);
 * ```
 */
export async function subscribe(
  port: number,
  onMessage: (message: Uint8Array) => void,
): Promise<Subscriber> {
  const redis = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
  await redis.connect();
  redis.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
    onMessage(message);
  });
  await redis.subscribe(CHANNEL);
  return {
    async close() {
      await redis.quit();
    },
  };
}
