/**
 * Engine faults: NATS restarting during a live upload loses no
 * acknowledged byte, a black-holed engine link is replaced in time for the
 * upload to go on, and an unreachable `--nats` at start exits non-zero
 * naming the URL.
 */

import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  startTestServer,
} from "./_helpers.ts";
import { freePort, startNats } from "./_nats.ts";
import { FaultProxy } from "./_proxy.ts";

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;

Deno.test("nats-server restarting mid-upload loses no byte: the upload continues and node B follows it byte-identical", async () => {
  const first = await startNats();
  const { port, dir } = first;
  let second: Awaited<ReturnType<typeof startNats>> | undefined;
  try {
    await using a = await startTestServer({ nats: first.url });
    await using b = await startTestServer({ nats: first.url });
    const data = randomBytes(1_500_000, 1404);
    const uploading = await startUpload(a.url, { name: "through-restart.bin" });
    await uploading.write(data.subarray(0, 500_000));
    const onB = await openDownload(onNode(uploading.reference, b.url));
    await onB.waitForStatus((s) => s.size === 500_000);
    const followed = readAll(onB.follow());

    await first.stop();
    // Written while the engine is away: held until it is back, then stored once.
    const writing = uploading.write(data.subarray(500_000));
    const started = performance.now();
    second = await startNats({ port, dir });
    await writing;
    const final = await uploading.finish();
    assertEquals(final.status, "COMPLETED");
    assertEquals(final.sha256, await sha256(data));
    assertEquals(await sha256(await followed), await sha256(data));
    const onBFinal = await onB.waitForStatus((s) => s.status === "COMPLETED");
    assertEquals(onBFinal.size, data.byteLength);
    const resumedAfter = performance.now() - started;
    await onB.close();
    console.log(
      `COMPLETED on B ${resumedAfter.toFixed(0)} ms after the engine restarted`,
    );
  } finally {
    await second?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unreachable --nats at start exits 1 naming the URL", async () => {
  const url = `nats://127.0.0.1:${freePort()}`;
  const dataDir = await Deno.makeTempDir({ prefix: "spool-nats-down-" });
  try {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        SERVER_MAIN,
        "--port",
        "0",
        "--data-dir",
        dataDir,
        "--nats",
        url,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(stderr);
    assertEquals(code, 1, said);
    assert(said.includes(`cannot reach NATS at ${url}`), said);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a node whose engine link is black-holed mid-upload (open, every byte dropped, no FIN) notices, reconnects and goes on: the upload completes byte-identical, followed from node B", async () => {
  await using nats = await startNats();
  await using proxy = new FaultProxy(new URL(nats.url));
  await using a = await startTestServer({
    nats: `nats://127.0.0.1:${proxy.url.port}`,
  });
  await using b = await startTestServer({ nats: nats.url });
  const data = randomBytes(1_500_000, 1405);
  const uploading = await startUpload(a.url, {
    name: "through-a-black-hole.bin",
  });
  await uploading.write(data.subarray(0, 500_000));
  const onB = await openDownload(onNode(uploading.reference, b.url));
  await onB.waitForStatus((s) => s.size === 500_000);
  const followed = readAll(onB.follow());
  // Awaited below; a failure must not go unhandled meanwhile.
  followed.catch(() => {});

  // The open link drops everything from now on; a new one would pass.
  proxy.blackHole();
  proxy.heal();
  const linksBefore = proxy.accepted;
  const started = performance.now();
  await uploading.write(data.subarray(500_000));
  const final = await uploading.finish();
  const tookMs = performance.now() - started;
  assertEquals(final.status, "COMPLETED", final.error);
  assertEquals(final.sha256, await sha256(data));
  assertEquals(await sha256(await followed), await sha256(data));
  assert(proxy.accepted > linksBefore, "node A opened a new engine link");
  await onB.close();
  console.log(`COMPLETED ${tookMs.toFixed(0)} ms after the link went dark`);
});
