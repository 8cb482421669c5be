/** The `--help` texts of the client commands, one per command. */

/** The options every client command takes, as `--help` lines. */
const COMMON =
  `  --ca FILE        PEM CA certificate(s) to trust for https:/wss: servers
                   (default $SPOOL_CA_FILE)
  --timeout-ms N   presume the connection dead after N ms without any
                   message from the server (a black-holed link)
                   (default 30000)
  -h, --help       show this help`;

const EXIT_CODES =
  `Exit codes: 0 success; 1 the transfer failed (refused range, unknown or
FAILED resource, lost connection), with a one-line reason on stderr;
2 bad command-line usage.`;

const REF = `REF is the reference URL the uploader printed, e.g.
ws://127.0.0.1:8787/resources/ID (wss://, http:// and https:// work too;
?token=… included when the server gives read tokens).`;

/** The overview: every command, one line each. */
export function overview(program: string): string {
  return `Usage: ${program} COMMAND [options]

Commands:
  upload [options] FILE|-     upload a live resource; prints its reference
  download [options] REF      write a resource's bytes to stdout; --follow it
  status [options] REF        print a resource's status as one JSON object

  ${program} COMMAND --help    the options of one command

${EXIT_CODES}
`;
}

/** The help of one command, by name. */
export function commandHelp(program: string, command: string): string {
  const texts: Record<string, string> = {
    upload: `Usage: ${program} upload [options] FILE|-

Uploads FILE (or stdin for -) as a live resource. Prints the reference URL
as the first stdout line as soon as the server is ready, then streams the
bytes; exits 0 once the resource is COMPLETED. A lost connection is resumed
within the server's grace period.

Options:
  --server URL     server to upload to (default $SPOOL_SERVER or
                   http://127.0.0.1:8787/)
  --name N         resource name (default: the file's name, or "stdin")
  --type MIME      MIME type (default: from the file extension, else
                   application/octet-stream)
  --upload-token T the server's upload token (default $SPOOL_UPLOAD_TOKEN;
                   prefer the variable: arguments show up in ps)
  --json           print {"reference","id"} as the first line and the final
                   status as the last line, as JSON
  --quiet          no progress line (it is shown on stderr only when stderr
                   is a terminal)
${COMMON}

${EXIT_CODES}
`,
    download: `Usage: ${program} download [options] REF

Writes bytes [start, end) of the resource to stdout. Without --end, reads up
to the current checkpointed size; with --follow, reads on as the resource
grows until it is COMPLETED (like tail -f), and fails if it becomes FAILED.

Options:
  --follow         read on as the resource grows, to its end
  --start N        first byte (default 0)
  --end N          byte after the last one (default: the checkpointed size;
                   not with --follow)
  --token T        read token of REF, if the reference lacks its ?token=
  --quiet          no progress line (it is shown on stderr only when stderr
                   is a terminal and stdout is not, as curl does)
${COMMON}

${REF}

${EXIT_CODES}
`,
    status: `Usage: ${program} status [options] REF

Prints the resource's latest status as one JSON object, e.g.
{"id":"…","name":"build.log","status":"IN_PROGRESS","size":1048576,…}

Options:
  --token T        read token of REF, if the reference lacks its ?token=
${COMMON}

${REF}

${EXIT_CODES}
`,
  };
  return texts[command] ?? overview(program);
}
