import { assertEquals, assertRejects } from "@std/assert";
import { openDownload, SpoolError, upload } from "../mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";

async function uploaded(
  server: { url: URL },
  data: Uint8Array,
): Promise<string> {
  let reference = "";
  await upload(server.url, data, {
    name: "ranges.bin",
    onReady: (u) => reference = u.reference,
  });
  return reference;
}

Deno.test("range reads return exact slices, several in flight on one socket", async () => {
  await using server = await startTestServer();
  const data = randomBytes(3 * 1024 * 1024 + 17, 3);
  await using download = await openDownload(await uploaded(server, data));
  const size = data.byteLength;
  const ranges: [number, number][] = [
    [0, 0],
    [0, 1],
    [size - 1, size],
    [size, size],
    [12345, 12345 + 300_000],
    [1, size - 1],
    [0, size],
    [262_143, 262_145],
  ];
  const results = await Promise.all(
    ranges.map(([s, e]) => readAll(download.read(s, e))),
  );
  for (const [i, [start, end]] of ranges.entries()) {
    assertEquals(
      results[i].byteLength,
      end - start,
      `length of [${start}, ${end})`,
    );
    assertEquals(
      await sha256(results[i]),
      await sha256(data.subarray(start, end)),
      `bytes of [${start}, ${end})`,
    );
  }
});

Deno.test("a large range with a small window flows under back-pressure", async () => {
  await using server = await startTestServer();
  const data = randomBytes(8 * 1024 * 1024, 4);
  const reference = await uploaded(server, data);
  await using download = await openDownload(reference, { window: 64 * 1024 });
  const reader = download.read(0, data.byteLength).getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  // A slow consumer: the server may only run one window ahead of it.
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.byteLength;
    if (chunks.length % 16 === 0) {
      await new Promise((r) => queueMicrotask(() => r(null)));
    }
  }
  assertEquals(received, data.byteLength);
  const joined = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.byteLength;
  }
  assertEquals(await sha256(joined), await sha256(data));
  // Frames are bounded: none exceeds the window.
  assertEquals(chunks.every((c) => c.byteLength <= 64 * 1024), true);
});

Deno.test("cancelling a read stops it and the socket serves the next one", async () => {
  await using server = await startTestServer();
  const data = randomBytes(16 * 1024 * 1024, 5);
  await using download = await openDownload(await uploaded(server, data), {
    window: 256 * 1024,
  });
  const reader = download.read(0, data.byteLength).getReader();
  const first = await reader.read();
  assertEquals(first.done, false);
  await reader.cancel("enough");
  const tail = await readAll(
    download.read(data.byteLength - 10, data.byteLength),
  );
  assertEquals(tail, data.subarray(data.byteLength - 10));
});

Deno.test("partial reads paginate a finished log", async () => {
  await using server = await startTestServer();
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join("");
  const data = new TextEncoder().encode(lines);
  await using download = await openDownload(await uploaded(server, data));
  const pageSize = 4096;
  let text = "";
  for (let start = 0; start < download.status.size; start += pageSize) {
    const end = Math.min(start + pageSize, download.status.size);
    text += new TextDecoder().decode(await readAll(download.read(start, end)));
  }
  assertEquals(text, lines);
});

Deno.test("a range past the size is refused with range-not-satisfiable", async () => {
  await using server = await startTestServer();
  await using download = await openDownload(
    await uploaded(server, randomBytes(100)),
  );
  const error = await assertRejects(
    () => readAll(download.read(0, 101)),
    SpoolError,
  );
  assertEquals(error.code, "range-not-satisfiable");
  assertEquals(
    error.message,
    "range [0, 101) ends past the checkpointed size 100; expected end <= 100",
  );
  assertEquals((await readAll(download.read(99, 100))).byteLength, 1);
});
