/**
 * Test helpers for the viewer's pages in chromium: screenshots, waits on
 * the lines of `/view/{id}`, the lines' texts and states. Waits are on the
 * page's DOM (locators), never sleeps.
 */

import { assertEquals } from "@std/assert";
import type { Page } from "playwright-core";

/** Saves a screenshot to a temporary directory (and `SPOOL_SCREENSHOT_DIR`). */
export async function screenshot(
  page: Page,
  name: string,
): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "spool-viewer-" });
  try {
    const path = `${dir}/${name}.png`;
    await page.screenshot({ path });
    const png = await Deno.readFile(path);
    const keep = Deno.env.get("SPOOL_SCREENSHOT_DIR");
    if (keep) {
      await Deno.mkdir(keep, { recursive: true });
      await Deno.copyFile(path, `${keep}/${name}.png`);
    }
    return png;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Resolves once the log pane holds a line with exactly `text`. */
export async function waitForLine(page: Page, text: string): Promise<void> {
  await page.locator("#log > div").filter({ hasText: text }).last().waitFor();
  assertEquals(
    await page.locator("#log > div", { hasText: text }).last().textContent(),
    text,
  );
}

/** A line on the page as a test sees it. */
export interface ShownLine {
  /** Its number as shown (1-based), `""` until known. */
  n: string;
  text: string;
  /** Whether it is highlighted (a linked line). */
  hl: boolean;
  /** Whether a collapsed section hides it. */
  hidden: boolean;
}

/** Every line in the pane, in order. */
export function shownLines(page: Page): Promise<ShownLine[]> {
  return page.evaluate(`[...document.querySelectorAll("#log > .line")].map(
    (el) => ({
      n: el.querySelector(".ln").dataset.n ?? "",
      text: el.querySelector(".txt").textContent,
      hl: el.classList.contains("hl"),
      hidden: el.hidden,
    }),
  )`) as Promise<ShownLine[]>;
}

/**
 * The line numbered `n` (1-based) in the pane. (Found by its number's
 * element: playwright's own engine for `:has()` takes seconds over
 * thousands of lines.)
 */
export function lineNumbered(
  page: Page,
  n: number,
  state = "",
): ReturnType<Page["locator"]> {
  return page.locator(`#log > .line${state} > .ln[data-n="${n}"]`)
    .locator("xpath=..");
}

/** Resolves once line `n` is in the pane and at least partly in view. */
export async function waitInView(page: Page, n: number): Promise<void> {
  await lineNumbered(page, n).waitFor();
  // Scrolling is synchronous in the page; the box is where it ends up.
  const box = await page.evaluate(`(() => {
    const log = document.getElementById("log").getBoundingClientRect();
    const el = document.querySelector('#log > .line > .ln[data-n="${n}"]')
      .parentElement.getBoundingClientRect();
    return { top: el.top - log.top, bottom: el.bottom - log.top, height: log.height };
  })()`) as { top: number; bottom: number; height: number };
  if (box.bottom <= 0 || box.top >= box.height) {
    throw new Error(`line ${n} is not in view: ${JSON.stringify(box)}`);
  }
}

/** `count` numbered lines `"{prefix} {i}"` from `from`, each ending in `\n`. */
export function numberedLines(
  prefix: string,
  from: number,
  count: number,
): string {
  return Array.from({ length: count }, (_, i) => `${prefix} ${from + i}\n`)
    .join("");
}
