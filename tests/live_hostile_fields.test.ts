/**
 * Hostile names and MIME types (issue 11, items 10 and 13): they are refused
 * at upload with `invalid-field` naming the field and what is expected; a
 * status already stored with such fields is sanitized when a server starts
 * (a real subprocess, restarted), and no value reaching a header or the
 * viewer can take the server down or make it serve unbounded pages.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { startUpload, upload } from "../client/mod.ts";
import { type ResourceStatus, SpoolError } from "../protocol/mod.ts";
import { newResourceId } from "../server/resource_id.ts";
import { LISTING_SCRIPT, PAGE_SCRIPT } from "../server/viewer/script.ts";
import { sha256, startTestServer, type TestServer } from "./_helpers.ts";

const SERVER_MAIN = new URL("../server/main.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const MIB = 1024 * 1024;

/** Every control character a header cannot carry (tab is allowed). */
const CONTROLS = [
  ...Array.from({ length: 32 }, (_, code) => String.fromCharCode(code))
    .filter((c) => c !== "\t"),
  "\u007f",
];

async function refusedUpload(
  server: TestServer,
  options: {
    name: string;
    mimeType?: string;
    metadata?: Record<string, string>;
  },
): Promise<SpoolError> {
  const error = await assertRejects(
    () => startUpload(server.url, options),
    SpoolError,
  );
  assertEquals(error.code, "invalid-field", error.message);
  return error;
}

Deno.test("hostile fields: a MIME type with a control character, non-ASCII, bad grammar or over 255 characters is refused with invalid-field", async () => {
  await using server = await startTestServer();
  const cases: [string, RegExp][] = [
    ...CONTROLS.map((c): [string, RegExp] => [
      `text/plain; a=${c}`,
      new RegExp(
        `printable ASCII \\(U\\+${
          c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")
        } at index 14 is not\\)`,
      ),
    ]),
    ["text/plain;\u0000", /U\+0000 at index 11/],
    ["text/plain; a=\u0100", /U\+0100 at index 14/],
    ["text/\ufeffplain", /U\+FEFF at index 5/],
    ["text/plain; charset=utf-8\u202e", /U\+202E/],
    [
      "x".repeat(200) + "/" + "y".repeat(55),
      /at most 255 characters \(it has 256\)/,
    ],
    ["a/" + "b".repeat(50 * 1024), /at most 255 characters/],
    ["text", /'type\/subtype'.*RFC 9110/],
    ["text/plain; a", /RFC 9110 media-type/],
    ['text/plain; a="unterminated', /RFC 9110 media-type/],
    ["text/pla in", /RFC 9110 media-type/],
    ["text/plain; a=b c", /RFC 9110 media-type/],
    ["(text)/plain", /RFC 9110 media-type/],
  ];
  for (const [mimeType, expected] of cases) {
    const error = await refusedUpload(server, { name: "n", mimeType });
    const what = JSON.stringify(mimeType.slice(0, 40));
    assert(
      error.message.startsWith("field 'mimeType' is "),
      `${what}: ${error.message}`,
    );
    assertStringIncludes(error.message, "; expected a MIME type", what);
    assertMatch(error.message, expected, what);
    assert(error.message.length < 400, `${what}: a bounded message`);
  }
  assertEquals([...server.registry.all()].length, 0, "nothing was created");

  // What the grammar allows is accepted and served as it was given.
  for (
    const mimeType of [
      "text/plain",
      'text/plain; charset="utf-8"; q="a\\"b;c"',
      "application/vnd.a+json;  v=1 ;",
      "x".repeat(200) + "/" + "y".repeat(54),
      "a/b;\tc=d",
    ]
  ) {
    let reference = "";
    const status = await upload(server.url, encoder.encode("ok\n"), {
      name: "fine",
      mimeType,
      onReady: (u) => reference = u.reference,
    });
    assertEquals(status.mimeType, mimeType);
    const url = new URL(reference);
    url.protocol = "http:";
    const response = await fetch(url);
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), mimeType);
    assertEquals(await response.text(), "ok\n");
  }
});

Deno.test("hostile fields: a name with a lone surrogate, empty or over 1024 characters, and metadata over 64 KiB, are refused with invalid-field", async () => {
  await using server = await startTestServer();
  const cases: [string, RegExp][] = [
    [
      "a\ud800b",
      /well-formed Unicode \(a lone surrogate U\+D800 at index 1 is not\)/,
    ],
    ["\udc00", /lone surrogate U\+DC00 at index 0/],
    ["end\udbff", /lone surrogate U\+DBFF at index 3/],
    ["", /a non-empty string of at most 1024 characters/],
    ["n".repeat(1025), /a non-empty string of at most 1024 characters/],
  ];
  for (const [name, expected] of cases) {
    const error = await refusedUpload(server, { name });
    assert(error.message.startsWith("field 'name' is "), error.message);
    assertMatch(error.message, expected);
  }
  const metadata = await refusedUpload(server, {
    name: "n",
    metadata: { k: "v".repeat(64 * 1024) },
  });
  assertMatch(metadata.message, /^field 'metadata' is .*at most 65536 bytes/);
  assertEquals([...server.registry.all()].length, 0, "nothing was created");

  // At the limits, and with controls (shown escaped by the viewer): accepted.
  for (const name of ["漢".repeat(1024), "😀".repeat(512), "a\u202eb\u0001"]) {
    const status = await upload(server.url, encoder.encode("x"), { name });
    assertEquals(status.name, name);
  }
});

/** Every way bytes are answered over HTTP, for one resource. */
function byteRoutes(id: string): string[] {
  return [
    `resources/${id}`,
    `resources/${id}/lines?tail=1`,
    `resources/${id}?follow=1`,
    `resources/${id}/lines?follow=1`,
  ];
}

Deno.test("hostile fields: resources created past validation (the embedding API) still get valid headers, never a crash", async () => {
  await using server = await startTestServer();
  const bytes = encoder.encode("hostile but harmless\n");
  const hostile: [string, string][] = [
    ...CONTROLS.map((c): [string, string] => [`n${c}`, `text/plain; a=${c}`]),
    ["a\ud800b\udc00", "text/plain; a=\u0100"],
    ["\u202efdp.exe", "text/\ufeffplain"],
    ['"quoted" \\ %41 / name', "text/plain;\u0000"],
    ["n".repeat(3 * MIB), "a/" + "b".repeat(3 * MIB)],
  ];
  const ids: string[] = [];
  for (const [name, mimeType] of hostile) {
    const resource = await server.registry.create({
      name,
      mimeType,
      metadata: {},
    });
    await resource.append(bytes);
    await resource.complete();
    ids.push(resource.status.id);
  }
  for (const id of ids) {
    for (const route of byteRoutes(id)) {
      for (const method of ["GET", "HEAD"]) {
        const response = await fetch(new URL(route, server.url), { method });
        assertEquals(response.status, 200, `${method} ${route}`);
        assertEquals(
          response.headers.get("content-type"),
          "application/octet-stream",
        );
        const disposition = response.headers.get("content-disposition")!;
        assertMatch(
          disposition,
          /^inline; filename="[\x20-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9%._~!#$&+^`|-]*$/,
        );
        assert(disposition.length < 1200, `${disposition.length} characters`);
        const body = await response.text();
        assertEquals(body, method === "HEAD" ? "" : "hostile but harmless\n");
      }
    }
  }
  // The bidi override never reaches the saved file name.
  const rlo = await fetch(new URL(`resources/${ids.at(-3)}`, server.url));
  await rlo.body?.cancel();
  assertEquals(
    rlo.headers.get("content-disposition"),
    `inline; filename="_fdp.exe"; filename*=UTF-8''_fdp.exe`,
  );
  const quoted = await fetch(new URL(`resources/${ids.at(-2)}`, server.url));
  await quoted.body?.cancel();
  assertEquals(
    quoted.headers.get("content-disposition"),
    `inline; filename="_quoted_ _ _41 _ name"; filename*=UTF-8''%22quoted%22%20_%20%2541%20_%20name`,
  );
  // The viewer renders them, bounded, escaping what is invisible.
  const listing = await fetch(new URL("view/", server.url));
  assertEquals(listing.status, 200);
  const html = await listing.text();
  assert(html.length < 200_000, `the listing is ${html.length} characters`);
  assertStringIncludes(
    html,
    `<bdi><span class="ctl">\\u202E</span>fdp.exe</bdi>`,
  );
  for (const id of ids) {
    const page = await fetch(new URL(`view/${id}`, server.url));
    assertEquals(page.status, 200);
    const text = await page.text();
    // Bounded past its script (which is the same on every page).
    assert(
      text.length - PAGE_SCRIPT.length < 64_000,
      `the page of ${id} is ${text.length} characters`,
    );
  }
  const root = await fetch(server.url);
  assertEquals(root.status, 200, "the server is alive");
  await root.body?.cancel();
});

// ---------------------------------------------------------------------------
// Statuses already stored with bad fields, served by a restarted subprocess

interface StoredCase {
  name: string;
  mimeType: string;
  /** What the restarted server serves instead. */
  served: { name: string; mimeType: string };
}

const STORED: StoredCase[] = [
  ...["\u0001", "\u001f", "\u007f", "\u0000", "\u0100", "\ufeff"].map((c) => ({
    name: "log.txt",
    mimeType: `text/plain; a=${c}`,
    served: { name: "log.txt", mimeType: "application/octet-stream" },
  })),
  {
    name: "lone\ud800surrogate",
    mimeType: "text/plain",
    served: { name: "lone\ufffdsurrogate", mimeType: "text/plain" },
  },
  {
    name: "n".repeat(MIB),
    mimeType: "a/" + "b".repeat(MIB),
    served: { name: "n".repeat(1024), mimeType: "application/octet-stream" },
  },
];

async function writeStored(dataDir: string, entry: StoredCase): Promise<{
  id: string;
  data: Uint8Array;
}> {
  const id = newResourceId();
  const data = encoder.encode(`bytes of ${id}\n`);
  const now = new Date().toISOString();
  const status: ResourceStatus = {
    id,
    name: entry.name,
    mimeType: entry.mimeType,
    metadata: {},
    status: "COMPLETED",
    size: data.byteLength,
    createdAt: now,
    updatedAt: now,
    finishedAt: now,
    sha256: await sha256(data),
  };
  const folder = `${dataDir}/${id.slice(0, 2)}`;
  await Deno.mkdir(folder, { recursive: true });
  await Deno.writeFile(`${folder}/${id}.data`, data);
  await Deno.writeTextFile(`${folder}/${id}.json`, JSON.stringify(status));
  return { id, data };
}

/** `server/main.ts` as a subprocess, with its stderr kept for assertions. */
async function spawnWithLog(dataDir: string): Promise<{
  url: URL;
  stop: () => Promise<{ code: number; stderr: string }>;
  exited: Promise<Deno.CommandStatus>;
}> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVER_MAIN, "--port", "0", "--data-dir", dataDir],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) {
      await child.status;
      throw new Error(`server exited before listening: ${await stderr}`);
    }
    text += value;
  }
  const match = text.match(/^Listening on (http:\/\/\S+)\n/);
  if (!match) throw new Error(`unexpected first line: ${text}`);
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })();
  return {
    url: new URL(match[1]),
    exited: child.status,
    stop: async () => {
      child.kill("SIGTERM");
      const { code } = await child.status;
      await drained;
      return { code, stderr: await stderr };
    },
  };
}

Deno.test("hostile fields: a server restarted on statuses stored with bad MIME types and names serves them sanitized, logs it, and does not die", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "spool-hostile-" });
  try {
    const written = [];
    for (const entry of STORED) {
      written.push({ ...entry, ...await writeStored(dataDir, entry) });
    }
    for (const round of [1, 2]) {
      const server = await spawnWithLog(dataDir);
      let died = false;
      server.exited.then(() => died = true);
      for (const { id, data, served } of written) {
        for (const method of ["GET", "HEAD"]) {
          const response = await fetch(new URL(`resources/${id}`, server.url), {
            method,
          });
          assertEquals(response.status, 200, `round ${round}: ${method} ${id}`);
          assertEquals(response.headers.get("content-type"), served.mimeType);
          const body = new Uint8Array(await response.arrayBuffer());
          assertEquals(body, method === "GET" ? data : new Uint8Array());
        }
        const status = await (await fetch(
          new URL(`resources/${id}/status`, server.url),
        )).json() as ResourceStatus;
        assertEquals(status.mimeType, served.mimeType);
        assertEquals(status.name, served.name);
        assertEquals(status.sha256, await sha256(data), "bytes untouched");
        const page = await fetch(new URL(`view/${id}`, server.url));
        assertEquals(page.status, 200);
        const html = await page.text();
        assert(
          html.length - PAGE_SCRIPT.length < 64_000,
          `/view/${id}: ${html.length} characters`,
        );
      }
      const listing = await fetch(new URL("view/", server.url));
      assertEquals(listing.status, 200);
      const html = await listing.text();
      assert(
        html.length - LISTING_SCRIPT.length < 64_000,
        `/view/: ${html.length} characters`,
      );
      const root = await fetch(server.url);
      assertEquals(root.status, 200);
      await root.body?.cancel();
      assert(!died, `round ${round}: the server is still running`);
      const { code, stderr } = await server.stop();
      assertEquals(code, 0, stderr);
      assert(!stderr.includes("panicked"), stderr);
      const changes = stderr.split("\n").filter((line) =>
        line.includes(": stored ")
      );
      if (round === 1) {
        // One line per changed field, naming the resource, quoting the old value.
        assertEquals(changes.length, 9, stderr);
        assertStringIncludes(
          stderr,
          `spool: resource ${
            written[0].id
          }: stored mimeType "text/plain; a=\\u0001" is not a valid MIME type`,
        );
        assertStringIncludes(stderr, `now "application/octet-stream"`);
        assertStringIncludes(
          stderr,
          `spool: resource ${
            written[6].id
          }: stored name "lone\\ud800surrogate" is not a name`,
        );
        assertStringIncludes(stderr, `…" (1048576 characters)`);
      } else {
        // The sanitized statuses were saved: nothing to change any more.
        assertEquals(changes, [], stderr);
      }
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
