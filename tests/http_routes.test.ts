/**
 * Every HTTP route of the server (issue 11, item 16): one error body shape
 * `{code, message}` everywhere, `405` with `Allow` for methods other than
 * `GET` and `HEAD`, and `HEAD` answered without a body, over HTTP/1.1 and
 * over HTTP/2 (TLS; `curl --http2`, since Deno's fetch tolerates a body on a
 * `HEAD` answer that curl reports as a PROTOCOL_ERROR).
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { upload } from "../client/mod.ts";
import { ERROR_CODES } from "../protocol/mod.ts";
import { guardResponse } from "../server/_http_guard.ts";
import { startTestServer, type TestServer } from "./_helpers.ts";
import { captureConsole } from "./_fuzz.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);
const MISSING_ID = "AAAAAAAAAAAAAAAAAAAAAA";

async function uploadedId(server: TestServer): Promise<string> {
  const status = await upload(server.url, new TextEncoder().encode("a\nb\n"), {
    name: "routes.txt",
    mimeType: "text/plain",
    caCerts: [await Deno.readTextFile(new URL("ca.pem", FIXTURES))],
  });
  return status.id;
}

/** The paths of every route, for a resource `id`. */
function routes(id: string): string[] {
  return [
    "",
    "upload",
    "view",
    "view/",
    `view/${id}`,
    "view/events",
    `resources/${id}`,
    `resources/${id}?follow=1`,
    `resources/${id}/status`,
    `resources/${id}/events`,
    `resources/${id}/lines`,
    `resources/${id}/lines?tail=1&follow=1`,
    `resources/${id}/checkpoints`,
  ];
}

/** Checks that `response` is the one error shape with `code`; returns its message. */
async function assertErrorBody(
  response: Response,
  status: number,
  code: string,
  what: string,
): Promise<string> {
  assertEquals(response.status, status, what);
  assertMatch(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = await response.json();
  assertEquals(
    Object.keys(body),
    ["code", "message"],
    `${what}: ${JSON.stringify(body)}`,
  );
  assertEquals(body.code, code, what);
  assert((ERROR_CODES as readonly string[]).includes(body.code), what);
  assert(typeof body.message === "string" && body.message.length > 10, what);
  return body.message;
}

/** A WebSocket handshake sent by hand, to read the HTTP answer it gets. */
async function handshakeAnswer(url: URL): Promise<string> {
  const connection = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  try {
    await connection.write(new TextEncoder().encode(
      `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ));
    let text = "";
    const buffer = new Uint8Array(4096);
    const decoder = new TextDecoder();
    for (;;) {
      const read = await connection.read(buffer);
      if (read === null) return text;
      text += decoder.decode(buffer.subarray(0, read), { stream: true });
      const [head, body] = text.split("\r\n\r\n");
      const length = head.match(/content-length: (\d+)/i)?.[1];
      if (body !== undefined && length && body.length >= Number(length)) {
        return text;
      }
    }
  } finally {
    connection.close();
  }
}

Deno.test("http routes: every refusal is {code, message} from one place, with a known code", async () => {
  await using server = await startTestServer();
  const id = await uploadedId(server);
  const cases: [string, RequestInit, number, string][] = [
    ["nope", {}, 404, "not-found"],
    [`resources/${id}/`, {}, 404, "not-found"],
    [`resources/${id}/nope`, {}, 404, "not-found"],
    [`resources/${id}//status`, {}, 404, "not-found"],
    [`resources/${MISSING_ID}`, {}, 404, "not-found"],
    ["resources/%ZZ", {}, 404, "not-found"],
    [`view/${MISSING_ID}`, {}, 404, "not-found"],
    ["upload", {}, 426, "invalid-field"],
    ["", { method: "POST" }, 405, "method-not-allowed"],
    [`resources/${id}?follow=yes`, {}, 400, "invalid-field"],
    [`resources/${id}/lines?start=5&end=1`, {}, 400, "invalid-range"],
    [`resources/${id}/lines?start=x`, {}, 400, "invalid-field"],
    [
      `resources/${id}`,
      { headers: { range: "bytes=100-" } },
      416,
      "range-not-satisfiable",
    ],
    [`resources/${id}?follow=1&start=5`, {}, 416, "range-not-satisfiable"],
  ];
  for (const [path, init, status, code] of cases) {
    const response = await fetch(new URL(path, server.url), init);
    await assertErrorBody(
      response,
      status,
      code,
      `${init.method ?? "GET"} /${path}`,
    );
  }
  const upgrade = await fetch(new URL("upload", server.url));
  await upgrade.body?.cancel();
  assertEquals(upgrade.headers.get("upgrade"), "websocket");

  // A WebSocket handshake on a subpath is refused with the same body.
  const answer = await handshakeAnswer(
    new URL(`resources/${id}/status`, server.url),
  );
  assertMatch(answer, /^HTTP\/1\.1 404 /);
  const body = JSON.parse(answer.split("\r\n\r\n")[1]);
  assertEquals(Object.keys(body), ["code", "message"]);
  assertEquals(body.code, "not-found");

  // With read tokens: 403 forbidden, on resources and on the listing.
  await using guarded = await startTestServer({ readTokens: true });
  const secret = await uploadedId(guarded);
  for (const path of [`resources/${secret}`, `view/${secret}`, "view/"]) {
    const response = await fetch(new URL(path, guarded.url));
    const message = await assertErrorBody(response, 403, "forbidden", path);
    if (path === "view/") assertMatch(message, /the listing is off/);
  }
});

Deno.test("http routes: methods other than GET and HEAD get 405 with Allow on every route; unknown paths stay 404", async () => {
  await using server = await startTestServer();
  const id = await uploadedId(server);
  for (const path of routes(id)) {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const response = await fetch(new URL(path, server.url), {
        method,
        body: method === "OPTIONS" ? undefined : "x",
      });
      const message = await assertErrorBody(
        response,
        405,
        "method-not-allowed",
        `${method} /${path}`,
      );
      assertEquals(response.headers.get("allow"), "GET, HEAD");
      assertMatch(
        message,
        new RegExp(
          `^method ${method} is not allowed on /.*; expected GET, HEAD$`,
        ),
      );
    }
  }
  const unknown = await fetch(new URL("nope", server.url), { method: "POST" });
  await assertErrorBody(unknown, 404, "not-found", "POST /nope");
  // GET still answers as before.
  const root = await fetch(server.url);
  assertEquals(await root.json(), {
    name: "spool",
    upload: "/upload",
    resources: "/resources/{id}",
  });
});

/** `[status, expected status]` of every HEAD this test makes. */
function headCases(id: string): [string, number, Record<string, string>?][] {
  return [
    ...routes(id).map((path): [string, number] => [
      path,
      path === "upload" ? 426 : path === "view" ? 308 : 200,
    ]),
    ["nope", 404],
    [`resources/${MISSING_ID}`, 404],
    [`resources/${id}`, 416, { range: "bytes=99-" }],
    [`resources/${id}?follow=yes`, 400],
  ];
}

Deno.test("http routes: HEAD answers every route with its status and headers but no body, over HTTP/1.1", async () => {
  await using server = await startTestServer();
  const id = await uploadedId(server);
  for (const [path, status, headers] of headCases(id)) {
    const get = await fetch(new URL(path, server.url), {
      headers,
      redirect: "manual",
    });
    await get.body?.cancel();
    const head = await fetch(new URL(path, server.url), {
      method: "HEAD",
      headers,
      redirect: "manual",
    });
    assertEquals(head.status, status, `HEAD /${path}`);
    assertEquals(get.status, status, `GET /${path}`);
    assertEquals(await head.text(), "", `HEAD /${path}`);
    assertEquals(
      head.headers.get("content-type"),
      get.headers.get("content-type"),
      `HEAD /${path}`,
    );
  }
});

const curl = await new Deno.Command("which", {
  args: ["curl"],
  stdout: "piped",
  stderr: "null",
})
  .output()
  .then((out) =>
    out.success ? new TextDecoder().decode(out.stdout).trim() : undefined
  );
if (curl === undefined) {
  console.warn(
    "curl is not installed (`which curl` found none): skipping the HTTP/2 HEAD test",
  );
}

Deno.test({
  name:
    "http routes: HEAD answers every route without a body over HTTP/2 (TLS, curl --http2)",
  ignore: curl === undefined,
  async fn() {
    const read = (name: string) => Deno.readTextFile(new URL(name, FIXTURES));
    await using server = await startTestServer({
      cert: await read("cert.pem"),
      key: await read("key.pem"),
    });
    const id = await uploadedId(server);
    for (const [path, status, headers] of headCases(id)) {
      const out = await new Deno.Command(curl!, {
        args: [
          "--silent",
          "--show-error",
          "--http2",
          "--head",
          "--max-time",
          "20",
          "--cacert",
          new URL("ca.pem", FIXTURES).pathname,
          ...Object.entries(headers ?? {}).flatMap((
            [k, v],
          ) => ["--header", `${k}: ${v}`]),
          new URL(path, server.url).href,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, `HEAD /${path} over HTTP/2: ${stderr}`);
      const statusLine = new TextDecoder().decode(out.stdout).split("\r\n")[0];
      assertEquals(statusLine.trim(), `HTTP/2 ${status}`, `HEAD /${path}`);
    }
  },
});

Deno.test("http routes: the last guard turns a header Deno cannot write, or an exception, into the one 500 body, and logs it", async () => {
  using logged = captureConsole();
  const routes: Record<string, () => Response | Promise<Response>> = {
    // A control character passes `Headers` but would panic Deno's writer.
    "/bad-header": () => new Response("x", { headers: { "x-bad": "a\u0001" } }),
    "/throws": () => {
      throw new Error("boom");
    },
    "/rejects": () => Promise.reject(new Error("async boom")),
    "/fine": () => new Response("fine", { headers: { "x-ok": "a\tb" } }),
  };
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      guardResponse(request, (r) => routes[new URL(r.url).pathname]()),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  for (const path of ["/bad-header", "/throws", "/rejects"]) {
    const message = await assertErrorBody(
      await fetch(base + path),
      500,
      "internal",
      path,
    );
    assertMatch(message, /^(the answer to|answering) GET \//);
    const head = await fetch(base + path, { method: "HEAD" });
    assertEquals(head.status, 500);
    assertEquals(await head.text(), "");
  }
  const fine = await fetch(base + "/fine");
  assertEquals(await fine.text(), "fine");
  assertEquals(fine.headers.get("x-ok"), "a\tb");
  assertEquals(logged.lines.length, 6, logged.lines.join("\n"));
  assertMatch(logged.lines[0], /invalid x-bad header "a\\u0001"/);
  assertMatch(logged.lines[2], /answering GET \/throws failed: .*boom/);
});
