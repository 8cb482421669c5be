import { assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";

Deno.test("smoke: upload and follow", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, { name: "a.bin" });
  const download = await openDownload(upload.reference);
  const followed = readAll(download.follow());
  const data = randomBytes(3_000_000);
  await upload.write(data.subarray(0, 1_000_000));
  await upload.write(data.subarray(1_000_000));
  const final = await upload.finish();
  assertEquals(final.size, data.byteLength);
  assertEquals(final.sha256, await sha256(data));
  assertEquals(await sha256(await followed), await sha256(data));
  await download.close();
  await upload.closed();
});
