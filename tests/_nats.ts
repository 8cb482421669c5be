/**
 * A real `nats-server` with JetStream for the multi-node tests: on a free
 * loopback port with a temporary store dir, ready once it says so, stopped
 * by pid.
 */

import { connect, headers } from "@nats-io/transport-node";
import { delay } from "@std/async/delay";
import { NatsEngine } from "../server/nats/engine.ts";
import {
  dataSubject,
  OFFSET_HEADER,
  SEGMENT_BYTES,
} from "../server/nats/subjects.ts";
import { Lines } from "./_lines.ts";
import { within } from "./_fault_actors.ts";

/** Debian's nats-server (2.9.10 here); `NATS_SERVER` overrides it. */
const NATS_SERVER = Deno.env.get("NATS_SERVER") ?? "/usr/sbin/nats-server";

/** A running nats-server. */
export interface NatsServer {
  /** `nats://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** Its process id (to pause it with SIGSTOP, say). */
  pid: number;
  /** Its JetStream store dir. */
  dir: string;
  /** `http://127.0.0.1:PORT` of its monitoring endpoint, when asked for. */
  monitorUrl?: string;
  /** Kills it (SIGKILL with `kill: true`) and waits for it to exit. */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Stops it and removes its store dir. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A port that was free a moment ago (the kernel picked it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Starts nats-server on `port` (default: a free one) with `dir` (default: a
 * new temporary dir) and any more `args`; resolves once it logs that it is
 * ready.
 */
export async function startNats(
  options: { port?: number; dir?: string; monitor?: boolean; args?: string[] } =
    {},
): Promise<NatsServer> {
  const port = options.port ?? freePort();
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "spool-nats-" });
  const monitorPort = options.monitor ? freePort() : undefined;
  const server = await spawnNats(port, dir, [
    ...(monitorPort === undefined ? [] : ["-m", String(monitorPort)]),
    ...(options.args ?? []),
  ]);
  return {
    ...server,
    monitorUrl: monitorPort === undefined
      ? undefined
      : `http://127.0.0.1:${monitorPort}`,
    async [Symbol.asyncDispose]() {
      await server.stop();
      if (!options.dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A nats-server and one node's engine connection to it. */
export interface NatsWithEngine {
  nats: NatsServer;
  engine: NatsEngine;
  /** Closes the connection, then stops the server. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a nats-server ({@linkcode startNats}) and connects an engine to it. */
export async function startEngine(): Promise<NatsWithEngine> {
  const nats = await startNats();
  try {
    const engine = await NatsEngine.connect({ servers: [nats.url] });
    return {
      nats,
      engine,
      async [Symbol.asyncDispose]() {
        await engine.close();
        await nats[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await nats[Symbol.asyncDispose]();
    throw error;
  }
}

/** A server of a {@linkcode NatsCluster}. */
export interface ClusterServer extends NatsServer {
  /** Its server name (`-n`), as JetStream names stream leaders. */
  name: string;
}

/** A running cluster of nats-servers on loopback. */
export interface NatsCluster {
  servers: ClusterServer[];
  /** Every client URL. */
  urls: string[];
  /** The server named `name` (e.g. a stream's leader). */
  byName(name: string): ClusterServer;
  /** Stops every server still running and removes their store dirs. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `size` (default 3) clustered nats-servers with JetStream on free
 * ports, each with its own temporary store dir; resolves once every server
 * is ready and answers JetStream's account info, which it can only once it
 * knows the metadata leader (before that, a stream cannot be made).
 * Throws, naming the servers, if that takes over {@linkcode CLUSTER_READY_MS}.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports = Array.from({ length: size }, () => freePort());
  const routePorts = Array.from({ length: size }, () => freePort());
  const dirs: string[] = [];
  const running: (Spawned & { name: string })[] = [];
  const dispose = async () => {
    await Promise.all(running.map((server) => server.stop()));
    await Promise.all(
      dirs.map((dir) => Deno.remove(dir, { recursive: true })),
    );
  };
  try {
    for (let i = 0; i < size; i++) {
      dirs.push(await Deno.makeTempDir({ prefix: `spool-nats-c${i}-` }));
    }
    const started = await Promise.all(ports.map(async (port, i) => {
      const name = `spool-n${i}`;
      const routes = routePorts.filter((_, j) => j !== i)
        .map((p) => `nats://127.0.0.1:${p}`).join(",");
      const server = await spawnNats(port, dirs[i], [
        ...["-n", name, "--cluster_name", "spool-test"],
        ...["--cluster", `nats://127.0.0.1:${routePorts[i]}`],
        ...["--routes", routes],
      ], (server) => running.push({ ...server, name }));
      return { ...server, name };
    }));
    // Every server knows the leader: a stream with a replica on each can be
    // placed. Asked, not read from the log: a server that learns the leader
    // while catching up need not log it (one never did: the wait hung).
    await Promise.all(started.map((server) => jetStreamReady(server)));
  } catch (error) {
    await dispose();
    throw error;
  }
  const servers: ClusterServer[] = running.map((server) => ({
    url: server.url,
    port: server.port,
    pid: server.pid,
    dir: server.dir,
    name: server.name,
    stop: server.stop,
    [Symbol.asyncDispose]: () => server.stop(),
  }));
  return {
    servers,
    urls: servers.map((server) => server.url),
    byName(name: string): ClusterServer {
      const server = servers.find((s) => s.name === name);
      if (!server) {
        throw new Error(
          `no server named ${name}; expected one of ${
            servers.map((s) => s.name).join(", ")
          }`,
        );
      }
      return server;
    },
    [Symbol.asyncDispose]: dispose,
  };
}

/** How long a new cluster may take until every server answers JetStream requests. */
export const CLUSTER_READY_MS = 30_000;

/**
 * Resolves once `server` answers `$JS.API.INFO` (each attempt waits up to a
 * second for the answer); throws, with the last answer or error, after
 * {@linkcode CLUSTER_READY_MS}.
 */
async function jetStreamReady(
  server: { url: string; name: string },
): Promise<void> {
  const nc = await connect({ servers: [server.url] });
  const deadline = performance.now() + CLUSTER_READY_MS;
  let last = "no answer yet";
  try {
    while (performance.now() < deadline) {
      try {
        const reply = await nc.request("$JS.API.INFO", "", { timeout: 1000 });
        const answer = JSON.parse(new TextDecoder().decode(reply.data));
        if (answer.error === undefined) return;
        last = JSON.stringify(answer.error);
      } catch (error) {
        // No metadata leader yet: the request times out or finds no responder.
        last = (error as Error).message;
      }
      // A status polled, bounded by the deadline: asked again shortly.
      await delay(100);
    }
  } finally {
    await nc.close();
  }
  throw new Error(
    `nats-server ${server.name} (${server.url}) did not answer JetStream requests within ${CLUSTER_READY_MS} ms (last: ${last}); expected the cluster to elect a metadata leader`,
  );
}

/** Resolves with the first line (said so far or later) matching a pattern; rejects if the server exits first. */
type Saw = (pattern: RegExp) => Promise<string>;

/** A spawned server, before it is wrapped for disposal. */
type Spawned = Omit<NatsServer, typeof Symbol.asyncDispose> & { saw: Saw };

/**
 * Spawns nats-server with JetStream and `extra` args; resolves once it
 * logs that it is ready. `spawned` learns of the child at once, so that a
 * caller can stop it even when it never gets ready.
 */
async function spawnNats(
  port: number,
  dir: string,
  extra: string[],
  spawned?: (server: Spawned) => void,
): Promise<Spawned> {
  const child = new Deno.Command(NATS_SERVER, {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, ...extra],
    env: { GOMEMLIMIT: "256MiB" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = new Lines(child.stderr);
  const said: string[] = [];
  const watchers: { pattern: RegExp; found: (line: string | null) => void }[] =
    [];
  // Every line is read (a full pipe would block the server) and kept.
  const reading = (async () => {
    for (let line = await lines.next(); line !== null;) {
      said.push(line);
      for (const watcher of watchers.filter((w) => w.pattern.test(line!))) {
        watchers.splice(watchers.indexOf(watcher), 1);
        watcher.found(line);
      }
      line = await lines.next();
    }
    for (const watcher of watchers.splice(0)) watcher.found(null);
  })();
  let exited = false;
  const saw: Saw = async (pattern) => {
    const line = said.find((l) => pattern.test(l)) ??
      (exited ? null : await new Promise<string | null>((found) => {
        watchers.push({ pattern, found });
      }));
    if (line === null) {
      throw new Error(
        `nats-server on port ${port} exited before it logged ${pattern}: ${
          said.join("\n")
        }`,
      );
    }
    return line;
  };
  reading.then(() => exited = true);
  let stopped: Promise<void> | undefined;
  const stop = (how: { kill?: boolean } = {}) =>
    stopped ??= (async () => {
      try {
        Deno.kill(child.pid, how.kill ? "SIGKILL" : "SIGTERM");
      } catch (error) {
        // It exited by itself (it logged why): there is nothing to stop.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      await child.status;
      await lines.done;
      await reading;
    })();
  const server = {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    dir,
    stop,
    saw,
  };
  spawned?.(server);
  try {
    await within(
      CLUSTER_READY_MS,
      `nats-server on port ${port} logging that it is ready`,
      saw(/Server is ready/),
    );
  } catch (error) {
    // Exited (it said why), or still starting after the bound: stopped.
    await stop({ kill: true });
    throw error;
  }
  return server;
}

/**
 * Stores `spans` (`[from, to)`) of `data` as pieces of resource `id`, in the
 * order given, each one anew (no message id): a test's way to store pieces
 * out of order, twice or overlapping, as a leader change or a retry can.
 */
export async function publishPieces(
  engine: NatsEngine,
  id: string,
  data: Uint8Array,
  spans: [number, number][],
): Promise<void> {
  for (const [from, to] of spans) {
    const header = headers();
    header.set(OFFSET_HEADER, String(from));
    await engine.js.publish(
      dataSubject(id, Math.floor(from / SEGMENT_BYTES)),
      data.subarray(from, to),
      { headers: header },
    );
  }
}
