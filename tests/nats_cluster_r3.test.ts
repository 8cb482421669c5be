/**
 * Spool nodes on a 3-server NATS cluster with the stream and the lease
 * bucket made with 3 replicas (as docs/cluster.md's deployment asks):
 * the stream leader is SIGKILLed mid-upload, the upload completes, and
 * node B's follower gets every byte exactly once. Real nats-servers and
 * real Spool servers on loopback.
 */

import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import { onNode, randomBytes, sha256, startTestServer } from "./_helpers.ts";
import { startNatsCluster } from "./_nats.ts";
import { within } from "./_fault_actors.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { LEASE_BUCKET, STREAM } from "../server/nats/subjects.ts";
import { connect } from "@nats-io/transport-node";
import { delay } from "@std/async/delay";
import { jetstreamManager } from "@nats-io/jetstream";

/** Bounds every wait of the test: a leader change took 5–6 s here. */
const HANG_MS = 60_000;
/** The leader is killed once A wrote half and B followed this much. */
const KILL_AFTER_BYTES = 1024 * 1024;

/**
 * Connects, making the stream with 3 replicas, as soon as the cluster can
 * place them: its metadata leader learns that the other servers run
 * JetStream a moment after it is elected, and until then refuses with "no
 * suitable peers for placement" (seen here). Polls that refusal, bounded.
 */
async function connectR3(urls: string[]): Promise<NatsEngine> {
  const deadline = performance.now() + HANG_MS;
  for (;;) {
    try {
      return await NatsEngine.connect({ servers: urls, replicas: 3 });
    } catch (error) {
      const said = `${(error as Error).message} ${
        ((error as Error).cause as Error | undefined)?.message ?? ""
      }`;
      if (!/no suitable peers/.test(said) || performance.now() > deadline) {
        throw error;
      }
      // The cluster is still learning its peers: ask again shortly.
      await delay(250);
    }
  }
}

/** Makes the stream and the bucket with 3 replicas, as an operator would (engine.ts's configuration). */
async function makeR3(urls: string[]): Promise<void> {
  const engine = await connectR3(urls);
  try {
    const info = await engine.jsm.streams.info(STREAM);
    assertEquals(info.config.num_replicas, 3, "the stream has 3 replicas");
    const bucket = await engine.jsm.streams.info(`KV_${LEASE_BUCKET}`);
    assertEquals(bucket.config.num_replicas, 3, "the bucket has 3 replicas");
  } finally {
    await engine.close();
  }
}

Deno.test("R3 stream: SIGKILLing the stream leader mid-upload loses and duplicates nothing; the upload completes on A and is followed whole on B", async () => {
  await using cluster = await startNatsCluster(3);
  await within(HANG_MS, "making the R3 stream", makeR3(cluster.urls));
  const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1 });
  try {
    const jsm = await jetstreamManager(nc);
    const data = randomBytes(4 * 1024 * 1024 + 4321, 3301);
    // The default lease (12 s) outlasts the bucket's leader change.
    await using a = await startTestServer({ nats: cluster.urls });
    await using b = await startTestServer({ nats: cluster.urls });
    const uploading = await startUpload(a.url, { name: "r3.bin" });
    const onB = await openDownload(onNode(uploading.reference, b.url));
    const start = performance.now();
    const arrivals: { at: number; bytes: Uint8Array }[] = [];
    // Resolves once B has a MiB: the kill comes while bytes are flowing.
    const flowing = Promise.withResolvers<void>();
    const followed = (async () => {
      let received = 0;
      for await (const bytes of onB.follow()) {
        arrivals.push({ at: performance.now(), bytes });
        received += bytes.byteLength;
        if (received >= KILL_AFTER_BYTES) flowing.resolve();
      }
    })();
    followed.then(flowing.resolve, flowing.reject);

    let killedAt = 0;
    let leader = "";
    for (let at = 0, step = 1; at < data.byteLength; step = step * 7 % 90_001) {
      const end = Math.min(data.byteLength, at + 1000 + step);
      await within(
        HANG_MS,
        `writing at ${at}`,
        uploading.write(data.slice(at, end)),
      );
      at = end;
      if (killedAt === 0 && at >= data.byteLength / 2) {
        await within(HANG_MS, "B receiving a MiB", flowing.promise);
        const info = await jsm.streams.info(STREAM);
        leader = info.cluster?.leader ?? "";
        assert(
          leader !== "",
          `the stream has a leader: ${JSON.stringify(info.cluster)}`,
        );
        await cluster.byName(leader).stop({ kill: true });
        killedAt = performance.now();
      }
    }
    const final = await within(HANG_MS, "A finishing", uploading.finish());
    const finishedAt = performance.now();
    assertEquals(final.status, "COMPLETED");
    assertEquals(final.size, data.byteLength);
    await within(HANG_MS, "B's follower", followed).catch(async (error) => {
      const onBNow = await (await fetch(
        new URL(`resources/${final.id}/status`, b.url),
      )).text();
      const got = arrivals.reduce((n, x) => n + x.bytes.byteLength, 0);
      throw new Error(
        `${error.message}; B followed ${got} of ${data.byteLength} bytes; B's status: ${onBNow}`,
      );
    });
    const onBFinal = await within(
      HANG_MS,
      "B's COMPLETED",
      onB.waitForStatus((s) => s.status === "COMPLETED"),
    );
    await onB.close();

    const whole = new Uint8Array(data.byteLength);
    let received = 0;
    for (const { bytes } of arrivals) {
      assert(received + bytes.byteLength <= data.byteLength, "no byte twice");
      whole.set(bytes, received);
      received += bytes.byteLength;
    }
    assertEquals(received, data.byteLength, "every byte once");
    const expected = await sha256(data);
    assertEquals(await sha256(whole), expected);
    assertEquals(onBFinal.sha256, expected);
    assertEquals(onBFinal.size, data.byteLength);
    const onA =
      await (await fetch(new URL(`resources/${final.id}/status`, a.url)))
        .json();
    assertEquals([onA.status, onA.sha256], ["COMPLETED", expected]);

    const after = (await jsm.streams.info(STREAM)).cluster?.leader;
    assert(
      after && after !== leader,
      `a new leader (${after}) replaced ${leader}`,
    );
    let gap = 0;
    for (let i = 0, previous = killedAt; i < arrivals.length; i++) {
      if (arrivals[i].at < killedAt) continue;
      gap = Math.max(gap, arrivals[i].at - previous);
      previous = arrivals[i].at;
    }
    console.log(
      `killed leader ${leader} at ${
        (killedAt - start).toFixed(0)
      } ms; new leader ${after}; longest pause on B after the kill ${
        gap.toFixed(0)
      } ms; A finished ${(finishedAt - killedAt).toFixed(0)} ms after the kill`,
    );
  } finally {
    await nc.close();
  }
});
