/** A bare WebSocket with an async message queue, for protocol-level tests. */

export type RawMessage = { text: string } | { binary: Uint8Array };

/** A WebSocket whose messages are awaited one by one. */
export class RawSocket {
  readonly socket: WebSocket;
  readonly #queue: RawMessage[] = [];
  #waiter: (() => void) | undefined;
  readonly closed: Promise<CloseEvent>;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      this.#queue.push(
        typeof event.data === "string"
          ? { text: event.data }
          : { binary: new Uint8Array(event.data as ArrayBuffer) },
      );
      this.#waiter?.();
    };
    this.closed = new Promise((resolve) =>
      socket.addEventListener("close", (event) => {
        this.#waiter?.();
        resolve(event);
      })
    );
  }

  static async open(url: string | URL): Promise<RawSocket> {
    const socket = new WebSocket(url);
    const raw = new RawSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener(
        "error",
        () => reject(new Error(`cannot open ${url}`)),
        {
          once: true,
        },
      );
    });
    return raw;
  }

  /** The next message; throws if the socket closes first. */
  async next(): Promise<RawMessage> {
    while (this.#queue.length === 0) {
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error("socket closed while a message was awaited");
      }
      await new Promise<void>((resolve) => this.#waiter = resolve);
      this.#waiter = undefined;
    }
    return this.#queue.shift()!;
  }

  /** The next text message, parsed; binary messages before it are skipped if `skipBinary`. */
  async json(
    options: { skipBinary?: boolean } = {},
  ): Promise<Record<string, unknown>> {
    while (true) {
      const message = await this.next();
      if ("text" in message) return JSON.parse(message.text);
      if (!options.skipBinary) {
        throw new Error("expected a text message, got binary");
      }
    }
  }

  /** The next message of `type`, skipping others (e.g. status pushes). */
  async expect(type: string): Promise<Record<string, unknown>> {
    while (true) {
      const message = await this.json({ skipBinary: true });
      if (message.type === type) return message;
    }
  }

  send(data: string | Uint8Array | object): void {
    this.socket.send(
      typeof data === "string" || data instanceof Uint8Array
        ? data as string
        : JSON.stringify(data),
    );
  }

  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

/**
 * Resumes upload `id` on the upload socket `url` with a wrong write token;
 * resolves once the server refused it as `forbidden`, naming the token.
 */
export async function expectWrongTokenRefused(
  url: string | URL,
  id: unknown,
): Promise<void> {
  const thief = await RawSocket.open(url);
  thief.send({ type: "resume-upload", id, token: "x".repeat(22) });
  const refused = await thief.expect("error");
  await thief.close();
  const expected =
    `wrong write token for upload ${id}; expected the token of its ready-for-upload`;
  if (refused.code !== "forbidden" || refused.message !== expected) {
    throw new Error(
      `expected forbidden "${expected}", got ${JSON.stringify(refused)}`,
    );
  }
}
