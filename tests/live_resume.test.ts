import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import { DISCONNECTED_REASON } from "../server/mod.ts";
import { CLOSE_REPLACED } from "../server/mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  SlowFileStore,
  startTestServer,
  uploadSocketUrl,
} from "./_helpers.ts";
import { CuttableProxy } from "./_proxy.ts";
import { expectWrongTokenRefused, RawSocket } from "./_raw_socket.ts";

Deno.test("resume: uploads survive cut connections; followers get every byte exactly once", async () => {
  await using server = await startTestServer({
    resumeGraceMs: 10_000,
    uploadWindow: 256 * 1024,
  });
  await using proxy = new CuttableProxy(server.url);
  const data = randomBytes(3 * 1024 * 1024 + 321, 41);
  const up = await startUpload(proxy.url, { name: "flaky.bin" });
  await using follower = await openDownload(onNode(up.reference, server.url));
  const followed = readAll(follower.follow());
  const piece = 64 * 1024;
  // One buffer, reused for every write: a resend after a cut must carry the
  // bytes as they were written, not what the buffer holds by then.
  const scratch = new Uint8Array(piece);
  let cuts = 0;
  for (let offset = 0; offset < data.byteLength; offset += piece) {
    const part = data.subarray(offset, offset + piece);
    scratch.set(part);
    await up.write(scratch.subarray(0, part.byteLength));
    scratch.fill(0xee);
    // Cut the uploader's connection every 512 KiB, mid-stream.
    if (offset % (512 * 1024) === 256 * 1024) {
      await proxy.cut();
      cuts++;
    }
  }
  const final = await up.finish();
  await up.closed();
  assertEquals(final.status, "COMPLETED");
  assertEquals(final.size, data.byteLength);
  assertEquals(final.sha256, await sha256(data));
  assert(
    up.reconnects >= 1 && up.reconnects <= cuts,
    `${up.reconnects} reconnects for ${cuts} cuts`,
  );
  assertEquals(proxy.accepted, up.reconnects + 1);
  const bytes = await followed;
  assertEquals(
    bytes.byteLength,
    data.byteLength,
    "no duplicate and no missing byte",
  );
  assertEquals(await sha256(bytes), await sha256(data));
});

Deno.test("resume: a lost end-of-input or final status is recovered", async () => {
  await using server = await startTestServer({ resumeGraceMs: 10_000 });
  await using proxy = new CuttableProxy(server.url);
  const data = randomBytes(100_000, 42);
  const up = await startUpload(proxy.url, { name: "end.bin" });
  await up.write(data);
  const final = up.finish();
  await proxy.cut(); // around end-of-input and the final status
  const status = await final;
  await up.closed();
  assertEquals(status.status, "COMPLETED");
  assertEquals(status.sha256, await sha256(data));
});

Deno.test("resume: past the grace period the resource fails", async () => {
  await using server = await startTestServer({ resumeGraceMs: 100 });
  const socket = await RawSocket.open(uploadSocketUrl(server.url));
  socket.send({ type: "request-upload", name: "gone" });
  const ready = await socket.expect("ready-for-upload");
  assertEquals(ready.resumeGraceMs, 100);
  assertEquals(ready.offset, 0);
  await using watcher = await openDownload(String(ready.reference));
  socket.send(randomBytes(10));
  await socket.close(); // not an abort: the upload waits for a resume first
  const failed = await watcher.waitForStatus((s) => s.status === "FAILED");
  assertEquals(failed.error, DISCONNECTED_REASON);
  const late = await RawSocket.open(uploadSocketUrl(server.url));
  late.send({ type: "resume-upload", id: ready.id, token: ready.token });
  const error = await late.expect("error");
  assertEquals(error.code, "not-found");
  await late.close();
});

Deno.test("resume: wrong tokens are refused; the rightful uploader takes over a stale socket", async () => {
  await using server = await startTestServer({ resumeGraceMs: 10_000 });
  const first = await RawSocket.open(uploadSocketUrl(server.url));
  first.send({ type: "request-upload", name: "contested" });
  const ready = await first.expect("ready-for-upload");
  first.send(new Uint8Array([1, 2, 3]));
  await first.expect("ack");

  await expectWrongTokenRefused(uploadSocketUrl(server.url), ready.id);

  const second = await RawSocket.open(uploadSocketUrl(server.url));
  second.send({ type: "resume-upload", id: ready.id, token: ready.token });
  const resumed = await second.expect("ready-for-upload");
  assertEquals(resumed.offset, 3);
  assertEquals((await first.closed).code, CLOSE_REPLACED);
  second.send(new Uint8Array([4, 5]));
  second.send({ type: "end-of-input" });
  const final = (await second.expect("final-status")).resource as Record<
    string,
    unknown
  >;
  assertEquals(final.status, "COMPLETED");
  assertEquals(final.size, 5);
  assertEquals(final.sha256, await sha256(new Uint8Array([1, 2, 3, 4, 5])));
  await second.close();
});

Deno.test("resume: an explicit abort fails at once despite the grace period", async () => {
  await using server = await startTestServer({ resumeGraceMs: 60_000 });
  const up = await startUpload(server.url, { name: "aborted" });
  await using watcher = await openDownload(up.reference);
  await up.write(randomBytes(1000));
  up.abort("changed my mind");
  await up.closed();
  // A guard, not a synchronisation: FAILED must come long before the grace ends.
  let guard: ReturnType<typeof setTimeout> | undefined;
  const failed = await Promise.race([
    watcher.waitForStatus((s) => s.status === "FAILED"),
    new Promise<undefined>((resolve) =>
      guard = setTimeout(() => resolve(undefined), 5_000)
    ),
  ]);
  clearTimeout(guard);
  assertEquals(failed?.error, DISCONNECTED_REASON);
});

/** The grace of the racing-resumes test; its disk is slower than that. */
const RACE_GRACE_MS = 400;

Deno.test("resume: of two resumes racing while the disk catches up, the one that lost cannot arm the grace timer of the one that won", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-race-" });
  const store = new SlowFileStore(dataDir);
  const disk = Promise.withResolvers<void>();
  store.pace = () => disk.promise; // each write waits until the test lets it
  await using server = await startTestServer({
    store,
    dataDir,
    resumeGraceMs: RACE_GRACE_MS,
  });
  const first = await RawSocket.open(uploadSocketUrl(server.url));
  first.send({ type: "request-upload", name: "raced" });
  const ready = await first.expect("ready-for-upload");
  const data = randomBytes(30_000, 77);
  first.send(data.slice(0, 10_000));
  await first.close(); // its bytes wait for the disk
  // Two resumes: each waits for the bytes before it names the offset.
  const resumes = [
    await RawSocket.open(uploadSocketUrl(server.url)),
    await RawSocket.open(uploadSocketUrl(server.url)),
  ];
  for (const socket of resumes) {
    socket.send({ type: "resume-upload", id: ready.id, token: ready.token });
  }
  // The first resume the server takes is released by the second.
  const lost = await Promise.race(
    resumes.map((socket, i) => socket.closed.then((event) => ({ i, event }))),
  );
  assertEquals(lost.event.code, CLOSE_REPLACED);
  const winner = resumes[1 - lost.i];
  disk.resolve();
  const resumed = await winner.expect("ready-for-upload");
  assertEquals(resumed.offset, 10_000);
  // Slower than the grace from here on: a stray grace timer would fail it.
  store.pace = () =>
    new Promise((resolve) => setTimeout(resolve, 2 * RACE_GRACE_MS));
  winner.send(data.slice(10_000, 20_000));
  await winner.expect("ack");
  winner.send(data.slice(20_000));
  winner.send({ type: "end-of-input", sha256: await sha256(data) });
  const final = await winner.expect("final-status");
  const resource = final.resource as { status: string; error?: string };
  assertEquals([resource.status, resource.error], ["COMPLETED", undefined]);
  await winner.close();
  await resumes[lost.i].close();
  await Deno.remove(dataDir, { recursive: true });
});
