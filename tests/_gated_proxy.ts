/**
 * A TCP relay on 127.0.0.1 that passes only the first `limit` bytes from
 * client to server (it keeps reading the client, so the client's writes
 * complete, and holds the rest) and everything from server to client, which
 * it also records. A receiver behind it is stopped at a known byte of the
 * request while the sender believes everything left: the state a slow
 * receiver is in when it dies.
 */

/** One client connection through the relay. */
interface Link {
  client: Deno.TcpConn;
  server: Deno.TcpConn;
  done: Promise<void>;
}

/** The relay. */
export class GatedProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #limit: number;
  readonly #links = new Set<Link>();
  readonly #accepting: Promise<void>;
  #downstream = "";
  #waiters: { test: (text: string) => boolean; resolve: () => void }[] = [];
  /** Client bytes passed to the server so far. */
  forwarded = 0;
  /** Client bytes read and held back so far. */
  held = 0;

  /** Relays to `target`, passing at most `limit` client bytes upstream. */
  constructor(target: URL, limit: number) {
    this.#target = { hostname: target.hostname, port: Number(target.port) };
    this.#limit = limit;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** `http://127.0.0.1:PORT` of the relay. */
  get origin(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** Resolves once the server-to-client bytes, as text, pass `test`. */
  downstreamPasses(test: (text: string) => boolean): Promise<void> {
    if (test(this.#downstream)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      const server = await Deno.connect(this.#target);
      const link: Link = {
        client,
        server,
        done: Promise.all([
          this.#up(client, server),
          this.#down(server, client),
        ])
          .then(() => {}),
      };
      this.#links.add(link);
      link.done.then(() => this.#links.delete(link));
    }
  }

  async #up(client: Deno.TcpConn, server: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await client.read(buffer);
        if (n === null) break;
        const pass = Math.max(0, Math.min(n, this.#limit - this.forwarded));
        if (pass > 0) {
          await writeAll(server, buffer.subarray(0, pass));
          this.forwarded += pass;
        }
        this.held += n - pass;
      }
    } catch (error) {
      // The other direction closed the sockets, or the server died: the
      // link is over.
      if (!isClosed(error)) throw error;
    }
  }

  async #down(server: Deno.TcpConn, client: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    try {
      for (;;) {
        let n: number | null;
        try {
          n = await server.read(buffer);
        } catch (error) {
          // A killed server resets the connection, or close() closed it:
          // that ends this direction.
          if (isClosed(error)) break;
          throw error;
        }
        if (n === null) break;
        this.#downstream += decoder.decode(buffer.subarray(0, n), {
          stream: true,
        });
        this.#wake();
        await writeAll(client, buffer.subarray(0, n));
      }
    } finally {
      // The server is gone: so is the client's connection, as it would be
      // without the relay.
      closeQuietly(client);
      closeQuietly(server);
    }
  }

  #wake(): void {
    const text = this.#downstream;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.test(text)) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Stops listening and closes every link. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting.catch((error) => {
      // Closing the listener ends the accept loop with BadResource.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    });
    const links = [...this.#links];
    for (const { client, server } of links) {
      closeQuietly(client);
      closeQuietly(server);
    }
    await Promise.all(links.map((link) => link.done));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
    at += await conn.write(bytes.subarray(at));
  }
}

function isClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.Interrupted;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // Already closed by the other direction.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
