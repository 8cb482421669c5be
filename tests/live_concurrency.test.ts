import { assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";

Deno.test("100 concurrent uploads, each with two followers, arrive byte-identical", async () => {
  await using server = await startTestServer({ checkpointMs: 10 });
  const count = 100;
  const results = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const data = randomBytes(20_000 + i * 997, i + 1);
      const upload = await startUpload(server.url, { name: `job-${i}.log` });
      const followers = await Promise.all([
        openDownload(upload.reference),
        openDownload(upload.reference),
      ]);
      const followed = followers.map((follower) => readAll(follower.follow()));
      // Several writes, so followers see the resource grow.
      for (let offset = 0; offset < data.byteLength; offset += 8192) {
        await upload.write(data.subarray(offset, offset + 8192));
      }
      const final = await upload.finish();
      await upload.closed();
      const digests = await Promise.all(
        followed.map(async (bytes) => sha256(await bytes)),
      );
      await Promise.all(followers.map((follower) => follower.close()));
      return { expected: await sha256(data), final, digests };
    }),
  );
  const ids = new Set(results.map((r) => r.final.id));
  assertEquals(ids.size, count, "every upload got its own id");
  for (const { expected, final, digests } of results) {
    assertEquals(final.status, "COMPLETED");
    assertEquals(final.sha256, expected);
    assertEquals(digests, [expected, expected]);
  }
});
