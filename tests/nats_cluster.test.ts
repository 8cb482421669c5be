/**
 * Several Spool nodes on one NATS JetStream: an upload on node A is
 * followed, range-read and listed on node B, and stays readable after
 * every node restarts. A real nats-server on loopback, real Spool servers.
 */

import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  startTestServer,
} from "./_helpers.ts";
import { startNats } from "./_nats.ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

Deno.test("an upload on node A is followed byte-identical on node B, range-read there, and survives both nodes restarting", async () => {
  await using nats = await startNats();
  const data = randomBytes(3 * 1024 * 1024 + 12_345, 1401);
  let reference: string;
  {
    await using a = await startTestServer({ nats: nats.url });
    await using b = await startTestServer({ nats: nats.url });
    const uploading = await startUpload(a.url, { name: "shared.bin" });
    reference = uploading.reference;
    const onB = await openDownload(onNode(reference, b.url));
    const followed = readAll(onB.follow());
    // Odd sizes: pieces cross segment boundaries at every alignment.
    for (
      let at = 0, step = 1;
      at < data.byteLength;
      step = step * 7 % 200_003
    ) {
      const end = Math.min(data.byteLength, at + 1000 + step);
      await uploading.write(data.slice(at, end));
      at = end;
    }
    const final = await uploading.finish();
    assertEquals(final.status, "COMPLETED");
    assertEquals(await sha256(await followed), await sha256(data));
    const onBFinal = await onB.waitForStatus((s) => s.status === "COMPLETED");
    assertEquals(onBFinal.sha256, await sha256(data));
    assertEquals(onBFinal.size, data.byteLength);
    await onB.close();

    // Ranges on B: HTTP and the download socket, across segment boundaries.
    const url = new URL(`resources/${final.id}`, b.url);
    const response = await fetch(url, {
      headers: { range: "bytes=262000-800000" },
    });
    assertEquals(response.status, 206);
    assertEquals(
      await sha256(new Uint8Array(await response.arrayBuffer())),
      await sha256(data.subarray(262000, 800001)),
    );
    const again = await openDownload(onNode(reference, b.url));
    const middle = await readAll(again.read(1, data.byteLength - 1));
    assertEquals(await sha256(middle), await sha256(data.subarray(1, -1)));
    await again.close();
    const listed = await fetch(new URL("view/", b.url), {
      headers: { accept: "application/json" },
    });
    const text = await listed.text();
    assert(
      text.includes(final.id),
      `B's listing names ${final.id}: ${text.slice(0, 200)}`,
    );
  }
  // Every Spool node restarted: the resource is read from the engine alone.
  await using b2 = await startTestServer({ nats: nats.url });
  const restarted = await openDownload(onNode(reference, b2.url));
  assertEquals(restarted.status.status, "COMPLETED");
  const all = await readAll(restarted.read(0, restarted.status.size));
  assertEquals(await sha256(all), await sha256(data));
  await restarted.close();
});

Deno.test("retention deletes a finished resource on every node: followers on the other node end with gone, the engine keeps no byte", async () => {
  await using nats = await startNats();
  await using a = await startTestServer({ nats: nats.url, retentionMs: 300 });
  await using b = await startTestServer({ nats: nats.url, retentionMs: 300 });
  const uploading = await startUpload(a.url, { name: "short-lived.txt" });
  await uploading.write(new TextEncoder().encode("soon gone\n"));
  const final = await uploading.finish();
  const onB = await openDownload(onNode(uploading.reference, b.url));
  const closed = await onB.closed();
  assertEquals(closed?.code, "gone");
  for (const node of [a, b]) {
    const response = await fetch(
      new URL(`resources/${final.id}/status`, node.url),
    );
    await response.body?.cancel();
    assertEquals(response.status, 410, `node ${node.url.host} answers gone`);
  }
  const nc = await connect({ servers: nats.url });
  try {
    const info = await (await jetstreamManager(nc)).streams.info("SPOOL", {
      subjects_filter: `spool.d.${final.id}.*`,
    });
    assertEquals(info.state.subjects ?? {}, {}, "no data subject is left");
    assertEquals(info.state.messages, 1, "only the deletion marker is left");
  } finally {
    await nc.close();
  }
});
