/**
 * The status feed on a busy engine: bursts of checkpoints after quiet
 * spells must not make a node take its feed for stuck (a pull asked for in
 * the quiet expires in the middle of the next burst) and reopen it.
 */

import { assertEquals } from "@std/assert";
import { delay } from "@std/async/delay";
import { openDownload, startUpload } from "../mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  spawnServer,
} from "./_helpers.ts";
import { startNats } from "./_nats.ts";
import { within } from "./_fault_actors.ts";

/** Bursts, each after a quiet spell. */
const BURSTS = 5;
/** A quiet spell: a little less than the feed's pull expiry (5 s). */
const QUIET_MS = 4000;
/** Each burst: this many writes of 4 KiB, one every 5 ms, at checkpoint 0. */
const WRITES = 300;
/** Bounds each wait. */
const HANG_MS = 30_000;

Deno.test("nats feed: bursts of checkpoints after quiet spells do not make a node reopen its status feed", async () => {
  await using nats = await startNats();
  const dataDir = await Deno.makeTempDir({ prefix: "spool-feed-" });
  const args = ["--nats", nats.url, "--checkpoint-ms", "0"];
  const nodes = [
    await spawnServer(`${dataDir}/a`, { args, stderr: "lines" }),
    await spawnServer(`${dataDir}/b`, { args, stderr: "lines" }),
  ];
  const said = nodes.map((node) => node.stderr!.rest());
  try {
    for (let burst = 0; burst < BURSTS; burst++) {
      // The quiet spell is the scenario, not a synchronisation.
      if (burst > 0) await delay(QUIET_MS);
      const data = randomBytes(WRITES * 4096, 1500 + burst);
      const uploading = await startUpload(nodes[0].url, { name: "b.log" });
      const onB = await openDownload(onNode(uploading.reference, nodes[1].url));
      const followed = readAll(onB.follow());
      for (let at = 0; at < data.byteLength; at += 4096) {
        await uploading.write(data.slice(at, at + 4096));
        await delay(5); // the producer's pace: a log line every 5 ms
      }
      await within(HANG_MS, "finishing", uploading.finish());
      const bytes = await within(HANG_MS, "B's follower", followed);
      assertEquals(await sha256(bytes), await sha256(data), `burst ${burst}`);
      await onB.close();
    }
  } finally {
    for (const node of nodes) node.process.kill("SIGTERM");
    for (const node of nodes) await node.process.status;
    await Deno.remove(dataDir, { recursive: true });
  }
  const reopened = (await Promise.all(said)).flat().filter((line) =>
    line.includes("the status feed stopped delivering")
  );
  assertEquals(reopened, [], "no node took its feed for stuck");
});
