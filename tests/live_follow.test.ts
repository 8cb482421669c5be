import { assert, assertEquals } from "@std/assert";
import { openDownload, type ResourceStatus, startUpload } from "../mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";

const STATE_ORDER = ["INITIATED", "IN_PROGRESS", "COMPLETED", "FAILED"];

for (const checkpointMs of [0, 25]) {
  Deno.test(`followers joining before, during and after an upload get identical bytes (checkpoint ${checkpointMs} ms)`, async () => {
    await using server = await startTestServer({ checkpointMs });
    const data = randomBytes(6 * 1024 * 1024 + 123, checkpointMs + 7);
    const expected = await sha256(data);
    const upload = await startUpload(server.url, { name: "data.bin" });

    const before = await openDownload(upload.reference);
    const beforeBytes = readAll(before.follow());
    const statuses: ResourceStatus[] = [];
    const statusesDone = (async () => {
      for await (const status of before.statuses()) statuses.push(status);
    })();

    const third = data.byteLength / 3 | 0;
    await upload.write(data.subarray(0, third));
    // Join once some bytes are checkpointed, while the upload is running.
    await before.waitForStatus((s) => s.size > 0);
    const during = await openDownload(upload.reference);
    assert(
      during.status.size > 0,
      "a late joiner first gets the latest status",
    );
    const duringBytes = readAll(during.follow());
    await upload.write(data.subarray(third));
    const final = await upload.finish();
    await upload.closed();

    const after = await openDownload(upload.reference);
    assertEquals(after.status.status, "COMPLETED");
    const afterBytes = await readAll(after.follow());

    assertEquals(final.status, "COMPLETED");
    assertEquals(final.size, data.byteLength);
    assertEquals(final.sha256, expected);
    for (const bytes of [await beforeBytes, await duringBytes, afterBytes]) {
      assertEquals(bytes.byteLength, data.byteLength);
      assertEquals(await sha256(bytes), expected);
    }

    await statusesDone;
    assertEquals(statuses.at(-1)?.status, "COMPLETED");
    assertEquals(statuses.at(-1)?.size, data.byteLength);
    for (let i = 1; i < statuses.length; i++) {
      assert(statuses[i].size >= statuses[i - 1].size, "sizes never shrink");
      assert(
        STATE_ORDER.indexOf(statuses[i].status) >=
          STATE_ORDER.indexOf(statuses[i - 1].status),
        `state ${statuses[i - 1].status} -> ${
          statuses[i].status
        } goes backwards`,
      );
    }
    assert(
      statuses.some((s) => s.status === "IN_PROGRESS"),
      "IN_PROGRESS was published",
    );
    await Promise.all([before.close(), during.close(), after.close()]);
  });
}

Deno.test("a follower stops at COMPLETED of an empty upload", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, { name: "empty" });
  await using download = await openDownload(upload.reference);
  assertEquals(download.status.status, "INITIATED");
  const followed = readAll(download.follow());
  const final = await upload.finish();
  await upload.closed();
  assertEquals(final.size, 0);
  assertEquals(final.sha256, await sha256(new Uint8Array()));
  assertEquals((await followed).byteLength, 0);
});

Deno.test("bytes past the checkpoint are never served", async () => {
  // A checkpoint interval far longer than the test: only finish() publishes.
  await using server = await startTestServer({ checkpointMs: 600_000 });
  const upload = await startUpload(server.url, { name: "slow-checkpoint" });
  await upload.write(randomBytes(1000));
  await using download = await openDownload(upload.reference);
  assertEquals(download.status.size, 0);
  const refused = await readAll(download.read(0, 1)).catch((e) => e);
  assertEquals(refused.code, "range-not-satisfiable");
  const final = await upload.finish();
  await upload.closed();
  assertEquals(final.size, 1000);
  await download.waitForStatus((s) => s.status === "COMPLETED");
  assertEquals((await readAll(download.read(0, 1000))).byteLength, 1000);
});

Deno.test("metadata and MIME type travel with every status", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "report.txt",
    mimeType: "text/plain; charset=utf-8",
    metadata: { job: "42", step: "build" },
  });
  await using download = await openDownload(upload.reference);
  assertEquals(download.status.name, "report.txt");
  assertEquals(download.status.mimeType, "text/plain; charset=utf-8");
  assertEquals(download.status.metadata, { job: "42", step: "build" });
  await upload.send(new TextEncoder().encode("ok\n"));
  await upload.closed();
});

Deno.test("concurrent write() calls keep their order under a small window", async () => {
  await using server = await startTestServer({ uploadWindow: 4096 });
  const upload = await startUpload(server.url, { name: "order" });
  const pieces = Array.from(
    { length: 200 },
    (_, i) => randomBytes(1000 + i, i + 1),
  );
  await Promise.all(pieces.map((piece) => upload.write(piece)));
  const final = await upload.finish();
  await upload.closed();
  const joined = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const piece of pieces) {
    joined.set(piece, offset);
    offset += piece.byteLength;
  }
  assertEquals(final.sha256, await sha256(joined));
});

Deno.test("a stalled follower whose bytes left the in-memory tail gets them from the store", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const upload = await startUpload(server.url, { name: "tail.bin" });
  const data = randomBytes(4 * 1024 * 1024 + 17, 99);
  const first = 256 * 1024;
  await upload.write(data.subarray(0, first));
  // A small window: the server stops mid-range until the reader reads on.
  await using follower = await openDownload(upload.reference, {
    window: 64 * 1024,
  });
  const reader = follower.follow().getReader();
  const head = await reader.read();
  assert(!head.done && head.value.byteLength > 0);
  // Meanwhile far more than the tail (512 KiB) is written behind it.
  for (let at = first; at < data.byteLength; at += 64 * 1024) {
    await upload.write(
      data.subarray(at, Math.min(at + 64 * 1024, data.byteLength)),
    );
  }
  await follower.waitForStatus((s) => s.size === data.byteLength);
  const finished = upload.finish();
  const parts: Uint8Array[] = [head.value!];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  await finished;
  await upload.closed();
  const got = await readAll(ReadableStream.from(parts));
  assertEquals(got.byteLength, data.byteLength);
  assertEquals(await sha256(got), await sha256(data));
});

Deno.test("references follow --public-url, keeping its path prefix", async () => {
  await using server = await startTestServer({
    publicUrl: "https://spool.example.com/team/spool",
  });
  const upload = await startUpload(server.url, { name: "ref" });
  assertEquals(
    upload.reference,
    `wss://spool.example.com/team/spool/resources/${upload.id}`,
  );
  await upload.finish();
  await upload.closed();
});
