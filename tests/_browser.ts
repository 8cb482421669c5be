/**
 * Test helpers: Debian's chromium, driven headless by playwright-core.
 *
 * `.ci/run` installs the `chromium` package when `/usr/bin/chromium` is
 * missing; playwright-core comes from npm through `deno.json`'s imports (it
 * downloads no browser of its own).
 */

import { type Browser, chromium, type Page } from "playwright-core";

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Launches headless chromium; fails clearly when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `${CHROMIUM_PATH} is missing: the viewer tests drive Debian's chromium headless. ` +
        "Install it with `apt-get install -y --no-install-recommends chromium` " +
        "(.ci/run installs it before the tests).",
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Chromium's sandbox refuses to start as root (CI runs as root).
    args: [
      ...(Deno.uid() === 0 ? ["--no-sandbox"] : []),
      "--disable-dev-shm-usage",
      "--disable-gpu",
    ],
  });
}

/** What went wrong in a page: script errors, console errors, dialogs. */
export interface PageProblems {
  /** Each problem as one line, e.g. `console error: …`. */
  readonly list: string[];
}

/**
 * Records a page's uncaught errors, console errors (CSP violations are
 * reported there) and dialogs (an `alert` from injected markup would be one).
 */
export function watchPage(page: Page): PageProblems {
  const list: string[] = [];
  page.on("pageerror", (error) => list.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") {
      list.push(`console error: ${message.text()}`);
    }
  });
  page.on("dialog", (dialog) => {
    list.push(`dialog (${dialog.type()}): ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return { list };
}

/**
 * Runs `body` with a fresh browser and page, closing both afterwards (also
 * when it throws).
 */
export async function withPage(
  body: (page: Page, problems: PageProblems) => Promise<void>,
): Promise<void> {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({
      viewport: { width: 1100, height: 700 },
    });
    const page = await context.newPage();
    // Fail within the test's own time with playwright's message.
    page.setDefaultTimeout(20_000);
    const problems = watchPage(page);
    try {
      await body(page, problems);
    } finally {
      await page.close();
      await context.close();
    }
  } finally {
    await browser.close();
  }
}
