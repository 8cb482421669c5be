/**
 * The server's defaults, in one place: the library, the command line and
 * its `--help` read them from here. (Limits have theirs in `limits.ts`.)
 *
 * @module
 */

/** Interface a server binds. Loopback: nothing is exposed by default. */
export const DEFAULT_HOSTNAME = "127.0.0.1";
/** Port a server listens on. */
export const DEFAULT_PORT = 8787;
/** Directory of the embedded file store. */
export const DEFAULT_DATA_DIR = "./spool-data";
/** Checkpoint interval of live uploads, in ms. */
export const DEFAULT_CHECKPOINT_MS = 250;
/** How long a lost upload connection may be resumed, in ms. */
export const DEFAULT_RESUME_GRACE_MS = 10_000;
/** How long finished resources are kept, in ms; 0 keeps them forever. */
export const DEFAULT_RETENTION_MS = 0;
/** Bytes an uploader may have unacknowledged (`--upload-window`). */
export const DEFAULT_UPLOAD_WINDOW = 8 * 1024 * 1024;
/**
 * Smallest upload window: room for frames of some size beyond the 64 bytes
 * of window each costs (a client splits its frames to fit the window).
 */
export const MIN_UPLOAD_WINDOW = 1024;
/**
 * Largest payload of a download data frame: a lone download sends a
 * quarter of the frames it would at 64 KiB (1.24× the plain-WebSocket
 * baseline instead of 0.7–0.8×).
 */
export const DEFAULT_FRAME_SIZE = 256 * 1024;
/** Credit of a read request that names none. */
export const DEFAULT_READ_WINDOW = 4 * 1024 * 1024;
/** Largest credit a reader may grant. */
export const MAX_READ_WINDOW = 64 * 1024 * 1024;
/** Bytes all download sockets together may hold in send buffers. */
export const DEFAULT_SEND_BUFFER_BUDGET = 24 * 1024 * 1024;
/** Least and most of the send budget one socket gets (frames shrink to it). */
export const MIN_SOCKET_SHARE = 24 * 1024;
export const MAX_SOCKET_SHARE = 4 * 1024 * 1024;
/**
 * How long shutdown waits for uploads to record their end, sockets to
 * close and HTTP responses to finish; whatever is left is then cut. Peers
 * that never answer (a reset handshake, a black-holed link) cannot hold it up.
 */
export const SHUTDOWN_GRACE_MS = 3000;
/**
 * With a shared engine (`--nats`): how long the node taking an upload may
 * go without renewing its lease before other nodes count it lost, in ms.
 * With the default resume grace an upload whose node died is `FAILED` on
 * every node within lease + grace + two sweeps: about 24 s. Longer than a
 * leader change of a clustered lease bucket (5–6 s here) plus the third of
 * a lease between renewals, so that a leader change does not cost the
 * holder its upload (with 5000 one did, in tests/nats_cluster_r3.test.ts).
 */
export const DEFAULT_LEASE_MS = 12_000;
/** How often each node looks at the leases of uploads other nodes hold, in ms. */
export const DEFAULT_LEASE_SWEEP_MS = 1000;
