/**
 * The uploader's outcome matches the server's truth, and every failure
 * names its real cause: a COMPLETED upload whose final status was lost is
 * COMPLETED, a limit or a shutdown is named as such, a reset link says it
 * was reset, a restarted server says the upload was interrupted.
 */

import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  openDownload,
  ResourceFailedError,
  SpoolError,
  startUpload,
} from "../mod.ts";
import { INTERRUPTED_REASON, SHUTDOWN_REASON } from "../server/mod.ts";
import {
  randomBytes,
  sha256,
  spawnServer,
  startTestServer,
} from "./_helpers.ts";
import { FaultProxy } from "./_proxy.ts";
import { within } from "./_fault_actors.ts";

Deno.test("reasons: a COMPLETED upload whose final status is lost, and whose first recovery fails, is COMPLETED", async () => {
  await using server = await startTestServer({ resumeGraceMs: 20_000 });
  await using proxy = new FaultProxy(server.url);
  const data = randomBytes(200_000, 21);
  const up = await startUpload(proxy.url, {
    name: "lost-final.bin",
    timeoutMs: 400,
    connectTimeoutMs: 400,
  });
  await up.write(data);
  // Link 0 carries end-of-input up but loses the final status coming down.
  // Link 1 (the resume) learns the upload is over; link 2 (asking its
  // reference) is black-holed too; links 3 and 4 repeat both, and work.
  proxy.blackHole("down");
  proxy.schedule((index) => index === 2 ? { blackHole: "both" } : {});
  const status = await within(20_000, "the upload's final status", up.finish());
  await up.closed();
  assertEquals(status.status, "COMPLETED");
  assertEquals(status.sha256, await sha256(data));
  // The server agrees.
  await using check = await openDownload(
    new URL(new URL(up.reference).pathname, server.url),
  );
  assertEquals(check.status.status, "COMPLETED");
  assertEquals(check.status.sha256, status.sha256);
});

Deno.test("reasons: writes after the server failed the upload name the server's reason", async () => {
  await using server = await startTestServer({
    limits: { maxResourceBytes: 100_000 },
  });
  const up = await startUpload(server.url, { name: "too-big.bin" });
  const chunk = randomBytes(64 * 1024);
  const error = await assertRejects(async () => {
    for (let i = 0; i < 1000; i++) await up.write(chunk); // 64 MB at most
  }) as Error;
  await up.closed();
  // The server's error or its FAILED status, never "write after finish()".
  assertMatch(
    error.message,
    /exceeds the server's limit of 100000 \(limit maxResourceBytes\)/,
  );
  const late = await assertRejects(() => up.write(chunk)) as Error;
  assertMatch(late.message, /limit maxResourceBytes/);
  await assertRejects(() => up.finish());
});

Deno.test("reasons: an upload cut off by SIGTERM says the server shut down", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-term-" });
  const server = await spawnServer(dataDir);
  try {
    const up = await startUpload(server.url, { name: "cut-off.log" });
    await up.write(new TextEncoder().encode("working\n"));
    const writing = (async () => {
      const line = new TextEncoder().encode("more\n");
      for (;;) await up.write(line);
    })();
    server.process.kill("SIGTERM");
    const error = await within(
      10_000,
      "the writer after SIGTERM",
      assertRejects(() => writing, ResourceFailedError),
    ) as ResourceFailedError;
    assertEquals(error.reason, SHUTDOWN_REASON);
    await up.closed();
  } finally {
    await server.process.status;
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("reasons: a follow whose link is reset says the connection was lost", async () => {
  await using server = await startTestServer();
  await using proxy = new FaultProxy(server.url);
  const up = await startUpload(server.url, { name: "reset.log" });
  await up.write(new TextEncoder().encode("one\n"));
  await using download = await openDownload(
    new URL(new URL(up.reference).pathname, proxy.url),
  );
  const reader = download.follow().getReader();
  await reader.read();
  await proxy.cut();
  const error = await assertRejects(
    () => reader.read(),
    SpoolError,
  ) as SpoolError;
  assertEquals(error.code, "connection-closed");
  assertEquals(
    error.message,
    "download socket closed (the connection was lost without a close handshake: reset, or the server went away)",
  );
  up.abort("test over");
  await up.closed();
});

Deno.test("reasons: an upload interrupted by a server restart says so, not 'no upload in progress'", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-restart-" });
  const first = await spawnServer(dataDir);
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const up = await startUpload(first.url, { name: "restarted.log" });
    await up.write(new TextEncoder().encode("before the crash\n"));
    first.process.kill("SIGKILL");
    await first.process.status;
    second = await spawnServer(dataDir, { args: ["--port", first.url.port] });
    const error = await within(
      20_000,
      "the uploader after the restart",
      assertRejects(() => up.finish(), ResourceFailedError),
    ) as ResourceFailedError;
    assertEquals(error.reason, INTERRUPTED_REASON);
    await up.closed();
  } finally {
    second?.process.kill("SIGTERM");
    await second?.process.status;
    await Deno.remove(dataDir, { recursive: true });
  }
});
