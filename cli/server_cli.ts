/**
 * The server command (`server/main.ts`, `spool server`): options, help,
 * and a server that runs until SIGINT or SIGTERM. Its first stdout line is
 * `Listening on http://HOST:PORT/`.
 *
 * @module
 */

import {
  integerFlag,
  type ParsedFlags,
  parseFlags,
  UsageError,
} from "./args.ts";
import { startServer } from "../server/server.ts";
import type { ServerOptions } from "../server/options.ts";
import {
  DEFAULT_LIMITS,
  LIMIT_FLAGS,
  type ServerLimits,
} from "../server/limits.ts";
import {
  DEFAULT_CHECKPOINT_MS,
  DEFAULT_DATA_DIR,
  DEFAULT_HOSTNAME,
  DEFAULT_LEASE_MS,
  DEFAULT_PORT,
  DEFAULT_RESUME_GRACE_MS,
  DEFAULT_RETENTION_MS,
  DEFAULT_UPLOAD_WINDOW,
  MIN_UPLOAD_WINDOW,
} from "../server/defaults.ts";
import { HEARTBEAT_MAX_INTERVAL_MS } from "../protocol/heartbeat.ts";

/** Options of {@linkcode main}. */
export interface MainOptions {
  /** How the program was started, shown in usage lines. */
  program?: string;
}

const DEFAULT_PROGRAM = "deno run -A server/main.ts";

const help = (program: string): string =>
  `Usage: ${program} [options]

Runs a Spool server: live uploads and downloads over WebSockets.

Options:
  --hostname H        interface to bind (default ${DEFAULT_HOSTNAME})
  --port P            port; 0 picks a free one (default ${DEFAULT_PORT})
  --data-dir D        directory of the store (default ${DEFAULT_DATA_DIR})
  --checkpoint-ms N   checkpoint interval of live uploads in ms;
                      0 = after every write (default ${DEFAULT_CHECKPOINT_MS})
  --upload-window N   bytes an uploader may send ahead of the server's
                      acknowledgements (written to the store); one upload
                      holds at most this much in server memory
                      (default ${DEFAULT_UPLOAD_WINDOW}, at least ${MIN_UPLOAD_WINDOW})
  --public-url URL    base URL put in references (default: the URL
                      the uploader connected to)
  --durable           fdatasync the store at every checkpoint
  --resume-grace-ms N how long an upload whose connection was lost may be
                      resumed before it fails; 0 = never (default ${DEFAULT_RESUME_GRACE_MS})
  --retention-ms N    delete finished resources N ms after they finished;
                      later requests get "gone" (default 0: keep forever)
  --nats URL[,URL]    keep resources in NATS JetStream (nats-server -js,
                      2.9 or newer), shared with every node on the same
                      servers, instead of in --data-dir (docs/cluster.md)
  --lease-ms N        with --nats: an upload whose node renewed its lease
                      N ms ago counts as lost; FAILED after N + the resume
                      grace (default ${DEFAULT_LEASE_MS})
  -h, --help          show this help

Security (all off by default, for loopback use; see README "Deployment"):
  --upload-token T    require T to create uploads (default $SPOOL_UPLOAD_TOKEN;
                      prefer the variable: arguments show up in ps)
  --read-tokens       give each resource a read token in its reference
                      (?token=); reads without it are refused
  --secret-file FILE  key the read tokens are derived from: 32 random bytes
                      or 64 hex digits (openssl rand -hex 32 > FILE); share
                      it between servers. Default: D/secret.key, made only
                      for an empty data dir
  --cert FILE         PEM certificate chain: serve https:// and wss://
  --key FILE          PEM private key of --cert

Limits (hitting one gives a "limit-exceeded" error naming it, never a crash):
  --max-resource-bytes N        largest resource (default 1 TiB)
  --max-uploads N               uploads in progress at once (default ${DEFAULT_LIMITS.maxUploads})
  --max-watchers-per-resource N download sockets on one resource (default ${DEFAULT_LIMITS.maxWatchersPerResource})
  --max-watchers N              download sockets on the server (default ${DEFAULT_LIMITS.maxWatchers})
  --max-requests-per-socket N   reads in flight on one socket (default ${DEFAULT_LIMITS.maxRequestsPerSocket})
  --upload-idle-timeout-ms N    an upload silent this long fails (default ${DEFAULT_LIMITS.uploadIdleTimeoutMs})
  --peer-timeout-ms N           drop a socket whose peer sent nothing, not even
                                a heartbeat, this long (default ${DEFAULT_LIMITS.peerTimeoutMs})
  --stall-timeout-ms N          drop a socket that took none of the bytes queued
                                for it this long; slow readers that make progress
                                are kept (default ${DEFAULT_LIMITS.stallTimeoutMs})

Endpoints (wss:// and https:// with --cert):
  ws://HOST:PORT/upload               upload socket
  ws://HOST:PORT/resources/{id}       download socket: the reference
  GET /resources/{id}                 the bytes (Range; ?follow=1 tails them)
  GET /resources/{id}/status          the status as JSON
  GET /resources/{id}/events          statuses as Server-Sent Events
  GET /resources/{id}/lines           line ranges and tails (?tail=N)
  GET /view/                          the resources, in a browser
  GET /view/{id}                      one resource, live, in a browser
Run it directly under a supervisor (systemd, Docker): SIGTERM and SIGINT
stop it within a few seconds; npx and npm do not pass SIGTERM on.
Exit codes: 0 after a clean shutdown, 2 for bad options, 1 for other errors.
`;

async function readPem(
  path: string | undefined,
  flag: string,
): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(
      `${flag} ${path} cannot be read: ${
        (error as Error).message
      }; expected a PEM file`,
    );
  }
}

/** The server's flags, parsed; throws a `UsageError` for unknown ones. */
function parseServerFlags(args: string[]): ParsedFlags {
  return parseFlags(args, {
    string: [
      "hostname",
      "port",
      "data-dir",
      "checkpoint-ms",
      "upload-window",
      "public-url",
      "resume-grace-ms",
      "retention-ms",
      "nats",
      "lease-ms",
      "upload-token",
      "secret-file",
      "cert",
      "key",
      ...Object.values(LIMIT_FLAGS).map((flag) => flag.slice(2)),
    ],
    boolean: ["durable", "help", "read-tokens"],
    alias: { h: "help" },
  });
}

/** The server's options from its flags; throws a `UsageError` for bad ones. */
async function serverOptions(flags: ParsedFlags): Promise<ServerOptions> {
  const { strings } = flags;
  if (flags.positional.length > 0) {
    throw new UsageError(
      `unexpected argument ${
        JSON.stringify(flags.positional[0])
      }; the server takes options only`,
    );
  }
  const limits: Partial<ServerLimits> = {};
  for (const [name, flag] of Object.entries(LIMIT_FLAGS)) {
    const value = integerFlag(strings, flag.slice(2), { min: 1 });
    if (value !== undefined) limits[name as keyof ServerLimits] = value;
  }
  if ((strings.cert === undefined) !== (strings.key === undefined)) {
    throw new UsageError(
      "--cert and --key go together; expected both or neither",
    );
  }
  const publicUrl = strings["public-url"];
  if (publicUrl !== undefined && !URL.canParse(publicUrl)) {
    throw new UsageError(
      `--public-url is ${JSON.stringify(publicUrl)}; expected an absolute URL`,
    );
  }
  return {
    hostname: strings.hostname,
    port: integerFlag(strings, "port", {
      min: 0,
      max: 65535,
      fallback: DEFAULT_PORT,
    }),
    dataDir: strings["data-dir"],
    checkpointMs: integerFlag(strings, "checkpoint-ms", {
      fallback: DEFAULT_CHECKPOINT_MS,
    }),
    uploadWindow: integerFlag(strings, "upload-window", {
      min: MIN_UPLOAD_WINDOW,
      fallback: DEFAULT_UPLOAD_WINDOW,
    }),
    resumeGraceMs: integerFlag(strings, "resume-grace-ms", {
      fallback: DEFAULT_RESUME_GRACE_MS,
    }),
    publicUrl,
    durable: flags.booleans.durable,
    retentionMs: integerFlag(strings, "retention-ms", {
      fallback: DEFAULT_RETENTION_MS,
    }),
    nats: strings.nats,
    leaseMs: integerFlag(strings, "lease-ms", {
      min: 1,
      fallback: DEFAULT_LEASE_MS,
    }),
    uploadToken: strings["upload-token"] ??
      (Deno.env.get("SPOOL_UPLOAD_TOKEN") || undefined),
    readTokens: flags.booleans["read-tokens"],
    secretFile: strings["secret-file"],
    cert: await readPem(strings.cert, "--cert"),
    key: await readPem(strings.key, "--key"),
    limits,
  };
}

/** Warns of a peer timeout that idle default clients cannot meet. */
function warnShortPeerTimeout(limits: Partial<ServerLimits>): void {
  const peerTimeoutMs = limits.peerTimeoutMs;
  const floor = HEARTBEAT_MAX_INTERVAL_MS * 1.5;
  if (peerTimeoutMs === undefined || peerTimeoutMs >= floor) return;
  console.error(
    `spool server: warning: --peer-timeout-ms ${peerTimeoutMs} is under ${floor}; clients with the default timeout send a heartbeat every ${HEARTBEAT_MAX_INTERVAL_MS} ms and are dropped while idle (give them a shorter --timeout-ms)`,
  );
}

/** Runs the server until SIGINT or SIGTERM; resolves with the exit code. */
async function run(options: ServerOptions): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const server = await startServer({
      ...options,
      signal: controller.signal,
      onListen: (url) => console.log(`Listening on ${url.href}`),
    });
    if (server.limitNote) console.error(`spool server: ${server.limitNote}`);
    await server.finished;
    return 0;
  } catch (error) {
    const message = error instanceof Deno.errors.AddrInUse
      ? `cannot listen on ${
        options.hostname ?? DEFAULT_HOSTNAME
      }:${options.port}: the address is in use (another Spool server?); choose another --port`
      : (error as Error).message;
    console.error(`spool server: ${message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

/**
 * Runs the server command with `args`; resolves with the exit code once the
 * server has stopped.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await main(["--port", "0"]));
 * ```
 */
export async function main(
  args: string[],
  options: MainOptions = {},
): Promise<number> {
  let serverOpts: ServerOptions;
  try {
    const flags = parseServerFlags(args);
    if (flags.booleans.help) {
      console.log(help(options.program ?? DEFAULT_PROGRAM));
      return 0;
    }
    serverOpts = await serverOptions(flags);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`spool server: ${error.message}\nTry --help.`);
    return 2;
  }
  warnShortPeerTimeout(serverOpts.limits ?? {});
  return await run(serverOpts);
}
