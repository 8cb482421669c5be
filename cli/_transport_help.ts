/** The `--help` texts of `spool receive` and `spool send`, one per command. */

/** Endpoint name of `receive` when `--name` is not given. */
export const DEFAULT_TRNAME = "spool";
/** Where both commands take their shared secret from, if not `--secret`. */
export const SECRET_ENV = "SPOOL_TRANSPORT_SECRET";

const SECRET =
  `  --secret S       shared secret, at least 16 characters (default
                   $${SECRET_ENV}; prefer the variable: arguments show up in ps)`;

const EXIT_CODES =
  `Exit codes: 0 success; 1 a failure (an object not delivered, the receiver
gone or refusing, a file that cannot be read), with a one-line reason on
stderr; 2 bad command-line usage.`;

/** The help of `spool receive`. */
export const RECEIVE_HELP = `Usage: spool receive --port P [options]

Serves one object-transport endpoint until SIGINT or SIGTERM. The first
stdout line is "Listening on URL" with the endpoint's full URL (give it to
send). Writes each object to D/<object name> and prints one JSON line per
object: {"name":…,"size":…,"sha256":…}. Names with "..", absolute paths,
backslashes or control characters are refused, which fails the sender's
stream. An object is written to a temporary ".<name>.<8 hex digits>.part"
file first and renamed when whole; one that fails is removed, and those a
crashed receive left in D are removed at start (counted on stderr).

Options:
  --port P         port to listen on; 0 picks a free one
  --hostname H     interface to bind (default 127.0.0.1)
  --dir D          directory to write objects to (default: the current one)
  --name TRNAME    endpoint name (default "${DEFAULT_TRNAME}")
${SECRET}
  --quiet          print no object lines
  -h, --help       show this help

${EXIT_CODES}
`;

/** The help of `spool send`. */
export const SEND_HELP = `Usage: spool send URL FILE... [options]

Sends each FILE as one object named P + its base name, in order, over one
stream to URL (the endpoint URL receive printed). The send loop reads the
files itself. An object counts as delivered once the receiver confirmed it
stored it whole. Shows a progress line on a terminal (it moves within a
big file), then a summary (objects, bytes, rate). On a failure, stderr names
the first object not delivered and how many more were not.

Options:
  --prefix P       put P before each object's name (e.g. run-7/)
${SECRET}
  --burst N        objects in flight before send waits (default 256)
  --quiet          no progress line and no summary
  -h, --help       show this help

${EXIT_CODES}
`;
