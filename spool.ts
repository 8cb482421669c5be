/**
 * `spool`: one command for everything: the server, the live-resource client
 * and the object transport. `deno task compile` builds it into the single
 * executable `dist/spool`; `deno run -A spool.ts` runs it from source.
 *
 * ```sh
 * spool server --port 8787 --data-dir ./spool-data
 * spool upload --server http://127.0.0.1:8787/ ./artifact.tar
 * spool download ws://127.0.0.1:8787/resources/ID > copy
 * spool receive --port 9000 --dir ./incoming
 * spool send http://127.0.0.1:9000/v1/objstream/spool a.bin b.bin
 * ```
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };

/**
 * This package's version, from `deno.json`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./spool.ts";
 * console.log(`spool ${VERSION}`); // "spool 0.1.0"
 * ```
 */
export const VERSION: string = denoJson.version;

const HELP = `Usage: spool COMMAND [options]

Spool moves bytes while they are still being produced.

Commands:
  server [options]              run a Spool server (live resources)
  upload [options] FILE|-       upload a live resource; prints its reference
  download [options] REF        read a resource: a range, or --follow it
  status REF                    print a resource's status as JSON
  receive --port P [options]    serve an object-transport endpoint and write
                                the objects it gets to a directory
  send URL FILE... [options]    send files as objects to an endpoint

  spool COMMAND --help          options of one command
  spool --version               print the version

Exit codes: 0 success; 1 failure, with a one-line reason on stderr; 2 bad usage.
`;

const CLIENT_COMMANDS = new Set(["upload", "download", "status"]);

/**
 * Runs the `spool` command line; resolves with the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./spool.ts";
 * Deno.exit(await main(["send", "http://127.0.0.1:9000/v1/objstream/spool", "a.bin"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  // Each command loads only its own modules (dynamic imports, which `deno
  // compile` still bundles): `spool send` need not load the server, the
  // NATS client and the viewer, which cost it ~30 ms of start-up CPU.
  switch (command) {
    case undefined:
      console.error(HELP);
      return 2;
    case "-h":
    case "--help":
    case "help":
      console.log(HELP);
      return 0;
    case "-V":
    case "--version":
    case "version":
      console.log(`spool ${VERSION}`);
      return 0;
    case "server": {
      const { main } = await import("./server/main.ts");
      return await main(rest, { program: "spool server" });
    }
    case "send": {
      const { sendMain } = await import("./cli/transport_cli.ts");
      return await sendMain(rest);
    }
    case "receive": {
      const { receiveMain } = await import("./cli/transport_cli.ts");
      return await receiveMain(rest);
    }
  }
  if (CLIENT_COMMANDS.has(command)) {
    const { main } = await import("./client/main.ts");
    return await main(args, { program: "spool" });
  }
  console.error(
    `spool: unknown command ${
      JSON.stringify(command)
    }; expected one of server, upload, download, status, receive, send\nTry --help.`,
  );
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
