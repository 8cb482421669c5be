/**
 * A TCP fault proxy on 127.0.0.1: real network faults between a client and a
 * server. Connections can be cut (both ends closed, like a reset link),
 * black-holed (kept open, every byte silently dropped, no FIN: the fault
 * only a timeout can notice), throttled (bytes towards the client paced to a
 * rate), slowed (bytes towards the client held back a while), or cut when a given number of bytes has passed (a cut at a chosen
 * offset).
 */

/** Which way bytes flow through a link. */
type Direction = "up" | "down";

/** How the proxy treats the bytes of a link. */
export interface LinkFaults {
  /**
   * Drop every byte in these directions ("up" = towards the server),
   * keeping both connections open. Default: none.
   */
  blackHole?: "both" | Direction;
  /** Bytes per second towards the client; unlimited when undefined. */
  downRate?: number;
  /**
   * Each read's bytes towards the client wait this long before they are
   * forwarded, in order (a slow link; a burst queues behind itself).
   */
  downDelayMs?: number;
}

interface Link {
  client: Deno.TcpConn;
  server: Deno.TcpConn;
  faults: LinkFaults;
  done: Promise<void>;
}

/** A TCP proxy whose connections suffer the faults a test asks for. */
export class FaultProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #links = new Set<Link>();
  readonly #accepting: Promise<void>;
  #faults: LinkFaults = {};
  #schedule: ((index: number) => LinkFaults | undefined) | undefined;
  #cutAfter: { direction: Direction; bytes: number } | undefined;
  #waiters: (() => void)[] = [];
  readonly #total: Record<Direction, number> = { up: 0, down: 0 };
  /** Connections accepted so far. */
  accepted = 0;

  constructor(target: URL) {
    this.#target = { hostname: target.hostname, port: Number(target.port) };
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** `http://127.0.0.1:PORT/` of the proxy. */
  get url(): URL {
    return new URL(`http://127.0.0.1:${this.#listener.addr.port}/`);
  }

  /** Bytes forwarded in `direction` ("up" = towards the server) on all links so far. */
  forwarded(direction: Direction): number {
    return this.#total[direction];
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      const index = this.accepted++;
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect(this.#target);
      } catch (error) {
        // The target is gone (a killed server): the client sees a closed link.
        if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
        client.close();
        continue;
      }
      const link: Link = {
        client,
        server,
        faults: { ...(this.#schedule?.(index) ?? this.#faults) },
        done: Promise.resolve(),
      };
      link.done = Promise.all([
        this.#pump(link, "up", client, server),
        this.#pump(link, "down", server, client),
      ]).then(() => {});
      this.#links.add(link);
      link.done.then(() => this.#links.delete(link));
      this.#wake();
    }
  }

  /** Copies `from` to `to` under the link's faults until either end closes. */
  async #pump(
    link: Link,
    direction: Direction,
    from: Deno.TcpConn,
    to: Deno.TcpConn,
  ): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const read = await from.read(buffer);
        if (read === null) break;
        const hole = link.faults.blackHole;
        if (hole === "both" || hole === direction) continue; // dropped: no FIN, no reset
        let chunk = buffer.subarray(0, read);
        const cut = this.#cutAfter;
        if (cut?.direction === direction) {
          const room = cut.bytes - this.#total[direction];
          if (room <= 0 || chunk.byteLength >= room) {
            chunk = chunk.subarray(0, Math.max(0, room));
            await this.#write(link, direction, to, chunk);
            this.#cutAfter = undefined;
            this.#closeLink(link);
            break;
          }
        }
        await this.#write(link, direction, to, chunk);
      }
    } catch (error) {
      // A cut or a peer's reset ends the link; that is the proxy's purpose.
      if (
        !(error instanceof Deno.errors.BadResource) &&
        !(error instanceof Deno.errors.ConnectionReset) &&
        !(error instanceof Deno.errors.BrokenPipe) &&
        !(error instanceof Deno.errors.Interrupted)
      ) {
        throw error;
      }
    } finally {
      this.#closeLink(link);
    }
  }

  /** Writes `chunk`, paced to the link's rate towards the client. */
  async #write(
    link: Link,
    direction: Direction,
    to: Deno.TcpConn,
    chunk: Uint8Array,
  ): Promise<void> {
    const rate = direction === "down" ? link.faults.downRate : undefined;
    const delayMs = direction === "down" ? link.faults.downDelayMs : undefined;
    if (delayMs !== undefined) {
      // The latency is the fault being simulated, not a synchronisation.
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    const step = rate === undefined
      ? chunk.byteLength
      : Math.max(1, Math.floor(rate / 20));
    for (let offset = 0; offset < chunk.byteLength; offset += step) {
      const piece = chunk.subarray(offset, offset + step);
      let written = 0;
      while (written < piece.byteLength) {
        written += await to.write(piece.subarray(written));
      }
      this.#total[direction] += piece.byteLength;
      this.#wake();
      if (rate !== undefined) {
        // The throttle is the fault being simulated, not a synchronisation.
        await new Promise((resolve) =>
          setTimeout(resolve, (piece.byteLength / rate) * 1000)
        );
      }
    }
  }

  #closeLink(link: Link): void {
    for (const conn of [link.client, link.server]) {
      try {
        conn.close();
      } catch (error) {
        // Already closed by the pump that noticed first.
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves once `predicate` holds; checked after every accept and forwarded chunk. */
  async until(predicate: () => boolean): Promise<void> {
    while (!predicate()) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /**
   * Black-holes every open link and every later one (until `heal()`), in
   * both directions or only in `direction`.
   */
  blackHole(direction: "both" | Direction = "both"): void {
    this.#faults = { ...this.#faults, blackHole: direction };
    for (const link of this.#links) link.faults.blackHole = direction;
  }

  /**
   * Gives each later link the faults `plan` returns for its index (0 is the
   * first connection the proxy accepted); `undefined` = the proxy's faults.
   */
  schedule(plan: (index: number) => LinkFaults | undefined): void {
    this.#schedule = plan;
  }

  /** Paces bytes towards clients to `bytesPerSecond`, on open and later links. */
  throttle(bytesPerSecond: number): void {
    this.#faults = { ...this.#faults, downRate: bytesPerSecond };
    for (const link of this.#links) link.faults.downRate = bytesPerSecond;
  }

  /** Holds bytes towards clients back `ms` per read, on open and later links. */
  slow(ms: number): void {
    this.#faults = { ...this.#faults, downDelayMs: ms };
    for (const link of this.#links) link.faults.downDelayMs = ms;
  }

  /** Later links pass bytes unharmed again (open black-holed links stay so). */
  heal(): void {
    this.#faults = {};
    this.#schedule = undefined;
  }

  /**
   * Cuts the link that carries the byte at `bytes` in `direction` (counted
   * over all links from now on), after forwarding the bytes before it.
   */
  cutAfter(direction: Direction, bytes: number): void {
    this.#cutAfter = {
      direction,
      bytes: this.#total[direction] + bytes,
    };
  }

  /** Number of open links. */
  get open(): number {
    return this.#links.size;
  }

  /** Cuts every open connection at once, like a network failure. */
  async cut(): Promise<void> {
    const links = [...this.#links];
    for (const link of links) this.#closeLink(link);
    await Promise.all(links.map((link) => link.done));
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting.catch((error) => {
      // The listener was closed: that ends the accept loop.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    });
    await this.cut();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The proxy under its older name: cutting is one of its faults. */
export { FaultProxy as CuttableProxy };
