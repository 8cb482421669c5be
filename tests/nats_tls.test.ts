/**
 * Nodes on an engine that requires TLS: the connection upgrades after the
 * server's INFO and carries an upload from node A to node B byte-identical;
 * a node that does not trust the engine's certificate exits naming the URL
 * and the certificate's problem.
 */

import { assertEquals, assertStringIncludes } from "@std/assert";
import { openDownload, startUpload } from "../mod.ts";
import {
  onNode,
  randomBytes,
  readAll,
  sha256,
  spawnServer,
} from "./_helpers.ts";
import { startNats } from "./_nats.ts";

const fixture = (name: string) =>
  new URL(`./fixtures/${name}`, import.meta.url).pathname;

/** nats-server arguments requiring TLS with the test certificate. */
const TLS_ARGS = [
  "--tls",
  "--tlscert",
  fixture("cert.pem"),
  "--tlskey",
  fixture("key.pem"),
];

Deno.test("an engine requiring TLS carries an upload on node A to node B byte-identical; the connections are encrypted", async () => {
  await using nats = await startNats({ args: TLS_ARGS, monitor: true });
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const [a, b] = await Promise.all(dirs.map((dir) =>
    spawnServer(dir, {
      denoArgs: ["--cert", fixture("ca.pem")],
      args: ["--nats", nats.url],
    })
  ));
  try {
    const data = randomBytes(3_000_000, 5150);
    const uploading = await startUpload(a.url, { name: "tls.bin" });
    const follower = await openDownload(onNode(uploading.reference, b.url));
    const followed = readAll(follower.follow());
    for (let at = 0; at < data.byteLength; at += 64 * 1024) {
      await uploading.write(data.subarray(at, at + 64 * 1024));
    }
    await uploading.finish();
    assertEquals(await sha256(await followed), await sha256(data));
    await follower.close();
    const connz = await (await fetch(`${nats.monitorUrl}/connz`)).json() as {
      connections: { tls_version?: string }[];
    };
    assertEquals(connz.connections.length, 2, "one connection per node");
    for (const connection of connz.connections) {
      assertStringIncludes(connection.tls_version ?? "none", "1.");
    }
  } finally {
    for (const node of [a, b]) {
      node.process.kill("SIGTERM");
      await node.process.status;
    }
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node that does not trust the engine's TLS certificate exits non-zero naming the URL and the certificate's problem", async () => {
  await using nats = await startNats({ args: TLS_ARGS });
  const dir = await Deno.makeTempDir();
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../server/main.ts", import.meta.url).pathname,
        "--port",
        "0",
        "--data-dir",
        dir,
        "--nats",
        nats.url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 1, stderr);
    assertStringIncludes(stderr, nats.url);
    assertStringIncludes(stderr, "UnknownIssuer");
    assertStringIncludes(stderr, "DENO_CERT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
