/** Test helpers: real servers on loopback in temporary directories. */

import {
  type ServerOptions,
  type SpoolServer,
  startServer,
} from "../server/mod.ts";

/** A server on 127.0.0.1 with a fresh data directory, removed on dispose. */
export interface TestServer extends SpoolServer {
  dataDir: string;
}

/** Starts a server on a free loopback port with a temporary data directory. */
export async function startTestServer(
  options: ServerOptions = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ??
    await Deno.makeTempDir({ prefix: "spool-test-" });
  const server = await startServer({
    port: 0,
    checkpointMs: 20,
    ...options,
    dataDir,
  });
  const close = async () => {
    await server.close();
    if (!options.dataDir) await Deno.remove(dataDir, { recursive: true });
  };
  return { ...server, dataDir, close, [Symbol.asyncDispose]: close };
}

/** Lowercase hex SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Deterministic pseudo-random bytes (fast; not for secrets). */
export function randomBytes(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Reads a whole byte stream. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
