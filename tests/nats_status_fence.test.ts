/**
 * Fenced statuses on a real nats-server: a publish refused because a status
 * of this node's own is in its way (an attempt stored twice or late
 * through a stream leader change) goes after it; one refused because of
 * another node's status is fenced out.
 */

import { assertEquals, assertRejects } from "@std/assert";
import { NatsEngine } from "../server/nats/engine.ts";
import { StatusPublisher } from "../server/nats/_status_publisher.ts";
import { FencedError } from "../server/nats/_publish.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { startNats } from "./_nats.ts";
import { testStatus } from "./_helpers.ts";

/** A status of resource `id` counting `size` bytes. */
function statusOf(id: string, size: number): ResourceStatus {
  return testStatus("fence.log", { id, status: "IN_PROGRESS", size });
}

Deno.test("nats fence: a status refused because this node's own earlier status is in its way is stored after it", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  try {
    const id = "AAAAAAAAAAAAAAAAAAAAAQ";
    const statuses = new StatusPublisher(engine.js, engine.jsm, "node-a");
    const first = await statuses.publish(statusOf(id, 10));
    // As after a leader change: this node expects another status last.
    const second = await statuses.publish(statusOf(id, 20), { after: 999 });
    assertEquals(second > first, true, `${second} after ${first}`);
    const last = await statuses.last(id, { fromLeader: true });
    assertEquals([last?.seq, last?.status?.size], [second, 20]);
  } finally {
    await engine.close();
  }
});

Deno.test("nats fence: a status refused because another node's status is in its way is fenced out", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  try {
    const id = "AAAAAAAAAAAAAAAAAAAAAg";
    const a = new StatusPublisher(engine.js, engine.jsm, "node-a");
    const b = new StatusPublisher(engine.js, engine.jsm, "node-b");
    const first = await a.publish(statusOf(id, 10));
    // Node B takes over after A's status, as a takeover's fence does.
    const taken = await b.publish(statusOf(id, 10), { after: first });
    await assertRejects(() => a.publish(statusOf(id, 30)), FencedError);
    const last = await a.last(id, { fromLeader: true });
    assertEquals([last?.seq, last?.status?.size], [taken, 10]);
  } finally {
    await engine.close();
  }
});
