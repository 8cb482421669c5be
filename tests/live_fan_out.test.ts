import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import { FileStore } from "../server/mod.ts";
import { randomBytes, sha256, startTestServer } from "./_helpers.ts";
import { Notifier } from "../protocol/notifier.ts";

/** The real file store, recording every range read from it. */
class CountingStore extends FileStore {
  readonly reads: { start: number; end: number }[] = [];

  override read(
    id: string,
    start: number,
    end: number,
  ): ReadableStream<Uint8Array> {
    this.reads.push({ start, end });
    return super.read(id, start, end);
  }
}

const FOLLOWERS = 200;
const CHUNK = 64 * 1024;
const CHUNKS = 48;
/** The laggard joins here: past the tail in memory (200 × 8 KiB + slack). */
const LAGGARD_AT = 40;

Deno.test("200 followers at the head get identical bytes from memory; a laggard among them is served from the store", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-test-" });
  const store = new CountingStore(dataDir);
  try {
    await using server = await startTestServer({ dataDir, store });
    const data = randomBytes(CHUNK * CHUNKS, 15);
    const expected = await sha256(data);
    const upload = await startUpload(server.url, { name: "fan.log" });
    const progress = new Notifier();
    const received: number[] = new Array(FOLLOWERS).fill(0);
    const follow = async (index: number): Promise<string> => {
      const download = await openDownload(upload.reference);
      const parts: Uint8Array[] = [];
      for await (const chunk of download.follow()) {
        parts.push(chunk);
        if (index < FOLLOWERS) received[index] += chunk.byteLength;
        progress.notify();
      }
      await download.close();
      const bytes = new Uint8Array(
        await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer(),
      );
      assertEquals(bytes.byteLength, data.byteLength);
      return await sha256(bytes);
    };
    const heads: Promise<string>[] = [];
    for (let i = 0; i < FOLLOWERS; i++) heads.push(follow(i));
    let laggard: Promise<string> | undefined;
    for (let i = 0; i < CHUNKS; i++) {
      if (i === LAGGARD_AT) {
        assertEquals(store.reads, [], "the followers at the head read memory");
        laggard = follow(FOLLOWERS);
      }
      await upload.write(data.subarray(i * CHUNK, (i + 1) * CHUNK));
      // Every follower stays at the head: it has each checkpoint before the next write.
      const written = (i + 1) * CHUNK;
      while (received.some((bytes) => bytes < written)) await progress.wait();
    }
    await upload.finish();
    await upload.closed();
    const hashes = await Promise.all([...heads, laggard!]);
    assertEquals(new Set(hashes), new Set([expected]));
    // Only the laggard read the store, from its start, and not past what
    // was checkpointed when it joined.
    assert(store.reads.length >= 1, "the laggard read the store");
    assertEquals(store.reads[0].start, 0);
    assert(
      store.reads.every(({ end }) => end <= CHUNKS * CHUNK),
      JSON.stringify(store.reads),
    );
    const fromStore = store.reads.reduce((sum, r) => sum + r.end - r.start, 0);
    assert(
      fromStore <= data.byteLength,
      `${fromStore} bytes read from the store; expected only the laggard's`,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a follower behind when the upload completes gets the rest from memory; the tail goes once no one reads it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-test-" });
  const store = new CountingStore(dataDir);
  try {
    await using server = await startTestServer({ dataDir, store });
    // Within the default tail (512 KiB), far beyond the follower's credit.
    const data = randomBytes(6 * CHUNK, 16);
    const expected = await sha256(data);
    const upload = await startUpload(server.url, { name: "behind.log" });
    await using behind = await openDownload(upload.reference, {
      window: CHUNK,
    });
    // Nothing is read yet: the server stops at the follower's credit.
    const reader = behind.follow().getReader();
    for (let i = 0; i < 6; i++) {
      await upload.write(data.subarray(i * CHUNK, (i + 1) * CHUNK));
    }
    assertEquals((await upload.finish()).status, "COMPLETED");
    await upload.closed();
    const readAll = async (
      stream: ReadableStreamDefaultReader<Uint8Array>,
    ): Promise<string> => {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      for (
        let next = await stream.read();
        !next.done;
        next = await stream.read()
      ) {
        parts.push(next.value as Uint8Array<ArrayBuffer>);
      }
      return await sha256(new Uint8Array(await new Blob(parts).arrayBuffer()));
    };
    assertEquals(await readAll(reader), expected);
    assertEquals(store.reads, [], "the rest came from memory");
    // Its follow is over, so no one reads the resource: the tail is gone,
    // and a later reader gets the bytes from the store.
    await using later = await openDownload(upload.reference);
    assertEquals(await readAll(later.follow().getReader()), expected);
    assertEquals(store.reads, [{ start: 0, end: data.byteLength }]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
