/**
 * A one-off measurement of the viewer on a huge log: uploads a text log of
 * `--mib` MiB (1024 by default: 1 GiB of numbered lines with ANSI colours
 * and section markers) through a real upload into a server on 127.0.0.1
 * with a temporary data directory, then opens `/view/{id}` in headless
 * chromium, live and once the upload is COMPLETED, and prints:
 *
 * - the time from navigation to the last lines visible in the pane,
 * - the time until the line numbers are known (the server counts lines),
 * - the page's JS heap (CDP `Runtime.getHeapUsage`, after a GC) and
 *   `performance.memory`, with the number of lines in the DOM,
 *
 * then the same after 5 × "load earlier" and after `g` (line 1). Bounded:
 * the upload gives up after `--timeout` seconds (600 by default), every
 * wait in the page after 60 s. The data directory is removed at the end.
 *
 * ```sh
 * deno run -A --frozen bench/viewer_huge.ts --mib 1024
 * ```
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import type { Page } from "playwright-core";
import { startServer } from "../server/mod.ts";
import { startUpload } from "../mod.ts";
import { launchChromium } from "../tests/_browser.ts";

const args = parseArgs(Deno.args, { string: ["mib", "timeout"] });
const MIB = Number(args.mib ?? 1024);
const TIMEOUT_S = Number(args.timeout ?? 600);
/** Bytes per write of the upload. */
const CHUNK = 4 * 1024 * 1024;
const WAIT_MS = 60_000;
const encoder = new TextEncoder();
const E = "\u001b";

/** A chunk of about `CHUNK` bytes of lines numbered from `from`. */
function chunkOf(from: number): { bytes: Uint8Array; lines: number } {
  const parts: string[] = [];
  let size = 0;
  let n = from;
  while (size < CHUNK) {
    const line = n % 5000 === 0
      ? `::group::step ${n / 5000}\n`
      : n % 5000 === 4999
      ? "::endgroup::\n"
      : `${E}[32m${n}${E}[0m ${E}[1mINFO${E}[0m build output line ${n} ${
        "x".repeat(n % 50)
      }\n`;
    parts.push(line);
    size += line.length;
    n++;
  }
  return { bytes: encoder.encode(parts.join("")), lines: n - from };
}

/** The page's JS heap, after a GC, and what the page holds. */
async function memoryOf(page: Page): Promise<string> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("HeapProfiler.collectGarbage");
  const heap = await cdp.send("Runtime.getHeapUsage") as {
    usedSize: number;
    totalSize: number;
  };
  await cdp.detach();
  const page_ = await page.evaluate(`({
    used: performance.memory.usedJSHeapSize,
    lines: document.querySelectorAll("#log > .line").length,
    nodes: document.getElementsByTagName("*").length,
  })`) as { used: number; lines: number; nodes: number };
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1) + " MiB";
  return `heap used ${mib(heap.usedSize)} of ${
    mib(heap.totalSize)
  } (performance.memory ${
    mib(page_.used)
  }); ${page_.lines} lines, ${page_.nodes} elements in the DOM`;
}

/** Opens the page and reports its load and memory. */
async function measure(page: Page, url: string, what: string): Promise<void> {
  const start = performance.now();
  await page.goto(url);
  await page.locator("#log > .line").last().waitFor({ timeout: WAIT_MS });
  const visible = performance.now() - start;
  await page.locator("#lines", { hasText: / lines?$/ }).waitFor({
    timeout: WAIT_MS,
  });
  const numbered = performance.now() - start;
  console.log(
    `${what}: last lines visible after ${visible.toFixed(0)} ms; ${await page
      .locator("#lines").textContent()} known after ${numbered.toFixed(0)} ms`,
  );
  console.log(`${what}: ${await memoryOf(page)}`);
  await page.locator("#follow").uncheck();
  for (let i = 0; i < 5; i++) {
    const before = await page.locator("#log > .line").first().textContent();
    const t = performance.now();
    await page.locator("#load-earlier").click();
    await page.locator("#log > .line").first().filter({
      hasNotText: before ?? "",
    }).waitFor({ timeout: WAIT_MS });
    if (i === 0) {
      console.log(
        `${what}: load earlier (1,000 lines) took ${
          (performance.now() - t).toFixed(0)
        } ms`,
      );
    }
  }
  console.log(`${what}: after 5 × load earlier: ${await memoryOf(page)}`);
  const t = performance.now();
  await page.locator("#log").focus();
  await page.keyboard.press("g");
  await page.locator('#log > .line > .ln[data-n="1"]').waitFor({
    timeout: WAIT_MS,
  });
  console.log(
    `${what}: g (line 1) took ${
      (performance.now() - t).toFixed(0)
    } ms; ${await memoryOf(
      page,
    )}`,
  );
}

const dataDir = await Deno.makeTempDir({ prefix: "spool-viewer-huge-" });
const server = await startServer({ port: 0, dataDir });
const browser = await launchChromium();
try {
  const upload = await startUpload(server.url, {
    name: "huge.log",
    mimeType: "text/plain; charset=utf-8",
  });
  const deadline = Date.now() + TIMEOUT_S * 1000;
  const started = performance.now();
  let sent = 0;
  let line = 0;
  while (sent < MIB * 1024 * 1024) {
    if (Date.now() > deadline) {
      throw new Error(`the upload took over ${TIMEOUT_S} s at ${sent} bytes`);
    }
    const { bytes, lines } = chunkOf(line);
    await upload.write(bytes);
    sent += bytes.byteLength;
    line += lines;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `uploaded ${sent.toLocaleString("en-US")} bytes, ${
      line.toLocaleString("en-US")
    } lines in ${seconds.toFixed(1)} s`,
  );
  await server.registry.get(upload.id)!.settled();
  const context = await browser.newContext({
    viewport: { width: 1100, height: 700 },
  });
  const page = await context.newPage();
  const url = new URL(`view/${upload.id}`, server.url).href;
  await measure(page, url, "live");
  await upload.finish();
  await upload.closed();
  await measure(page, url, "completed");
  // A second open: the server's line index is built now.
  await measure(page, url, "completed, indexed");
  await context.close();
} finally {
  await browser.close();
  await server.close();
  await Deno.remove(dataDir, { recursive: true });
}
