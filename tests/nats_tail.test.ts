/**
 * The per-resource data subscription: while a resource another node holds
 * is live and watched here, this node runs one subscription on its pieces
 * and its followers read the checkpointed bytes from that in-memory tail,
 * not each from the engine. Counted on the engine itself (nats-server's
 * monitoring endpoint: subscriptions and bytes sent per connection), and
 * checked byte for byte with pieces stored out of order, twice, and some
 * only before the subscription began (read by direct get instead).
 */

import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { FollowCursor } from "../server/follow_cursor.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { RemoteResource } from "../server/nats/remote_resource.ts";
import { pieceSubscriber } from "../server/nats/_piece_subscription.ts";
import { RemoteTail, TailBudget } from "../server/nats/_remote_tail.ts";
import { SEGMENT_BYTES } from "../server/nats/subjects.ts";
import { newResourceId } from "../server/resource_id.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  startTestServer,
} from "./_helpers.ts";
import { publishPieces, startNats } from "./_nats.ts";

/** What nats-server's `/connz?subs=1` tells of one client connection. */
interface Connection {
  out_bytes: number;
  subscriptions_list?: string[];
}

async function connections(monitorUrl: string): Promise<Connection[]> {
  const response = await fetch(`${monitorUrl}/connz?subs=1&limit=1000`);
  assertEquals(response.status, 200, "nats-server's monitoring answers");
  return (await response.json()).connections as Connection[];
}

/** Subscriptions on data subjects (`spool.d.…`), over every connection. */
async function dataSubscriptions(monitorUrl: string): Promise<number> {
  return (await connections(monitorUrl)).flatMap((c) =>
    c.subscriptions_list ?? []
  ).filter((subject) => subject.startsWith("spool.d.")).length;
}

/** Bytes nats-server sent to its clients so far, over every connection. */
async function bytesSent(monitorUrl: string): Promise<number> {
  return (await connections(monitorUrl)).reduce((n, c) => n + c.out_bytes, 0);
}

Deno.test("five followers on node B of an upload on node A cost one data subscription: the engine sends B the bytes once, not once per follower", async () => {
  await using nats = await startNats({ monitor: true });
  const monitor = nats.monitorUrl!;
  await using a = await startTestServer({ nats: nats.url });
  await using b = await startTestServer({ nats: nats.url });
  const uploading = await startUpload(a.url, { name: "tail.bin" });
  const followers = await Promise.all(
    Array.from(
      { length: 5 },
      () => openDownload(onNode(uploading.reference, b.url)),
    ),
  );
  const followed = followers.map((f) => readAll(f.follow()));
  const data = randomBytes(4_000_000, 1501);
  // The first bytes may beat the subscription to the engine; the rest may not.
  const first = 100_000;
  await uploading.write(data.slice(0, first));
  for (const follower of followers) {
    await follower.waitForStatus((s) => s.size >= first);
  }
  assertEquals(await dataSubscriptions(monitor), 1, "one, on node B");
  const before = await bytesSent(monitor);
  const bulk = data.byteLength - first;
  for (let at = first; at < data.byteLength; at += 250_000) {
    await uploading.write(
      data.slice(at, Math.min(data.byteLength, at + 250_000)),
    );
  }
  await uploading.finish();
  for (const bytes of await Promise.all(followed)) {
    assertEquals(await sha256(bytes), await sha256(data));
  }
  const sent = (await bytesSent(monitor)) - before;
  console.log(
    `engine → clients during ${bulk} bytes followed 5 times on B: ${sent} bytes (${
      (sent / bulk).toFixed(2)
    }× the upload)`,
  );
  // Direct gets per follower would send every byte five times.
  assert(
    sent < 2 * bulk,
    `the engine sent ${sent} bytes for ${bulk} bytes followed by 5 followers on node B; expected one subscription's worth (under ${
      2 * bulk
    })`,
  );
  for (const follower of followers) await follower.close();
  assertEquals(await dataSubscriptions(monitor), 0, "ended: none left");
});

const S = SEGMENT_BYTES;
/** A sixteenth of a segment: the pieces below are laid out in these. */
const U = S / 16;
const SIZE = 3 * S + 5000;

function statusOf(id: string, size: number): ResourceStatus {
  const now = new Date().toISOString();
  return {
    id,
    name: "tail.bin",
    mimeType: "application/octet-stream",
    metadata: {},
    status: "IN_PROGRESS",
    size,
    createdAt: now,
    updatedAt: now,
  };
}

/** Follows `resource` from 0 to `end` in small reads, as a follower's cursor does. */
async function follow(
  resource: RemoteResource,
  end: number,
): Promise<Uint8Array> {
  const cursor = new FollowCursor(resource, 0);
  const bytes = new Uint8Array(end);
  while (cursor.position < end) {
    const at = cursor.position;
    const read = cursor.read(7_777, end);
    const chunk = read instanceof Promise ? await read : read;
    bytes.set(chunk, at);
  }
  await cursor.close();
  return bytes;
}

Deno.test("the tail of node B places pieces stored out of order and twice by offset, reads what it missed by direct get, and never serves past the checkpoint", async () => {
  await using nats = await startNats({ monitor: true });
  const connect = async () =>
    new JetStreamStore(
      await NatsEngine.connect({ servers: [nats.url] }),
      { ownsEngine: true },
    );
  const a = await connect(), b = await connect();
  try {
    const id = newResourceId();
    await (await a.create({ ...statusOf(id, 0), status: "INITIATED" }))
      .close();
    const data = randomBytes(SIZE, 1502);
    // Stored before node B subscribes: only the engine has them.
    await publishPieces(a.engine, id, data, [[6 * U, 12 * U], [
      S,
      S + 2 * U,
    ]]);
    const resource = new RemoteResource(b, statusOf(id, 0), {
      pieces: pieceSubscriber(b.engine.nc),
    });
    // A listing's watch brings no bytes here.
    const listing = resource.watch(() => {}, { statusOnly: true });
    await b.engine.nc.flush();
    assertEquals(await dataSubscriptions(nats.monitorUrl!), 0);
    const unwatch = resource.watch(() => {});
    // The server has the subscription once it answered a ping after it.
    await b.engine.nc.flush();
    assertEquals(await dataSubscriptions(nats.monitorUrl!), 1);
    await publishPieces(a.engine, id, data, [
      [12 * U, S],
      [3 * U, 9 * U],
      [0, 6 * U],
      [0, 6 * U],
      [S + 8 * U, 2 * S],
      [S + 2 * U, S + 8 * U],
      [S + 2 * U, S + 8 * U],
      [2 * S, 3 * S],
      [2 * S, 3 * S],
      [3 * S + 2000, SIZE],
      [3 * S, 3 * S + 2000],
    ]);
    // Every piece published before the ping's answer reached node B.
    await b.engine.nc.flush();
    const checkpoint = 2 * S + 1000;
    await a.save(statusOf(id, checkpoint));
    assert(resource.mirror(statusOf(id, checkpoint)));
    // Held beyond the checkpoint, but not served.
    assertEquals(resource.copyRecent(checkpoint - 10, new Uint8Array(100)), 10);
    assertEquals(resource.copyRecent(checkpoint, new Uint8Array(100)), 0);
    assertEquals(resource.recent(0, checkpoint + 1), undefined);
    // The tail holds what the subscription got, not what was stored before.
    assert(resource.recent(3 * U, 9 * U) !== undefined);
    assertEquals(resource.recent(9 * U, 9 * U + 1), undefined);
    assertEquals(resource.recent(S, S + 1), undefined);
    const part = await follow(resource, checkpoint);
    assertEquals(
      await sha256(part),
      await sha256(data.subarray(0, checkpoint)),
    );
    await a.save(statusOf(id, SIZE));
    assert(resource.mirror(statusOf(id, SIZE)));
    const whole = await follow(resource, SIZE);
    assertEquals(await sha256(whole), await sha256(data));
    const last = new Uint8Array(5000);
    assertEquals(resource.copyRecent(SIZE - 5000, last), 5000, "in the tail");
    assertEquals(last, data.subarray(SIZE - 5000));
    assertEquals(
      await sha256(await readAll(resource.read(0, SIZE))),
      await sha256(data),
      "a range read through the tail",
    );
    assertEquals(
      await sha256(await readAll(resource.read(150_000, 3 * S + 1000))),
      await sha256(data.subarray(150_000, 3 * S + 1000)),
    );
    unwatch();
    listing();
    await b.engine.nc.flush();
    assertEquals(await dataSubscriptions(nats.monitorUrl!), 0);
    assertEquals(resource.copyRecent(0, new Uint8Array(10)), 0, "no tail");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a remote tail keeps each byte once whatever the order of its pieces, drops the oldest beyond its bound and the node's, and takes nothing below what it dropped", () => {
  const data = randomBytes(10_000, 1503);
  const budget = new TailBudget(1_000_000);
  const tail = new RemoteTail(budget, 8000);
  const add = (from: number, to: number) =>
    tail.add(from, data.subarray(from, to));
  add(4000, 6000);
  add(0, 1000);
  add(500, 4500); // overlaps both
  add(0, 6000); // all held already
  assertEquals(tail.held, 6000);
  assertEquals(budget.used, 6000);
  const out = new Uint8Array(6000);
  assertEquals(tail.copy(0, out), 6000);
  assertEquals(out, data.subarray(0, 6000));
  assertEquals(tail.views(1000, 5000)?.reduce((n, v) => n + v.length, 0), 4000);
  add(7000, 8000);
  assertEquals(tail.copy(5000, new Uint8Array(5000)), 1000, "stops at a hole");
  assertEquals(tail.views(5000, 7500), undefined);
  assertEquals(tail.nextHeld(6500), 7000);
  // Beyond its bound the oldest chunk goes; a piece below it is not taken.
  add(8000, 10_000);
  assertEquals(tail.held, 8000);
  assertEquals(tail.copy(0, new Uint8Array(10)), 0);
  add(0, 1000);
  assertEquals(tail.copy(0, new Uint8Array(10)), 0);
  assertEquals(tail.copy(1000, new Uint8Array(10)), 10);
  tail.clear(10_000);
  assertEquals([tail.held, budget.used], [0, 0]);
  // Two tails of one node share its budget.
  const small = new TailBudget(3000);
  const first = new RemoteTail(small), second = new RemoteTail(small);
  first.add(0, data.subarray(0, 2000));
  second.add(0, data.subarray(0, 2000));
  assertEquals([first.held, second.held, small.used], [2000, 0, 2000]);
});
