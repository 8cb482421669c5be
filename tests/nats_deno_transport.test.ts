/**
 * The engine's socket at its edges: closing while the server reads nothing
 * returns at once; a dial given up on while the kernel still connects
 * leaves nothing pending; a protocol error from the server ends the
 * connection, so that the server going away is seen and the client
 * reconnects, without waiting for pings.
 */

import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { connectEngine } from "../server/nats/_deno_transport.ts";
import { startNats } from "./_nats.ts";
import { within } from "./_fault_actors.ts";

/** How long a connect to a listener that takes no more connections is given, in ms. */
const SYN_WAIT_MS = 500;

Deno.test("engine socket: closing while the server reads nothing returns at once", async () => {
  await using nats = await startNats();
  const nc = await connectEngine({ servers: [nats.url] });
  Deno.kill(nats.pid, "SIGSTOP");
  try {
    // More than the socket buffers hold: the transport's writes block.
    const bytes = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 64; i++) nc.publish("spool.test.stall", bytes);
    await within(5000, "nc.close() with a stalled server", nc.close());
  } finally {
    Deno.kill(nats.pid, "SIGCONT");
  }
});

/**
 * A listener whose accept queue is full: the kernel answers no more SYNs,
 * so a connect to it stays pending. Returns it and the connections that
 * filled it.
 */
async function fullListener(): Promise<
  { listener: Deno.Listener; port: number; fillers: Deno.Conn[] }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const fillers: Deno.Conn[] = [];
  // Deno's backlog is 511: a few thousand connects always fill it.
  for (let i = 0; i < 5000; i++) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), SYN_WAIT_MS);
    try {
      fillers.push(
        await Deno.connect({
          hostname: "127.0.0.1",
          port,
          signal: abort.signal,
        }),
      );
    } catch (error) {
      if (!abort.signal.aborted) throw error;
      return { listener, port, fillers };
    } finally {
      clearTimeout(timer);
    }
  }
  throw new Error("the listener took 5000 connections without accepting one");
}

Deno.test("engine socket: a dial given up on while the kernel still connects leaves nothing pending", async () => {
  const { listener, port, fillers } = await fullListener();
  try {
    await assertRejects(
      () =>
        connectEngine({
          servers: [`nats://127.0.0.1:${port}`],
          timeout: 300,
          reconnect: false,
        }),
      Error,
      "timeout",
    );
  } finally {
    for (const conn of fillers) conn.close();
    listener.close();
  }
  // The ops sanitizer fails this test if the dial's connect is still pending.
});

Deno.test("engine socket: a protocol error from the server ends the connection; the client reconnects at once", async () => {
  const encoder = new TextEncoder();
  const info = `INFO ${
    JSON.stringify({
      server_id: "fake",
      version: "2.9.10",
      headers: true,
      max_payload: 1048576,
      proto: 1,
    })
  }\r\n`;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served: Promise<void>[] = [];
  let dials = 0;
  // Sent once the test watches the client's statuses.
  const garbage = Promise.withResolvers<void>();
  const accepting = (async () => {
    for await (const conn of listener) {
      const dial = ++dials;
      served.push((async () => {
        await conn.write(encoder.encode(info));
        const buffer = new Uint8Array(64 * 1024);
        let got = "";
        while (!got.includes("PING\r\n")) {
          const read = await conn.read(buffer);
          if (read === null) break;
          got += new TextDecoder().decode(buffer.subarray(0, read));
        }
        await conn.write(encoder.encode("PONG\r\n"));
        if (dial === 1) {
          // A line no NATS server sends; the connection stays open.
          await garbage.promise;
          await conn.write(encoder.encode("GARBAGE\r\n"));
        }
        while (await conn.read(buffer).catch(() => null) !== null) {
          /* drain */
        }
        conn.close();
      })());
    }
  })();
  const nc = await connectEngine({
    servers: [`nats://127.0.0.1:${port}`],
    reconnectTimeWait: 50,
    maxReconnectAttempts: -1,
  });
  try {
    const seen: string[] = [];
    const statuses = (async () => {
      for await (const status of nc.status()) {
        seen.push(status.type);
        if (status.type === "reconnect") return;
      }
    })();
    garbage.resolve();
    // Pings come every two minutes by default: only the error can do it.
    await within(5000, "a reconnect after the protocol error", statuses);
    assertEquals(seen.includes("disconnect"), true, seen.join(","));
    assertEquals(dials, 2);
  } finally {
    await nc.close();
    listener.close();
    await accepting.catch((error) =>
      assertStringIncludes(String(error), "closed")
    );
    await Promise.all(served);
  }
});
