/**
 * Resume on any node: an uploader whose connection to node A drops resumes
 * on node B (the nodes share an engine and a token secret). B takes the
 * upload over from the durable offset, with the SHA-256 rebuilt from the
 * stream; A lets go without failing it, and followers on both nodes see it
 * complete byte-identical.
 */

import { assert, assertEquals, assertFalse } from "@std/assert";
import { encodeHex } from "@std/encoding/hex";
import { type Download, openDownload, startUpload } from "../mod.ts";
import { DISCONNECTED_REASON, type SpoolServer } from "../server/mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  spawnServer,
  startTestServer,
  uploadSocketUrl,
} from "./_helpers.ts";
import { startNats } from "./_nats.ts";
import { CuttableProxy } from "./_proxy.ts";
import { expectWrongTokenRefused, RawSocket } from "./_raw_socket.ts";

/** Two nodes on one engine with one token secret. */
function nodeOptions(nats: string, settings: Record<string, number>) {
  return {
    nats,
    tokenSecret: SECRET,
    checkpointMs: 20,
    ...settings,
  };
}

const SECRET = crypto.getRandomValues(new Uint8Array(32));

/** SHA-256 of the whole resource as node `node` serves it. */
async function wholeOn(node: URL, reference: string): Promise<string> {
  await using download = await openDownload(onNode(reference, node));
  const final = await download.waitForStatus((s) => s.status === "COMPLETED");
  return await sha256(await readAll(download.read(0, final.size)));
}

/**
 * Uploads `data` through a proxy to A, cuts A away after `cutAt` bytes and
 * goes on through B; keeps uploading (a chunk per checkpoint seen on B)
 * until `keepOnMs` after the cut. Resolves with what happened, times
 * counted from the cut.
 */
async function uploadAcrossCut(
  a: SpoolServer,
  b: SpoolServer,
  data: Uint8Array,
  options: { cutAt: number; keepOnMs: number },
): Promise<
  { resumedMs: number; handedOverMs: number; reference: string; id: string }
> {
  const proxy = new CuttableProxy(a.url);
  const up = await startUpload(proxy.url, {
    name: "moving.bin",
    resumeServers: [b.url],
  });
  // When A let go of the upload (dropped its session and grace timer).
  const handedOverAt = a.registry.get(up.id)!.handedOver.then(() =>
    performance.now()
  );
  const followers: Download[] = [
    await openDownload(onNode(up.reference, a.url)),
    await openDownload(onNode(up.reference, b.url)),
  ];
  // Settled at once: a failure is asserted below, not left unhandled.
  const followed = followers.map((f) =>
    readAll(f.follow()).then((bytes) => bytes, (error: Error) => error)
  );
  const piece = 64 * 1024;
  let offset = 0;
  for (; offset < options.cutAt; offset += piece) {
    await up.write(
      data.subarray(offset, Math.min(offset + piece, options.cutAt)),
    );
  }
  // Part of it is checkpointed on A; the rest may be in flight.
  await followers[0].waitForStatus((s) => s.size >= options.cutAt / 2);
  const cut = performance.now();
  await proxy.close();
  offset = options.cutAt;
  await up.write(data.subarray(offset, offset + piece));
  offset += piece;
  // Bytes sent after the cut are checkpointed only once B took over.
  await followers[1].waitForStatus((s) => s.size >= offset);
  const resumedMs = performance.now() - cut;
  // Past A's grace period while B takes the bytes, a small piece per
  // checkpoint (at least 20 ms each), then the rest at once.
  for (let rounds = 0; offset < data.byteLength && rounds < 400; rounds++) {
    const pacing = performance.now() - cut < options.keepOnMs;
    const end = pacing
      ? Math.min(offset + 16 * 1024, data.byteLength)
      : data.byteLength;
    await up.write(data.subarray(offset, end));
    offset = end;
    if (pacing) await followers[1].waitForStatus((s) => s.size >= offset);
  }
  assertEquals(offset, data.byteLength, "every byte was written");
  assert(
    performance.now() - cut >= options.keepOnMs,
    "the upload ran on past A's grace period",
  );
  const final = await up.finish();
  await up.closed();
  assertEquals(final.status, "COMPLETED");
  assertEquals(final.size, data.byteLength);
  // The client sent its SHA-256 with end-of-input: B's rebuilt hash matched.
  assertEquals(final.sha256, await sha256(data));
  assertEquals(up.reconnects, 1);
  const digest = await sha256(data);
  for (const bytes of await Promise.all(followed)) {
    if (bytes instanceof Error) throw bytes;
    assertEquals(bytes.byteLength, data.byteLength, "no byte lost or doubled");
    assertEquals(await sha256(bytes), digest);
  }
  for (const follower of followers) {
    const seen = await follower.waitForStatus((s) =>
      s.status !== "IN_PROGRESS"
    );
    assertEquals(seen.status, "COMPLETED");
    await follower.close();
  }
  const handedOverMs = (await handedOverAt) - cut;
  return { resumedMs, handedOverMs, reference: up.reference, id: up.id };
}

async function checkBothNodes(
  a: SpoolServer,
  b: SpoolServer,
  run: { reference: string; id: string },
  data: Uint8Array,
): Promise<void> {
  const digest = await sha256(data);
  assertEquals(await wholeOn(a.url, run.reference), digest, "read from A");
  assertEquals(await wholeOn(b.url, run.reference), digest, "read from B");
  assertEquals(a.registry.get(run.id)?.status.status, "COMPLETED");
  assertEquals(b.registry.get(run.id)?.status.status, "COMPLETED");
  assertEquals([...a.registry.live()].length, 0, "A holds no live upload");
}

Deno.test("resume on node B after a cut to node A: B continues from the durable offset with the SHA-256 rebuilt; A learns it at its lease renewal and never fails it", async () => {
  await using nats = await startNats();
  // A renews every 200 ms: it learns of the takeover long before its grace.
  const settings = { leaseMs: 600, resumeGraceMs: 1500 };
  await using a = await startTestServer(nodeOptions(nats.url, settings));
  await using b = await startTestServer(nodeOptions(nats.url, settings));
  const data = randomBytes(3 * 1024 * 1024 + 77, 1601);
  const run = await uploadAcrossCut(a, b, data, {
    cutAt: 1024 * 1024 + 4321,
    keepOnMs: 1900,
  });
  await checkBothNodes(a, b, run, data);
  assert(
    run.handedOverMs < settings.resumeGraceMs,
    `A let go ${
      run.handedOverMs.toFixed(0)
    } ms after the cut, before its grace ran out`,
  );
  console.log(
    `cut on A -> resumed on B: ${run.resumedMs.toFixed(0)} ms; A let go after ${
      run.handedOverMs.toFixed(0)
    } ms`,
  );
});

Deno.test("resume on node B after a cut to node A: A's grace timer firing before its lease renewal is fenced out, and A follows B", async () => {
  await using nats = await startNats();
  // A renews every 4 s: its grace timer (500 ms) fires first, and its
  // FAILED must be refused by the status B published when it took over.
  const settings = { leaseMs: 12_000, resumeGraceMs: 500 };
  await using a = await startTestServer(nodeOptions(nats.url, settings));
  await using b = await startTestServer(nodeOptions(nats.url, settings));
  const data = randomBytes(2 * 1024 * 1024 + 5, 1602);
  const run = await uploadAcrossCut(a, b, data, {
    cutAt: 700_000,
    keepOnMs: 900,
  });
  await checkBothNodes(a, b, run, data);
  assert(
    run.handedOverMs >= settings.resumeGraceMs,
    `A let go ${
      run.handedOverMs.toFixed(0)
    } ms after the cut: when its grace timer fired`,
  );
  console.log(
    `cut on A -> resumed on B: ${run.resumedMs.toFixed(0)} ms; A let go after ${
      run.handedOverMs.toFixed(0)
    } ms`,
  );
});

Deno.test("resume on node B: the exact durable offset, a wrong write token refused, the end-of-input SHA-256 checked over bytes from both nodes", async () => {
  await using nats = await startNats();
  const settings = { leaseMs: 1000, resumeGraceMs: 10_000 };
  await using a = await startTestServer(nodeOptions(nats.url, settings));
  await using b = await startTestServer(nodeOptions(nats.url, settings));
  const first = await RawSocket.open(uploadSocketUrl(a.url));
  first.send({ type: "request-upload", name: "raw.bin" });
  const ready = await first.expect("ready-for-upload");
  first.send(new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
  assertEquals((await first.expect("ack")).offset, 7);
  await first.close(); // not an abort: the upload waits for a resume

  await expectWrongTokenRefused(uploadSocketUrl(b.url), ready.id);
  assertFalse(b.registry.get(String(ready.id))?.live, "B took nothing over");

  const second = await RawSocket.open(uploadSocketUrl(b.url));
  second.send({ type: "resume-upload", id: ready.id, token: ready.token });
  const resumed = await second.expect("ready-for-upload");
  assertEquals(resumed.offset, 7, "the durable offset");
  assertEquals(resumed.token, ready.token, "the same write token on B");
  second.send(new Uint8Array([8, 9]));
  const all = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  second.send({ type: "end-of-input", sha256: await sha256(all) });
  const final = (await second.expect("final-status")).resource as Record<
    string,
    unknown
  >;
  assertEquals(final.status, "COMPLETED");
  assertEquals(final.size, 9);
  assertEquals(final.sha256, await sha256(all));
  await second.close();
  assertEquals(
    await wholeOn(a.url, String(ready.reference)),
    await sha256(all),
  );
});

Deno.test("resume on node B after the grace period gets not-found: the upload failed on every node", async () => {
  await using nats = await startNats();
  const settings = { leaseMs: 1000, resumeGraceMs: 100 };
  await using a = await startTestServer(nodeOptions(nats.url, settings));
  await using b = await startTestServer(nodeOptions(nats.url, settings));
  const socket = await RawSocket.open(uploadSocketUrl(a.url));
  socket.send({ type: "request-upload", name: "late.bin" });
  const ready = await socket.expect("ready-for-upload");
  await using onA = await openDownload(String(ready.reference));
  socket.send(randomBytes(10));
  await socket.expect("ack");
  await socket.close();
  const failed = await onA.waitForStatus((s) => s.status === "FAILED");
  assertEquals(failed.error, DISCONNECTED_REASON);
  const late = await RawSocket.open(uploadSocketUrl(b.url));
  late.send({ type: "resume-upload", id: ready.id, token: ready.token });
  const error = await late.expect("error");
  assertEquals(error.code, "not-found");
  assertEquals(
    error.message,
    `no upload in progress with id "${ready.id}"; expected the id of an upload that is neither finished nor past its grace period`,
  );
  await late.close();
});

Deno.test("resume on node B without a shared token secret is refused as unavailable, naming --secret-file", async () => {
  await using nats = await startNats();
  await using a = await startTestServer({ nats: nats.url });
  await using b = await startTestServer({ nats: nats.url });
  const socket = await RawSocket.open(uploadSocketUrl(a.url));
  socket.send({ type: "request-upload", name: "own-secret.bin" });
  const ready = await socket.expect("ready-for-upload");
  // At once: B looks up an upload its feed has not brought yet.
  const other = await RawSocket.open(uploadSocketUrl(b.url));
  other.send({ type: "resume-upload", id: ready.id, token: ready.token });
  const error = await other.expect("error");
  assertEquals(error.code, "unavailable");
  assert(
    String(error.message).includes("--secret-file"),
    String(error.message),
  );
  await other.close();
  socket.send({ type: "end-of-input" });
  assertEquals(
    ((await socket.expect("final-status")).resource as { status: string })
      .status,
    "COMPLETED",
  );
  await socket.close();
});

Deno.test("node A killed mid-upload (SIGKILL): the uploader resumes on node B within the grace and the upload completes byte-identical", async () => {
  await using nats = await startNats();
  const dataDir = await Deno.makeTempDir({ prefix: "spool-nats-resume-" });
  const secretFile = `${dataDir}/shared.key`;
  await Deno.writeTextFile(secretFile, encodeHex(SECRET) + "\n", {
    mode: 0o600,
  });
  const a = await spawnServer(`${dataDir}/a`, {
    args: [
      "--nats",
      nats.url,
      "--secret-file",
      secretFile,
      "--lease-ms",
      "1000",
      "--resume-grace-ms",
      "5000",
    ],
  });
  try {
    await using b = await startTestServer({
      nats: nats.url,
      secretFile,
      leaseMs: 1000,
      resumeGraceMs: 5000,
    });
    const data = randomBytes(2 * 1024 * 1024 + 9, 1603);
    const up = await startUpload(a.url, {
      name: "survivor.bin",
      resumeServers: [b.url],
    });
    await using onB = await openDownload(onNode(up.reference, b.url));
    const followed = readAll(onB.follow());
    const half = 1024 * 1024;
    await up.write(data.subarray(0, half));
    await onB.waitForStatus((s) => s.size > 0);

    a.process.kill("SIGKILL");
    await a.process.status;
    const killed = performance.now();
    await up.write(data.subarray(half, half + 1));
    // That byte is checkpointed only once B took over.
    await onB.waitForStatus((s) => s.size > half);
    const resumedMs = performance.now() - killed;
    await up.write(data.subarray(half + 1));
    const final = await up.finish();
    await up.closed();
    assertEquals(final.status, "COMPLETED");
    assertEquals(final.sha256, await sha256(data));
    assertEquals(up.reconnects, 1);
    const bytes = await followed;
    assertEquals(bytes.byteLength, data.byteLength);
    assertEquals(await sha256(bytes), await sha256(data));
    assertEquals(await wholeOn(b.url, up.reference), await sha256(data));
    assert(
      resumedMs < 5000,
      `resumed ${resumedMs.toFixed(0)} ms after the kill`,
    );
    console.log(`A killed -> resumed on B: ${resumedMs.toFixed(0)} ms`);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("resume back and forth: A to B and back to A; followers opened on each node before any move see every byte and COMPLETED", async () => {
  await using nats = await startNats();
  const settings = { leaseMs: 1000, resumeGraceMs: 10_000 };
  await using a = await startTestServer(nodeOptions(nats.url, settings));
  await using b = await startTestServer(nodeOptions(nats.url, settings));
  const first = await RawSocket.open(uploadSocketUrl(a.url));
  first.send({ type: "request-upload", name: "ping-pong.bin" });
  const ready = await first.expect("ready-for-upload");
  const reference = String(ready.reference);
  const followers = [
    await openDownload(reference),
    await openDownload(onNode(reference, b.url)),
  ];
  const followed = followers.map((f) =>
    readAll(f.follow()).then((bytes) => bytes, (error: Error) => error)
  );
  const all = randomBytes(3000, 1604);
  first.send(all.subarray(0, 1000));
  assertEquals((await first.expect("ack")).offset, 1000);
  await first.close();
  let offset = 1000;
  for (const node of [b, a]) {
    const socket = await RawSocket.open(uploadSocketUrl(node.url));
    socket.send({ type: "resume-upload", id: ready.id, token: ready.token });
    assertEquals((await socket.expect("ready-for-upload")).offset, offset);
    socket.send(all.subarray(offset, offset + 1000));
    offset += 1000;
    if (node === a) {
      socket.send({ type: "end-of-input", sha256: await sha256(all) });
      const final = (await socket.expect("final-status")).resource as Record<
        string,
        unknown
      >;
      assertEquals(final.status, "COMPLETED");
      assertEquals(final.sha256, await sha256(all));
    } else {
      assertEquals((await socket.expect("ack")).offset, offset);
    }
    await socket.close();
  }
  for (const bytes of await Promise.all(followed)) {
    if (bytes instanceof Error) throw bytes;
    assertEquals(await sha256(bytes), await sha256(all));
  }
  for (const follower of followers) {
    assertEquals(
      (await follower.waitForStatus((s) => s.status !== "IN_PROGRESS"))
        .status,
      "COMPLETED",
    );
    await follower.close();
  }
  assertEquals(await wholeOn(b.url, reference), await sha256(all));
});
