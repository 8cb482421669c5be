/**
 * Upload leases on a real nats-server: a renewal the bucket stored but
 * whose acknowledgement was lost (a timeout while a clustered bucket elects
 * a leader) must not read as another node's takeover, while a takeover,
 * even by the same node, still does.
 */

import { assertEquals } from "@std/assert";
import { Lease } from "../server/nats/lease.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { startNats } from "./_nats.ts";
import { within } from "./_fault_actors.ts";

/** Bounds every wait: a renewal comes every third of the lease. */
const HANG_MS = 10_000;
/** Short, so that renewals come often. */
const LEASE_MS = 300;

/**
 * Writes the key's own value again, as the lease's renewal would have had
 * its acknowledgement been lost; resolves with the new revision.
 */
async function storeWithoutAck(
  engine: NatsEngine,
  key: string,
): Promise<number> {
  const entry = await engine.leases.get(key);
  if (entry === null) throw new Error(`the lease key ${key} is missing`);
  return await engine.leases.update(key, entry.string(), entry.revision);
}

/** Resolves with the first revision of `key` above `above` that a PUT wrote. */
async function nextPut(
  engine: NatsEngine,
  key: string,
  above: number,
): Promise<number> {
  const watch = await engine.leases.watch({ key });
  try {
    for await (const entry of watch) {
      if (entry.operation === "PUT" && entry.revision > above) {
        return entry.revision;
      }
    }
  } finally {
    watch.stop();
  }
  throw new Error(`the watch of ${key} ended`);
}

Deno.test("lease: a renewal stored without its acknowledgement is still this node's lease, for check() and for the next renewal", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  try {
    const key = "lost-ack";
    const lease = await Lease.take(engine, key, {
      node: engine.node,
      leaseMs: LEASE_MS,
    });
    const taken = lease.takenOver.then((why) => `taken: ${why}`);
    const stored = await storeWithoutAck(engine, key);
    assertEquals(await lease.check(), true, "check() after a lost ack");
    // The next renewal must write on top of the stored one, not give up.
    const renewed = await within(
      HANG_MS,
      "the next renewal",
      Promise.race([nextPut(engine, key, stored), taken]),
    );
    assertEquals(typeof renewed, "number", `renewed, not ${renewed}`);

    // The same again, caught by a renewal rather than by check().
    const again = await storeWithoutAck(engine, key);
    const next = await within(
      HANG_MS,
      "the renewal after the second lost ack",
      Promise.race([nextPut(engine, key, again + 1), taken]),
    );
    assertEquals(typeof next, "number", `renewed, not ${next}`);
    assertEquals([lease.lost, lease.taken], [undefined, false]);

    // Released with an adopted revision: the key is deleted, not left to age out.
    await storeWithoutAck(engine, key);
    await lease.release();
    const entry = await engine.leases.get(key);
    assertEquals(entry?.operation, "DEL", "the key was deleted");
  } finally {
    await engine.close();
  }
});

Deno.test("lease: a takeover is seen as one, even by the same node taking its own upload back", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  try {
    const key = "taken-back";
    const record = { node: engine.node, leaseMs: LEASE_MS };
    const first = await Lease.take(engine, key, record);
    const { lease: second, from } = await Lease.takeOver(
      engine,
      key,
      record,
    );
    assertEquals(from, engine.node);
    assertEquals(await first.check(), false, "the first take lost the key");
    assertEquals(first.taken, true);
    assertEquals(
      await within(HANG_MS, "takenOver", first.takenOver),
      `another node took the lease of ${key}`,
    );
    assertEquals(await second.check(), true, "the second take holds it");
    await second.release();
    await first.release();
    assertEquals((await engine.leases.get(key))?.operation, "DEL");
  } finally {
    await engine.close();
  }
});
