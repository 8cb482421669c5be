/**
 * A TCP proxy on 127.0.0.1 whose connections can be cut mid-stream: a real
 * network fault between a client and a server, for resumption tests.
 */

export class CuttableProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #links = new Set<
    { client: Deno.TcpConn; server: Deno.TcpConn; done: Promise<void> }
  >();
  readonly #accepting: Promise<void>;
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

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.accepted++;
      const server = await Deno.connect(this.#target);
      // Either direction ending (or being cut) ends the link; errors here are
      // the point of the proxy, not failures.
      const pipe = (from: Deno.TcpConn, to: Deno.TcpConn) =>
        from.readable.pipeTo(to.writable).catch(() => {/* cut */});
      const link = {
        client,
        server,
        done: Promise.all([pipe(client, server), pipe(server, client)]).then(
          () => {},
        ),
      };
      this.#links.add(link);
      link.done.then(() => this.#links.delete(link));
    }
  }

  /** Cuts every open connection at once, like a network failure. */
  async cut(): Promise<void> {
    const links = [...this.#links];
    for (const { client, server } of links) {
      for (const conn of [client, server]) {
        try {
          conn.close();
        } catch (error) {
          // Already closed by the pipe that noticed first.
          if (!(error instanceof Deno.errors.BadResource)) throw error;
        }
      }
    }
    await Promise.all(links.map((link) => link.done));
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting.catch(() => {/* the listener was closed */});
    await this.cut();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
