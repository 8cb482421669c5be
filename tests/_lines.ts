/** Reading a child process's output line by line, for the CLI tests. */

/** Lines of a child's output as they arrive. */
export class Lines {
  #queue: string[] = [];
  #waiters: ((line: string | null) => void)[] = [];
  #ended = false;
  /** Resolves once the output ended. */
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let text = "";
      for await (const piece of stream.pipeThrough(new TextDecoderStream())) {
        text += piece;
        for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
          this.#push(text.slice(0, nl));
          text = text.slice(nl + 1);
        }
      }
      if (text !== "") this.#push(text);
      this.#ended = true;
      for (const waiter of this.#waiters.splice(0)) waiter(null);
    })();
  }

  #push(line: string): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(line);
    else this.#queue.push(line);
  }

  /** The next line, or `null` once the output ended. */
  next(): Promise<string | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
