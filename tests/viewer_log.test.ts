/**
 * The log viewer's features in chromium (headless, playwright-core), each
 * against a real server and a real upload: ANSI colours, line numbers and
 * links, search, sections, huge logs from the tail, line times, the listing
 * and the keys. Waits are on the page's DOM (locators), never sleeps.
 *
 * Set `SPOOL_SCREENSHOT_DIR` to keep the screenshots the tests take.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import type { Page } from "playwright-core";
import { startUpload } from "../mod.ts";
import { startTestServer } from "./_helpers.ts";
import { withPage } from "./_browser.ts";
import {
  lineNumbered,
  numberedLines,
  screenshot,
  shownLines,
  waitForLine,
  waitInView,
} from "./_viewer.ts";
import { formatElapsed, formatTime } from "../server/viewer/format.js";
import { CheckpointTimes } from "../server/viewer/times.js";
import { TAIL_BYTES } from "../server/viewer/pages.ts";

const encoder = new TextEncoder();
const E = "\u001b";

/** The computed look of the first element matching `selector`. */
function lookOf(
  page: Page,
  selector: string,
): Promise<Record<string, string>> {
  return page.evaluate(`(() => {
    const el = document.querySelector(${JSON.stringify(selector)});
    if (!el) return null;
    const s = getComputedStyle(el);
    return { text: el.textContent, color: s.color, background: s.backgroundColor,
      weight: s.fontWeight, style: s.fontStyle, decoration: s.textDecorationLine,
      opacity: s.opacity };
  })()`) as Promise<Record<string, string>>;
}

/** The requests `page` makes under `/resources/{id}` (path after it, query). */
function resourceRequests(page: Page, id: string): string[] {
  const urls: string[] = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    const base = `/resources/${id}`;
    if (!url.pathname.startsWith(base)) return;
    const range = request.headers()["range"];
    urls.push(
      url.pathname.slice(base.length) + url.search +
        (range ? ` ${range}` : ""),
    );
  });
  return urls;
}

Deno.test("viewer log: ANSI colours (16, 256, truecolour), bold/dim/italic/underline and resets render as styles; \\r progress shows its last state; other escapes and escapes split between chunks never show", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "ansi.log",
    mimeType: "text/plain; charset=utf-8",
  });
  const whole = [
    `${E}[31mred${E}[0m plain ${E}[1;32mbold green${E}[0m ${E}[44mon blue${E}[49m`,
    `${E}[38;5;208morange${E}[0m ${E}[38;2;10;20;30;48;2;200;100;50mtrue${E}[0m`,
    `${E}[2mdim${E}[22m ${E}[3mitalic${E}[23m ${E}[4munder${E}[24m ${E}[91mbright${E}[m`,
    `progress 10%\rprogress 50%\rprogress 100%`,
    `${E}]0;window title${E}\\${E}[2Aafter ${E}]8;;https://x.example${E}\\link${E}]8;;${E}\\ ${E}[?25lcursor${E}[?25h end`,
    `bar [####      ]\r${E}[Kbar [##########] done`,
  ].map((line) => line + "\n").join("");
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await page.locator("#status", { hasText: "INITIATED" }).waitFor();
    await upload.write(encoder.encode(whole));
    await waitForLine(page, "bar [##########] done");
    // Escapes cut between writes: each piece reaches the page before the next.
    const pieces = [
      `split ${E}[3`,
      `4mblue${E}[0m ${E}[38;5`,
      `;46mgreen${E}`,
      `[0m ${E}]0;ti`,
      `tle${E}`,
      `\\ok\n`,
    ];
    const seen = [
      "split ",
      "split blue ",
      "split blue green",
      "split blue green ",
    ];
    for (let i = 0; i < pieces.length; i++) {
      await upload.write(encoder.encode(pieces[i]));
      if (i < seen.length) {
        await page.locator("#log > .line.partial .txt", { hasText: seen[i] })
          .waitFor();
      }
    }
    await waitForLine(page, "split blue green ok");
    const texts = (await shownLines(page)).map((line) => line.text);
    assertEquals(texts, [
      "red plain bold green on blue",
      "orange true",
      "dim italic under bright",
      "progress 100%",
      "after link cursor end",
      "bar [##########] done",
      "split blue green ok",
    ]);
    const pane = await page.locator("#log").innerHTML();
    assert(!pane.includes(E) && !pane.includes("[31m"), "no raw escapes");
    assert(!pane.includes("window title") && !pane.includes("x.example"));

    assertEquals(await lookOf(page, ".fg1"), {
      text: "red",
      color: "rgb(240, 82, 79)",
      background: "rgba(0, 0, 0, 0)",
      weight: "400",
      style: "normal",
      decoration: "none",
      opacity: "1",
    });
    const boldGreen = await lookOf(page, ".fg2.b");
    assertEquals([boldGreen.text, boldGreen.weight], ["bold green", "700"]);
    assertEquals((await lookOf(page, ".bg4")).background, "rgb(31, 95, 168)");
    // xterm's 256-colour cube: 208 is #ff8700, 46 is #00ff00.
    assertEquals(
      (await lookOf(page, "span[style*='255, 135, 0']")).text,
      "orange",
    );
    const truecolour = await lookOf(page, "span[style*='10, 20, 30']");
    assertEquals(
      [truecolour.text, truecolour.color, truecolour.background],
      ["true", "rgb(10, 20, 30)", "rgb(200, 100, 50)"],
    );
    assertEquals((await lookOf(page, ".d")).opacity, "0.6");
    assertEquals((await lookOf(page, ".i")).style, "italic");
    assertEquals((await lookOf(page, ".u")).decoration, "underline");
    assertEquals((await lookOf(page, ".fg9")).text, "bright");
    assertEquals((await lookOf(page, ".fg4")).text, "blue");
    assertEquals(
      (await lookOf(page, "span[style*='0, 255, 0']")).text,
      "green",
    );
    // Reset: what follows a reset is unstyled text, not in a span.
    assertEquals(
      await page.evaluate(
        `[...document.querySelector("#log .line .txt").childNodes]
        .map((n) => n.nodeType === 3 ? "text" : n.className)`,
      ),
      ["fg1", "text", "fg2 b", "text", "bg4"],
    );
    await upload.finish();
    await upload.closed();
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    await screenshot(page, "viewer-ansi");
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer log: every line has its number; a click links #L120, a shift-click #L120-L140; such a URL opens at the lines highlighted, also lines not on the page yet and lines not written yet", async () => {
  await using server = await startTestServer();
  const small = await startUpload(server.url, {
    name: "small.log",
    mimeType: "text/plain",
  });
  await small.send(encoder.encode(numberedLines("row", 1, 200)));
  await small.closed();
  // Over the TAIL_BYTES the page starts with: line 10 is not read at first.
  const big = await startUpload(server.url, {
    name: "big.log",
    mimeType: "text/plain",
  });
  const bigText = numberedLines(
    "big row with some padding to make it longer",
    1,
    12_000,
  );
  assert(bigText.length > 400 * 1024);
  await big.send(encoder.encode(bigText));
  await big.closed();
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${small.id}`, server.url).href);
    await waitForLine(page, "row 200");
    const lines = await shownLines(page);
    assertEquals(lines.length, 200);
    assertEquals(lines.map((l) => l.n), lines.map((_, i) => String(i + 1)));
    assertEquals(lines.map((l) => l.text), lines.map((_, i) => `row ${i + 1}`));
    // Numbers are not part of the text (copying lines copies no numbers).
    assertEquals(await lineNumbered(page, 7).textContent(), "row 7");

    await lineNumbered(page, 120).locator(".ln").click();
    assertEquals(new URL(page.url()).hash, "#L120");
    await page.locator("#log > .line.hl").waitFor();
    assertEquals((await shownLines(page)).filter((l) => l.hl).map((l) => l.n), [
      "120",
    ]);
    await lineNumbered(page, 140).locator(".ln").click({
      modifiers: ["Shift"],
    });
    assertEquals(new URL(page.url()).hash, "#L120-L140");
    const selected = (await shownLines(page)).filter((l) => l.hl);
    assertEquals(selected.length, 21);
    assertEquals([selected[0].n, selected[20].n], ["120", "140"]);
    await screenshot(page, "viewer-line-links");

    // A link opens there: scrolled to, highlighted.
    await page.goto(new URL(`view/${small.id}#L150-L152`, server.url).href);
    await lineNumbered(page, 152, ".hl").waitFor();
    await waitInView(page, 150);
    assertEquals(
      (await shownLines(page)).filter((l) => l.hl).map((l) => l.text),
      ["row 150", "row 151", "row 152"],
    );
    assertEquals(await page.locator("#follow").isChecked(), false);

    // A line before the tail the page starts with: read by number.
    const requests = [] as string[];
    page.on("request", (r) => requests.push(new URL(r.url()).search));
    await page.goto(new URL(`view/${big.id}#L10`, server.url).href);
    await lineNumbered(page, 10, ".hl").waitFor();
    await waitInView(page, 10);
    assertEquals(
      await lineNumbered(page, 10).textContent(),
      "big row with some padding to make it longer 10",
    );
    assert(
      requests.some((q) => /^\?start=0&end=\d+$/.test(q)),
      requests.join(),
    );
    await page.locator("#later").waitFor();

    // A line not written yet: the page waits for it while the log grows.
    const live = await startUpload(server.url, {
      name: "growing.log",
      mimeType: "text/plain",
    });
    await live.write(encoder.encode(numberedLines("live", 1, 5)));
    await page.goto(new URL(`view/${live.id}#L40`, server.url).href);
    await waitForLine(page, "live 5");
    await page.locator("#stream-state", { hasText: "waiting for line 40" })
      .waitFor();
    await live.write(encoder.encode(numberedLines("live", 6, 100)));
    await lineNumbered(page, 40, ".hl").waitFor();
    await waitForLine(page, "live 105");
    await waitInView(page, 40);
    await live.finish();
    await live.closed();
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer log: search highlights matches with a count, Enter/Shift+Enter move, / focuses it; case-insensitive unless asked, regex optional; it keeps counting as lines arrive", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "search.log",
    mimeType: "text/plain",
  });
  const texts = Array.from(
    { length: 40 },
    (_, i) =>
      i === 5
        ? "line 5: Error: disk full"
        : i === 12
        ? "line 12: ERROR again"
        : i === 30
        ? "line 30: error, error and <b>error</b>"
        : `line ${i}: ok`,
  );
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await upload.write(encoder.encode(texts.map((t) => t + "\n").join("")));
    await waitForLine(page, "line 39: ok");
    await page.locator("#log").click();
    await page.keyboard.press("/");
    assertEquals(await page.evaluate("document.activeElement.id"), "search");
    await page.keyboard.type("error");
    const count = page.locator("#search-count");
    await count.filter({ hasText: "1 / 5" }).waitFor();
    assertEquals(await page.locator("mark.hit").count(), 5);
    assertEquals(await page.locator("mark.hit.current").textContent(), "Error");
    await page.keyboard.press("Enter");
    await count.filter({ hasText: "2 / 5" }).waitFor();
    assertEquals(await page.locator("mark.hit.current").textContent(), "ERROR");
    await page.keyboard.press("Shift+Enter");
    await page.keyboard.press("Shift+Enter");
    await count.filter({ hasText: "5 / 5" }).waitFor();
    assertEquals(
      await page.locator("mark.hit.current").evaluate((m) =>
        m.closest(".line")!.querySelector(".ln")!.getAttribute("data-n")
      ),
      "31",
    );
    await screenshot(page, "viewer-search");

    // Case, then regex.
    await page.locator("#search-case").check();
    await count.filter({ hasText: /^\d+ \/ 3$/ }).waitFor();
    await page.locator("#search-case").uncheck();
    await page.locator("#search").fill("line [0-9]+: e");
    await count.filter({ hasText: "no matches" }).waitFor();
    await page.locator("#search-regex").check();
    await count.filter({ hasText: /^\d+ \/ 3$/ }).waitFor();
    assertEquals(
      await page.locator("mark.hit").allTextContents(),
      ["line 5: E", "line 12: E", "line 30: e"],
    );
    await page.locator("#search").fill("(unclosed");
    await count.filter({ hasText: /^invalid: / }).waitFor();
    assertEquals(await page.locator("mark.hit").count(), 0);

    // Lines that arrive are searched too.
    await page.locator("#search").fill("err");
    await count.filter({ hasText: /^\d+ \/ 5$/ }).waitFor();
    await upload.write(encoder.encode("line 40: err\nline 41: ok ERR ERR\n"));
    await count.filter({ hasText: /^\d+ \/ 8$/ }).waitFor();
    await upload.write(encoder.encode("partial err"));
    await count.filter({ hasText: /^\d+ \/ 9$/ }).waitFor();
    await upload.write(encoder.encode(" err\n"));
    await count.filter({ hasText: /^\d+ \/ 10$/ }).waitFor();
    await upload.finish();
    await upload.closed();
    await page.locator("#status", { hasText: "COMPLETED" }).waitFor();
    assertEquals(await page.locator("mark.hit").count(), 10);
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer log: GitHub ::group:: and GitLab section_start/section_end are collapsible sections with durations; an open one shows as running while the log grows", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "ci.log",
    mimeType: "text/plain",
  });
  const t = 1_760_000_000;
  const gitlabStart = (name: string, at: number, options = "") =>
    `${E}[0Ksection_start:${at}:${name}${options}\r${E}[0K`;
  const gitlabEnd = (name: string, at: number) =>
    `${E}[0Ksection_end:${at}:${name}\r${E}[0K`;
  const first = [
    "preparing",
    `${
      gitlabStart("fetch", t, "[collapsed=true]")
    }${E}[36;1mFetching sources${E}[0;m`,
    "fetch 1",
    "fetch 2",
    gitlabEnd("fetch", t + 65),
    "::group::Run tests",
    "test a ok",
    "test b ok",
    "::endgroup::",
    `${gitlabStart("deploy", Math.floor(Date.now() / 1000))}Deploying`,
    "deploy step 1",
  ].map((line) => line + "\n").join("");
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await upload.write(encoder.encode(first));
    await page.locator("#log > .line", { hasText: "deploy step 1" }).waitFor({
      state: "attached",
    });
    const heads = page.locator("#log > .sec-head");
    assertEquals(await heads.locator(".txt").allTextContents(), [
      "Fetching sources",
      "Run tests",
      "Deploying",
    ]);
    // GitLab's [collapsed=true] starts collapsed, with its marked duration.
    const fetchHead = heads.nth(0);
    assertEquals(
      await fetchHead.getAttribute("class"),
      "line sec-head collapsed",
    );
    assertEquals(
      await fetchHead.locator(".dur").getAttribute("data-d"),
      "1m 05s",
    );
    assertEquals(
      await page.locator(".line", { hasText: "fetch 1" }).isHidden(),
      true,
    );
    // A GitHub group collapses once it ends; its duration is from line times.
    const testsHead = heads.nth(1);
    await page.locator("#log > .sec-head.collapsed", { hasText: "Run tests" })
      .waitFor();
    await testsHead.locator(".dur[data-d$='s']").waitFor();
    assertMatch(
      (await testsHead.locator(".dur").getAttribute("data-d"))!,
      /^\d+\.\ds$/,
    );
    assertEquals(
      await page.locator(".line", { hasText: "test a ok" }).isHidden(),
      true,
    );
    // The open section: running, its lines shown.
    const deployHead = heads.nth(2);
    await page.locator("#log > .sec-head.running", { hasText: "Deploying" })
      .waitFor();
    assertMatch(
      (await deployHead.locator(".dur").getAttribute("data-d"))!,
      /^running/,
    );
    assertEquals(
      await page.locator(".line", { hasText: "deploy step 1" }).isVisible(),
      true,
    );
    // Markers show nothing of themselves; end markers are not drawn.
    assertEquals(await page.locator("#log > .sec-end").count(), 2);
    for (const end of await page.locator("#log > .sec-end").all()) {
      assertEquals(await end.isVisible(), false);
    }
    const texts = await page.locator("#log > .line:not(.sec-end) .txt")
      .allTextContents();
    assert(
      !texts.some((x) => x.includes("section_") || x.includes("::")),
      texts.join("|"),
    );

    // Toggles.
    await fetchHead.locator(".tog").click();
    await page.locator(".line", { hasText: "fetch 2" }).waitFor();
    assertEquals(
      await fetchHead.locator(".tog").getAttribute("aria-expanded"),
      "true",
    );
    await testsHead.locator(".tog").click();
    await page.locator(".line", { hasText: "test b ok" }).waitFor();
    await screenshot(page, "viewer-sections");
    await testsHead.locator(".tog").click();
    await page.locator(".line", { hasText: "test b ok" }).waitFor({
      state: "hidden",
    });

    // The running section ends: no longer running.
    await upload.write(encoder.encode(
      `deploy step 2\n${
        gitlabEnd("deploy", Math.floor(Date.now() / 1000) + 3)
      }\nafter\n`,
    ));
    await waitForLine(page, "after");
    await page.locator("#log > .sec-head:not(.running)", {
      hasText: "Deploying",
    })
      .waitFor();
    assertMatch(
      (await deployHead.locator(".dur").getAttribute("data-d"))!,
      /^\d/,
    );
    await upload.finish();
    await upload.closed();
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer log: a huge log opens at its tail (one range read), pages back by line ranges, follows on from there with numbers; the DOM stays bounded; the line count and download link show; f, g and G", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "huge.log",
    mimeType: "text/plain",
  });
  const LINES = 60_000;
  const text = numberedLines("entry", 1, LINES);
  assert(text.length > 600 * 1024, `${text.length} bytes`);
  await upload.write(encoder.encode(text));
  const resource = server.registry.get(upload.id)!;
  await resource.settled();
  await withPage(async (page, problems) => {
    const requests = resourceRequests(page, upload.id);
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    await waitForLine(page, `entry ${LINES}`);
    await page.locator("#lines", { hasText: "60,000 lines" }).waitFor();
    await lineNumbered(page, LINES).waitFor();
    assertEquals(
      await lineNumbered(page, LINES).textContent(),
      `entry ${LINES}`,
    );
    const start = text.length - TAIL_BYTES;
    // The bytes: one follow from the tail, none from byte 0.
    assertEquals(
      requests.filter((q) => q.startsWith("?")),
      [`?follow=1&start=${start}`],
    );
    const tail = await shownLines(page);
    assert(tail.length < 30_000, `${tail.length} lines from the tail`);
    const first = Number(tail[0].n);
    assertEquals(
      tail.map((l) => l.text),
      tail.map((_, i) => `entry ${first + i}`),
    );
    assertEquals(await page.locator("#download").isVisible(), true);
    await page.locator("#earlier", {
      hasText: `Lines 1\u2013${(first - 1).toLocaleString("en-US")} are not`,
    }).waitFor();
    await screenshot(page, "viewer-huge-tail");

    // Follows on from the tail, numbered.
    await upload.write(encoder.encode(numberedLines("entry", LINES + 1, 10)));
    await waitForLine(page, `entry ${LINES + 10}`);
    assertEquals(
      await lineNumbered(page, LINES + 10).textContent(),
      `entry ${LINES + 10}`,
    );
    await page.locator("#lines", { hasText: "60,010 lines" }).waitFor();

    // Load earlier: 1,000 lines by number, the page never over 5,000.
    await page.locator("#follow").uncheck();
    for (let i = 0; i < 3; i++) {
      const before = Number((await shownLines(page))[0].n);
      await page.locator("#load-earlier").click();
      await lineNumbered(page, before - 1000).waitFor();
      const shown = await shownLines(page);
      assert(shown.length <= 5000, `${shown.length} lines on the page`);
      assertEquals(shown[0].text, `entry ${before - 1000}`);
      const n0 = Number(shown[0].n);
      assertEquals(shown.map((l) => Number(l.n)), shown.map((_, j) => n0 + j));
      assertEquals(
        shown.map((l) => l.text),
        shown.map((_, j) => `entry ${n0 + j}`),
      );
    }
    assert(requests.some((q) => /^\/lines\?start=\d+&end=\d+$/.test(q)));
    await page.locator("#later").waitFor();

    // g: the first line; G: the end, following again; f toggles following.
    await page.locator("#log").focus();
    await page.keyboard.press("g");
    await lineNumbered(page, 1).waitFor();
    await waitInView(page, 1);
    assertEquals(await page.locator("#follow").isChecked(), false);
    await page.keyboard.press("Shift+G");
    await page.locator("#follow:checked").waitFor();
    await lineNumbered(page, LINES + 10).waitFor();
    await waitInView(page, LINES + 10);
    await page.locator("#later").waitFor({ state: "hidden" });
    await page.keyboard.press("f");
    await page.locator("#follow:not(:checked)").waitFor();
    await page.keyboard.press("f");
    await page.locator("#follow:checked").waitFor();
    await upload.write(encoder.encode(numberedLines("entry", LINES + 11, 5)));
    await waitForLine(page, `entry ${LINES + 15}`);
    await waitInView(page, LINES + 15);
    assert((await shownLines(page)).length <= 5000);
    await upload.finish();
    await upload.closed();
    await page.locator("#stream-state", { hasText: "end of resource" })
      .waitFor();
    assertEquals(problems.list.filter((p) => !/net::ERR_/.test(p)), []);
  });
});

Deno.test("viewer log: the times option shows each line's arrival time from its checkpoint, relative to the start", async () => {
  await using server = await startTestServer();
  const upload = await startUpload(server.url, {
    name: "times.log",
    mimeType: "text/plain",
  });
  const resource = server.registry.get(upload.id)!;
  const batches = [numberedLines("a", 1, 3), numberedLines("b", 1, 2), "c 1\n"];
  await withPage(async (page, problems) => {
    await page.goto(new URL(`view/${upload.id}`, server.url).href);
    // One checkpoint per batch: each reaches the page before the next.
    for (const batch of batches) {
      await upload.write(encoder.encode(batch));
      await resource.settled();
      await waitForLine(page, batch.trim().split("\n").at(-1)!);
    }
    assertEquals(await page.locator(".ts").first().isVisible(), false);
    await page.locator("#times").check();
    await page.locator("#log.times .line:last-child .ts[data-t^='+']")
      .waitFor();
    const log = await (await fetch(
      new URL(`resources/${upload.id}/checkpoints`, server.url),
    )).json();
    const times = new CheckpointTimes();
    times.load(log);
    const created = Date.parse(resource.status.createdAt);
    let end = 0;
    const expected = batches.join("").split("\n").slice(0, -1).map((line) => {
      end += encoder.encode(line + "\n").byteLength;
      const at = times.timeOf(end)!;
      return {
        t: formatElapsed(at - created),
        title: formatTime(new Date(at).toISOString()),
      };
    });
    const shown = await page.evaluate(
      `[...document.querySelectorAll("#log .ts")]
      .map((ts) => ({ t: ts.dataset.t, title: ts.title }))`,
    );
    assertEquals(shown, expected);
    const distinct = new Set(
      batches.map((_, i) =>
        times.timeOf(
          encoder.encode(batches.slice(0, i + 1).join("")).byteLength,
        )
      ),
    );
    assertEquals(distinct.size, 3, "three checkpoints");
    await screenshot(page, "viewer-times");
    // New lines get their times as they come.
    await upload.write(encoder.encode("d 1\n"));
    await resource.settled();
    await page.locator(".line", { hasText: "d 1" }).locator(".ts[data-t^='+']")
      .waitFor();
    await page.locator("#times").uncheck();
    assertEquals(await page.locator(".ts").first().isVisible(), false);
    await upload.finish();
    await upload.closed();
    assertEquals(problems.list, []);
  });
});

Deno.test("viewer log: the listing filters its rows, updates status and size live from /view/events, adds new uploads on top, drops expired ones, and shows relative times", async () => {
  await using server = await startTestServer();
  const alpha = await startUpload(server.url, {
    name: "alpha.log",
    mimeType: "text/plain",
  });
  await alpha.send(encoder.encode("a\n"));
  await alpha.closed();
  const beta = await startUpload(server.url, {
    name: "beta.txt",
    mimeType: "text/plain",
  });
  await beta.write(encoder.encode("b\n"));
  await withPage(async (page, problems) => {
    await page.goto(new URL("view/", server.url).href);
    const names = () =>
      page.locator("tbody tr:not([hidden]) td.name").allTextContents();
    assertEquals(await names(), ["beta.txt", "alpha.log"]);
    assertEquals(
      await page.locator("tbody time.created").first().textContent(),
      "just now",
    );
    assertMatch(
      (await page.locator("tbody time.created").first().getAttribute("title"))!,
      /UTC$/,
    );

    await page.locator("body").click();
    await page.keyboard.press("/");
    assertEquals(await page.evaluate("document.activeElement.id"), "filter");
    await page.keyboard.type("alpha");
    await page.locator("#shown", { hasText: "1 shown" }).waitFor();
    assertEquals(await names(), ["alpha.log"]);
    await page.locator("#filter").fill("progress");
    await page.locator("tbody tr:not([hidden])", { hasText: "beta.txt" })
      .waitFor();
    assertEquals(await names(), ["beta.txt"]);
    await page.locator("#filter").fill("");
    await page.locator("#shown:empty").waitFor({ state: "attached" });

    // A new upload shows up on top; its size and status follow.
    const gamma = await startUpload(server.url, {
      name: "gamma.log",
      mimeType: "text/plain",
    });
    const row = page.locator("tbody tr", { hasText: "gamma.log" });
    await row.waitFor();
    assertEquals(await names(), ["gamma.log", "beta.txt", "alpha.log"]);
    await page.locator("#live", { hasText: "2" }).waitFor();
    await gamma.write(new Uint8Array(3000).fill(0x61));
    await row.locator("td.size", { hasText: "2.9 KiB" }).waitFor();
    await row.locator(".badge.IN_PROGRESS").waitFor();
    await screenshot(page, "viewer-listing-live");
    await gamma.finish();
    await gamma.closed();
    await row.locator(".badge.COMPLETED").waitFor();
    await page.locator("#live", { hasText: "1" }).waitFor();
    assertEquals(await row.locator("a").getAttribute("href"), `./${gamma.id}`);

    // An expired resource leaves the listing.
    await server.registry.expire(server.registry.get(alpha.id)!);
    await page.locator("tbody tr", { hasText: "alpha.log" }).waitFor({
      state: "detached",
    });
    assertEquals(await page.locator("#total").textContent(), "2");
    assertEquals(problems.list, []);
  });
  await beta.finish();
  await beta.closed();
});
