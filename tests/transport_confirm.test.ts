/**
 * Confirmations (`Stream` option `confirm`, `Spool-Ack: 1`): objects
 * complete once the receiver took them whole, on the wire and through the
 * API, and against a receiver that does not stream confirmations.
 */

import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  encodeFrameHeader,
  encodeHeader,
  KIND_FIN,
  KIND_OBJECT,
  Stream,
  type TransportError,
} from "../transport/mod.ts";
import { startTestReceiver } from "./_transport_helpers.ts";
import { within } from "./_fault_actors.ts";

/** Guard against hangs only; nothing waits for it to pass. */
const GUARD_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Completion names in order, and a wait for the n-th. */
function completions(): {
  names: string[];
  onSent: (header: { name: string }, error?: TransportError) => void;
  reach(n: number): Promise<void>;
} {
  const names: string[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  return {
    names,
    onSent(header, error) {
      names.push(`${header.name}:${error?.code ?? "ok"}`);
      if (waiter !== null && names.length >= waiter.n) waiter.resolve();
    },
    reach(n) {
      if (names.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiter = { n, resolve });
    },
  };
}

Deno.test("transport confirm: an object completes once the receiver's handler took it, not when it was written", async () => {
  await using rx = await startTestReceiver();
  for (const confirm of [false, true]) {
    const gate = Promise.withResolvers<void>();
    const reached = Promise.withResolvers<void>();
    const trname = `gate-${confirm}`;
    rx.receiver.register("data", trname, async (header, body) => {
      if (body !== null) await new Response(body).bytes();
      if (header.name === "o3") {
        reached.resolve();
        await gate.promise;
      }
    });
    const done = completions();
    const stream = new Stream(rx.receiver.url("data", trname), {
      confirm,
      onSent: done.onSent,
    });
    for (let i = 0; i < 6; i++) {
      await stream.send({ name: `o${i}` }, new Uint8Array(100).fill(i));
    }
    try {
      await reached.promise;
      // Written: all six complete while o3's handler is held. Confirmed:
      // the three the handler finished, and no more until it lets o3 go.
      await within(GUARD_MS, "completions", done.reach(confirm ? 3 : 6));
      assertEquals(
        done.names,
        ["o0", "o1", "o2", ...confirm ? [] : ["o3", "o4", "o5"]].map((n) =>
          `${n}:ok`
        ),
      );
    } finally {
      gate.resolve();
    }
    await stream.fin();
    assertEquals(done.names.length, 6);
    assertEquals(stream.stats().objects, 6);
  }
});

Deno.test("transport confirm: a handler failure fails that object and the rest; those before it stay confirmed", async () => {
  await using rx = await startTestReceiver();
  rx.receiver.register("data", "fails", async (header, body) => {
    if (body !== null) await new Response(body).bytes();
    if (header.name === "o2") throw new Error("no room for o2");
  });
  const done = completions();
  const stream = new Stream(rx.receiver.url("data", "fails"), {
    confirm: true,
    onSent: done.onSent,
  });
  for (let i = 0; i < 5; i++) {
    await stream.send({ name: `o${i}` }, new Uint8Array(10)).catch(() => {
      // A send after the failure is refused: its completion says so.
    });
  }
  const error = await assertRejects(() => stream.fin()) as TransportError;
  assertEquals(error.code, "receiver-error");
  assertEquals(error.remoteCode, "handler-failed");
  assertMatch(error.message, /no room for o2/);
  assertEquals(done.names.slice(0, 2), ["o0:ok", "o1:ok"]);
  assertEquals(done.names.length, 5);
  for (const name of done.names.slice(2)) {
    assertMatch(name, /:(receiver-error|stream-terminated)$/);
  }
});

Deno.test("transport confirm: a receiver that does not stream confirmations confirms with its final answer", async () => {
  // A receiver older than confirmations: it ignores Spool-Ack and answers
  // once the body ended.
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      requests++;
      const bytes = await request.bytes();
      return Response.json({ objects: 0, bytes: bytes.length });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}/v1/objstream/old`;
  const done = completions();
  // A short idle teardown ends the first request, which confirms o0.
  const stream = new Stream(url, {
    confirm: true,
    idleTimeoutMs: 50,
    onSent: done.onSent,
  });
  await stream.send({ name: "o0" }, new Uint8Array(10));
  await done.reach(1);
  await stream.send({ name: "o1" }, new Uint8Array(10));
  await stream.send({ name: "o2" });
  await stream.fin();
  assertEquals(done.names, ["o0:ok", "o1:ok", "o2:ok"]);
  assertEquals(requests, 2);
  await server.shutdown();
});

/** Reads from `conn` until the text read so far passes `test`. */
async function readUntil(
  conn: Deno.Conn,
  sofar: { text: string },
  test: (text: string) => boolean,
): Promise<void> {
  const buffer = new Uint8Array(4096);
  while (!test(sofar.text)) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`connection ended; got ${sofar.text}`);
    sofar.text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
}

function chunk(bytes: Uint8Array): Uint8Array {
  const line = encoder.encode(`${bytes.length.toString(16)}\r\n`);
  const out = new Uint8Array(line.length + bytes.length + 2);
  out.set(line);
  out.set(bytes, line.length);
  out.set(encoder.encode("\r\n"), line.length + bytes.length);
  return out;
}

function object(seq: number, name: string, body: Uint8Array): Uint8Array {
  const header = encodeHeader({ name, size: body.length });
  const frame = encodeFrameHeader({
    kind: KIND_OBJECT,
    flags: 0,
    length: header.length,
    seq,
  });
  return new Uint8Array([...frame, ...header, ...body]);
}

Deno.test("transport confirm: the wire: 200 with the first confirmation, one ack line per confirmed batch, the final answer last", async () => {
  await using rx = await startTestReceiver();
  rx.receiver.register("data", "wire", async (_header, body) => {
    if (body !== null) await new Response(body).bytes();
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(rx.receiver.url("data", "wire").port),
  });
  const read = { text: "" };
  try {
    await conn.write(encoder.encode(
      "PUT /v1/objstream/wire HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        "Spool-Session-Id: wire-1\r\nSpool-Ack: 1\r\n" +
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    ));
    // Object #0: the answer's head comes with its confirmation (a streamed
    // answer waiting for its first line would make Deno.serve read the
    // body ahead on its own; see transport/_ack_stream.ts).
    await conn.write(chunk(object(0, "a", encoder.encode("hello"))));
    await within(
      GUARD_MS,
      "the answer's head and first confirmation",
      readUntil(conn, read, (t) => t.includes('{"ack":0}\n')),
    );
    const [head] = read.text.split("\r\n\r\n");
    assertMatch(head, /^HTTP\/1\.1 200 OK\r\n/);
    assertMatch(head, /\r\nspool-ack: 1\r\n/i);
    assertMatch(head, /\r\ncontent-type: application\/x-ndjson\r\n/i);
    assertMatch(head, /\r\ntransfer-encoding: chunked\r\n/i);
    // Objects #1 and #7 (numbers may skip) and fin: one cumulative line for
    // both, or one each, then the final answer (the session's totals).
    await conn.write(chunk(
      new Uint8Array([
        ...object(1, "b", encoder.encode("wor")),
        ...object(7, "c", encoder.encode("ld")),
        ...encodeFrameHeader({ kind: KIND_FIN, flags: 0, length: 0, seq: 8 }),
      ]),
    ));
    await conn.write(encoder.encode("0\r\n\r\n"));
    await readUntil(conn, read, (t) => t.endsWith("0\r\n\r\n"));
    await conn.read(new Uint8Array(1)).catch(() => null); // the receiver closes
  } finally {
    conn.close();
  }
  const body = read.text.slice(read.text.indexOf("\r\n\r\n") + 4)
    .replace(/[0-9a-f]+\r\n([^\r]*)\r\n/g, "$1");
  assertMatch(
    body,
    /^\{"ack":0\}\n(\{"ack":1\}\n)?\{"ack":7\}\n\{"objects":3,"bytes":10\}\n$/,
  );
});
