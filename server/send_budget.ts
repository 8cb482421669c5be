/**
 * Back-pressure on download sockets: the send-buffer memory all of them
 * share ({@linkcode SendBudget}), and waiting for one to drain
 * ({@linkcode drained}).
 *
 * @module
 */

/** A socket waiting for its send buffer to drain. */
interface DrainWaiter {
  socket: WebSocket;
  highWaterMark: number;
  resolve: () => void;
}

/** Longest pause between two looks at the waiting sockets, in ms. */
const MAX_DRAIN_PAUSE = 8;
const drainWaiters = new Set<DrainWaiter>();
let drainTimer: ReturnType<typeof setTimeout> | undefined;
let drainPause = 1;

/** Looks at every waiting socket once; looks again soon while any wait. */
function pollDrains(): void {
  drainTimer = undefined;
  let released = false;
  for (const waiter of drainWaiters) {
    const { socket } = waiter;
    if (
      socket.readyState !== WebSocket.OPEN ||
      socket.bufferedAmount <= waiter.highWaterMark
    ) {
      drainWaiters.delete(waiter);
      waiter.resolve();
      released = true;
    }
  }
  if (drainWaiters.size === 0) return;
  // Sockets that drain keep the pace fast; a stalled set backs off.
  drainPause = released ? 1 : Math.min(drainPause * 2, MAX_DRAIN_PAUSE);
  drainTimer = setTimeout(pollDrains, drainPause);
}

/**
 * Resolves once the socket's send buffer is below `highWaterMark` bytes, or it
 * closed. Deno's `WebSocket.send` never blocks and has no drain event, so the
 * only way to bound memory is to poll `bufferedAmount`. One timer polls every
 * waiting socket: a thousand followers cost one timer per pause, not a
 * thousand (the per-socket timers were most of the server's garbage).
 */
export function drained(
  socket: WebSocket,
  highWaterMark: number,
): Promise<void> {
  if (
    socket.readyState !== WebSocket.OPEN ||
    socket.bufferedAmount <= highWaterMark
  ) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    drainWaiters.add({ socket, highWaterMark, resolve });
    if (drainTimer === undefined) {
      drainPause = 1;
      drainTimer = setTimeout(pollDrains, drainPause);
    }
  });
}

/**
 * Bytes all download sockets together may hold in their send buffers,
 * shared evenly among the open ones: one download gets a deep buffer (speed),
 * a thousand followers get a shallow one each (bounded server memory).
 */
export class SendBudget {
  readonly #total: number;
  readonly #min: number;
  readonly #max: number;
  #sockets = 0;

  constructor(total: number, options: { min: number; max: number }) {
    this.#total = total;
    this.#min = options.min;
    this.#max = options.max;
  }

  /** Counts a socket in; returns the function that counts it out. */
  join(): () => void {
    this.#sockets++;
    let left = false;
    return () => {
      if (!left) this.#sockets--;
      left = true;
    };
  }

  /** The send-buffer level one socket may fill now. */
  get perSocket(): number {
    // Whole bytes: the share sizes frames, and a fractional one would
    // misalign payload offsets.
    const share = Math.floor(this.#total / Math.max(1, this.#sockets));
    return Math.min(this.#max, Math.max(this.#min, share));
  }
}
