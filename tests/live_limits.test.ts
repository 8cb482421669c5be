import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  openDownload,
  ResourceFailedError,
  SpoolError,
  startUpload,
  upload,
} from "../mod.ts";
import { CLOSE_LIMIT, CLOSE_TIMEOUT } from "../server/mod.ts";
import { randomBytes, startTestServer } from "./_helpers.ts";
import { RawSocket } from "./_raw_socket.ts";

Deno.test("limit: an upload past --max-resource-bytes fails with limit-exceeded", async () => {
  await using server = await startTestServer({
    limits: { maxResourceBytes: 1000 },
  });
  const up = await startUpload(server.url, { name: "big" });
  await using follower = await openDownload(up.reference);
  const followed = new Response(follower.follow()).bytes().catch((e) => e);
  const error = await assertRejects(async () => {
    await up.write(randomBytes(600));
    await up.write(randomBytes(600));
    await up.finish();
  }, SpoolError);
  const expected =
    "an upload of 1200 bytes or more exceeds the server's limit of 1000 (limit maxResourceBytes)";
  assertEquals(error.code, "limit-exceeded");
  assertEquals(error.message, expected);
  const failure = await followed;
  assert(failure instanceof ResourceFailedError, `follower got ${failure}`);
  assertEquals(failure.reason, expected);
  up.abort();
  await up.closed();
});

Deno.test("limit: --max-uploads refuses a new upload until one finishes", async () => {
  await using server = await startTestServer({ limits: { maxUploads: 2 } });
  const first = await startUpload(server.url, { name: "1" });
  const second = await startUpload(server.url, { name: "2" });
  const error = await assertRejects(
    () => startUpload(server.url, { name: "3" }),
    SpoolError,
  );
  assertEquals(error.code, "limit-exceeded");
  assertEquals(
    error.message,
    "a new upload (2 in progress) exceeds the server's limit of 2 (limit maxUploads)",
  );
  await first.finish();
  await first.closed();
  const status = await upload(server.url, new Uint8Array([1]), {
    name: "3 again",
  });
  assertEquals(status.status, "COMPLETED");
  await second.finish();
  await second.closed();
});

Deno.test("limit: --max-watchers-per-resource and --max-watchers refuse download sockets", async () => {
  await using server = await startTestServer({
    limits: { maxWatchersPerResource: 2, maxWatchers: 3 },
  });
  const a = await startUpload(server.url, { name: "a" });
  const b = await startUpload(server.url, { name: "b" });
  const onA = [
    await openDownload(a.reference),
    await openDownload(a.reference),
  ];
  const perResource = await assertRejects(
    () => openDownload(a.reference),
    SpoolError,
  );
  assertEquals(perResource.code, "limit-exceeded");
  assertEquals(
    perResource.message,
    `a download socket on resource ${a.id} (2 open) exceeds the server's limit of 2 (limit maxWatchersPerResource)`,
  );
  const onB = await openDownload(b.reference);
  const total = await assertRejects(
    () => openDownload(b.reference),
    SpoolError,
  );
  assertEquals(
    total.message,
    "a download socket (3 open on the server) exceeds the server's limit of 3 (limit maxWatchers)",
  );
  // The refusal is a clean close with its own code.
  const url = new URL(`resources/${b.id}`, server.url);
  url.protocol = "ws:";
  const raw = await RawSocket.open(url);
  assertEquals((await raw.json()).code, "limit-exceeded");
  assertEquals((await raw.closed).code, CLOSE_LIMIT);
  await Promise.all([...onA, onB].map((download) => download.close()));
  for (const up of [a, b]) {
    await up.finish();
    await up.closed();
  }
});

Deno.test("limit: HTTP follows and event streams count as watchers, like download sockets", async () => {
  await using server = await startTestServer({
    limits: { maxWatchersPerResource: 2 },
  });
  const up = await startUpload(server.url, { name: "watched.log" });
  const http = new URL(`resources/${up.id}`, server.url);
  const socket = await openDownload(up.reference);
  const follow = await fetch(new URL("?follow=1", http));
  assertEquals(follow.status, 200);
  for (const path of ["?follow=1", "/events", "/lines?follow=1"]) {
    const refused = await fetch(new URL(`${http.pathname}${path}`, http));
    assertEquals(refused.status, 429, path);
    const body = await refused.json();
    assertEquals(body.code, "limit-exceeded");
    assertEquals(
      body.message,
      `${
        path === "/events" ? "an event stream" : "an HTTP follow"
      } on resource ${up.id} (2 open) exceeds the server's limit of 2 (limit maxWatchersPerResource)`,
    );
  }
  await assertRejects(() => openDownload(up.reference), SpoolError);
  // A follow that ended gives its slot back: once its body closed, the
  // server had let it go.
  await up.write(new TextEncoder().encode("the end\n"));
  await up.finish();
  await up.closed();
  assertEquals(await follow.text(), "the end\n");
  const events = await fetch(new URL(`${http.pathname}/events`, http));
  assertEquals(events.status, 200);
  await events.body!.cancel();
  await socket.close();
});

Deno.test("limit: --max-requests-per-socket refuses one request too many, by request id", async () => {
  await using server = await startTestServer({
    limits: { maxRequestsPerSocket: 2 },
  });
  const up = await startUpload(server.url, { name: "live" });
  const url = new URL(`resources/${up.id}`, server.url);
  url.protocol = "ws:";
  const socket = await RawSocket.open(url);
  await socket.expect("status");
  socket.send({ type: "follow", requestId: 1, start: 0 });
  socket.send({ type: "follow", requestId: 2, start: 0 });
  socket.send({ type: "read", requestId: 3, start: 0, end: 0 });
  const error = await socket.expect("error");
  assertEquals(error.requestId, 3);
  assertEquals(error.code, "limit-exceeded");
  assertEquals(
    error.message,
    "request 3 (2 in flight on this socket) exceeds the server's limit of 2 (limit maxRequestsPerSocket)",
  );
  socket.send({ type: "cancel", requestId: 1 });
  await up.finish();
  await up.closed();
  await socket.close();
});

Deno.test("limit: an upload silent past --upload-idle-timeout-ms fails", async () => {
  await using server = await startTestServer({
    limits: { uploadIdleTimeoutMs: 150 },
  });
  const up = await startUpload(server.url, { name: "silent" });
  await using watcher = await openDownload(up.reference);
  await up.write(randomBytes(10));
  const failed = await watcher.waitForStatus((s) => s.status === "FAILED");
  assert(
    /^an upload socket silent for \d+ ms exceeds the server's limit of 150 \(limit uploadIdleTimeoutMs\)$/
      .test(failed.error!),
    failed.error,
  );
  const error = await assertRejects(() => up.finish(), SpoolError);
  assertEquals(error.code, "limit-exceeded");
  await up.closed();
  const url = new URL("upload", server.url);
  url.protocol = "ws:";
  // A socket that never even asks to upload is closed too.
  const idle = await RawSocket.open(url);
  assertEquals((await idle.json()).code, "limit-exceeded");
  assertEquals((await idle.closed).code, CLOSE_TIMEOUT);
});

Deno.test("limit: bad limit values are refused with the flag named", async () => {
  const error = await assertRejects(
    () => startTestServer({ limits: { maxUploads: 0 } }),
    SpoolError,
  );
  assertEquals(
    [error.code, error.message],
    ["invalid-argument", "limit maxUploads is 0; expected a positive integer"],
  );
});

Deno.test("limit: an upload window under 1 KiB is refused, named", async () => {
  const error = await assertRejects(
    () => startTestServer({ uploadWindow: 1000 }),
    SpoolError,
  );
  assertEquals(
    [error.code, error.message],
    ["invalid-argument", "uploadWindow is 1000; expected an integer >= 1024"],
  );
});
