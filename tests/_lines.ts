/** Reading a child process's output line by line, for the CLI tests. */

import { TextLineStream } from "@std/streams";

/** Lines of a child's output as they arrive. */
export class Lines {
  #queue: string[] = [];
  #waiters: ((line: string | null) => void)[] = [];
  #ended = false;
  /** Resolves once the output ended. */
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const lines = stream.pipeThrough(new TextDecoderStream())
        .pipeThrough<string>(new TextLineStream());
      for await (const line of lines) this.#push(line);
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
