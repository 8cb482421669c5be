/**
 * The listing's live feed, `GET /view/events`: every resource's status,
 * then each change (new uploads, checkpoints coalesced, ends, expiries),
 * 403 with read tokens, ended by shutdown and stopped when the client leaves.
 */

import { assert, assertEquals } from "@std/assert";
import { startUpload } from "../mod.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { startTestServer } from "./_helpers.ts";

const encoder = new TextEncoder();

/** One Server-Sent Event: its name and its data parsed as JSON. */
interface FeedEvent {
  event: string;
  data: { id: string } & Partial<ResourceStatus>;
}

/** Reads the events of an event stream, one at a time. */
class EventReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event (comments skipped), or `undefined` at the end. */
  async next(): Promise<FeedEvent | undefined> {
    for (;;) {
      const end = this.#buffer.indexOf("\n\n");
      if (end !== -1) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const event = /^event:(.*)$/m.exec(block)?.[1];
        const data = /^data:(.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) {
          return { event, data: JSON.parse(data) };
        }
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }

  /** Reads events until one satisfies `match`; returns all read. */
  async until(match: (event: FeedEvent) => boolean): Promise<FeedEvent[]> {
    const seen: FeedEvent[] = [];
    for (;;) {
      const event = await this.next();
      if (event === undefined) {
        throw new Error(`the feed ended after ${JSON.stringify(seen)}`);
      }
      seen.push(event);
      if (match(event)) return seen;
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

Deno.test("listing feed: every status first, then new uploads, coalesced checkpoints, ends and expiries", async () => {
  await using server = await startTestServer({ checkpointMs: 0 });
  const old = await startUpload(server.url, {
    name: "old.log",
    mimeType: "text/plain",
  });
  await old.send(encoder.encode("old\n"));
  await old.closed();
  const response = await fetch(new URL("view/events", server.url));
  assertEquals(response.status, 200);
  assertEquals(
    response.headers.get("content-type"),
    "text/event-stream; charset=utf-8",
  );
  const feed = new EventReader(response.body!);
  const first = await feed.next();
  assertEquals(first?.event, "status");
  assertEquals(first?.data.id, old.id);
  assertEquals(first?.data.status, "COMPLETED");

  const live = await startUpload(server.url, {
    name: "live.log",
    mimeType: "text/plain",
  });
  await feed.until((e) =>
    e.data.id === live.id && e.data.status === "INITIATED"
  );
  // Many checkpoints in a row: the feed sends fewer events, the last size last.
  const resource = server.registry.get(live.id)!;
  let checkpoints = 0;
  resource.watch((status) => status.size > 0 && checkpoints++);
  const WRITES = 40;
  for (let i = 0; i < WRITES; i++) {
    await live.write(encoder.encode(`line ${i}\n`));
  }
  const total = Array.from({ length: WRITES }, (_, i) => `line ${i}\n`).join("")
    .length;
  const growing = await feed.until((e) =>
    e.data.id === live.id && e.data.size === total
  );
  const sizes = growing.map((e) => e.data.size!);
  assertEquals(sizes, [...sizes].sort((a, b) => a - b), "in order");
  assert(
    growing.length < checkpoints,
    `${growing.length} events for ${checkpoints} checkpoints`,
  );
  await live.finish();
  await live.closed();
  await feed.until((e) =>
    e.data.id === live.id && e.data.status === "COMPLETED"
  );

  await server.registry.expire(server.registry.get(old.id)!);
  const removed = await feed.until((e) => e.event === "removed");
  assertEquals(removed.at(-1)!.data, { id: old.id });

  // Leaving stops the feed: no watcher of the resource is left.
  await feed.cancel();
  // The cancel reaches the feed through the pipe: poll, bounded.
  const deadline = Date.now() + 10_000;
  while (resource.watcherCount > 1 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assertEquals(resource.watcherCount, 1, "only the test's watcher is left");
});

Deno.test("listing feed: 403 with read tokens; server shutdown ends it", async () => {
  {
    await using guarded = await startTestServer({ readTokens: true });
    const refused = await fetch(new URL("view/events", guarded.url));
    assertEquals(refused.status, 403);
    assertEquals((await refused.json()).code, "forbidden");
  }
  const server = await startTestServer();
  const response = await fetch(new URL("view/events", server.url));
  const feed = new EventReader(response.body!);
  const closing = server.close();
  assertEquals(await feed.next(), undefined, "the feed ends");
  await closing;
});
