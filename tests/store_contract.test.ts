/**
 * One contract, two stores: the file store (the embedded default) and the
 * JetStream store (`--nats`) pass the same cases, so the server can rely
 * on what `ResourceStore` promises whichever it runs on. The JetStream store
 * runs against a real nats-server on a free loopback port.
 */

import { assert, assertEquals } from "@std/assert";
import type { ResourceStatus } from "../protocol/status.ts";
import { FileStore } from "../server/file_store.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { JetStreamStore } from "../server/nats/jetstream_store.ts";
import { newResourceId } from "../server/resource_id.ts";
import type { ResourceStore } from "../server/store.ts";
import { randomBytes, readAll, sha256 } from "./_helpers.ts";
import { startNats } from "./_nats.ts";

/** A store under test and how to let it go. */
interface Subject {
  store: ResourceStore;
  [Symbol.asyncDispose](): Promise<void>;
}

const STORES: [string, () => Promise<Subject>][] = [
  ["file store", async () => {
    const dir = await Deno.makeTempDir({ prefix: "spool-contract-" });
    const store = new FileStore(dir);
    await store.open?.();
    return {
      store,
      async [Symbol.asyncDispose]() {
        await store.close?.();
        await Deno.remove(dir, { recursive: true });
      },
    };
  }],
  ["JetStream store", async () => {
    const nats = await startNats();
    const engine = await NatsEngine.connect({ servers: [nats.url] });
    const store: ResourceStore = new JetStreamStore(engine, {
      ownsEngine: true,
    });
    await store.open?.();
    return {
      store,
      async [Symbol.asyncDispose]() {
        await store.close?.();
        await nats[Symbol.asyncDispose]();
      },
    };
  }],
];

function statusOf(
  id: string,
  state: ResourceStatus["status"],
  size: number,
): ResourceStatus {
  const now = new Date().toISOString();
  return {
    id,
    name: "contract.log",
    mimeType: "text/plain",
    metadata: { case: "contract" },
    status: state,
    size,
    createdAt: now,
    updatedAt: now,
  };
}

/** Appends `bytes` in pieces of odd sizes, so pieces cross every alignment. */
async function appendInPieces(
  append: (chunk: Uint8Array) => Promise<void>,
  bytes: Uint8Array,
): Promise<void> {
  const sizes = [1, 4095, 65_537, 300_001, 7];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const end = Math.min(bytes.length, at + sizes[i % sizes.length]);
    await append(bytes.slice(at, end));
    at = end;
  }
}

for (const [kind, open] of STORES) {
  Deno.test(`store contract (${kind}): bytes appended and checkpointed read back exactly, in any range; the last saved status is listed; delete removes it`, async () => {
    await using subject = await open();
    const { store } = subject;
    const id = newResourceId();
    const data = randomBytes(1_200_000, 17);
    const writer = await store.create(statusOf(id, "INITIATED", 0));
    await appendInPieces((chunk) => writer.append(chunk), data);
    await writer.sync();
    await store.save(statusOf(id, "IN_PROGRESS", data.length));
    assert(await store.dataSize(id) >= data.length);
    // Ranges across piece and segment edges, empty and whole.
    for (
      const [start, end] of [
        [0, data.length],
        [0, 1],
        [262_143, 262_145],
        [4096, 4096],
        [70_000, 900_000],
        [data.length - 3, data.length],
      ]
    ) {
      assertEquals(
        await sha256(await readAll(store.read(id, start, end))),
        await sha256(data.subarray(start, end)),
        `[${start}, ${end})`,
      );
    }
    assertEquals(
      (await store.list()).filter((status) => status.id === id).map((
        status,
      ) => [status.status, status.size]),
      [["IN_PROGRESS", data.length]],
    );
    await store.save(statusOf(id, "COMPLETED", data.length));
    await writer.close();
    const listed = (await store.list()).find((status) => status.id === id);
    assertEquals([listed?.status, listed?.size], ["COMPLETED", data.length]);
    assertEquals(listed?.metadata, { case: "contract" });
    await store.delete(id);
    assertEquals(
      (await store.list()).some((status) => status.id === id),
      false,
    );
  });

  Deno.test(`store contract (${kind}): two resources keep their bytes apart`, async () => {
    await using subject = await open();
    const { store } = subject;
    const a = newResourceId(), b = newResourceId();
    const bytesA = randomBytes(300_000, 1), bytesB = randomBytes(200_000, 2);
    const writerA = await store.create(statusOf(a, "INITIATED", 0));
    const writerB = await store.create(statusOf(b, "INITIATED", 0));
    // Interleaved appends.
    for (let at = 0; at < 300_000; at += 50_000) {
      await writerA.append(bytesA.slice(at, at + 50_000));
      if (at < 200_000) await writerB.append(bytesB.slice(at, at + 50_000));
    }
    await writerA.sync();
    await writerB.sync();
    await store.save(statusOf(a, "COMPLETED", bytesA.length));
    await store.save(statusOf(b, "COMPLETED", bytesB.length));
    await writerA.close();
    await writerB.close();
    assertEquals(
      await sha256(await readAll(store.read(a, 0, bytesA.length))),
      await sha256(bytesA),
    );
    assertEquals(
      await sha256(await readAll(store.read(b, 0, bytesB.length))),
      await sha256(bytesB),
    );
  });
}
