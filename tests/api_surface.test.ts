/**
 * The root API fits on a screen: at most 40 names, none of them wire codecs
 * or server internals (those are behind `./protocol`, `./transport`,
 * `./server`).
 */

import { assert, assertEquals } from "@std/assert";

const ROOT = new URL("../mod.ts", import.meta.url);

/** The names `deno doc` lists for the root module. */
async function rootNames(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ROOT.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  const symbols: { name: string }[] = doc.nodes[ROOT.href].symbols;
  return symbols.map((symbol) => symbol.name).sort();
}

Deno.test("api: the root exports at most 40 names: starting, uploading, downloading, the transport and the errors, no codecs or internals", async () => {
  const names = await rootNames();
  assert(names.length <= 40, `${names.length} names: ${names.join(", ")}`);
  for (
    const name of [
      "startServer",
      "upload",
      "openDownload",
      "Stream",
      "startReceiver",
      "SpoolError",
      "TransportError",
    ]
  ) assert(names.includes(name), `${name} missing from the root`);
  assertEquals(
    names.filter((name) =>
      /^(encode|decode|parse)|Registry$|^Resource$|^CLOSE_|_REASON$|_CODES$/
        .test(name)
    ),
    [],
  );
});
