/**
 * The server's WebSockets from upgrade to end: counted only once they open,
 * watched for liveness by one timer for all of them, and ended exactly once,
 * whether their close event fires or the server gives up on them.
 *
 * Deno fires no `close` for a socket whose client reset during the
 * handshake (it stays CONNECTING), nor for one whose peer never answers the
 * close handshake (it stays CLOSING). Counting from the upgrade, or
 * cleaning up only on `close`, leaked watcher slots and held shutdown up.
 *
 * @module
 */

import { HEARTBEAT_TEXT } from "../protocol/heartbeat.ts";
import { CLOSE_TIMEOUT } from "../protocol/close_codes.ts";

/** How long a peer may stay silent, or leave our bytes untaken. */
export interface PeerTimeouts {
  /** No message from the peer for this long: it is presumed dead. */
  peerTimeoutMs: number;
  /** Bytes queued for the peer and none taken for this long: it is stuck. */
  stallTimeoutMs: number;
}

/** Called once when a socket ends, with the close code and why. */
export type EndHandler = (code: number, reason: string) => void;

/** How long an upgrade waits to learn whether its client reset, in ms. */
const HANDSHAKE_SETTLE_MS = 5;

/** Longest pause between two liveness sweeps, in ms. */
const MAX_SWEEP_MS = 1000;

/** One upgraded WebSocket of the server. */
export class PeerSocket {
  readonly socket: WebSocket;
  /** What the socket is for, in log lines: "an upload socket", … */
  readonly label: string;
  readonly #sockets: ServerSockets;
  #lastInbound = performance.now();
  #buffered = 0;
  #bufferedSince = performance.now();
  #ended = false;
  readonly #endHandlers: EndHandler[] = [];

  constructor(socket: WebSocket, sockets: ServerSockets, label: string) {
    this.socket = socket;
    this.label = label;
    this.#sockets = sockets;
    socket.addEventListener("open", () => {
      this.#lastInbound = performance.now();
      sockets.add(this);
    });
    socket.addEventListener(
      "close",
      (event) => this.#finish(event.code, describeCloseEvent(event)),
    );
  }

  /** Whether the socket has ended (closed, or given up on). */
  get ended(): boolean {
    return this.#ended;
  }

  /** A message arrived: the peer is alive. */
  touch(): void {
    this.#lastInbound = performance.now();
  }

  /**
   * Answers a heartbeat. Bytes already queued for the peer prove life as
   * well, so none is added behind them.
   */
  answerHeartbeat(): void {
    if (
      this.socket.readyState === WebSocket.OPEN &&
      this.socket.bufferedAmount === 0
    ) {
      this.socket.send(HEARTBEAT_TEXT);
    }
  }

  /** Calls `handler` once the socket ends, however it ends. */
  onEnd(handler: EndHandler): void {
    if (this.#ended) return;
    this.#endHandlers.push(handler);
  }

  /**
   * Ends the socket now: runs the end handlers, then starts the close
   * handshake, which a dead peer may never answer.
   */
  end(code: number, reason: string): void {
    if (this.#ended) return;
    this.#finish(code, reason);
    if (this.socket.readyState <= WebSocket.OPEN) {
      this.socket.close(code, closeReason(reason));
    }
  }

  #finish(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#sockets.remove(this);
    for (const handler of this.#endHandlers.splice(0)) handler(code, reason);
  }

  /** Why the socket should be dropped at `now`, if it should. */
  verdict(now: number, timeouts: PeerTimeouts): string | undefined {
    const silent = now - this.#lastInbound;
    if (silent > timeouts.peerTimeoutMs) {
      return `no message from the peer for ${
        Math.round(silent)
      } ms (peer timeout ${timeouts.peerTimeoutMs} ms); the connection is presumed dead`;
    }
    const buffered = this.socket.bufferedAmount;
    if (buffered !== this.#buffered || buffered === 0) {
      this.#buffered = buffered;
      this.#bufferedSince = now;
      return undefined;
    }
    const stuck = now - this.#bufferedSince;
    if (stuck > timeouts.stallTimeoutMs) {
      return `the peer took none of ${buffered} queued bytes for ${
        Math.round(stuck)
      } ms (stall timeout ${timeouts.stallTimeoutMs} ms)`;
    }
    return undefined;
  }
}

/**
 * Every open socket of a server, swept for liveness by one timer: a
 * thousand idle followers cost one timer, not a thousand.
 */
export class ServerSockets {
  readonly #open = new Set<PeerSocket>();
  readonly #timeouts: PeerTimeouts;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Set by `closeAll`: later upgrades are refused, late openers ended. */
  #closed: { code: number; reason: string } | undefined;

  constructor(timeouts: PeerTimeouts) {
    this.#timeouts = timeouts;
  }

  /**
   * Upgrades `request` and hands the socket to `serve`; resolves with the
   * response. Deno's own pings are off: they queue behind data, so they
   * dropped slow but healthy readers; heartbeats replace them. `label`
   * names the socket in log lines.
   *
   * The upgrade waits a moment first: a client that resets during the
   * handshake leaves Deno's socket CONNECTING forever, holding its file
   * descriptor (an attacker's way to exhaust them), and the request's
   * signal is the only way to learn of the reset. It arrives within a few
   * milliseconds; such a request is not upgraded. (Under Deno's legacy
   * abort semantics reading the signal makes Deno warn once; deno.json
   * sets `"unstable": ["no-legacy-abort"]`, the semantics Deno moves to.)
   */
  async upgrade(
    request: Request,
    label: string,
    serve: (peer: PeerSocket) => void,
  ): Promise<Response> {
    const signal = request.signal;
    await new Promise((resolve) => setTimeout(resolve, HANDSHAKE_SETTLE_MS));
    if (signal.aborted) {
      // Never delivered: the client is gone.
      return new Response(null, { status: 400 });
    }
    if (this.#closed) return new Response(null, { status: 503 });
    const { socket, response } = Deno.upgradeWebSocket(request, {
      idleTimeout: 0,
    });
    serve(new PeerSocket(socket, this, label));
    return response;
  }

  /** Open sockets. */
  get size(): number {
    return this.#open.size;
  }

  /** @internal Counts a socket that just opened. */
  add(peer: PeerSocket): void {
    if (peer.ended) return;
    if (this.#closed) return peer.end(this.#closed.code, this.#closed.reason);
    this.#open.add(peer);
    this.#timer ??= setInterval(() => this.#sweep(), this.#sweepMs());
  }

  /** @internal Forgets a socket that ended. */
  remove(peer: PeerSocket): void {
    this.#open.delete(peer);
    if (this.#open.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #sweepMs(): number {
    const shortest = Math.min(
      this.#timeouts.peerTimeoutMs,
      this.#timeouts.stallTimeoutMs,
    );
    return Math.max(1, Math.min(MAX_SWEEP_MS, Math.floor(shortest / 4)));
  }

  #sweep(): void {
    const now = performance.now();
    for (const peer of [...this.#open]) {
      const reason = peer.verdict(now, this.#timeouts);
      if (reason === undefined) continue;
      // Operators see why a peer was cut off; the peer may never learn it.
      console.error(`spool: dropped ${peer.label}: ${reason}`);
      peer.end(CLOSE_TIMEOUT, reason);
    }
  }

  /**
   * Closes every open socket with `code` and resolves once all have ended
   * or `deadline` (a `performance.now()` time) passed; those left are ended
   * without waiting for their peers.
   */
  async closeAll(
    code: number,
    reason: string,
    deadline: number,
  ): Promise<void> {
    this.#closed = { code, reason };
    const open = [...this.#open];
    const ended = Promise.all(
      open.map((peer) =>
        new Promise<void>((resolve) => {
          peer.onEnd(() => resolve());
          if (peer.ended) resolve();
          else if (peer.socket.readyState <= WebSocket.OPEN) {
            peer.socket.close(code, reason);
          }
        })
      ),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) =>
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))
    );
    await Promise.race([ended, late]);
    clearTimeout(timer);
    for (const peer of open) peer.end(code, reason);
  }
}

/** A close event as words: who closed, with which code. */
export function describeCloseEvent(event: CloseEvent): string {
  if (event.code === 1006 || event.code === 0) {
    return "the connection was lost without a close handshake (reset or dropped)";
  }
  if (event.code === 1005) return "closed without a status code";
  return `closed with code ${event.code}${
    event.reason ? ` (${event.reason})` : ""
  }`;
}

/** A close reason fits in 123 bytes of UTF-8; longer ones are cut. */
function closeReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.byteLength <= 123) return reason;
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(
    /\uFFFD$/,
    "",
  ) +
    "...";
}
