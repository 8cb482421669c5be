/**
 * net/resilient_serve.ts: a server that runs out of file descriptors keeps
 * its running requests and WebSockets and listens again; in process, it
 * behaves like `Deno.serve`.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { resilientServe } from "../net/resilient_serve.ts";
import { Children, Lines, within } from "./_fault_actors.ts";

const ACTOR = new URL("./_resilient_serve_actor.ts", import.meta.url).pathname;
/** Guard against hangs only; nothing waits for it to pass. */
const GUARD_MS = 30_000;

/** A WebSocket whose messages are awaited one by one. */
async function openSocket(url: string): Promise<{
  socket: WebSocket;
  next(): Promise<string>;
  closed: Promise<void>;
}> {
  const socket = new WebSocket(url);
  const queue: string[] = [];
  let waiter: (() => void) | null = null;
  socket.onmessage = (event) => {
    queue.push(event.data);
    waiter?.();
  };
  const closed = new Promise<void>((resolve) =>
    socket.onclose = () => resolve()
  );
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`cannot open ${url}`));
  });
  return {
    socket,
    closed,
    async next() {
      while (queue.length === 0) {
        await new Promise<void>((resolve) => waiter = resolve);
      }
      return queue.shift()!;
    },
  };
}

Deno.test("resilient serve: out of file descriptors, the WebSocket stays, the server listens again and serves", async () => {
  await using children = new Children();
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n 64 && exec "$0" "$@"`,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      ACTOR,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const actor = children.add(
    { child, lines: new Lines(child.stdout) },
    (a) => a.lines.rest(),
  );
  const first = await within(GUARD_MS, "port", actor.lines.until(() => true));
  const port = Number(first.match(/^port (\d+)$/)?.[1]);
  assert(port > 0, first);
  const ws = await openSocket(`ws://127.0.0.1:${port}/`);
  ws.socket.send("1");
  assertEquals(await ws.next(), "echo 1");

  // More connections than descriptors, none sending a request.
  const flood: Deno.TcpConn[] = [];
  for (let i = 0; i < 120; i++) {
    try {
      flood.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    } catch (error) {
      // Refused while it does not listen, or reset by a closing listener.
      if (
        !(error instanceof Deno.errors.ConnectionRefused ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.NotConnected)
      ) throw error;
    }
  }
  assertEquals(
    await within(GUARD_MS, "accept failure", actor.lines.until(() => true)),
    "event accept_failed",
  );
  ws.socket.send("2");
  assertEquals(await within(GUARD_MS, "echo 2", ws.next()), "echo 2");

  // Descriptors back: it listens again and answers.
  for (const conn of flood) conn.close();
  let answer = "";
  for (let attempt = 0; answer !== "ok"; attempt++) {
    assert(attempt < 20, "never answered again");
    const line = await within(
      GUARD_MS,
      "listening again",
      actor.lines.until((l) => l === "event listening"),
    );
    assertMatch(line, /^event listening$/);
    answer = await fetch(`http://127.0.0.1:${port}/`).then(
      (response) => response.text(),
      () => "",
    );
  }
  ws.socket.send("3");
  assertEquals(await within(GUARD_MS, "echo 3", ws.next()), "echo 3");
  ws.socket.close();
  await ws.closed;
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
});

Deno.test("resilient serve: in process like Deno.serve: onListen once, finished after shutdown", async () => {
  const listened: number[] = [];
  const server = resilientServe({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => listened.push(port),
  }, () => new Response("ok"));
  assertEquals(listened, [server.addr.port]);
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  assertEquals(await response.text(), "ok");
  let finished = false;
  server.finished.then(() => finished = true);
  await server.shutdown();
  await server.finished;
  assert(finished);
  const aborted = new AbortController();
  const other = resilientServe({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    signal: aborted.signal,
  }, () => new Response("ok"));
  aborted.abort();
  await other.finished;
});
