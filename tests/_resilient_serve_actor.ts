/**
 * A subprocess for tests/resilient_serve.test.ts: `resilientServe` on
 * 127.0.0.1 answering `GET /` with "ok" and echoing WebSocket messages.
 * Prints `port <n>` once listening, then one `event <type>` line per
 * serve event; SIGTERM shuts it down (exit 0).
 *
 * ```sh
 * bash -c 'ulimit -n 64 && exec deno run -A tests/_resilient_serve_actor.ts'
 * ```
 *
 * @module
 */

import { resilientServe } from "../net/resilient_serve.ts";

const server = resilientServe({
  hostname: "127.0.0.1",
  port: 0,
  onListen({ port }) {
    console.log(`port ${port}`);
  },
  onEvent(event) {
    console.log(`event ${event.type}`);
  },
}, (request) => {
  if (request.headers.get("upgrade") !== "websocket") {
    return new Response("ok");
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.onmessage = (event) => socket.send(`echo ${event.data}`);
  return response;
});
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await server.finished;
  Deno.exit(0);
});
