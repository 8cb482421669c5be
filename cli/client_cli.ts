/**
 * The client commands (`client/main.ts`, `spool upload|download|status`):
 * upload, download and inspect live resources.
 *
 * @module
 */

import { basename, extname } from "node:path";
import { typeByExtension } from "@std/media-types/type-by-extension";
import { integerFlag, parseFlags, UsageError } from "./args.ts";
import { Progress } from "./progress.ts";
import { type HintContext, hintFor } from "./hints.ts";
import { ResourceFailedError, SpoolError } from "../protocol/errors.ts";
import { isResourceId } from "../server/resource_id.ts";
import { commandHelp, overview } from "./_client_help.ts";
import { openDownload } from "../client/download.ts";
import { isTerminal } from "../protocol/status.ts";
import { startUpload } from "../client/upload.ts";

/** Options of {@linkcode main}. */
export interface MainOptions {
  /** How the program was started, shown in usage lines. */
  program?: string;
}

const DEFAULT_PROGRAM = "deno run -A client/main.ts";

/** The MIME type of a file by its extension (`@std/media-types`' table). */
/**
 * Source and log files the std's table gets wrong for us (`.ts` is MPEG
 * transport stream video there): they are text, and the viewer follows
 * text.
 */
const TEXT_EXTENSIONS: Record<string, string> = {
  ".ts": "text/typescript",
  ".mts": "text/typescript",
  ".cts": "text/typescript",
  ".tsx": "text/typescript",
  ".log": "text/plain",
  ".out": "text/plain",
};

function guessMimeType(name: string): string {
  const extension = extname(name).toLowerCase();
  if (extension === "") return "application/octet-stream";
  return TEXT_EXTENSIONS[extension] ?? typeByExtension(extension) ??
    "application/octet-stream";
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

/**
 * The reference REF names, checked: a bare id or a malformed URL is bad
 * usage, with a hint at what is expected.
 */
function referenceArg(text: string): string {
  const example = "ws://127.0.0.1:8787/resources/ID";
  if (isResourceId(text)) {
    throw new UsageError(
      `REF ${
        JSON.stringify(text)
      } is a resource id, not its reference; expected the URL the uploader printed, e.g. ${
        example.replace("ID", text)
      }`,
    );
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not a URL at all: that is what the message says.
    throw new UsageError(
      `REF ${
        JSON.stringify(text)
      } is not a URL; expected the reference the uploader printed, e.g. ${example}`,
    );
  }
  if (!["ws:", "wss:", "http:", "https:"].includes(url.protocol)) {
    throw new UsageError(
      `REF ${
        JSON.stringify(text)
      } has scheme ${url.protocol}; expected ws:, wss:, http: or https:, e.g. ${example}`,
    );
  }
  return url.href;
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
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(file);
      source = await Deno.open(file, { read: true });
    } catch (error) {
      throw new SpoolError(
        "invalid-field",
        `cannot read ${file}: ${(error as Error).message}`,
      );
    }
    if (info.isDirectory) {
      source.close();
      throw new UsageError(
        `FILE ${
          JSON.stringify(file)
        } is a directory; expected a file, or - for stdin`,
      );
    }
    total = info.isFile ? info.size : undefined;
  }
  const upload = await startUpload(server, {
    name,
    mimeType: strings.type ?? guessMimeType(name),
    uploadToken: strings["upload-token"] ??
      Deno.env.get("SPOOL_UPLOAD_TOKEN"),
    caCerts: await caCerts(strings.ca),
    timeoutMs: integerFlag(strings, "timeout-ms", { min: 1 }),
    size: total,
  }).catch((error) => {
    source?.close();
    throw error;
  });
  console.log(
    booleans.json
      ? JSON.stringify({ reference: upload.reference, id: upload.id })
      : upload.reference,
  );
  const progress = new Progress("upload", { quiet: booleans.quiet, total });
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
  const status = await upload.finish().catch((error) => {
    progress.done(error instanceof ResourceFailedError ? "FAILED" : "failed");
    throw error;
  });
  await upload.closed();
  progress.done(status.status);
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
    referenceArg(positional[0]),
    await downloadOptions(strings),
  );
  // Progress only where it cannot garble the data: stdout is not the terminal.
  const progress = new Progress("download", {
    quiet: booleans.quiet,
    dataOnStdout: true,
  });
  let stream: ReadableStream<Uint8Array>;
  if (booleans.follow) {
    stream = download.follow({ start });
    // The total is known once the resource is finished.
    const finished = download.waitForStatus(isTerminal).then((status) =>
      progress.total = status.size - start
    );
    finished.catch(() => {/* the follow itself reports the failure */});
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
    progress.total = last - start;
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
  progress.done(download.status.status);
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
    referenceArg(positional[0]),
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

/** Which token a command needs, for the hint on `forbidden`. */
const HINT_CONTEXT: Record<string, HintContext> = {
  upload: "upload",
  download: "read",
  status: "read",
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
  const program = options.program ?? DEFAULT_PROGRAM;
  const [command, ...rest] = args;
  if (
    command === undefined || command === "-h" || command === "--help" ||
    command === "help"
  ) {
    console.log(overview(program));
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
      console.log(commandHelp(program, command));
      return 0;
    }
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(
        `spool: ${error.message}\nTry ${program} ${command} --help.`,
      );
      return 2;
    }
    const hint = hintFor(error, HINT_CONTEXT[command] ?? "read");
    console.error(
      `spool: ${(error as Error).message}${hint ? ` (${hint})` : ""}`,
    );
    return 1;
  }
}
