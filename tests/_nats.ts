/**
 * A real `nats-server` with JetStream for the multi-node tests: on a free
 * loopback port with a temporary store dir, ready once it says so, stopped
 * by pid.
 */

import { Lines } from "./_lines.ts";

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
 * new temporary dir); resolves once it logs that it is ready.
 */
export async function startNats(
  options: { port?: number; dir?: string } = {},
): Promise<NatsServer> {
  const port = options.port ?? freePort();
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "spool-nats-" });
  const child = new Deno.Command(NATS_SERVER, {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    env: { GOMEMLIMIT: "256MiB" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = new Lines(child.stderr);
  const said: string[] = [];
  for (let line = await lines.next();; line = await lines.next()) {
    if (line === null) {
      await child.status;
      throw new Error(
        `nats-server exited before it was ready: ${said.join("\n")}`,
      );
    }
    said.push(line);
    if (line.includes("Server is ready")) break;
  }
  let stopped: Promise<void> | undefined;
  const stop = (how: { kill?: boolean } = {}) =>
    stopped ??= (async () => {
      Deno.kill(child.pid, how.kill ? "SIGKILL" : "SIGTERM");
      await child.status;
      await lines.done;
    })();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    dir,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      if (!options.dir) await Deno.remove(dir, { recursive: true });
    },
  };
}
