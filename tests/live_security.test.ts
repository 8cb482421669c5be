import { assert, assertEquals, assertRejects } from "@std/assert";
import { openDownload, startUpload, upload } from "../client/mod.ts";
import { SpoolError } from "../protocol/mod.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";

const UPLOAD_TOKEN = "upload-token-for-tests";
const FIXTURES = new URL("./fixtures/", import.meta.url);

async function refused(
  attempt: () => Promise<unknown>,
  code: string,
): Promise<SpoolError> {
  const error = await assertRejects(attempt, SpoolError);
  assertEquals(error.code, code, error.message);
  return error;
}

Deno.test("security: uploads need the upload token when the server sets one", async () => {
  await using server = await startTestServer({ uploadToken: UPLOAD_TOKEN });
  const missing = await refused(
    () => startUpload(server.url, { name: "a" }),
    "forbidden",
  );
  assert(missing.message.includes("no upload token"), missing.message);
  const wrong = await refused(
    () => startUpload(server.url, { name: "a", uploadToken: "not-the-token" }),
    "forbidden",
  );
  assert(wrong.message.includes("a wrong upload token"), wrong.message);
  assertEquals([...server.registry.all()].length, 0);
  // The header form and the query form both work.
  const bytes = new TextEncoder().encode("allowed\n");
  const status = await upload(server.url, bytes, {
    name: "ok",
    uploadToken: UPLOAD_TOKEN,
  });
  assertEquals(status.status, "COMPLETED");
  const viaQuery = new URL(`?token=${UPLOAD_TOKEN}`, server.url);
  const second = await upload(viaQuery, bytes, { name: "query" });
  assertEquals(second.sha256, await sha256(bytes));
});

Deno.test("security: read tokens guard downloads and status, and survive a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-tokens-" });
  const bytes = new TextEncoder().encode("secret bytes\n");
  let reference: string;
  {
    await using server = await startTestServer({ dataDir, readTokens: true });
    const up = await startUpload(server.url, { name: "guarded" });
    reference = up.reference;
    await up.send(bytes);
    await up.closed();
    const token = new URL(reference).searchParams.get("token");
    assertEquals(token?.length, 22);
    const bare = new URL(reference);
    bare.search = "";
    await refused(() => openDownload(bare), "forbidden");
    await refused(
      () => openDownload(bare, { readToken: "AAAAAAAAAAAAAAAAAAAAAA" }),
      "forbidden",
    );
    await using byHeader = await openDownload(bare, { readToken: token! });
    assertEquals(byHeader.status.status, "COMPLETED");
    const http = new URL(`${bare.pathname}/status`, bare);
    http.protocol = "http:";
    const denied = await fetch(http);
    assertEquals(denied.status, 403);
    assertEquals((await denied.json()).code, "forbidden");
    http.searchParams.set("token", token!);
    const allowed = await fetch(http);
    assertEquals(allowed.status, 200);
    assertEquals((await allowed.json()).size, bytes.length);
  }
  try {
    // Same data directory, new process state: the reference still works.
    await using server = await startTestServer({ dataDir, readTokens: true });
    const url = new URL(reference);
    url.port = server.url.port;
    await using download = await openDownload(url);
    assertEquals(
      await sha256(await readAll(download.read(0, bytes.length))),
      await sha256(bytes),
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("security: TLS serves https and wss; clients trust a CA file", async () => {
  const read = (name: string) => Deno.readTextFile(new URL(name, FIXTURES));
  const ca = await read("ca.pem");
  await using server = await startTestServer({
    cert: await read("cert.pem"),
    key: await read("key.pem"),
  });
  assertEquals(server.url.protocol, "https:");
  const bytes = randomBytes(100_000, 7);
  const up = await startUpload(server.url, { name: "tls", caCerts: [ca] });
  assert(up.reference.startsWith("wss://"), up.reference);
  await using follower = await openDownload(up.reference, { caCerts: [ca] });
  const followed = readAll(follower.follow());
  await up.send(bytes);
  await up.closed();
  assertEquals(await sha256(await followed), await sha256(bytes));
  // Without the CA the certificate is not trusted: a clear connection error.
  const untrusted = await refused(
    () => openDownload(up.reference, { connectTimeoutMs: 10_000 }),
    "connection-closed",
  );
  assert(untrusted.message.includes("cannot connect"), untrusted.message);
});

Deno.test("security: finished resources expire after the retention time", async () => {
  const expired = Promise.withResolvers<string>();
  await using server = await startTestServer({
    retentionMs: 150,
    onExpire: (id) => expired.resolve(id),
  });
  const up = await startUpload(server.url, { name: "short-lived" });
  await using watcher = await openDownload(up.reference);
  const closedByServer = watcher.closed();
  await up.send(new TextEncoder().encode("bye\n"));
  await up.closed();
  assertEquals(await expired.promise, up.id);
  assertEquals((await closedByServer)?.code, "gone");
  const gone = await refused(() => openDownload(up.reference), "gone");
  assert(gone.message.includes("expired"), gone.message);
  const http = new URL(up.reference);
  http.protocol = "http:";
  const response = await fetch(http);
  assertEquals(response.status, 410);
  assertEquals((await response.json()).code, "gone");
  // Gone from disk too: nothing in the store names the id.
  const left: string[] = [];
  for await (const folder of Deno.readDir(server.dataDir)) {
    if (!folder.isDirectory) continue;
    for await (
      const entry of Deno.readDir(`${server.dataDir}/${folder.name}`)
    ) {
      if (entry.name.startsWith(up.id)) left.push(entry.name);
    }
  }
  assertEquals(left, []);
});

Deno.test("security: a bearer header and ?token= both count; a wrong one beside a right one (a proxy's own Authorization) does not hide it", async () => {
  await using server = await startTestServer({ readTokens: true });
  const up = await startUpload(server.url, { name: "both" });
  await up.send(new TextEncoder().encode("both ways\n"));
  await up.closed();
  const reference = new URL(up.reference);
  const token = reference.searchParams.get("token")!;
  const http = new URL(
    `resources/${reference.pathname.split("/").pop()}`,
    server.url,
  );
  http.protocol = server.url.protocol;
  const get = async (query: string | null, bearer: string | null) => {
    const url = new URL(http);
    if (query !== null) url.searchParams.set("token", query);
    const response = await fetch(url, {
      headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` },
    });
    const body = await response.text();
    return `${response.status} ${response.status === 200 ? body : ""}`;
  };
  const wrong = "AAAAAAAAAAAAAAAAAAAAAA";
  assertEquals(await get(token, wrong), "200 both ways\n");
  assertEquals(await get(wrong, token), "200 both ways\n");
  assertEquals(await get(token, null), "200 both ways\n");
  assertEquals(await get(null, token), "200 both ways\n");
  assertEquals(await get(wrong, wrong), "403 ");
  assertEquals(await get(null, null), "403 ");
});

Deno.test("security: an upload with a wrong bearer token and the right ?token= is allowed", async () => {
  await using server = await startTestServer({ uploadToken: UPLOAD_TOKEN });
  const viaQuery = new URL(`?token=${UPLOAD_TOKEN}`, server.url);
  const bytes = new TextEncoder().encode("proxied\n");
  const status = await upload(viaQuery, bytes, {
    name: "proxied",
    uploadToken: "a-proxy-bearer-token",
  });
  assertEquals(status.sha256, await sha256(bytes));
});
