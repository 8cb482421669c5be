/**
 * `deno run -A server/main.ts`: runs a Spool server until SIGINT or SIGTERM.
 * Its first stdout line is `Listening on http://HOST:PORT/`. The command is
 * in `cli/server_cli.ts`.
 *
 * @module
 */

import { main } from "../cli/server_cli.ts";

export { main, type MainOptions } from "../cli/server_cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
