/**
 * The live viewer (`/view/…`) for real: a server, an upload through the
 * client, and Debian's chromium driven headless by playwright-core. Waits are
 * on the page's state (locators), never sleeps. No `page.waitForFunction`:
 * its polling evaluates strings in the page, which the page's CSP forbids.
 *
 * Set `SPOOL_SCREENSHOT_DIR` to keep the screenshots the tests take.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import type { Page } from "playwright-core";
import { startUpload } from "../mod.ts";
import { sha256, startTestServer } from "./_helpers.ts";
import { withPage } from "./_browser.ts";
import { screenshot, waitForLine } from "./_viewer.ts";
import { TAIL_BYTES } from "../server/viewer/pages.ts";
import { FaultProxy } from "./_proxy.ts";

const encoder = new TextEncoder();
/** A well-formed id no server made. */
const MISSING_ID = "AAAAAAAAAAAAAAAAAAAAAA";
const XSS_NAME =
  `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">"'&amp;.log`;

/** The absolute URL a link on the page points to. */
async function linkOf(page: Page, selector: string): Promise<string> {
  const href = await page.locator(selector).getAttribute("href");
  if (href === null) throw new Error(`${selector} has no href`);
  return new URL(href, page.url()).href;
}

function paneScroll(page: Page): Promise<{ top: number; max: number }> {
  return page.evaluate(`(() => {
    const pane = document.getElementById("log");
    return { top: pane.scrollTop, max: pane.scrollHeight - pane.clientHeight };
  })()`) as Promise<{ top: number; max: number }>;
}

Deno.test("viewer: chromium follows an upload line by line to COMPLETED", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "build.log",
    mimeType: "text/plain; charset=utf-8",
  });
  const written: string[] = [];
  await withPage(async (page, problems) => {
    const response = await page.goto(
      new URL(`view/${upload.id}`, server.url).href,
    );
    assertEquals(response?.status(), 200);
    const headers = response!.headers();
    assertMatch(headers["content-security-policy"], /default-src 'self'/);
    assertMatch(
      headers["content-security-policy"],
      /style-src 'unsafe-inline'/,
    );
    assertEquals(headers["x-content-type-options"], "nosniff");
    assertEquals(await page.locator("#name").textContent(), "build.log");
    assertEquals(await page.locator("#status").textContent(), "INITIATED");

    // Lines appear while the upload runs, step by step.
    for (let step = 1; step <= 4; step++) {
      const lines = Array.from(
        { length: 3 },
        (_, i) => `step ${step} line ${i + 1}: <b>not bold</b> & ünïcødé ✓`,
      );
      written.push(...lines);
      await upload.write(encoder.encode(lines.map((l) => `${l}\n`).join("")));
      for (const line of lines) await waitForLine(page, line);
      await page.locator("#status", { hasText: "IN_PROGRESS" }).waitFor();
      if (step === 2) await screenshot(page, "viewer-live");
    }
    // A line in two writes, split inside a multi-byte character.
    const split = encoder.encode("split ✓ line\n");
    await upload.write(split.subarray(0, 7));
    await upload.write(split.subarray(7));
    written.push("split ✓ line");
    await waitForLine(page, "split ✓ line");
    assertEquals(await page.locator("#log b").count(), 0, "bytes are text");

    const final = await upload.finish();
    await upload.closed();
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    await page.locator("#stream-state", { hasText: "end of resource" })
      .waitFor();
    assertEquals(
      await page.locator("#size").getAttribute("title"),
      `${final.size.toLocaleString("en-US")} bytes`,
    );
    assertMatch((await page.locator("#size").textContent())!, / B$/);
    assertStringIncludes(
      (await page.locator("#sha").textContent())!,
      final.sha256!,
    );
    assertEquals(await page.title(), "build.log — COMPLETED — Spool");
    const shown = await page.locator("#log > div").allTextContents();
    assertEquals(shown, written, "every line once, in order");

    const href = await linkOf(page, "#download");
    assertEquals(new URL(href).pathname, `/resources/${upload.id}`);
    const downloaded = await fetch(href);
    assertEquals(downloaded.status, 200);
    assertEquals(
      await downloaded.text(),
      written.map((l) => `${l}\n`).join(""),
    );

    const png = await screenshot(page, "viewer-completed");
    assertEquals([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
    assert(png.byteLength > 10_000, `screenshot of ${png.byteLength} bytes`);
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer: auto-scroll follows the bottom, stops when scrolled up, and the DOM keeps the last 5,000 lines", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "long.log",
    mimeType: "text/plain",
  });
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await page.locator("#status", { hasText: "INITIATED" }).waitFor();
    const lines = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => `line ${from + i}\n`).join(
        "",
      );
    await upload.write(encoder.encode(lines(0, 300)));
    await waitForLine(page, "line 299");
    let scroll = await paneScroll(page);
    assert(scroll.max > 0, "300 lines overflow the pane");
    assert(
      scroll.max - scroll.top < 8,
      "following keeps the pane at the bottom",
    );
    assertEquals(await page.locator("#follow").isChecked(), true);

    // The reader scrolls up: following stops and new lines do not move the pane.
    await page.locator("#log").hover();
    await page.mouse.wheel(0, -2000);
    await page.locator("#follow:not(:checked)").waitFor();
    const before = (await paneScroll(page)).top;
    await upload.write(encoder.encode(lines(300, 400)));
    await waitForLine(page, "line 399");
    scroll = await paneScroll(page);
    assertEquals(scroll.top, before, "the pane stays where the reader is");
    assert(scroll.max - scroll.top > 100);

    // The toggle resumes following.
    // (Its change handler scrolls at once.)
    await page.locator("#follow").check();
    scroll = await paneScroll(page);
    assert(scroll.max - scroll.top < 8, "back at the bottom");

    // Past 5,000 lines the oldest leave the page, with a note and a link.
    await upload.write(encoder.encode(lines(400, 6500)));
    await upload.finish();
    await upload.closed();
    await waitForLine(page, "line 6499");
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    const count = await page.locator("#log > div").count();
    assert(count <= 5000, `${count} lines in the DOM`);
    assertEquals(
      await page.locator("#log > div").first().textContent(),
      `line ${6500 - count}`,
    );
    await page.locator("#earlier").waitFor();
    assertEquals(
      await page.locator("#earlier-text").textContent(),
      `Lines 1–${(6500 - count).toLocaleString("en-US")} are not on the page.`,
    );
    assertEquals(await page.locator("#lines").textContent(), "6,500 lines");
    assertEquals(
      new URL(await linkOf(page, "#earlier a")).pathname,
      `/resources/${upload.id}`,
    );
    scroll = await paneScroll(page);
    assert(scroll.max - scroll.top < 8, "still at the bottom");
    await screenshot(page, "viewer-trimmed");
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer: the listing shows resources newest first, and names render as text", async () => {
  await using server = await startTestServer();
  const first = await startUpload(server.url, {
    name: "first.txt",
    mimeType: "text/plain",
  });
  await first.send(encoder.encode("one\n"));
  await first.closed();
  const xss = await startUpload(server.url, {
    name: XSS_NAME,
    mimeType: "text/plain",
  });
  await xss.write(encoder.encode("<script>window.__xss = 3</script>\n"));
  await withPage(async (page, problems) => {
    const response = await page.goto(new URL("view/", server.url).href);
    assertEquals(response?.status(), 200);
    assertEquals(response!.headers()["x-content-type-options"], "nosniff");
    const names = await page.locator("tbody td.name").allTextContents();
    assertEquals(names, [XSS_NAME, "first.txt"], "newest first");
    const badges = await page.locator("tbody .badge").allTextContents();
    assertEquals(badges[1], "COMPLETED");
    assertEquals(await page.locator("tbody img").count(), 0);
    await screenshot(page, "viewer-listing");

    // The link opens the resource's page; the name is text there too.
    await page.locator("tbody a", { hasText: "first.txt" }).click();
    await page.waitForURL(`**/view/${first.id}`);
    await waitForLine(page, "one");
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();

    await page.goto(new URL(`view/${xss.id}`, server.url).href);
    await waitForLine(page, "<script>window.__xss = 3</script>");
    assertEquals(await page.locator("#name").textContent(), XSS_NAME);
    assertEquals(await page.title(), `${XSS_NAME} — IN_PROGRESS — Spool`);
    assertEquals(await page.locator("img").count(), 0);
    assertEquals(await page.evaluate("typeof window.__xss"), "undefined");
    await page.goBack();
    assertEquals(await page.evaluate("typeof window.__xss"), "undefined");
    assertEquals(problems.list, []);
  });
  await xss.finish();
  await xss.closed();
});

Deno.test("viewer: a failed upload shows FAILED with its error; a binary one shows no pane", async () => {
  await using server = await startTestServer();
  const failing = await startUpload(server.url, {
    name: "doomed.log",
    mimeType: "text/plain",
  });
  const binary = await startUpload(server.url, { name: "blob.bin" });
  await binary.write(new Uint8Array([0, 1, 2, 255]));
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${failing.id}`, server.url).href);
    await failing.write(encoder.encode("before the failure\n"));
    await waitForLine(page, "before the failure");
    failing.abort("the build was cancelled");
    await failing.closed();
    await page.locator("#status", { hasText: "FAILED" }).waitFor();
    await page.locator("#error", { hasText: "Failed: " }).waitFor();
    await page.locator("#stream-state", { hasText: "stopped" }).waitFor();
    assertEquals(await page.title(), "doomed.log — FAILED — Spool");

    await page.goto(new URL(`view/${binary.id}`, server.url).href);
    assertEquals(await page.locator("#log").count(), 0);
    await page.locator(".binary", { hasText: "application/octet-stream" })
      .waitFor();
    await page.locator("#size", { hasText: "4 B" }).waitFor();
    await binary.write(new Uint8Array(3000));
    await page.locator("#size", { hasText: "2.9 KiB" }).waitFor();
    await binary.finish();
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    // The follow response is aborted when the resource fails, by design;
    // chromium logs that as a network error.
    assertEquals(
      problems.list.filter((p) =>
        !p.includes("ERR_INCOMPLETE_CHUNKED_ENCODING")
      ),
      [],
    );
  });
  await binary.closed();
});

Deno.test("viewer: names and reasons with bidi overrides and control characters are isolated and shown as escapes, by the server and by the script", async () => {
  await using server = await startTestServer();
  const name = "invoice\u202efdp.exe\u0007";
  const shown = "invoice\\u202Efdp.exe\\u0007";
  const upload = await startUpload(server.url, {
    name,
    mimeType: "text/plain",
  });
  const page = new URL(`view/${upload.id}`, server.url).href;
  await withPage(async (page_, problems) => {
    await page_.goto(page);
    // Server-rendered: isolated, escapes marked, a safe download name.
    assertEquals(await page_.locator("#name").textContent(), shown);
    assertEquals(await page_.locator("#name bdi").count(), 1);
    assertEquals(await page_.locator("#name .ctl").allTextContents(), [
      "\\u202E",
      "\\u0007",
    ]);
    assertEquals(
      await page_.locator("#download").getAttribute("download"),
      "invoice_fdp.exe_",
    );
    await upload.write(encoder.encode("a line\n"));
    await waitForLine(page_, "a line");
    await page_.locator("#status", { hasText: "IN_PROGRESS" }).waitFor();
    // Written by the script from the status it received.
    assertEquals(await page_.title(), `${shown} — IN_PROGRESS — Spool`);

    // A failure reason with an override and a NUL (the embedding API can set any).
    await server.registry.get(upload.id)!.fail("disk \u202eLLUF\u0000");
    await page_.locator("#status", { hasText: "FAILED" }).waitFor();
    assertEquals(
      await page_.locator("#error").textContent(),
      "Failed: disk \\u202ELLUF\\u0000",
    );
    assertEquals(await page_.title(), `${shown} — FAILED — Spool`);
    await screenshot(page_, "viewer-hostile-name");

    assertEquals(await page_.locator("#error .ctl").count(), 2);
    // The page made after the failure shows it the same way, marked.
    const html = await (await fetch(page)).text();
    assertStringIncludes(
      html,
      `Failed: disk <span class="ctl">\\u202E</span>LLUF<span class="ctl">\\u0000</span>`,
    );
    await page_.goto(page);
    assertEquals(
      await page_.locator("#error").textContent(),
      "Failed: disk \\u202ELLUF\\u0000",
    );
    assertEquals(await page_.locator("#error .ctl").count(), 2);
    await page_.goto(new URL("view/", server.url).href);
    assertEquals(await page_.locator("tbody td.name").allTextContents(), [
      shown,
    ]);
    assertEquals(await page_.locator("tbody td.name bdi .ctl").count(), 2);
    await screenshot(page_, "viewer-hostile-listing");
    assertEquals(
      problems.list.filter((p) =>
        !p.includes("ERR_INCOMPLETE_CHUNKED_ENCODING")
      ),
      [],
    );
  });
  // The server failed the resource under the uploader; it closes its side.
  upload.abort("the test is over");
  await upload.closed();
});

Deno.test("viewer: with read tokens the page needs the token and uses it; the listing is 403", async () => {
  await using server = await startTestServer({ readTokens: true });
  const upload = await startUpload(server.url, {
    name: "secret.log",
    mimeType: "text/plain",
  });
  const token = new URL(upload.reference).searchParams.get("token")!;
  assert(token, "the reference carries a read token");
  const view = new URL(`view/${upload.id}`, server.url);

  const listing = await fetch(new URL("view/", server.url));
  assertEquals(listing.status, 403);
  await listing.body?.cancel();
  const bare = await fetch(view);
  assertEquals(bare.status, 403);
  await bare.body?.cancel();
  const wrong = await fetch(`${view}?token=wrong`);
  assertEquals(wrong.status, 403);
  await wrong.body?.cancel();

  await withPage(async (page, problems) => {
    await page.goto(`${view}?token=${token}`);
    await upload.write(encoder.encode("visible with the token\n"));
    await waitForLine(page, "visible with the token");
    await upload.finish();
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    const href = await linkOf(page, "#download");
    assertEquals(new URL(href).searchParams.get("token"), token);
    assertEquals(await page.locator(".crumb").count(), 0, "no listing link");
    assertEquals(problems.list, []);
  });
  await upload.closed();
});

Deno.test("viewer: server-rendered HTML escapes every string and sends strict headers", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: XSS_NAME,
    mimeType: `text/plain; x="<b>"`,
  });
  const page = await fetch(new URL(`view/${upload.id}`, server.url));
  assertEquals(page.status, 200);
  assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
  assertEquals(page.headers.get("x-content-type-options"), "nosniff");
  const csp = page.headers.get("content-security-policy")!;
  assertMatch(csp, /^default-src 'self'; /);
  assertMatch(csp, /style-src 'unsafe-inline'/);
  assertMatch(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'/);
  assert(!csp.includes("unsafe-eval"));
  const html = await page.text();
  assert(!html.includes("<script>window"), "the name's markup is escaped");
  assert(!html.includes("<img"));
  assert(!html.includes(`x="<b>"`), "the MIME type is escaped");
  assertStringIncludes(html, "x=&quot;&lt;b&gt;&quot;");
  assertStringIncludes(
    html,
    "&lt;script&gt;window.__xss = 1&lt;/script&gt;",
  );
  assertEquals(html.match(/<script>/g)?.length, 1, "only the page's script");

  const listing = await fetch(new URL("view/", server.url));
  assertEquals(listing.status, 200);
  assertMatch(
    listing.headers.get("content-security-policy")!,
    /script-src 'sha256-[A-Za-z0-9+/]+=*'/,
  );
  const listed = await listing.text();
  assertEquals(listed.match(/<script/g)?.length, 1, "only its own script");
  assert(!listed.includes("<script>window"));
  assert(!listed.includes("<img"));
  assertStringIncludes(listed, `href="./${upload.id}"`);

  const redirect = await fetch(new URL("view", server.url), {
    redirect: "manual",
  });
  assertEquals(redirect.status, 308);
  assertEquals(redirect.headers.get("location"), "view/");
  await redirect.body?.cancel();
  const post = await fetch(new URL(`view/${upload.id}`, server.url), {
    method: "POST",
  });
  assertEquals(post.status, 405);
  await post.body?.cancel();
  const missing = await fetch(
    new URL("view/AAAAAAAAAAAAAAAAAAAAAA", server.url),
  );
  assertEquals(missing.status, 404);
  await missing.body?.cancel();
  await upload.finish();
  await upload.closed();
});

/** The text of the tail pane: its lines joined by newlines. */
async function paneText(page: Page): Promise<string> {
  return (await page.locator("#log > div").allTextContents()).join("\n");
}

/**
 * Asserts that the pane holds exactly `bytes` (as UTF-8 text), by hash: a
 * line each, the `\n` that ends the last line drawing no empty line after it.
 */
async function assertPaneHolds(
  page: Page,
  bytes: Uint8Array,
  what: string,
): Promise<void> {
  const shown = encoder.encode(await paneText(page));
  const expected = bytes.at(-1) === 0x0a ? bytes.subarray(0, -1) : bytes;
  assertEquals(shown.byteLength, expected.byteLength, `${what}: bytes shown`);
  assertEquals(await sha256(shown), await sha256(expected), `${what}: sha256`);
}

/** Lines of text with multi-byte characters, `from` to `to`, each ending in `\n`. */
function textLines(prefix: string, from: number, to: number): Uint8Array {
  return encoder.encode(
    Array.from(
      { length: to - from },
      (_, i) =>
        `${prefix} ${from + i}: ünïcødé ✓ ${"·".repeat((i * 7) % 40)}\n`,
    ).join(""),
  );
}

/** The URLs of the requests `page` makes for the bytes of resource `id`. */
function byteRequests(page: Page, id: string): string[] {
  const urls: string[] = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === `/resources/${id}`) {
      urls.push(`${url.search}${request.headers()["range"] ?? ""}`);
    }
  });
  return urls;
}

Deno.test("viewer: the page of an already-FAILED resource shows its bytes, the FAILED badge and its error, read without a follow", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "failed-before.log",
    mimeType: "text/plain; charset=utf-8",
  });
  const resource = server.registry.get(upload.id)!;
  const bytes = textLines("line", 0, 300);
  resource.append(bytes);
  await resource.settled();
  const final = await resource.fail("the build was cancelled <b>by hand</b>");
  assertEquals(final.size, bytes.byteLength);
  await withPage(async (page, problems) => {
    const requests = byteRequests(page, upload.id);
    const states: string[] = [];
    // Chromium drops the body of a broken follow often, not always: open it
    // a few times.
    for (let load = 1; load <= 5; load++) {
      await page.goto(new URL(`view/${upload.id}`, server.url).href);
      await page.locator("#stream-state", {
        hasText: "stopped: the upload failed",
      }).waitFor();
      assertEquals(await page.locator("#status").textContent(), "FAILED");
      assertEquals(
        await page.locator("#error").textContent(),
        "Failed: the build was cancelled <b>by hand</b>",
      );
      await assertPaneHolds(page, bytes, `load ${load}`);
      states.push((await page.locator("#stream-state").textContent())!);
      if (load === 1) await screenshot(page, "viewer-failed-before-open");
    }
    assertEquals(requests, ["", "", "", "", ""], "plain reads, no follows");
    // No follow, so no broken body for chromium to complain about.
    assertEquals(problems.list, []);
    const shown = bytes.byteLength.toLocaleString("en-US");
    assertEquals(
      states,
      Array(5).fill(`stopped: the upload failed after ${shown} bytes`),
    );
  });
  upload.abort("the test is over");
  await upload.closed();
});

Deno.test("viewer: the page of an already-COMPLETED resource opens at its last bytes (TAIL_BYTES), read without a follow, and loads the lines before", async () => {
  await using server = await startTestServer();
  // Over 256 KiB: several store reads, with characters split between them.
  const bytes = textLines("row", 0, 4000);
  assert(bytes.byteLength > 256 * 1024, `${bytes.byteLength} bytes`);
  const upload = await startUpload(server.url, {
    name: "completed-before.log",
    mimeType: "text/plain; charset=utf-8",
  });
  await upload.send(bytes);
  await upload.closed();
  await withPage(async (page, problems) => {
    const requests = byteRequests(page, upload.id);
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await page.locator("#stream-state", {
      hasText: `end of resource (${
        bytes.byteLength.toLocaleString("en-US")
      } bytes)`,
    }).waitFor();
    assertEquals(await page.locator("#status").textContent(), "COMPLETED");
    assertEquals(await page.locator("#error").textContent(), "");
    // The last bytes, from the first line that starts in them.
    const start = bytes.byteLength - TAIL_BYTES;
    const cut = bytes.indexOf(0x0a, start - 1) + 1;
    await page.locator("#lines", { hasText: "4,000 lines" }).waitFor();
    await assertPaneHolds(page, bytes.subarray(cut), "the tail");
    assertEquals(requests, [`bytes=${start}-`], "one range read, no follow");
    const before = new TextDecoder().decode(bytes.subarray(0, cut))
      .split("\n").length - 1;
    assertEquals(
      await page.locator("#earlier-text").textContent(),
      `Lines 1–${before.toLocaleString("en-US")} are not on the page.`,
    );
    // Back by 1,000 lines a click, to line 1.
    for (let first = before; first > 0; first -= 1000) {
      await page.locator(
        `#log > .line:first-child > .ln[data-n="${first + 1}"]`,
      ).waitFor();
      await page.locator("#load-earlier:enabled").click();
    }
    await page.locator("#earlier").waitFor({ state: "hidden" });
    await assertPaneHolds(page, bytes, "the pane");
    assertEquals(requests, [`bytes=${start}-`], "lines, not bytes, after");
    await screenshot(page, "viewer-completed-before-open");
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer: a resource that FAILS while the page follows it shows every byte up to the failure exactly once", async () => {
  await using server = await startTestServer();
  const ROUNDS = 8;
  await withPage(async (page, problems) => {
    const states: string[] = [];
    const expectedStates: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const upload = await startUpload(server.url, {
        name: `fails-while-followed-${round}.log`,
        mimeType: "text/plain",
      });
      const resource = server.registry.get(upload.id)!;
      const requests = byteRequests(page, upload.id);
      await page.goto(new URL(`view/${upload.id}`, server.url).href);
      const before = textLines(`round ${round} before`, 0, 5);
      resource.append(before);
      await waitForLine(page, new TextDecoder().decode(before).split("\n")[4]);

      // The page's main thread waits in a synchronous request that ends when
      // the gate upload does, so the last bytes and the broken end of the
      // follow reach it together: then chromium often drops those bytes.
      const gate = await startUpload(server.url, { name: "gate" });
      const gateUrl = new URL(`resources/${gate.id}/events`, server.url).href;
      const blocking = page.waitForRequest(gateUrl);
      const blocked = page.evaluate(`(() => {
        const request = new XMLHttpRequest();
        request.open("GET", ${JSON.stringify(gateUrl)}, false);
        request.send();
        return request.status;
      })()`);
      await blocking;
      const burst = textLines(`round ${round} burst`, 0, 2000);
      resource.append(burst);
      await resource.settled();
      const final = await resource.fail(`round ${round} broke`);
      await gate.finish();
      await gate.closed();
      assertEquals(await blocked, 200);

      const all = new Uint8Array([...before, ...burst]);
      assertEquals(final.size, all.byteLength);
      await page.locator("#stream-state", {
        hasText: "stopped: the upload failed",
      }).waitFor();
      assertEquals(await page.locator("#status").textContent(), "FAILED");
      assertEquals(
        await page.locator("#error").textContent(),
        `Failed: round ${round} broke`,
      );
      await assertPaneHolds(page, all, `round ${round}`);
      states.push((await page.locator("#stream-state").textContent())!);
      expectedStates.push(
        `stopped: the upload failed after ${
          all.byteLength.toLocaleString("en-US")
        } bytes`,
      );
      // Follows while live, then at most one range read, from the first
      // byte the page did not have.
      assertMatch(
        requests.join(" "),
        /^\?follow=1&start=0( \?follow=1&start=\d+)*( bytes=\d+-)?$/,
        `round ${round}`,
      );
      if (round === 1) await screenshot(page, "viewer-failed-while-followed");
      upload.abort("the test is over");
      await upload.closed();
    }
    assertEquals(states, expectedStates);
    // The follow of a resource that FAILS is cut off, by design.
    assertEquals(
      problems.list.filter((p) =>
        !p.includes("ERR_INCOMPLETE_CHUNKED_ENCODING")
      ),
      [],
    );
  });
});

/** A refusal page as chromium shows it: status, code, message, hint. */
async function assertRefusalPage(
  page: Page,
  url: string,
  expected: { status: number; code: string; message: RegExp; hint: RegExp },
): Promise<void> {
  const response = await page.goto(url);
  assertEquals(response?.status(), expected.status, url);
  const headers = response!.headers();
  assertEquals(headers["content-type"], "text/html; charset=utf-8", url);
  assertMatch(headers["content-security-policy"], /script-src 'none'/, url);
  assertEquals(headers["x-content-type-options"], "nosniff", url);
  assertEquals(headers["vary"], "accept", url);
  const heading = await page.locator("#title").textContent();
  assertMatch(heading!, new RegExp(`^${expected.status} [A-Z]`), url);
  assertEquals(await page.locator("#code").textContent(), expected.code, url);
  assertMatch((await page.locator("#error").textContent())!, expected.message);
  assertMatch((await page.locator("#hint").textContent())!, expected.hint);
  const text = await page.locator("body").innerText();
  assert(!text.includes(`"code"`), `${url} shows raw JSON: ${text}`);
  assertEquals(await page.locator("script, img").count(), 0, url);
}

/** Asserts the one JSON error body, as a JSON client gets it. */
async function assertJsonRefusal(
  url: string,
  accept: string,
  status: number,
  code: string,
): Promise<void> {
  const response = await fetch(url, { headers: { accept } });
  assertEquals(response.status, status, `${url} (${accept})`);
  assertMatch(response.headers.get("content-type")!, /^application\/json/);
  const body = await response.json();
  assertEquals(Object.keys(body), ["code", "message"]);
  assertEquals(body.code, code);
}

Deno.test("viewer: 403, 404 and 410 on /view/… are readable HTML pages for browsers; JSON clients get the JSON error body", async () => {
  await using guarded = await startTestServer({ readTokens: true });
  const secret = await startUpload(guarded.url, {
    name: "secret.log",
    mimeType: "text/plain",
  });
  await using server = await startTestServer();
  const old = await startUpload(server.url, { name: "old.log" });
  await old.send(encoder.encode("old\n"));
  await old.closed();
  await server.registry.expire(server.registry.get(old.id)!);
  const view = (base: URL, path: string) => new URL(`view/${path}`, base).href;
  const hostile = `<img src=x onerror="window.__xss = 1">`;
  const forbidden = {
    status: 403,
    code: "forbidden",
    message: /read token was presented/,
    hint: /needs the read token: open the reference URL .*\?token=…/,
  };
  const notFound = {
    status: 404,
    code: "not-found",
    message: /^no resource with id /,
    hint: /reference URL/,
  };
  const gone = {
    status: 410,
    code: "gone",
    message: /expired and was deleted/,
    hint: /upload it again/,
  };
  await withPage(async (page, problems) => {
    await assertRefusalPage(page, view(guarded.url, secret.id), forbidden);
    await screenshot(page, "viewer-refused-403");
    await assertRefusalPage(
      page,
      view(guarded.url, `${secret.id}?token=wrong`),
      forbidden,
    );
    await assertRefusalPage(page, view(guarded.url, ""), {
      ...forbidden,
      message: /the listing is off/,
      hint: /lists no resources/,
    });
    assertEquals(await page.locator(".crumb").count(), 0, "no listing link");

    await assertRefusalPage(page, view(server.url, MISSING_ID), notFound);
    await screenshot(page, "viewer-refused-404");
    // The page links to the listing where there is one.
    await page.locator(".crumb a").click();
    await page.waitForURL("**/view/");
    await assertRefusalPage(
      page,
      view(server.url, encodeURIComponent(hostile)),
      notFound,
    );
    assertStringIncludes(
      (await page.locator("#error").textContent())!,
      `no resource with id ${JSON.stringify(hostile)};`,
    );
    assertEquals(await page.evaluate("typeof window.__xss"), "undefined");
    await assertRefusalPage(page, view(server.url, old.id), gone);
    await screenshot(page, "viewer-refused-410");
    // Chromium logs a page answered 4xx as a console error; nothing else.
    assertEquals(
      problems.list.filter((p) =>
        !/the server responded with a status of 40[34]|of 410/.test(p)
      ),
      [],
    );
  });

  // JSON clients (and clients that name no HTML: curl, fetch) get JSON.
  for (
    const accept of [
      "application/json",
      "*/*",
      "text/html;q=0.5, application/json",
    ]
  ) {
    await assertJsonRefusal(
      view(guarded.url, secret.id),
      accept,
      403,
      "forbidden",
    );
    await assertJsonRefusal(view(guarded.url, ""), accept, 403, "forbidden");
    await assertJsonRefusal(
      view(server.url, MISSING_ID),
      accept,
      404,
      "not-found",
    );
    await assertJsonRefusal(view(server.url, old.id), accept, 410, "gone");
  }
  // HEAD: the status and headers of the page, no body.
  const head = await fetch(view(server.url, MISSING_ID), {
    method: "HEAD",
    headers: { accept: "text/html" },
  });
  assertEquals(head.status, 404);
  assertEquals(head.headers.get("content-type"), "text/html; charset=utf-8");
  assertEquals(await head.text(), "");
  secret.abort("the test is over");
  await secret.closed();
});

Deno.test("viewer: after a lost connection the page follows on from the byte it had, a character split at the cut whole, no byte twice", async () => {
  await using server = await startTestServer();
  await using proxy = new FaultProxy(server.url);
  const upload = await startUpload(server.url, {
    name: "cut.log",
    mimeType: "text/plain; charset=utf-8",
  });
  const check = encoder.encode("✓");
  const first = new Uint8Array([
    ...textLines("before", 0, 50),
    ...encoder.encode("split "),
    ...check.subarray(0, 2),
  ]);
  const second = new Uint8Array([
    ...check.subarray(2),
    ...encoder.encode(" here\n"),
    ...textLines("after", 0, 50),
  ]);
  await withPage(async (page, problems) => {
    const requests = byteRequests(page, upload.id);
    await page.goto(new URL(`view/${upload.id}`, proxy.url).href);
    await upload.write(first);
    // The half character is held by the decoder, not shown.
    await page.locator("#log > div").filter({ hasText: /^split $/ }).waitFor();
    await proxy.cut();
    await page.locator("#stream-state", { hasText: "reconnecting" }).waitFor();
    await upload.write(second);
    const joined = page.locator("#log > div").filter({ hasText: / here$/ });
    await joined.waitFor();
    assertEquals(await joined.textContent(), "split ✓ here");
    const final = await upload.finish();
    await page.locator("#stream-state", {
      hasText: `end of resource (${final.size.toLocaleString("en-US")} bytes)`,
    }).waitFor();
    await assertPaneHolds(page, new Uint8Array([...first, ...second]), "pane");
    assertEquals(requests, [
      "?follow=1&start=0",
      `?follow=1&start=${first.byteLength}`,
    ]);
    // The cut broke the open responses; chromium logs that.
    assertEquals(
      problems.list.filter((p) => !/net::ERR_/.test(p)),
      [],
    );
  });
  await upload.closed();
});
