/** Test helpers: real servers on loopback in temporary directories. */

import {
  FileStore,
  type ResourceWriter,
  type ServerOptions,
  type SpoolServer,
  startServer,
} from "../server/mod.ts";
import type { ResourceStatus } from "../protocol/mod.ts";
import { encodeHex } from "@std/encoding/hex";
import { newResourceId } from "../server/resource_id.ts";
import { Lines } from "./_fault_actors.ts";

export { randomBytes } from "../testing/seeded_random.ts";

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
  // Closing twice (a test's close, then its `await using`) is fine.
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server.close();
      if (!options.dataDir) await Deno.remove(dataDir, { recursive: true });
    })();
  return { ...server, dataDir, close, [Symbol.asyncDispose]: close };
}

/** Lowercase hex SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return encodeHex(digest);
}

/** Reads a whole byte stream. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

/** A server running as a subprocess of `server/main.ts`. */
export interface ServerProcess {
  process: Deno.ChildProcess;
  url: URL;
  /** Its stderr lines, when started with `stderr: "lines"`. */
  stderr?: Lines;
}

/**
 * Runs `server/main.ts` (or `main`, e.g. a URL) as a subprocess and resolves
 * once its first stdout line says where it listens.
 */
export async function spawnServer(
  dataDir: string,
  options: {
    main?: string;
    denoArgs?: string[];
    args?: string[];
    cwd?: string;
    /** `"lines"` keeps its stderr for the test to read (default: inherited). */
    stderr?: "lines";
    /** Runs it under `ulimit -n maxFiles` (through bash). */
    maxFiles?: number;
  } = {},
): Promise<ServerProcess> {
  const wrapper = options.maxFiles === undefined
    ? []
    : ["bash", "-c", `ulimit -n ${options.maxFiles} && exec "$0" "$@"`];
  const process = new Deno.Command(wrapper[0] ?? Deno.execPath(), {
    args: [
      ...wrapper.slice(1),
      ...(wrapper.length > 0 ? [Deno.execPath()] : []),
      "run",
      "-A",
      ...(options.denoArgs ?? []),
      options.main ?? SERVER_MAIN,
      ...(options.args?.includes("--port") ? [] : ["--port", "0"]),
      "--data-dir",
      dataDir,
      "--checkpoint-ms",
      "10",
      ...(options.args ?? []),
    ],
    cwd: options.cwd,
    stdout: "piped",
    stderr: options.stderr === "lines" ? "piped" : "inherit",
  }).spawn();
  const stderr = options.stderr === "lines"
    ? new Lines(process.stderr)
    : undefined;
  const lines = new Lines(process.stdout);
  const first = await lines.next();
  if (first === null) {
    await process.status;
    throw new Error("server exited before listening; it printed nothing");
  }
  const match = first.match(/^Listening on (http:\/\/\S+)$/);
  if (!match) throw new Error(`unexpected first line: ${first}`);
  // Keep draining stdout so the child never blocks on a full pipe.
  lines.rest();
  return { process, url: new URL(match[1]), stderr };
}

/**
 * The real file store with a slow disk: every append waits for `pace()`
 * before it is written, so tests can hold writes back deterministically.
 */
export class SlowFileStore extends FileStore {
  /** Called before each append; the append waits for the promise. */
  pace: (chunk: Uint8Array) => Promise<void> = () => Promise.resolve();

  override async create(status: ResourceStatus): Promise<ResourceWriter> {
    const writer = await super.create(status);
    return {
      append: async (chunk) => {
        await this.pace(chunk);
        await writer.append(chunk);
      },
      sync: () => writer.sync(),
      close: () => writer.close(),
    };
  }
}

/** `reference` with the host of `server`: the same resource through another node or a proxy. */
export function onNode(reference: string, server: URL): string {
  const url = new URL(reference);
  url.host = server.host;
  return url.href;
}

/** The upload socket URL of `server` (`ws:`). */
export function uploadSocketUrl(server: URL): URL {
  const url = new URL("upload", server);
  url.protocol = "ws:";
  return url;
}

/**
 * A status of a new resource for store-level tests: `INITIATED` with no
 * byte unless `fields` say otherwise (a fresh id unless `fields.id`).
 */
export function testStatus(
  name: string,
  fields: Partial<ResourceStatus> = {},
): ResourceStatus {
  const now = new Date().toISOString();
  return {
    id: newResourceId(),
    name,
    mimeType: "application/octet-stream",
    metadata: {},
    status: "INITIATED",
    size: 0,
    createdAt: now,
    updatedAt: now,
    ...fields,
  };
}
