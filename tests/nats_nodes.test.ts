/**
 * Nodes on one engine: checkpoints reach the followers of other nodes
 * through one status consumer per node; a node killed mid-upload leaves its
 * upload FAILED on the others once its lease and the grace ran out.
 */

import { assert, assertEquals, assertInstanceOf } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { openDownload, ResourceFailedError, startUpload } from "../mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  spawnServer,
  startTestServer,
} from "./_helpers.ts";
import { startNats } from "./_nats.ts";
import { FaultProxy } from "./_proxy.ts";
import { within } from "./_fault_actors.ts";

/** Bounds each wait of the look-up test. */
const HANG_MS = 20_000;

/** A response's status and body text. */
async function bodyOf(
  response: Response,
): Promise<{ status: number; text: string }> {
  return { status: response.status, text: await response.text() };
}

/** How late node B hears the engine in the look-up test, in ms. */
const SLOW_ENGINE_MS = 150;

/** Consumers on Spool's stream: the engine subscriptions of every node. */
async function streamConsumers(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.consumers.list("SPOOL").next()).length;
  } finally {
    await nc.close();
  }
}

Deno.test("followers on node B see each checkpoint of an upload on node A, through one engine consumer per node", async () => {
  await using nats = await startNats();
  await using a = await startTestServer({ nats: nats.url });
  await using b = await startTestServer({ nats: nats.url });
  const uploading = await startUpload(a.url, { name: "steps.log" });
  const followers = await Promise.all(
    Array.from(
      { length: 5 },
      () => openDownload(onNode(uploading.reference, b.url)),
    ),
  );
  const followed = followers.map((f) => readAll(f.follow()));
  const data = randomBytes(600_000, 1402);
  const lags: number[] = [];
  for (const end of [100_000, 350_000, 600_000]) {
    await uploading.write(data.slice(end === 100_000 ? 0 : end - 250_000, end));
    const wrote = performance.now();
    for (const follower of followers) {
      const seen = await follower.waitForStatus((s) => s.size >= end);
      assertEquals(seen.status, "IN_PROGRESS", "the upload is still live");
    }
    lags.push(performance.now() - wrote);
  }
  // Two nodes, six watchers: two consumers (each node's status feed).
  assertEquals(await streamConsumers(nats.url), 2);
  await uploading.finish();
  for (const bytes of await Promise.all(followed)) {
    assertEquals(await sha256(bytes), await sha256(data));
  }
  for (const follower of followers) await follower.close();
  console.log(
    `checkpoint on B after the write on A: ${
      lags.map((l) => l.toFixed(1)).join(", ")
    } ms`,
  );
});

Deno.test("a node killed mid-upload leaves the upload FAILED on the other node after lease + grace, and its followers end with that reason", async () => {
  await using nats = await startNats();
  const dataDir = await Deno.makeTempDir({ prefix: "spool-nats-node-" });
  const settings = ["--lease-ms", "1000", "--resume-grace-ms", "500"];
  const a = await spawnServer(dataDir, {
    args: ["--nats", nats.url, ...settings],
  });
  try {
    await using b = await startTestServer({
      nats: nats.url,
      leaseMs: 1000,
      resumeGraceMs: 500,
    });
    const uploading = await startUpload(a.url, { name: "cut.bin" });
    const data = randomBytes(400_000, 1403);
    await uploading.write(data);
    const onB = await openDownload(onNode(uploading.reference, b.url));
    await onB.waitForStatus((s) => s.size === data.byteLength);
    const followed = readAll(onB.follow()).then(() => undefined, (e) => e);

    a.process.kill("SIGKILL");
    await a.process.status;
    const killed = performance.now();
    await uploading.closed();
    const error = await followed;
    const failedAfter = performance.now() - killed;
    assertInstanceOf(error, ResourceFailedError);
    assert(
      error.reason.includes("stopped renewing its lease"),
      `the reason names the lost node: ${error.reason}`,
    );
    const final = await onB.waitForStatus((s) => s.status === "FAILED");
    assertEquals(final.size, data.byteLength, "every checkpointed byte stays");
    assertEquals(
      await sha256(await readAll(onB.read(0, final.size))),
      await sha256(data),
    );
    await onB.close();
    // Bound: lease 1000 + grace 500 + two sweeps of 1000.
    assert(
      failedAfter < 3600,
      `FAILED ${failedAfter.toFixed(0)} ms after the kill`,
    );
    console.log(`node loss -> FAILED on B: ${failedAfter.toFixed(0)} ms`);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a reference handed to node B the moment the upload started on node A is found there, over HTTP, WebSocket and the viewer", async () => {
  await using nats = await startNats();
  // B hears the engine late (as a replica behind, or a busy node would):
  // its status feed brings each new upload after B was asked for it.
  await using slowLink = new FaultProxy(
    new URL(`http://127.0.0.1:${nats.port}/`),
  );
  slowLink.slow(SLOW_ENGINE_MS);
  await using a = await startTestServer({ nats: nats.url });
  await using b = await startTestServer({
    nats: `nats://127.0.0.1:${slowLink.url.port}`,
  });
  for (let round = 0; round < 3; round++) {
    const uploading = await startUpload(a.url, { name: `at-once-${round}` });
    const id = uploading.id;
    const [status, view, socket] = await within(
      HANG_MS,
      `round ${round}: asking B`,
      Promise.allSettled([
        fetch(new URL(`resources/${id}/status`, b.url)).then(bodyOf),
        fetch(new URL(`view/${id}`, b.url)).then(bodyOf),
        openDownload(onNode(uploading.reference, b.url)),
      ]),
    );
    if (socket.status === "fulfilled") await socket.value.close();
    await within(HANG_MS, "finishing", uploading.finish());
    assertEquals(
      [status, view].map((x) => x.status === "fulfilled" && x.value.status),
      [200, 200],
      `round ${round}: ${JSON.stringify([status, view])}`,
    );
    if (status.status === "fulfilled") {
      assertEquals(JSON.parse(status.value.text).id, id);
    }
    assertEquals(
      socket.status === "fulfilled" ? socket.value.status.id : socket.reason,
      id,
      `round ${round}: the download socket`,
    );
  }
  // An id no node has is still "not found", after asking the engine.
  const missing = await fetch(
    new URL("resources/AAAAAAAAAAAAAAAAAAAAAA/status", b.url),
  );
  assertEquals(missing.status, 404);
  assertEquals((await missing.json()).code, "not-found");
});

Deno.test("a node stopped while its status feed is still opening (a slow engine link) stops", async () => {
  await using nats = await startNats();
  await using slowLink = new FaultProxy(
    new URL(`http://127.0.0.1:${nats.port}/`),
  );
  slowLink.slow(SLOW_ENGINE_MS);
  const node = await startTestServer({
    nats: `nats://127.0.0.1:${slowLink.url.port}`,
  });
  // An empty stream: the node is up before its feed's consumer exists.
  await within(HANG_MS, "closing the node", node.close());
});
