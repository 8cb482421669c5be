/**
 * `deno run -A client/main.ts`: upload, download and inspect live resources.
 *
 * @module
 */

import { basename } from "node:path";
import { integerFlag, parseFlags, UsageError } from "../cli/args.ts";
import { Progress } from "../cli/progress.ts";
import { ResourceFailedError, SpoolError } from "../protocol/errors.ts";
import { openDownload } from "./download.ts";
import { startUpload } from "./upload.ts";

/** Options of {@linkcode main}. */
export interface MainOptions {
  /** How the program was started, shown in usage lines. */
  program?: string;
}

const DEFAULT_PROGRAM = "deno run -A client/main.ts";

const help = (program: string): string =>
  `Usage: ${program} COMMAND [options]

Commands:
  upload [--server URL] [--name N] [--type MIME] FILE|-
      Uploads FILE (or stdin for -) as a live resource. Prints the reference
      URL as the first stdout line as soon as the server is ready, then
      streams the bytes. Exits 0 once the resource is COMPLETED.
  download [--follow] [--start N] [--end N] [--token T] REF
      Writes bytes [start, end) of the resource to stdout. Without --end,
      reads up to the current checkpointed size; with --follow, reads on as
      the resource grows until it is COMPLETED.
  status [--token T] REF
      Prints the resource's latest status as one JSON object.

Options:
  --server URL   server to upload to (default $SPOOL_SERVER or
                 http://127.0.0.1:8787/)
  --name N       resource name (default: the file's name, or "stdin")
  --type MIME    MIME type (default: from the file extension, else
                 application/octet-stream)
  --upload-token T
                 the server's upload token (default $SPOOL_UPLOAD_TOKEN)
  --token T      read token of REF, if the reference lacks its ?token=
  --ca FILE      PEM CA certificate(s) to trust for https:/wss: servers
                 (default $SPOOL_CA_FILE)
  --timeout-ms N presume the connection dead after N ms without any message
                 from the server (a black-holed link): an upload resumes
                 within the server's grace period, a download fails
                 (default 30000)
  --json         upload: print {"reference","id"} as the first line and the
                 final status as the last line, as JSON
  --quiet        no progress line on stderr (it is shown only on a terminal)
  -h, --help     show this help

Exit codes: 0 success; 1 the transfer failed (refused range, unknown or
FAILED resource, lost connection); 2 bad command-line usage.
`;

const MIME_TYPES: Record<string, string> = {
  txt: "text/plain",
  log: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  json: "application/json",
  html: "text/html",
  xml: "application/xml",
  gz: "application/gzip",
  zip: "application/zip",
  tar: "application/x-tar",
  png: "image/png",
  jpg: "image/jpeg",
  pdf: "application/pdf",
};

function guessMimeType(name: string): string {
  const extension = name.includes(".")
    ? name.split(".").pop()!.toLowerCase()
    : "";
  return MIME_TYPES[extension] ?? "application/octet-stream";
}

async function caCerts(
  file: string | undefined,
): Promise<string[] | undefined> {
  const path = file ?? Deno.env.get("SPOOL_CA_FILE");
  if (path === undefined) return undefined;
  try {
    return [await Deno.readTextFile(path)];
  } catch (error) {
    throw new UsageError(
      `cannot read the CA file ${path}: ${
        (error as Error).message
      }; expected a PEM certificate file`,
    );
  }
}

async function downloadOptions(
  strings: Record<string, string | undefined>,
): Promise<{ readToken?: string; caCerts?: string[]; timeoutMs?: number }> {
  return {
    readToken: strings.token,
    caCerts: await caCerts(strings.ca),
    timeoutMs: integerFlag(strings, "timeout-ms", { min: 1 }),
  };
}

async function uploadCommand(args: string[]): Promise<number> {
  const { positional, strings, booleans } = parseFlags(args, {
    string: ["server", "name", "type", "upload-token", "ca", "timeout-ms"],
    boolean: ["quiet", "json"],
  });
  if (positional.length !== 1) {
    throw new UsageError(
      `upload takes one FILE (or - for stdin), got ${positional.length}; expected upload [options] FILE|-`,
    );
  }
  const [file] = positional;
  const fromStdin = file === "-";
  const server = strings.server ?? Deno.env.get("SPOOL_SERVER") ??
    "http://127.0.0.1:8787/";
  const name = strings.name ?? (fromStdin ? "stdin" : basename(file));
  let source: Deno.FsFile | undefined;
  let total: number | undefined;
  if (!fromStdin) {
    try {
      source = await Deno.open(file, { read: true });
      total = (await source.stat()).size;
    } catch (error) {
      throw new SpoolError(
        "invalid-field",
        `cannot read ${file}: ${(error as Error).message}`,
      );
    }
  }
  const upload = await startUpload(server, {
    name,
    mimeType: strings.type ?? guessMimeType(name),
    uploadToken: strings["upload-token"] ??
      Deno.env.get("SPOOL_UPLOAD_TOKEN"),
    caCerts: await caCerts(strings.ca),
    timeoutMs: integerFlag(strings, "timeout-ms", { min: 1 }),
  }).catch((error) => {
    source?.close();
    throw error;
  });
  console.log(
    booleans.json
      ? JSON.stringify({ reference: upload.reference, id: upload.id })
      : upload.reference,
  );
  const progress = new Progress("upload", {
    enabled: booleans.quiet ? false : undefined,
    total,
  });
  const stream = source?.readable ?? Deno.stdin.readable;
  try {
    for await (const chunk of stream) {
      await upload.write(chunk);
      progress.update(upload.sent);
    }
  } catch (error) {
    upload.abort((error as Error).message);
    await upload.closed();
    throw error;
  }
  const status = await upload.finish();
  await upload.closed();
  progress.done();
  if (booleans.json) console.log(JSON.stringify(status));
  return status.status === "COMPLETED" ? 0 : 1;
}

async function downloadCommand(args: string[]): Promise<number> {
  const { positional, strings, booleans } = parseFlags(args, {
    string: ["start", "end", "token", "ca", "timeout-ms"],
    boolean: ["follow", "quiet"],
  });
  if (positional.length !== 1) {
    throw new UsageError(
      `download takes one REF, got ${positional.length}; expected download [options] REF`,
    );
  }
  const start = integerFlag(strings, "start", { fallback: 0 })!;
  const end = integerFlag(strings, "end");
  if (booleans.follow && end !== undefined) {
    throw new UsageError(
      "--follow reads to the end of the resource; expected --end without --follow",
    );
  }
  await using download = await openDownload(
    positional[0],
    await downloadOptions(strings),
  );
  const progress = new Progress("download", {
    enabled: booleans.quiet ? false : undefined,
  });
  let stream: ReadableStream<Uint8Array>;
  if (booleans.follow) {
    stream = download.follow({ start });
  } else {
    const status = download.status;
    if (status.status === "FAILED") {
      throw new ResourceFailedError(
        status.id,
        status.error ?? "unknown reason",
      );
    }
    const last = end ?? status.size;
    if (start > last) {
      throw new UsageError(
        `--start ${start} is past the end ${last}; expected start <= end`,
      );
    }
    stream = download.read(start, last);
  }
  let bytes = 0;
  const counted = stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytes += chunk.byteLength;
        progress.update(bytes);
        controller.enqueue(chunk);
      },
    }),
  );
  await counted.pipeTo(Deno.stdout.writable, { preventClose: true });
  progress.done();
  return 0;
}

async function statusCommand(args: string[]): Promise<number> {
  const { positional, strings } = parseFlags(args, {
    string: ["token", "ca", "timeout-ms"],
  });
  if (positional.length !== 1) {
    throw new UsageError(
      `status takes one REF, got ${positional.length}; expected status REF`,
    );
  }
  await using download = await openDownload(
    positional[0],
    await downloadOptions(strings),
  );
  console.log(JSON.stringify(download.status));
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  upload: uploadCommand,
  download: downloadCommand,
  status: statusCommand,
};

/**
 * Runs the client command line; resolves with the exit code.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await main(["status", "ws://127.0.0.1:8787/resources/abc"]));
 * ```
 */
export async function main(
  args: string[],
  options: MainOptions = {},
): Promise<number> {
  const [command, ...rest] = args;
  if (
    command === undefined || command === "-h" || command === "--help" ||
    command === "help"
  ) {
    console.log(help(options.program ?? DEFAULT_PROGRAM));
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  try {
    if (!run) {
      throw new UsageError(
        `unknown command ${JSON.stringify(command)}; expected one of ${
          Object.keys(COMMANDS).join(", ")
        }`,
      );
    }
    if (rest.includes("-h") || rest.includes("--help")) {
      console.log(help(options.program ?? DEFAULT_PROGRAM));
      return 0;
    }
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`spool: ${error.message}\nTry --help.`);
      return 2;
    }
    console.error(`spool: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
