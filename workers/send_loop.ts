/**
 * Worker entry: the send loop of one `Stream`. The loop itself is
 * {@linkcode SendLoop} (`_send_loop_core.ts`); this file only wires it to
 * the worker's port: `init` makes it with an HTTP/1.1 connector, every
 * other message goes to it, and `close` closes the worker once the loop
 * released what it holds.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import type { ToWorker } from "../transport/internal/messages.ts";
import { http1Connector } from "./_http1_connection.ts";
import { SendLoop } from "./_send_loop_core.ts";

let loop: SendLoop | null = null;

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.t === "init") {
    loop = new SendLoop(
      message,
      http1Connector(message.url, {
        compression: message.compression,
        headers: message.headers,
        secret: message.secret,
        caCerts: message.caCerts,
        confirm: message.confirm,
      }),
      (out, transfer) => self.postMessage(out, transfer ?? []),
    );
    loop.start();
    return;
  }
  if (loop === null) {
    // The Stream posts init first, always: anything else is a bug.
    throw new TypeError(`send loop got ${message.t} before init`);
  }
  if (message.t === "close") {
    loop.close().then(() => {
      self.postMessage({ t: "closed" });
      self.close();
    });
    return;
  }
  loop.handle(message);
};
