/**
 * `deno run -A client/main.ts`: upload, download and inspect live resources
 * from the command line. The commands are in `cli/client_cli.ts`.
 *
 * @module
 */

import { main } from "../cli/client_cli.ts";

export { main, type MainOptions } from "../cli/client_cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
