/**
 * Fault-injection helpers and subprocess actors.
 *
 * As a module it gives the fault tests a replayable seed, a deterministic
 * object generator, line-oriented access to child processes and a hang
 * guard. Run as a script it is an actor the tests SIGKILL at random points:
 *
 * ```sh
 * deno run -A tests/_fault_actors.ts send '{"url":…,"seed":1,"count":20,"victim":"stall","victimBytes":200000}'
 * deno run -A tests/_fault_actors.ts receive '{"trname":"fault"}'
 * ```
 *
 * - `send`: a `Stream` sending `count` generated objects (see
 *   {@linkcode objectSize}, {@linkcode objectBody}), then a victim object
 *   that never ends: `stall` sends `victimBytes` of a stream body and then
 *   waits forever; `big` sends a 24 MiB body that a holding receiver cannot
 *   take in. Prints `sent <i> <code|ok>` per completion.
 * - `receive`: a `Receiver` on 127.0.0.1 with endpoint `trname`; prints
 *   `url <url>`, then `obj <seq> <name> <length> <sha256>` per whole object
 *   and `err <seq> <name> <code>` per error. SIGTERM closes it (exit 0).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { TextLineStream } from "@std/streams";
import { prng, randomBytes } from "../testing/seeded_random.ts";
import { Receiver, Stream } from "../transport/mod.ts";

export { prng } from "../testing/seeded_random.ts";

/** The path of this script, for `deno run`. */
export const ACTORS = new URL("./_fault_actors.ts", import.meta.url).pathname;

let baseSeed: number | undefined;

/**
 * The seed of a fault test: `SPOOL_FAULT_SEED` if set (to replay a run),
 * else random. Printed so a failure can be replayed; each test mixes in its
 * own `salt` so tests do not share kill points.
 */
export function faultSeed(test: string): number {
  const fromEnv = Deno.env.get("SPOOL_FAULT_SEED");
  baseSeed ??= fromEnv !== undefined && fromEnv !== ""
    ? Number(fromEnv) >>> 0
    : crypto.getRandomValues(new Uint32Array(1))[0];
  const base = baseSeed;
  console.log(`${test}: fault seed ${base} (replay: SPOOL_FAULT_SEED=${base})`);
  let salt = 0x811c9dc5;
  for (const c of test) salt = Math.imul(salt ^ c.charCodeAt(0), 0x01000193);
  return ((base ^ salt) >>> 0) || 1;
}

/** Size of generated object `i` of `seed`: empty, small, medium or large. */
export function objectSize(seed: number, i: number): number {
  const rand = prng((seed * 7919 + i * 104_729 + 1) >>> 0);
  rand(2); // the first outputs of close seeds are correlated
  const kind = rand(10);
  if (kind === 0) return 0;
  if (kind < 5) return 1 + rand(4096);
  if (kind < 9) return 4096 + rand(200_000);
  return 200_000 + rand(1_500_000);
}

/** Body of generated object `i` of `seed` (deterministic). */
export function objectBody(
  seed: number,
  i: number,
  size = objectSize(seed, i),
): Uint8Array<ArrayBuffer> {
  return randomBytes(size, (seed * 100_003 + i) >>> 0);
}

/** Lowercase hex SHA-256 (synchronous, for large bodies too). */
export function hex256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Rejects with a clear message if `promise` has not settled within `ms`:
 * a guard against hangs, never used to wait for something to happen.
 */
export async function within<T>(
  ms: number,
  what: string,
  promise: Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: still pending after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lines of a child's stdout, read as they come. */
export class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  /** Every line read so far. */
  readonly seen: string[] = [];

  constructor(stdout: ReadableStream<Uint8Array>) {
    this.#reader = stdout.pipeThrough(new TextDecoderStream())
      .pipeThrough<string>(new TextLineStream()).getReader();
  }

  /** The next line, or `null` once stdout ended. */
  async next(): Promise<string | null> {
    const { value, done } = await this.#reader.read();
    if (done) return null;
    this.seen.push(value);
    return value;
  }

  /** Reads until a line matches; throws if stdout ends first. */
  async until(predicate: (line: string) => boolean): Promise<string> {
    while (true) {
      const line = await this.next();
      if (line === null) {
        throw new Error(
          `stdout ended before the expected line; lines: ${
            this.seen.slice(-5).join(" | ")
          }`,
        );
      }
      if (predicate(line)) return line;
    }
  }

  /** Reads to the end (the child exited); returns the lines. */
  async rest(): Promise<string[]> {
    const lines: string[] = [];
    for (
      let line = await this.next();
      line !== null;
      line = await this.next()
    ) {
      lines.push(line);
    }
    return lines;
  }
}

/** A running actor subprocess. */
export interface Actor {
  child: Deno.ChildProcess;
  lines: Lines;
}

/** Starts `tests/_fault_actors.ts MODE CONFIG` as a subprocess. */
export function spawnActor(mode: "send" | "receive", config: unknown): Actor {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ACTORS, mode, JSON.stringify(config)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return { child, lines: new Lines(child.stdout) };
}

/**
 * Child processes of one test: disposing kills those still running and
 * waits for them, so a failing test leaves no process behind.
 */
export class Children {
  readonly #children: { child: Deno.ChildProcess; drain: () => unknown }[] = [];

  /** Adds a child; `drain` reads the rest of its output, if any. */
  add<T extends { child: Deno.ChildProcess }>(
    entry: T,
    drain: (entry: T) => unknown = () => {},
  ): T {
    this.#children.push({ child: entry.child, drain: () => drain(entry) });
    return entry;
  }

  /** Starts an actor and tracks it. */
  actor(mode: "send" | "receive", config: unknown): Actor {
    return this.add(spawnActor(mode, config), (a) => a.lines.rest());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#children.map(async ({ child, drain }) => {
      await kill(child);
      await drain();
    }));
  }
}

/** SIGKILLs `child` (if still running) and waits for it. */
export async function kill(
  child: Deno.ChildProcess,
): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  return await child.status;
}

/** Configuration of the `send` actor. */
export interface SendConfig {
  url: string;
  seed: number;
  /** Whole objects before the victim. */
  count: number;
  /** How the victim object stays unfinished. */
  victim: "stall" | "big";
  /** `stall`: body bytes sent before the stream body stalls. */
  victimBytes?: number;
}

/** The first `bytes` of the `send` actor's victim body (any length). */
export function victimBody(
  seed: number,
  bytes: number,
): Uint8Array<ArrayBuffer> {
  return objectBody(seed, 999_999, BIG_VICTIM).slice(0, bytes);
}

/** The victim's name in the `send` actor. */
export const VICTIM = "victim";
/** Size of the `big` victim: far more than socket buffers can hold. */
export const BIG_VICTIM = 24 * 1024 * 1024;

async function sendActor(config: SendConfig): Promise<void> {
  const stream = new Stream(config.url, {
    onSent: (header, error) =>
      console.log(`sent ${header.name} ${error?.code ?? "ok"}`),
  });
  for (let i = 0; i < config.count; i++) {
    const body = objectBody(config.seed, i);
    // Every third object goes as a stream body (unknown size, PDUs).
    await stream.send(
      { name: `o${i}`, custom: { i: String(i) } },
      i % 3 === 2 ? ReadableStream.from([body]) : body,
    );
  }
  if (config.victim === "big") {
    await stream.send({ name: VICTIM }, victimBody(config.seed, BIG_VICTIM));
  } else {
    const bytes = victimBody(config.seed, config.victimBytes ?? 0);
    let at = 0;
    await stream.send(
      { name: VICTIM },
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (at < bytes.length) {
            const piece = Math.min(bytes.length - at, 20_000);
            controller.enqueue(bytes.slice(at, at + piece));
            at += piece;
            return;
          }
          console.log("stalled");
          await new Promise(() => {}); // never ends: the test kills us here
        },
      }),
    );
  }
  console.log("queued");
  await stream.fin();
}

async function receiveActor(config: { trname: string }): Promise<void> {
  const receiver = new Receiver();
  await receiver.listen("data");
  receiver.register("data", config.trname, async (header, body, error) => {
    if (error) {
      console.log(`err ${header.seq} ${header.name} ${error.code}`);
      return;
    }
    const hash = createHash("sha256");
    let length = 0;
    if (body !== null) {
      for await (const chunk of body) {
        hash.update(chunk);
        length += chunk.byteLength;
      }
    }
    console.log(
      `obj ${header.seq} ${header.name} ${length} ${hash.digest("hex")}`,
    );
  });
  Deno.addSignalListener("SIGTERM", async () => {
    await receiver.close();
    Deno.exit(0);
  });
  console.log(`url ${receiver.url("data", config.trname).href}`);
}

if (import.meta.main) {
  const [mode, config] = Deno.args;
  if (mode === "send") await sendActor(JSON.parse(config));
  else if (mode === "receive") await receiveActor(JSON.parse(config));
  else {
    console.error(`unknown actor ${mode}; expected send or receive`);
    Deno.exit(2);
  }
}
