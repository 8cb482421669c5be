/**
 * `spool send` and `spool receive`: the object transport on the command line.
 *
 * - `receive` serves one endpoint and writes every object it gets to a
 *   directory, printing one JSON line per object (name, size, sha256).
 * - `send` sends files as objects to such an endpoint (the send-loop worker
 *   opens and reads each file itself), counts an object as delivered once
 *   the receiver confirmed it (stored it whole), and prints a summary, or
 *   which objects were not delivered.
 *
 * Both resolve with an exit code: `0` success, `1` a failure (with a one-line
 * reason on stderr), `2` bad usage.
 *
 * @example
 * ```ts ignore
 * import { receiveMain, sendMain } from "./transport_cli.ts";
 * // In one process: serve until SIGINT/SIGTERM.
 * Deno.exit(await receiveMain(["--port", "0", "--dir", "incoming"]));
 * // In another, with the URL the receiver printed:
 * Deno.exit(await sendMain(["http://127.0.0.1:40123/v1/objstream/spool", "a.bin"]));
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join, resolve, sep as SEPARATOR } from "node:path";
import { integerFlag, parseFlags, UsageError } from "./args.ts";
import { formatBytes, Progress } from "./progress.ts";
import { writeBody } from "./_write_body.ts";
import {
  type ReceivedHeader,
  type ReceiveHandler,
  Receiver,
  Stream,
  TransportError,
} from "../transport/mod.ts";
import {
  DEFAULT_TRNAME,
  RECEIVE_HELP,
  SECRET_ENV,
  SEND_HELP,
} from "./_transport_help.ts";

/** Endpoint name `receive` serves when `--name` is not given. */

// deno-lint-ignore no-control-regex -- refusing control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Checks an object name from the wire and returns its path segments, relative
 * to the receive directory. Names are `/`-separated relative paths; throws
 * an `Error` saying why for anything that could escape the directory or is
 * not portable: empty names, absolute paths, drive letters, `.` or `..`
 * segments, empty segments, backslashes, NUL and other control characters.
 *
 * @example
 * ```ts
 * import { objectPathSegments } from "./transport_cli.ts";
 * objectPathSegments("logs/a.txt"); // ["logs", "a.txt"]
 * try {
 *   objectPathSegments("../etc/passwd");
 * } catch (error) {
 *   console.log((error as Error).message); // object name "../etc/passwd" has a ".." segment; …
 * }
 * ```
 */
export function objectPathSegments(name: string): string[] {
  const refuse = (why: string): never => {
    throw new Error(
      `object name ${
        JSON.stringify(name)
      } ${why}; expected a relative path of "/"-separated names`,
    );
  };
  if (name === "") refuse("is empty");
  if (CONTROL.test(name)) refuse("has a NUL or control character");
  if (name.includes("\\")) refuse("has a backslash");
  if (name.startsWith("/")) refuse("is an absolute path");
  if (/^[A-Za-z]:/.test(name)) refuse("starts with a drive letter");
  const segments = name.split("/");
  for (const segment of segments) {
    if (segment === "..") refuse('has a ".." segment');
    if (segment === ".") refuse('has a "." segment');
    if (segment === "") refuse("has an empty segment");
  }
  return segments;
}

function isInside(path: string, root: string): boolean {
  return path === root ||
    path.startsWith(root.endsWith(SEPARATOR) ? root : root + SEPARATOR);
}

/** What `receive` prints for one stored object. */
interface StoredObject {
  name: string;
  size: number;
  sha256: string;
}

/** Name of the temporary file an object is written to before its rename. */
function partFileName(base: string): string {
  return `.${base}.${crypto.randomUUID().slice(0, 8)}.part`;
}

/** What {@linkcode partFileName} makes. */
const PART_FILE = /^\..+\.[0-9a-f]{8}\.part$/;

/**
 * Removes the temporary files under `root` that a receive which crashed
 * (SIGKILL, power loss) left behind; returns how many. Symbolic links are
 * not followed.
 */
async function removePartFiles(root: string): Promise<number> {
  let removed = 0;
  for await (const entry of Deno.readDir(root)) {
    const path = join(root, entry.name);
    if (entry.isDirectory) removed += await removePartFiles(path);
    else if (entry.isFile && PART_FILE.test(entry.name)) {
      await Deno.remove(path);
      removed++;
    }
  }
  return removed;
}

/**
 * Stores one object under `root` (a real path): into a temporary file next to
 * its target, renamed over the target once the body ended whole.
 */
async function storeObject(
  root: string,
  header: ReceivedHeader,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
): Promise<StoredObject> {
  const segments = objectPathSegments(header.name);
  const target = join(root, ...segments);
  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true });
  // A symlink already in the directory must not lead a name outside it.
  if (!isInside(await Deno.realPath(parent), root)) {
    throw new Error(
      `object name ${
        JSON.stringify(header.name)
      } leads outside the receive directory through a symbolic link`,
    );
  }
  const temporary = join(parent, partFileName(segments.at(-1)!));
  const hash = createHash("sha256");
  let size = 0;
  const file = await Deno.open(temporary, { write: true, createNew: true });
  let closed = false;
  try {
    if (body !== null) size = await writeBody(body, file, hash, header.size);
    file.close();
    closed = true;
    await Deno.rename(temporary, target);
  } catch (error) {
    if (!closed) file.close();
    await Deno.remove(temporary).catch(() => {
      // Already gone or never written: nothing to clean up.
    });
    throw error;
  }
  return { name: header.name, size, sha256: hash.digest("hex") };
}

function secretFlag(
  strings: Record<string, string | undefined>,
): string | undefined {
  const secret = strings.secret ?? (Deno.env.get(SECRET_ENV) || undefined);
  if (secret !== undefined && secret.length < 16) {
    throw new UsageError(
      `--secret has ${secret.length} characters; expected at least 16`,
    );
  }
  return secret;
}

function wantsHelp(args: string[]): boolean {
  return args.includes("-h") || args.includes("--help");
}

function onSignals(listener: () => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, listener);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, listener);
  };
}

function usageFailure(command: string, error: UsageError): number {
  console.error(`spool ${command}: ${error.message}\nTry --help.`);
  return 2;
}

/**
 * `spool receive`: serves one endpoint until SIGINT or SIGTERM (or `signal`)
 * and stores every object it gets; resolves with the exit code.
 *
 * @example
 * ```ts ignore
 * import { receiveMain } from "./transport_cli.ts";
 * Deno.exit(await receiveMain(["--port", "9000", "--dir", "incoming"]));
 * ```
 */
export async function receiveMain(
  args: string[],
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  if (wantsHelp(args)) {
    console.log(RECEIVE_HELP);
    return 0;
  }
  const parsed = parseReceiveArgs(args);
  if (typeof parsed === "number") return parsed;
  const root = await prepareDir(parsed.dir);
  if (root === null) return 1;
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  const removeSignals = onSignals(stop);
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stop();
  const receiver = new Receiver({ secret: parsed.secret });
  const failed = await startReceiving(receiver, parsed, root);
  if (failed !== null) {
    removeSignals();
    return failed;
  }
  await stopped.promise;
  removeSignals();
  options.signal?.removeEventListener("abort", stop);
  // Ends running streams (their partial files are removed) and waits for
  // their handlers.
  await receiver.close();
  return 0;
}

/** What `spool receive` was asked to do. */
interface ReceiveArgs {
  port: number | undefined;
  secret: string | undefined;
  hostname: string;
  trname: string;
  dir: string;
  quiet: boolean;
}

/** The arguments of `spool receive`, or the exit code of bad usage. */
function parseReceiveArgs(args: string[]): ReceiveArgs | number {
  try {
    const flags = parseFlags(args, {
      string: ["port", "hostname", "dir", "name", "secret"],
      boolean: ["quiet"],
    });
    if (flags.positional.length > 0) {
      throw new UsageError(
        `unexpected argument ${
          JSON.stringify(flags.positional[0])
        }; receive takes options only`,
      );
    }
    if (flags.strings.port === undefined) {
      throw new UsageError(
        "receive needs --port P; expected a port, 0 for any free one",
      );
    }
    return {
      port: integerFlag(flags.strings, "port", { min: 0, max: 65535 }),
      secret: secretFlag(flags.strings),
      hostname: flags.strings.hostname ?? "127.0.0.1",
      trname: flags.strings.name ?? DEFAULT_TRNAME,
      dir: flags.strings.dir ?? ".",
      quiet: flags.booleans.quiet,
    };
  } catch (error) {
    if (error instanceof UsageError) return usageFailure("receive", error);
    throw error;
  }
}

/**
 * Creates `dir` if needed and removes the partial files an earlier receive
 * left there; its real path, or `null` (reported) if it cannot be used.
 */
async function prepareDir(dir: string): Promise<string | null> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const root = await Deno.realPath(resolve(dir));
    const removed = await removePartFiles(root);
    if (removed > 0) {
      console.error(
        `spool receive: removed ${removed} partial file${
          removed === 1 ? "" : "s"
        } (.part) that an earlier receive left in ${root}`,
      );
    }
    return root;
  } catch (error) {
    console.error(
      `spool receive: cannot use --dir ${dir}: ${(error as Error).message}`,
    );
    return null;
  }
}

/**
 * Listens and serves the endpoint, storing objects under `root`; `null`
 * once listening, else the exit code (reported; the receiver is closed).
 */
async function startReceiving(
  receiver: Receiver,
  parsed: ReceiveArgs,
  root: string,
): Promise<number | null> {
  const { hostname, port, trname } = parsed;
  try {
    await receiver.listen("cli", { hostname, port });
    receiver.register("cli", trname, storingHandler(root, parsed.quiet), {
      wholeBodies: WHOLE_BODIES,
    });
    console.log(`Listening on ${receiver.url("cli", trname).href}`);
    return null;
  } catch (error) {
    await receiver.close();
    if (
      error instanceof TransportError && error.code === "invalid-argument"
    ) {
      return usageFailure("receive", new UsageError(error.message));
    }
    console.error(
      `spool receive: cannot listen on ${hostname}:${port}: ${
        (error as Error).message
      }`,
    );
    return 1;
  }
}

/**
 * Bodies `spool receive` takes as bytes: one file write each, no stream
 * (bigger ones stream into the file in 1 MiB blocks).
 */
const WHOLE_BODIES = 64 * 1024;

/** The handler that stores each object under `root` and reports it. */
function storingHandler(
  root: string,
  quiet: boolean,
): ReceiveHandler<Uint8Array | ReadableStream<Uint8Array>> {
  return async (header, body, error) => {
    if (error !== undefined) {
      console.error(
        `spool receive: stream ${header.sessionId} failed${
          header.name === "" ? "" : ` in object ${JSON.stringify(header.name)}`
        }: ${error.code}: ${error.message}`,
      );
      return;
    }
    let stored: StoredObject;
    try {
      stored = await storeObject(root, header, body);
    } catch (cause) {
      // A body that failed is reported by the error call that follows.
      if (cause instanceof TransportError) return;
      console.error(
        `spool receive: refused object ${JSON.stringify(header.name)}: ${
          (cause as Error).message
        }`,
      );
      throw cause;
    }
    if (!quiet) console.log(JSON.stringify(stored));
  };
}

/**
 * `spool send`: sends files as objects over one stream; resolves with the
 * exit code (`1` if any object failed, with its reason on stderr).
 *
 * @example
 * ```ts ignore
 * import { sendMain } from "./transport_cli.ts";
 * Deno.exit(await sendMain(["http://127.0.0.1:9000/v1/objstream/spool", "a.bin", "b.bin"]));
 * ```
 */
export async function sendMain(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    console.log(SEND_HELP);
    return 0;
  }
  const parsed = parseSendArgs(args);
  if (typeof parsed === "number") return parsed;
  const { files, prefix, quiet } = parsed;
  const sizes = await fileSizes(files);
  if (sizes === null) return 1;
  const controller = new AbortController();
  let interrupted = false;
  const removeSignals = onSignals(() => {
    interrupted = true;
    controller.abort(new Error("interrupted by a signal"));
  });
  const progress = new Progress("send", {
    enabled: quiet ? false : undefined,
    total: sizes.reduce((a, b) => a + b, 0),
  });
  let stream: Stream;
  try {
    stream = openStream(parsed, controller.signal, progress);
  } catch (error) {
    removeSignals();
    if (error instanceof TransportError) {
      return usageFailure("send", new UsageError(error.message));
    }
    throw error;
  }
  const started = performance.now();
  const objects = files.map((file, i) => ({
    name: prefix + basename(file),
    file,
    size: sizes[i],
  }));
  const outcome = await sendFiles(stream, objects);
  removeSignals();
  const seconds = (performance.now() - started) / 1000;
  progress.done();
  return reportSend(objects, outcome, { seconds, interrupted, quiet });
}

/** What `spool send` was asked to do. */
interface SendArgs {
  url: string;
  files: string[];
  secret: string | undefined;
  burst: number | undefined;
  prefix: string;
  quiet: boolean;
}

/** The arguments of `spool send`, or the exit code of bad usage. */
function parseSendArgs(args: string[]): SendArgs | number {
  try {
    const flags = parseFlags(args, {
      string: ["secret", "burst", "prefix"],
      boolean: ["quiet"],
    });
    if (flags.positional.length < 2) {
      throw new UsageError(
        `send takes a URL and at least one FILE, got ${flags.positional.length} arguments; expected send [options] URL FILE...`,
      );
    }
    const [url, ...files] = flags.positional;
    const secret = secretFlag(flags.strings);
    const burst = integerFlag(flags.strings, "burst", { min: 1 });
    const prefix = flags.strings.prefix ?? "";
    const seen = new Map<string, string>();
    for (const file of files) {
      const name = prefix + basename(file);
      const other = seen.get(name);
      if (other !== undefined) {
        throw new UsageError(
          `${other} and ${file} would both be sent as ${
            JSON.stringify(name)
          }; expected files with distinct base names`,
        );
      }
      seen.set(name, file);
    }
    return { url, files, secret, burst, prefix, quiet: flags.booleans.quiet };
  } catch (error) {
    if (error instanceof UsageError) return usageFailure("send", error);
    throw error;
  }
}

/**
 * The size of every file, or `null` (reported) if one is not a readable
 * regular file: every file must be readable before anything is sent.
 */
async function fileSizes(files: string[]): Promise<number[] | null> {
  const sizes: number[] = [];
  for (const file of files) {
    try {
      const info = await Deno.stat(file);
      if (!info.isFile) throw new Error("not a regular file");
      sizes.push(info.size);
      (await Deno.open(file, { read: true })).close();
    } catch (error) {
      console.error(
        `spool send: cannot read ${file}: ${(error as Error).message}`,
      );
      return null;
    }
  }
  return sizes;
}

/** The stream `send` uses; throws a `TransportError` for bad options. */
function openStream(
  parsed: SendArgs,
  signal: AbortSignal,
  progress: Progress,
): Stream {
  return new Stream(parsed.url, {
    secret: parsed.secret,
    burst: parsed.burst,
    signal,
    // Delivered means stored by the receiver, not written to a socket.
    confirm: true,
    // The progress line counts bytes as they are sent, inside a file too.
    onProgress: (stats) => progress.update(stats.sent),
  });
}

/** Prints the summary of a `send`, or why it failed; the exit code. */
function reportSend(
  objects: Outgoing[],
  outcome: SendOutcome,
  run: { seconds: number; interrupted: boolean; quiet: boolean },
): number {
  const failure = failureLine(objects, outcome);
  if (failure !== null) {
    console.error(
      `spool send: ${run.interrupted ? "interrupted; " : ""}${failure}`,
    );
    return 1;
  }
  if (!run.quiet) {
    const rate = Math.round(outcome.bytes / Math.max(run.seconds, 0.001));
    console.log(
      `sent ${outcome.delivered} objects, ${formatBytes(outcome.bytes)} in ${
        run.seconds.toFixed(2)
      } s (${formatBytes(rate)}/s)`,
    );
  }
  return 0;
}

/** One file to send. */
interface Outgoing {
  name: string;
  file: string;
  size: number;
}

/** What the receiver confirmed of a `send`. */
interface SendOutcome {
  /** Objects confirmed. */
  delivered: number;
  /** Their bytes. */
  bytes: number;
  /** Per object (by index) the error that kept it from being delivered. */
  errors: Map<number, unknown>;
  /** Why the stream ended, if `fin` failed. */
  finError?: unknown;
}

/**
 * Sends `objects` in order and waits for the receiver's verdict on each:
 * an object is delivered once the receiver confirmed it (the stream runs
 * with `confirm`), never merely because it was written to the socket.
 */
async function sendFiles(
  stream: Stream,
  objects: Outgoing[],
): Promise<SendOutcome> {
  const outcome: SendOutcome = { delivered: 0, bytes: 0, errors: new Map() };
  let i = 0;
  for (; i < objects.length && !stream.terminated; i++) {
    const index = i;
    const { name, file, size } = objects[i];
    try {
      await stream.send({ name, size }, { path: file }, {
        onSent: (_header, error) => {
          if (error !== undefined) {
            outcome.errors.set(index, error);
            return;
          }
          outcome.delivered++;
          outcome.bytes += size;
        },
      });
    } catch {
      // The object's completion has already recorded the failure.
    }
  }
  try {
    await stream.fin();
  } catch (error) {
    outcome.finError = error;
  }
  // Files never handed to the stream (it ended first) are not delivered.
  for (; i < objects.length; i++) {
    outcome.errors.set(
      i,
      stream.termination ?? outcome.finError ??
        new Error("the stream ended before this file was sent"),
    );
  }
  return outcome;
}

/**
 * The one-line report of a send that did not deliver everything: the first
 * object not delivered, how many more were not, and why; `null` if every
 * object was delivered and the stream ended cleanly.
 */
function failureLine(objects: Outgoing[], outcome: SendOutcome): string | null {
  const missing = [...outcome.errors.keys()].sort((a, b) => a - b);
  if (missing.length === 0) {
    if (outcome.finError === undefined) return null;
    return `all ${objects.length} objects were delivered, but ending the stream failed: ${
      describe(outcome.finError)
    }`;
  }
  const first = objects[missing[0]];
  const more = missing.length === 1
    ? ""
    : ` and ${missing.length - 1} more after it`;
  return `not delivered: ${
    JSON.stringify(first.name)
  } (${first.file})${more}, ${missing.length} of ${objects.length} objects (${outcome.delivered} delivered): ${
    describe(outcome.errors.get(missing[0]))
  }`;
}

function describe(error: unknown): string {
  if (error instanceof TransportError) {
    return `${error.code}: ${error.message}`.replaceAll("\n", " ");
  }
  return error instanceof Error ? error.message : String(error);
}
