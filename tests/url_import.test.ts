import { assertEquals } from "@std/assert";
import { spawnServer } from "./_helpers.ts";

const REPO = new URL("../", import.meta.url);

/** Serves the repository's files read-only on 127.0.0.1, as a static host would. */
function serveRepo(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (path.includes("..")) return new Response("bad path", { status: 400 });
      try {
        const body = await Deno.readFile(new URL(`.${path}`, REPO));
        const type = path.endsWith(".json")
          ? "application/json"
          : "application/typescript";
        return new Response(body, { headers: { "content-type": type } });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          return new Response(
            "not found",
            { status: 404 },
          );
        }
        throw error;
      }
    },
  );
}

Deno.test("the server runs and mod.ts imports by URL with --import-map, transport worker included", async () => {
  await using host = serveRepo();
  const base = `http://127.0.0.1:${host.addr.port}/`;
  const importMap = `${base}deno.json`;
  // Run from a directory outside the repo, so no local deno.json is applied.
  const outside = await Deno.makeTempDir({ prefix: "spool-url-" });
  const dataDir = `${outside}/data`;
  const server = await spawnServer(dataDir, {
    main: `${base}server/main.ts`,
    denoArgs: ["--import-map", importMap, "--quiet"],
    cwd: outside,
  });
  try {
    const script = `${outside}/use.ts`;
    await Deno.writeTextFile(
      script,
      `import { Receiver, Stream, upload } from "${base}mod.ts";
const status = await upload(${
        JSON.stringify(server.url.href)
      }, new TextEncoder().encode("by url\\n"), { name: "u.txt" });
// The transport's send loop is a worker module loaded from the same URL.
const receiver = new Receiver();
await receiver.listen("net");
const names = [];
receiver.register("net", "by-url", async (header, body) => {
  names.push(header.name + ":" + (body ? (await new Response(body).text()) : ""));
});
const stream = new Stream(receiver.url("net", "by-url"));
await stream.send({ name: "a" }, new TextEncoder().encode("hello"));
await stream.send({ name: "b" });
await stream.fin();
await receiver.close();
console.log(JSON.stringify({ status: status.status, size: status.size, names }));
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--import-map", importMap, script],
      cwd: outside,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    assertEquals(JSON.parse(new TextDecoder().decode(output.stdout)), {
      status: "COMPLETED",
      size: 7,
      names: ["a:hello", "b:"],
    });
  } finally {
    server.process.kill("SIGTERM");
    await server.process.status;
    await Deno.remove(outside, { recursive: true });
  }
});
