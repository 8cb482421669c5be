import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "@std/assert";
import {
  openDownload,
  ResourceFailedError,
  SpoolError,
  startUpload,
  upload,
} from "../mod.ts";
import { DISCONNECTED_REASON } from "../server/mod.ts";
import {
  randomBytes,
  readAll,
  sha256,
  SlowFileStore,
  startTestServer,
} from "./_helpers.ts";
import { RawSocket } from "./_raw_socket.ts";

function resourceUrl(server: { url: URL }, id: string): URL {
  const url = new URL(`resources/${id}`, server.url);
  url.protocol = "ws:";
  return url;
}

Deno.test("an uploader disconnecting mid-way fails the resource and its followers at once", async () => {
  await using server = await startTestServer();
  const up = await startUpload(server.url, { name: "doomed.bin" });
  const data = randomBytes(500_000);
  await using follower = await openDownload(up.reference);
  const reader = follower.follow().getReader();
  await up.write(data);
  // Read a first chunk, so the follower is mid-resource when the uploader goes.
  const first = await reader.read();
  assertEquals(first.done, false);
  up.abort("simulated crash");
  await up.closed();
  const error = await (async () => {
    while (true) {
      const { done } = await reader.read();
      if (done) return undefined;
    }
  })().catch((e) => e);
  assert(error instanceof ResourceFailedError, `follower failed with ${error}`);
  assertEquals(error.reason, DISCONNECTED_REASON);
  const status = await follower.waitForStatus((s) => s.status === "FAILED");
  assertEquals(status.error, DISCONNECTED_REASON);
  // The bytes that reached the store stay readable.
  const kept = await readAll(follower.read(0, status.size));
  assertEquals(kept, data.subarray(0, status.size));
  await assertRejects(() => up.finish(), SpoolError);
});

Deno.test("every bad download request gets its error and the next good request works", async () => {
  await using server = await startTestServer();
  const data = randomBytes(1000, 9);
  let id = "";
  await upload(server.url, data, { name: "ok.bin", onReady: (u) => id = u.id });
  const socket = await RawSocket.open(resourceUrl(server, id));
  const status = await socket.json();
  assertEquals(status.type, "status");

  const bad: [string | Uint8Array, string, string, number?][] = [
    ["{not json", "malformed-message", "message is not valid JSON"],
    ["[1,2]", "malformed-message", "message is [1,2]; expected a JSON object"],
    ['{"type":7}', "malformed-message", "field 'type' is 7; expected a string"],
    [
      '{"type":"dance"}',
      "unknown-type",
      'unknown message type "dance"; expected one of read, follow, credit, cancel',
    ],
    [
      '{"type":"read","requestId":1,"start":10,"end":5}',
      "invalid-range",
      "range [10, 5) has start > end; expected start <= end",
      1,
    ],
    [
      '{"type":"read","requestId":2,"start":0,"end":1001}',
      "range-not-satisfiable",
      "range [0, 1001) ends past the checkpointed size 1000; expected end <= 1000",
      2,
    ],
    [
      '{"type":"read","requestId":3,"start":-1,"end":5}',
      "invalid-field",
      "field 'start' is -1; expected an integer offset >= 0",
      3,
    ],
    [
      '{"type":"read","requestId":4,"start":0.5,"end":5}',
      "invalid-field",
      "field 'start' is 0.5; expected an integer offset >= 0",
      4,
    ],
    [
      '{"type":"read","requestId":-4,"start":0,"end":5}',
      "invalid-field",
      "field 'requestId' is -4; expected an integer in [0, 4294967295]",
    ],
    [
      '{"type":"read","requestId":5,"start":0,"end":5,"window":0}',
      "invalid-field",
      "field 'window' is 0; expected an integer > 0",
      5,
    ],
    [
      new Uint8Array([1, 2, 3]),
      "unexpected-binary",
      "binary frame of 3 bytes on a download socket; expected only JSON text messages",
    ],
  ];
  for (const [message, code, text, requestId] of bad) {
    socket.send(message);
    const error = await socket.expect("error");
    assertEquals(error.code, code, `code for ${message}`);
    assert(
      String(error.message).startsWith(text),
      `message for ${message}: ${error.message}`,
    );
    assertEquals(error.requestId, requestId);
    // The same socket still serves a good request.
    socket.send({ type: "read", requestId: 100, start: 10, end: 20 });
    const frame = await socket.next();
    if (!("binary" in frame)) {
      throw new Error(`expected a data frame, got ${frame.text}`);
    }
    assertEquals(frame.binary.subarray(4), data.subarray(10, 20));
    assertEquals(new DataView(frame.binary.buffer).getUint32(0), 100);
    assertEquals(await socket.expect("read-end"), {
      type: "read-end",
      requestId: 100,
      bytes: 10,
    });
  }
  await socket.close();
});

Deno.test("a read waits for credit: the server runs at most one window ahead", async () => {
  await using server = await startTestServer();
  const data = randomBytes(1024 * 1024, 10);
  let id = "";
  await upload(server.url, data, {
    name: "credit.bin",
    onReady: (u) => id = u.id,
  });
  const socket = await RawSocket.open(resourceUrl(server, id));
  await socket.expect("status");
  const window = 64 * 1024;
  socket.send({
    type: "read",
    requestId: 1,
    start: 0,
    end: data.byteLength,
    window,
  });
  socket.send({ type: "read", requestId: 2, start: 0, end: 1, window });
  const received = new Map<number, number>([[1, 0], [2, 0]]);
  const collect = async (until: (m: Record<string, unknown>) => boolean) => {
    while (true) {
      const message = await socket.next();
      if ("binary" in message) {
        const tag = new DataView(message.binary.buffer).getUint32(0);
        received.set(tag, received.get(tag)! + message.binary.byteLength - 4);
      } else if (until(JSON.parse(message.text))) return;
    }
  };
  await collect((m) => m.type === "read-end" && m.requestId === 2);
  assert(
    received.get(1)! <= window,
    `read 1 sent ${received.get(1)} bytes with a window of ${window}`,
  );
  socket.send({ type: "credit", requestId: 1, bytes: data.byteLength });
  await collect((m) => m.type === "read-end" && m.requestId === 1);
  assertEquals(received.get(1), data.byteLength);
  await socket.close();
});

Deno.test("a duplicate request id is refused while the first is in flight", async () => {
  await using server = await startTestServer();
  let id = "";
  await upload(server.url, randomBytes(1024 * 1024), {
    name: "dup",
    onReady: (u) => id = u.id,
  });
  const socket = await RawSocket.open(resourceUrl(server, id));
  await socket.expect("status");
  socket.send({
    type: "read",
    requestId: 7,
    start: 0,
    end: 1024 * 1024,
    window: 1024,
  });
  socket.send({ type: "read", requestId: 7, start: 0, end: 1 });
  const error = await socket.expect("error");
  assertEquals(error.code, "duplicate-request");
  assertEquals(error.requestId, 7);
  socket.send({ type: "cancel", requestId: 7 });
  await socket.close();
});

Deno.test("an unknown resource id gets not-found and a 4404 close", async () => {
  await using server = await startTestServer();
  const error = await assertRejects(
    () => openDownload(resourceUrl(server, "AAAAAAAAAAAAAAAAAAAAAA")),
    SpoolError,
  );
  assertEquals(error.code, "not-found");
  assert(
    error.message.includes('no resource with id "AAAAAAAAAAAAAAAAAAAAAA"'),
  );
  const raw = await RawSocket.open(
    resourceUrl(server, "..%2F..%2Fetc%2Fpasswd"),
  );
  assertEquals((await raw.json()).code, "not-found");
  assertEquals((await raw.closed).code, 4404);
});

Deno.test("bad upload requests get errors; the socket then uploads normally", async () => {
  await using server = await startTestServer();
  const url = new URL("upload", server.url);
  url.protocol = "ws:";
  const socket = await RawSocket.open(url);
  const bad: [string | Uint8Array, string, string][] = [
    [
      new Uint8Array([1]),
      "unexpected-binary",
      "binary frame of 1 bytes received while awaiting-request",
    ],
    [
      '{"type":"end-of-input"}',
      "unexpected-message",
      "end-of-input received while awaiting-request",
    ],
    [
      '{"type":"request-upload","name":""}',
      "invalid-field",
      "field 'name' is \"\"; expected a non-empty string",
    ],
    [
      '{"type":"request-upload","name":"a","mimeType":"nope"}',
      "invalid-field",
      "field 'mimeType' is \"nope\"",
    ],
    [
      '{"type":"request-upload","name":"a","metadata":{"k":1}}',
      "invalid-field",
      "field 'metadata.k' is 1; expected a string",
    ],
    [
      '{"type":"upload-please"}',
      "unknown-type",
      'unknown message type "upload-please"',
    ],
    ["nope", "malformed-message", "message is not valid JSON"],
  ];
  for (const [message, code, text] of bad) {
    socket.send(message);
    const error = await socket.expect("error");
    assertEquals(error.code, code);
    assert(String(error.message).startsWith(text), String(error.message));
  }
  socket.send({
    type: "request-upload",
    name: "../../etc/passwd",
    mimeType: "text/plain",
  });
  const ready = await socket.expect("ready-for-upload");
  socket.send({ type: "request-upload", name: "again" });
  assertEquals((await socket.expect("error")).code, "unexpected-message");
  const data = new TextEncoder().encode("hello\n");
  socket.send(data);
  socket.send({ type: "end-of-input", sha256: "z".repeat(64) });
  assertEquals((await socket.expect("error")).code, "invalid-field");
  socket.send({ type: "end-of-input", sha256: await sha256(data) });
  const final = await socket.expect("final-status");
  const resource = final.resource as Record<string, unknown>;
  assertEquals(resource.status, "COMPLETED");
  assertEquals(resource.name, "../../etc/passwd");
  assertEquals(resource.id, ready.id);
  await socket.close();
  // The name is a label only: the store holds nothing outside its directory.
  for await (const entry of Deno.readDir(server.dataDir)) {
    if (entry.name === "spool.lock") continue; // held while the server runs
    assert(
      entry.isDirectory && entry.name.length === 2,
      `unexpected entry ${entry.name}`,
    );
  }
});

Deno.test("a checksum mismatch at end-of-input fails the resource with a reason", async () => {
  await using server = await startTestServer();
  const url = new URL("upload", server.url);
  url.protocol = "ws:";
  const socket = await RawSocket.open(url);
  socket.send({ type: "request-upload", name: "bad-sum" });
  await socket.expect("ready-for-upload");
  socket.send(new Uint8Array([1, 2, 3]));
  socket.send({ type: "end-of-input", sha256: "0".repeat(64) });
  const final = (await socket.expect("final-status")).resource as Record<
    string,
    string
  >;
  assertEquals(final.status, "FAILED");
  assert(
    final.error.startsWith(
      `checksum mismatch: uploader sent sha256 ${"0".repeat(64)}`,
    ),
  );
  await socket.close();
});

Deno.test("an uploader ignoring the window on a stalled disk is stopped with flow-control", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-slow-" });
  const store = new SlowFileStore(dataDir);
  const disk = Promise.withResolvers<void>();
  store.pace = () => disk.promise; // the disk stalls until released
  await using server = await startTestServer({
    store,
    dataDir,
    uploadWindow: 64 * 1024,
  });
  const url = new URL("upload", server.url);
  url.protocol = "ws:";
  const socket = await RawSocket.open(url);
  socket.send({ type: "request-upload", name: "greedy" });
  const ready = await socket.expect("ready-for-upload");
  assertEquals(ready.window, 64 * 1024);
  const chunk = randomBytes(64 * 1024);
  for (let i = 0; i < 4; i++) socket.send(chunk);
  const error = await socket.expect("error");
  assertEquals(error.code, "flow-control");
  // Each frame also costs 64 bytes of window: the second full frame is over.
  assertEquals(
    error.message,
    `${
      2 * 64 * 1024 + 2 * 64
    } bytes of window (payload plus 64 per frame) sent beyond the last acknowledgement; expected at most the window of ${
      64 * 1024
    }`,
  );
  disk.resolve();
  await socket.close();
  const status = await server.registry.get(String(ready.id))!.fail("unused");
  assertEquals(status.status, "FAILED");
  assert(status.error!.startsWith("flow control violated"), status.error);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("a fast uploader on a slow disk keeps the server within the window", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-slow-" });
  const store = new SlowFileStore(dataDir);
  const window = 256 * 1024;
  await using server = await startTestServer({
    store,
    dataDir,
    uploadWindow: window,
  });
  const up = await startUpload(server.url, { name: "paced" });
  const resource = server.registry.get(up.id)!;
  let peak = 0;
  store.pace = async () => {
    // Bytes the server holds but has not written: never more than the window.
    peak = Math.max(peak, resource.pendingWrites);
    await new Promise((resolve) => setTimeout(resolve, 1)); // a slow disk
  };
  const data = randomBytes(4 * 1024 * 1024, 13);
  for (let offset = 0; offset < data.byteLength; offset += 16 * 1024) {
    await up.write(data.subarray(offset, offset + 16 * 1024));
  }
  const final = await up.finish();
  await up.closed();
  assertEquals(final.sha256, await sha256(data));
  assert(
    peak > 0 && peak <= window,
    `server held ${peak} unwritten bytes; window ${window}`,
  );
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("a window smaller than a frame: the client splits its writes to fit", async () => {
  const window = 64 * 1024;
  await using server = await startTestServer({ uploadWindow: window });
  // Bounds a client that would wait forever for room a 1 MiB frame never
  // gets: the upload is then aborted and the write rejects.
  const up = await startUpload(server.url, {
    name: "small-window",
    signal: AbortSignal.timeout(20_000),
  });
  const data = randomBytes(1024 * 1024 + 5, 17);
  await up.write(data);
  const final = await up.finish();
  await up.closed();
  assertEquals([final.size, final.sha256], [
    data.byteLength,
    await sha256(data),
  ]);
});

Deno.test("a failed resource does not affect another upload in progress", async () => {
  await using server = await startTestServer();
  const healthy = await startUpload(server.url, { name: "healthy" });
  const doomed = await startUpload(server.url, { name: "doomed" });
  const data = randomBytes(2 * 1024 * 1024, 11);
  await healthy.write(data.subarray(0, 1024));
  await doomed.write(data.subarray(0, 1024));
  doomed.abort();
  await doomed.closed();
  await healthy.write(data.subarray(1024));
  const final = await healthy.finish();
  await healthy.closed();
  assertEquals(final.sha256, await sha256(data));
});

Deno.test("a follow request streams as checkpoints advance and ends with read-end", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const up = await startUpload(server.url, { name: "follow.bin" });
  const socket = await RawSocket.open(resourceUrl(server, up.id));
  await socket.expect("status");
  socket.send({ type: "follow", requestId: 9, start: 2 });
  const data = randomBytes(10_000, 12);
  let received = new Uint8Array();
  const receive = async (until: number) => {
    while (received.byteLength < until) {
      const message = await socket.next();
      if (!("binary" in message)) continue;
      assertEquals(new DataView(message.binary.buffer).getUint32(0), 9);
      const next = new Uint8Array(
        received.byteLength + message.binary.byteLength - 4,
      );
      next.set(received);
      next.set(message.binary.subarray(4), received.byteLength);
      received = next;
    }
  };
  await up.write(data.subarray(0, 5000));
  await receive(4998);
  await up.write(data.subarray(5000));
  await receive(9998);
  await up.finish();
  await up.closed();
  assertEquals(await socket.expect("read-end"), {
    type: "read-end",
    requestId: 9,
    bytes: 9998,
  });
  assertEquals(received, data.subarray(2));
  // Following a finished resource from past its end is refused.
  socket.send({ type: "follow", requestId: 10, start: 10_001 });
  const error = await socket.expect("error");
  assertEquals(error.code, "range-not-satisfiable");
  assertEquals(
    error.message,
    "follow from 10001 starts past the final size 10000; expected start <= 10000",
  );
  await socket.close();
});

Deno.test("a follow request on a resource that fails gets resource-failed", async () => {
  await using server = await startTestServer();
  const up = await startUpload(server.url, { name: "fails" });
  const socket = await RawSocket.open(resourceUrl(server, up.id));
  await socket.expect("status");
  socket.send({ type: "follow", requestId: 1, start: 0 });
  up.abort();
  await up.closed();
  const error = await socket.expect("error");
  assertEquals(error.code, "resource-failed");
  assertEquals(error.requestId, 1);
  assertEquals(
    error.message,
    `resource ${up.id} FAILED: ${DISCONNECTED_REASON}`,
  );
  await socket.close();
});

Deno.test("Upload.closed() and Download.closed() resolve alike: undefined when the session ended as intended, else the SpoolError that ended it", async () => {
  await using server = await startTestServer({
    limits: { maxResourceBytes: 1000 },
  });
  // Ended as intended: COMPLETED, and a download the caller closed.
  const done = await startUpload(server.url, { name: "done" });
  const watcher = await openDownload(done.reference);
  await done.send(new Uint8Array([1, 2, 3]));
  assertEquals(await done.closed(), undefined);
  await watcher.close();
  assertEquals(await watcher.closed(), undefined);
  // Aborted by the caller: the abort is the reason.
  const aborted = await startUpload(server.url, { name: "aborted" });
  aborted.abort("changed my mind");
  const abortReason = await aborted.closed();
  assertInstanceOf(abortReason, SpoolError);
  assertEquals(abortReason?.code, "connection-closed");
  assertEquals(abortReason?.message, "upload aborted: changed my mind");
  // Refused by a limit: the server's error is the reason.
  const big = await startUpload(server.url, { name: "big" });
  await assertRejects(() => big.send(randomBytes(1200)), SpoolError);
  const limitReason = await big.closed();
  assertEquals(limitReason?.code, "limit-exceeded");
  // A download that ends because the server went: its error is the reason.
  const lone = await startUpload(server.url, { name: "lone" });
  const orphan = await openDownload(lone.reference);
  lone.abort();
  await lone.closed();
  await server.close();
  const lostReason = await orphan.closed();
  assertInstanceOf(lostReason, SpoolError);
  assertEquals(lostReason?.code, "connection-closed");
});
