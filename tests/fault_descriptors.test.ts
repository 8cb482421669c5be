/**
 * Out of file descriptors: the live server under a small `ulimit -n` keeps
 * its watchers within what it can hold, survives accept failures (a flood
 * of connections that never send a request), keeps serving what is open,
 * and listens again once descriptors are back.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  type Download,
  openDownload,
  SpoolError,
  startUpload,
} from "../mod.ts";
import { spawnServer } from "./_helpers.ts";
import { within } from "./_fault_actors.ts";

const MAX_FILES = 128;
/** How a connection to a listener that ran out of descriptors can fail. */
const REFUSED = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BrokenPipe,
];

Deno.test("descriptors: out of them the server refuses watchers, survives accept failures, keeps its followers and listens again", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-fds-" });
  const server = await spawnServer(dataDir, {
    maxFiles: MAX_FILES,
    stderr: "lines",
  });
  let exited = false;
  server.process.status.then(() => exited = true);
  const downloads: Download[] = [];
  const flood: Deno.TcpConn[] = [];
  try {
    const note = await within(
      10_000,
      "the server's note on its limits",
      server.stderr!.until((line) => line.includes("open-file limit")),
    );
    assertEquals(
      note,
      `spool server: download sockets are limited to ${
        MAX_FILES - 64
      } by the open-file limit of ${MAX_FILES} (ulimit -n); raise it for more`,
    );
    const up = await startUpload(server.url, { name: "crowded.log" });
    await up.write(new TextEncoder().encode("start\n"));
    for (let i = 0; i < MAX_FILES - 64; i++) {
      downloads.push(await openDownload(up.reference));
    }
    const refused = await assertRejects(
      () => openDownload(up.reference),
      SpoolError,
    ) as SpoolError;
    assertEquals(refused.code, "limit-exceeded");

    // Connections that never send a request, more than it has descriptors.
    const port = Number(server.url.port);
    for (let i = 0; i < 100; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        flood.push(conn);
        if (i % 2 === 1) await conn.write(new TextEncoder().encode("GET /re"));
      } catch (error) {
        // Refused, reset or dropped while it does not listen: the fault being made.
        if (!REFUSED.some((kind) => error instanceof kind)) throw error;
      }
    }
    const failure = await within(
      15_000,
      "the server's accept failure",
      server.stderr!.until((line) => line.includes("accepting connections")),
    );
    assertMatch(
      failure,
      /failed \(.*Too many open files.*\); requests already running go on/,
    );

    // Followers already connected see the upload go on.
    await up.write(new TextEncoder().encode("more\n"));
    for (const download of [downloads[0], downloads.at(-1)!]) {
      await within(
        10_000,
        "a follower seeing the new bytes",
        download.waitForStatus((s) => s.size === 11),
      );
    }

    // The flood goes away; the server listens again and serves newcomers.
    for (const conn of flood.splice(0)) conn.close();
    await downloads.pop()!.close();
    await within(
      15_000,
      "the server listening again",
      server.stderr!.until((line) => line.includes("listening again on")),
    );
    const late = await openDownload(up.reference);
    downloads.push(late);
    assertEquals(late.status.size, 11);
    assertEquals((await up.finish()).status, "COMPLETED");
    await up.closed();
    assert(!exited, "the server exited");
  } finally {
    for (const conn of flood) conn.close();
    for (const download of downloads) await download.close();
    server.process.kill("SIGTERM");
    const status = await within(
      10_000,
      "the server after SIGTERM",
      server.process.status,
    );
    assertEquals(status.code, 0);
    await server.stderr!.rest();
    await Deno.remove(dataDir, { recursive: true });
  }
});
