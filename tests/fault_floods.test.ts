/**
 * Floods a hostile uploader can send: hundreds of thousands of tiny binary
 * frames, control messages of many megabytes, and a burst of simultaneous
 * upload requests against `--max-uploads`. The server stays bounded in
 * memory, answers, and shuts down promptly.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { MAX_CONTROL_MESSAGE_CHARS } from "../protocol/mod.ts";
import { sha256, spawnServer, startTestServer } from "./_helpers.ts";
import { RawSocket } from "./_raw_socket.ts";
import { kill, within } from "./_fault_actors.ts";
import { peakRssOf } from "../testing/process_memory.ts";

function uploadUrl(server: URL): URL {
  const url = new URL("upload", server);
  url.protocol = "ws:";
  return url;
}

/** Peak resident memory of process `pid`, in MiB (Linux `VmHWM`). */
async function peakRssMiB(pid: number): Promise<number> {
  return await peakRssOf(pid) / 2 ** 20;
}

/** Opens an upload socket on `server` and waits for its ready-for-upload. */
async function openUpload(
  server: URL,
  name: string,
): Promise<{ socket: RawSocket; ready: Record<string, unknown> }> {
  const socket = await RawSocket.open(uploadUrl(server));
  socket.send({ type: "request-upload", name });
  return { socket, ready: await socket.expect("ready-for-upload") };
}

Deno.test("floods: 250,000 empty and 200,000 one-byte frames complete, byte-exact, in bounded server memory", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-flood-" });
  const server = await spawnServer(dataDir);
  try {
    const empty = await openUpload(server.url, "empty-frames");
    const nothing = new Uint8Array(0);
    for (let i = 0; i < 250_000; i++) empty.socket.send(nothing);
    empty.socket.send({ type: "end-of-input" });
    const emptyFinal = await within(
      30_000,
      "the final status after 250,000 empty frames",
      empty.socket.expect("final-status"),
    );
    const emptyStatus = emptyFinal.resource as Record<string, unknown>;
    assertEquals([emptyStatus.status, emptyStatus.size], ["COMPLETED", 0]);
    await empty.socket.close();

    const tiny = await openUpload(server.url, "one-byte-frames");
    const bytes = new Uint8Array(200_000);
    for (let i = 0; i < bytes.length; i++) {
      bytes[i] = (i * 31) & 0xff;
      tiny.socket.send(bytes.subarray(i, i + 1));
    }
    tiny.socket.send({ type: "end-of-input", sha256: await sha256(bytes) });
    const tinyFinal = await within(
      30_000,
      "the final status after 200,000 one-byte frames",
      tiny.socket.expect("final-status"),
    );
    const tinyStatus = tinyFinal.resource as Record<string, unknown>;
    assertEquals(
      [tinyStatus.status, tinyStatus.size, tinyStatus.sha256],
      ["COMPLETED", bytes.length, await sha256(bytes)],
    );
    await tiny.socket.close();
    const peak = await peakRssMiB(server.process.pid);
    // Before: 210-380 MB for the empty frames alone.
    assert(peak < 160, `server peak RSS ${peak.toFixed(0)} MiB`);
  } finally {
    server.process.kill("SIGTERM");
    await server.process.status;
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("floods: SIGTERM during a flood of tiny frames ends the server within its shutdown grace", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-flood-" });
  const server = await spawnServer(dataDir);
  try {
    const { socket } = await openUpload(server.url, "flooded");
    const one = new Uint8Array([7]);
    for (let i = 0; i < 300_000; i++) socket.send(one);
    server.process.kill("SIGTERM");
    const status = await within(
      10_000,
      "the server after SIGTERM under a flood",
      server.process.status,
    );
    assertEquals(status.code, 0);
    await socket.closed;
  } finally {
    await kill(server.process);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("floods: control messages over the limit are refused with limit-exceeded; the server goes on", async () => {
  await using server = await startTestServer();
  for (const length of [MAX_CONTROL_MESSAGE_CHARS + 1, 60 * 1024 * 1024]) {
    const socket = await RawSocket.open(uploadUrl(server.url));
    const text = `{"type":"request-upload","name":"${"x".repeat(length)}"}`;
    socket.send(text);
    const error = await socket.expect("error");
    assertEquals(error.code, "limit-exceeded");
    assertEquals(
      error.message,
      `a text message of ${text.length} characters exceeds the limit of ${MAX_CONTROL_MESSAGE_CHARS} for control messages; expected one small JSON object per text frame`,
    );
    await socket.closed;
  }
  const { socket, ready } = await openUpload(server.url, "after.log");
  socket.send(new TextEncoder().encode("fine\n"));
  socket.send({ type: "end-of-input" });
  const final = await socket.expect("final-status");
  assertEquals((final.resource as Record<string, unknown>).status, "COMPLETED");
  assertEquals((final.resource as Record<string, unknown>).id, ready.id);
  await socket.close();
});

Deno.test("floods: 50 simultaneous upload requests against --max-uploads 5 get exactly 5 uploads", async () => {
  await using server = await startTestServer({ limits: { maxUploads: 5 } });
  const sockets = await Promise.all(
    Array.from({ length: 50 }, () => RawSocket.open(uploadUrl(server.url))),
  );
  for (const [i, socket] of sockets.entries()) {
    socket.send({ type: "request-upload", name: `race-${i}` });
  }
  const answers = await Promise.all(sockets.map((socket) => socket.json()));
  const ready = answers.filter((a) => a.type === "ready-for-upload");
  const refused = answers.filter((a) =>
    a.type === "error" && a.code === "limit-exceeded"
  );
  assertEquals([ready.length, refused.length], [5, 45]);
  assertMatch(
    String(refused[0].message),
    /^a new upload \(5 in progress\) exceeds the server's limit of 5 \(limit maxUploads\)$/,
  );
  for (const socket of sockets) await socket.close();
});
