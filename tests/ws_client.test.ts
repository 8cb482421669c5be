/**
 * The clients' own WebSocket (client/_ws_client.ts) against a real
 * Deno.serve WebSocket server and a raw one built on Deno.listen.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { CLOSE_HANDSHAKE_MS, WsClient } from "../client/_ws_client.ts";
import { Opcode } from "../client/_ws_frame.ts";
import {
  type ClientFrame,
  closePayload,
  type RawPeer,
  RawWsServer,
  serverFrame,
} from "./_raw_ws_server.ts";
import { randomBytes, sha256, testStatus } from "./_helpers.ts";
import { prng } from "../testing/seeded_random.ts";
import { concat } from "@std/bytes/concat";
import { startUpload } from "../client/upload.ts";

/** An open client, its messages queued. */
async function open(
  url: string,
  options: ConstructorParameters<typeof WsClient>[1] = {},
): Promise<{
  socket: WsClient;
  next: () => Promise<string | Uint8Array>;
  closed: Promise<CloseEvent>;
}> {
  const socket = new WsClient(url, options);
  const queue: (string | Uint8Array)[] = [];
  let wake: (() => void) | undefined;
  socket.onmessage = (event) => {
    queue.push(event.data);
    wake?.();
  };
  const closed = new Promise<CloseEvent>((resolve) =>
    socket.addEventListener("close", (event) => {
      wake?.();
      resolve(event);
    })
  );
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (event) =>
      reject(new Error((event as ErrorEvent).message));
  });
  socket.onerror = null;
  const next = async () => {
    while (queue.length === 0) {
      if (socket.readyState === WsClient.CLOSED) throw new Error("closed");
      await new Promise<void>((resolve) => wake = resolve);
    }
    return queue.shift()!;
  };
  return { socket, next, closed };
}

/** A Deno.serve server echoing every message; `remotePorts` are its peers' ports. */
function echoServer(): Deno.HttpServer<Deno.NetAddr> & {
  url: string;
  remotePorts: number[];
  closes: Promise<{ code: number; reason: string }>[];
} {
  const remotePorts: number[] = [];
  const closes: Promise<{ code: number; reason: string }>[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) => {
      remotePorts.push(info.remoteAddr.port);
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => socket.send(event.data);
      closes.push(
        new Promise((resolve) =>
          socket.onclose = (event) =>
            resolve({ code: event.code, reason: event.reason })
        ),
      );
      return response;
    },
  );
  return Object.assign(server, {
    url: `ws://127.0.0.1:${server.addr.port}/`,
    remotePorts,
    closes,
  });
}

Deno.test("ws client: messages of every length class go both ways intact (masking out, 7/16/64-bit lengths in)", async () => {
  await using server = echoServer();
  const { socket, next, closed } = await open(server.url);
  const big = randomBytes(3 * 1024 * 1024 + 3, 1);
  for (const length of [0, 1, 3, 125, 126, 127, 65535, 65536, 65537]) {
    const bytes = big.slice(0, length);
    socket.send(bytes);
    assertEquals(await next() as Uint8Array, bytes);
  }
  // A source that is not 4-byte aligned, and one of 3 MiB.
  socket.send(big.subarray(1, 70_000));
  assertEquals(
    await next() as Uint8Array,
    big.slice(1, 70_000),
  );
  socket.send(big);
  const echoed = await next() as Uint8Array;
  assertEquals(echoed.byteLength, big.byteLength);
  assertEquals(await sha256(echoed), await sha256(big));
  // Smaller frames reuse the big frame's buffer once it is written.
  for (
    const part of [big.subarray(0, 2 << 20), big.subarray(5, 5 + (2 << 20))]
  ) {
    socket.send(part);
    assertEquals(
      await sha256(await next() as Uint8Array),
      await sha256(part),
    );
  }
  for (const text of ["", "hello", "wörld ✓".repeat(30), "x".repeat(70_000)]) {
    socket.send(text);
    assertEquals(await next(), text);
  }
  socket.close(4000, "done here");
  const event = await closed;
  assertEquals([event.code, event.reason, event.wasClean], [
    4000,
    "done here",
    true,
  ]);
  assertEquals(await server.closes[0], { code: 4000, reason: "done here" });
  assertEquals(socket.readyState, WsClient.CLOSED);
});

/** Linux: TCP_NODELAY of this process's TCP socket whose local port is `port`. */
function noDelayOf(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const tcp = Deno.readTextFileSync("/proc/net/tcp").split("\n");
  const line = tcp.find((row) =>
    row.trim().split(/\s+/)[1]?.endsWith(`:${hexPort}`)
  );
  if (line === undefined) {
    throw new Error(`no socket with local port ${port} in /proc/net/tcp`);
  }
  const inode = line.trim().split(/\s+/)[9];
  let fd: number | undefined;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (
        Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === `socket:[${inode}]`
      ) {
        fd = Number(entry.name);
      }
    } catch (error) {
      // The fd of readDirSync itself is gone once listed.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  if (fd === undefined) throw new Error(`no fd for socket inode ${inode}`);
  const libc = Deno.dlopen("libc.so.6", {
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
  });
  try {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    const IPPROTO_TCP = 6, TCP_NODELAY = 1;
    const result = libc.symbols.getsockopt(
      fd,
      IPPROTO_TCP,
      TCP_NODELAY,
      value,
      length,
    );
    assertEquals(result, 0, "getsockopt failed");
    return value[0];
  } finally {
    libc.close();
  }
}

Deno.test({
  name:
    "ws client: its socket has TCP_NODELAY set (Deno's built-in WebSocket client's has not)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using server = echoServer();
    const ours = await open(server.url);
    assertEquals(noDelayOf(server.remotePorts[0]), 1);
    ours.socket.close();
    await ours.closed;
    // The control: the same probe sees Nagle on for the built-in client.
    const builtIn = new WebSocket(server.url);
    await new Promise((resolve) => builtIn.onopen = resolve);
    assertEquals(noDelayOf(server.remotePorts[1]), 0);
    const closed = new Promise((resolve) => builtIn.onclose = resolve);
    builtIn.close();
    await closed;
  },
});

/** A raw server's `ready-for-upload` for upload `r1` (token `t1`), as a frame. */
function readyForUpload(
  serverUrl: string,
  options: { window: number; offset?: number; resumeGraceMs?: number },
): Uint8Array {
  const ready = {
    type: "ready-for-upload",
    id: "r1",
    reference: `${serverUrl}resources/r1`,
    window: options.window,
    token: "t1",
    offset: options.offset ?? 0,
    resumeGraceMs: options.resumeGraceMs ?? 0,
  };
  return serverFrame(Opcode.TEXT, JSON.stringify(ready));
}

/** The next frame from the client that is not `skip`. */
async function frame(peer: RawPeer, skip?: number): Promise<ClientFrame> {
  for (;;) {
    const next = await peer.readFrame();
    if (next === null) throw new Error("the client closed the connection");
    if (next.opcode !== skip) return next;
  }
}

Deno.test("ws client: fragments with a ping between them make one message; the ping gets its pong; a 64-bit length and a frame split into 1-byte writes parse", async () => {
  const pong = Promise.withResolvers<Uint8Array>();
  const echoedClose = Promise.withResolvers<Uint8Array>();
  const masks = new Set<number | undefined>();
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    peer.conn.setNoDelay(true);
    await peer.write(serverFrame(Opcode.TEXT, "hel", { fin: false }));
    await peer.write(serverFrame(Opcode.PING, "p1"));
    await peer.write(
      serverFrame(Opcode.CONTINUATION, "lo, ", { fin: false }),
    );
    await peer.write(serverFrame(Opcode.CONTINUATION, "wörld"));
    const reply = await frame(peer);
    assertEquals(reply.opcode, Opcode.PONG);
    masks.add(reply.mask);
    pong.resolve(reply.payload);
    await peer.write(
      serverFrame(Opcode.BINARY, new Uint8Array(200).fill(7), {
        longLength: true,
      }),
    );
    for (const byte of serverFrame(Opcode.BINARY, randomBytes(70_000, 2))) {
      await peer.write(new Uint8Array([byte]));
    }
    // Client frames are masked, with a fresh key each.
    for (let i = 0; i < 3; i++) masks.add((await frame(peer)).mask);
    await peer.write(serverFrame(Opcode.CLOSE, closePayload(4410, "gone")));
    const close = await frame(peer);
    assertEquals(close.opcode, Opcode.CLOSE);
    echoedClose.resolve(close.payload);
    assertEquals(await peer.readFrame(), null, "the client then hangs up");
  });
  const { socket, next, closed } = await open(server.url);
  assertEquals(await next(), "hello, wörld");
  assertEquals(new TextDecoder().decode(await pong.promise), "p1");
  assertEquals(
    await next() as Uint8Array,
    new Uint8Array(200).fill(7),
  );
  assertEquals(
    await next() as Uint8Array,
    randomBytes(70_000, 2),
  );
  for (let i = 0; i < 3; i++) socket.send(new Uint8Array(10));
  const event = await closed;
  assertEquals([event.code, event.reason, event.wasClean], [
    4410,
    "gone",
    true,
  ]);
  assertEquals(await echoedClose.promise, closePayload(4410));
  assertEquals(masks.size, 4, "four frames, four masking keys");
  assert(!masks.has(undefined), "every client frame is masked");
});

Deno.test("ws client: bufferedAmount counts bytes sent and not yet written, and is 0 once they are", async () => {
  const reading = Promise.withResolvers<void>();
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    await reading.promise;
    for (const expected of [8 * 1024 * 1024, 1]) {
      const got = await frame(peer);
      assertEquals(got.payload.byteLength, expected);
      await peer.write(serverFrame(Opcode.TEXT, "got it"));
    }
    await peer.write(serverFrame(Opcode.CLOSE, closePayload(1000)));
    await frame(peer);
  });
  const { socket, next, closed } = await open(server.url);
  socket.send(new Uint8Array(8 * 1024 * 1024));
  assertEquals(socket.bufferedAmount, 8 * 1024 * 1024);
  reading.resolve();
  assertEquals(await next(), "got it");
  socket.send(new Uint8Array(1));
  assertEquals(await next(), "got it");
  // The second frame went out after the first was written, and was read.
  assertEquals(socket.bufferedAmount, 0);
  assertEquals((await closed).code, 1000);
});

Deno.test("ws client: a server breaking the protocol gets a close with its code; the client reports why", async () => {
  const cases: [Uint8Array, number, RegExp][] = [
    [
      // A masked frame from a server.
      new Uint8Array([0x82, 0x81, 1, 2, 3, 4, 5]),
      1002,
      /masked frame from the server/,
    ],
    [serverFrame(Opcode.CONTINUATION, "x"), 1002, /continuation frame/],
    [serverFrame(Opcode.PING, "x", { fin: false }), 1002, /control frame/],
    [
      serverFrame(Opcode.TEXT, new Uint8Array([0xff, 0xfe])),
      1007,
      /not UTF-8/,
    ],
    [
      serverFrame(Opcode.BINARY, new Uint8Array(0), { longLength: true })
        .map((byte, i) => i === 2 ? 0x7f : byte),
      1009,
      /expected at most/,
    ],
  ];
  for (const [bytes, code, message] of cases) {
    const sent = Promise.withResolvers<number>();
    await using server = new RawWsServer(async (peer) => {
      await peer.accept();
      await peer.write(bytes);
      const close = await frame(peer);
      assertEquals(close.opcode, Opcode.CLOSE);
      sent.resolve(new DataView(close.payload.buffer).getUint16(0));
    });
    const socket = new WsClient(server.url);
    const error = new Promise<string>((resolve) =>
      socket.addEventListener(
        "error",
        (event) => resolve((event as ErrorEvent).message),
      )
    );
    const closed = new Promise<CloseEvent>((resolve) =>
      socket.onclose = resolve
    );
    assertMatch(await error, message);
    assertEquals(await sent.promise, code);
    const event = await closed;
    assertEquals([event.code, event.wasClean], [code, false]);
  }
});

Deno.test("ws client: connecting fails with the cause named: refused, not 101 (with the body), a wrong accept", async () => {
  const reasons: string[] = [];
  const fail = async (url: string) => {
    const socket = new WsClient(url);
    const error = new Promise<string>((resolve) =>
      socket.onerror = (event) => resolve((event as ErrorEvent).message)
    );
    const closed = new Promise<CloseEvent>((resolve) =>
      socket.onclose = resolve
    );
    reasons.push(await error);
    assertEquals((await closed).code, 1006);
    assertEquals(socket.readyState, WsClient.CLOSED);
  };
  await fail("ws://127.0.0.1:9/");
  await using refusing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      Response.json({ code: "forbidden", message: "no token" }, {
        status: 401,
      }),
  );
  await fail(`ws://127.0.0.1:${refusing.addr.port}/upload`);
  await using wrong = new RawWsServer(async (peer) => {
    await peer.write(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n" +
        "connection: Upgrade\r\nsec-websocket-accept: bm9wZQ==\r\n\r\n",
    );
    await peer.readFrame();
  });
  await fail(wrong.url);
  assertMatch(reasons[0], /Connection refused/);
  assertEquals(
    reasons[1],
    'the server answered 401 Unauthorized instead of 101 Switching Protocols: {"code":"forbidden","message":"no token"}',
  );
  assertMatch(reasons[2], /sec-websocket-accept is "bm9wZQ=="; expected "/);
});

Deno.test("ws client: the upgrade request carries the headers given; close() while connecting ends it at once", async () => {
  const head = Promise.withResolvers<string>();
  await using server = new RawWsServer(async (peer) => {
    head.resolve(await peer.accept());
    await peer.readFrame();
  });
  const { socket, closed } = await open(`${server.url}upload?x=1`, {
    headers: { authorization: "Bearer t0ken" },
  });
  const request = await head.promise;
  assertMatch(request, /^GET \/upload\?x=1 HTTP\/1\.1\r\n/);
  assertMatch(request, /\r\nauthorization: Bearer t0ken(\r\n|$)/);
  assertMatch(request, /\r\nsec-websocket-version: 13(\r\n|$)/);
  socket.close();
  assertEquals((await closed).code, 1006, "the raw server never answers");

  await using silent = new RawWsServer(async (peer) => {
    await peer.readFrame();
  });
  const connecting = new WsClient(silent.url);
  const ended = new Promise<CloseEvent>((resolve) =>
    connecting.onclose = resolve
  );
  connecting.close();
  assertEquals(connecting.readyState, WsClient.CLOSED);
  assertEquals((await ended).code, 1006);
});

Deno.test("ws client: a server that never answers the close frame is dropped after the close timeout", async () => {
  const reached = Promise.withResolvers<void>();
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    assertEquals((await frame(peer)).opcode, Opcode.CLOSE);
    reached.resolve();
    assertEquals(await peer.readFrame(), null);
  });
  const { socket, closed } = await open(server.url);
  const started = performance.now();
  socket.close(1000, "bye");
  await reached.promise;
  const event = await closed;
  assertEquals([event.code, event.wasClean], [1006, false]);
  assert(performance.now() - started >= CLOSE_HANDSHAKE_MS - 50);
});

Deno.test("upload client: binary data from the server fails the upload with unexpected-binary and a 1002 close (Deno's WebSocket threw on close(1002))", async () => {
  const closeCode = Promise.withResolvers<number>();
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    const request = JSON.parse(
      new TextDecoder().decode((await frame(peer)).payload),
    );
    assertEquals(request.type, "request-upload");
    await peer.write(readyForUpload(server.url, { window: 1 << 20 }));
    await peer.write(serverFrame(Opcode.BINARY, new Uint8Array(3)));
    const close = await frame(peer, Opcode.TEXT);
    assertEquals(close.opcode, Opcode.CLOSE);
    closeCode.resolve(new DataView(close.payload.buffer).getUint16(0));
  });
  const upload = await startUpload(server.url, { name: "x" });
  const ended = await upload.closed();
  assertEquals(ended?.code, "unexpected-binary");
  assertEquals(await closeCode.promise, 1002);
});

Deno.test("ws client: close() during a TLS handshake the server never answers ends it at once, leaving no op or resource behind", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const socket = new WsClient(`wss://127.0.0.1:${listener.addr.port}/`);
  const ended = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  using conn = await accepted;
  // The ClientHello arrives; no answer ever does.
  assert((await conn.read(new Uint8Array(4096)) ?? 0) > 0);
  socket.close();
  const event = await ended;
  assertEquals([event.code, event.wasClean], [1006, false]);
});

Deno.test("upload client: a resume at an offset inside a sent frame resends the rest of it (unmasked from the kept frame, masked anew) and the later frames as they went out; the server gets every byte once, in order", async () => {
  const data = randomBytes(1024 * 1024 + 12_345, 3);
  // Inside the second 256 KiB frame, at an odd byte of its masking key.
  const resumeAt = 300_001;
  const resumed = Promise.withResolvers<Uint8Array[]>();
  const keys = new Set<number | undefined>();
  let connections = 0;
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    const first = ++connections === 1;
    const hello = JSON.parse(
      new TextDecoder().decode((await frame(peer)).payload),
    );
    assertEquals(hello.type, first ? "request-upload" : "resume-upload");
    if (!first) assertEquals([hello.id, hello.token], ["r1", "t1"]);
    await peer.write(readyForUpload(server.url, {
      window: 4 << 20,
      offset: first ? 0 : resumeAt,
      resumeGraceMs: 10_000,
    }));
    if (first) {
      // Two frames in, the connection is lost; nothing was acknowledged.
      for (let i = 0; i < 2; i++) keys.add((await frame(peer)).mask);
      return;
    }
    const parts: Uint8Array[] = [];
    for (;;) {
      const next = await frame(peer);
      keys.add(next.mask);
      if (next.opcode === Opcode.TEXT) {
        const end = JSON.parse(new TextDecoder().decode(next.payload));
        assertEquals(end.type, "end-of-input");
        assertEquals(end.sha256, await sha256(data));
        break;
      }
      parts.push(next.payload);
    }
    resumed.resolve(parts);
    const status = testStatus("x", {
      id: "r1",
      status: "COMPLETED",
      size: data.byteLength,
      finishedAt: new Date().toISOString(),
    });
    await peer.write(
      serverFrame(
        Opcode.TEXT,
        JSON.stringify({ type: "final-status", resource: status }),
      ),
    );
    await frame(peer, Opcode.TEXT); // the client's close
  });
  const upload = await startUpload(server.url, { name: "x" });
  await upload.write(data);
  const final = await upload.finish();
  assertEquals([final.status, upload.reconnects], ["COMPLETED", 1]);
  const parts = await resumed.promise;
  // The rest of frame 2, then frames 3, 4 and 5 (the last one short).
  assertEquals(parts.map((part) => part.byteLength), [
    2 * 262_144 - resumeAt,
    262_144,
    262_144,
    data.byteLength - 4 * 262_144,
  ]);
  assertEquals(
    await sha256(concat(parts)),
    await sha256(data.subarray(resumeAt)),
  );
  assert(!keys.has(undefined), "every frame is masked");
  await upload.closed();
});

Deno.test("ws client: binary messages of every size class, written in random cuts, arrive intact when every one is kept to the end (views on the read buffer are never written again)", async () => {
  const rand = prng(11);
  const sizes = [0, 1, 100, 1023, 1024, 1025, 5000, 16_384, 20_000, 32_767];
  for (let i = 0; i < 300; i++) {
    sizes.push(rand(3) === 0 ? rand(70_000) : rand(9000));
  }
  const messages = sizes.map((size, i) => randomBytes(size, 100 + i));
  const parts = messages.map((bytes) => serverFrame(Opcode.BINARY, bytes));
  const stream = concat(parts);
  await using server = new RawWsServer(async (peer) => {
    await peer.accept();
    peer.conn.setNoDelay(true);
    // Cuts from 1 byte to 90 KB: frames split across reads, several in one.
    for (let from = 0; from < stream.byteLength;) {
      const to = Math.min(
        stream.byteLength,
        from + 1 + rand(rand(4) === 0 ? 16 : 90_000),
      );
      await peer.write(stream.subarray(from, to));
      from = to;
    }
    await frame(peer); // the client's close
  });
  const { socket, next, closed } = await open(server.url);
  const received: Uint8Array[] = [];
  for (let i = 0; i < messages.length; i++) {
    received.push(await next() as Uint8Array);
  }
  socket.close();
  await closed;
  // Compared only now, after every later read: a view written over shows.
  for (let i = 0; i < messages.length; i++) {
    assertEquals(
      received[i].byteLength,
      messages[i].byteLength,
      `message ${i}`,
    );
    assertEquals(
      await sha256(received[i]),
      await sha256(messages[i]),
      `message ${i} of ${messages[i].byteLength} bytes`,
    );
  }
});
