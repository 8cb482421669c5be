/**
 * The resource page's one script, and the Content-Security-Policies of the
 * viewer's pages. The script is `page.js` with the text of `format.js` in
 * place of its import (the page cannot load modules: the CSP allows this one
 * script, by the hash of its text), in a function of its own, strict.
 *
 * @module
 */

import { createHash } from "node:crypto";
import formatJs from "./format.js" with { type: "text" };
import pageJs from "./page.js" with { type: "text" };

/** The one import of `page.js`, which its script includes instead. */
const FORMAT_IMPORT = /^import \{[^}]*\} from "\.\/format\.js";$/m;

/**
 * `page` with `format` in place of its import of `./format.js` (its
 * `export`s made plain declarations), as one classic script.
 *
 * @example
 * ```ts
 * import { inlineScript } from "./script.ts";
 * const script = inlineScript(
 *   'import { twice } from "./format.js";\nconsole.log(twice(2));\n',
 *   "export function twice(n) {\n  return 2 * n;\n}\n",
 * );
 * console.log(script.includes("function twice(n)")); // true
 * ```
 */
export function inlineScript(page: string, format: string): string {
  const imports = page.match(new RegExp(FORMAT_IMPORT, "gm"))?.length ?? 0;
  if (imports !== 1) {
    throw new Error(
      `page.js imports ./format.js ${imports} times; expected once, as import { … } from "./format.js";`,
    );
  }
  const body = page.replace(
    FORMAT_IMPORT,
    () => format.replace(/^export /gm, ""),
  );
  const left = /^(import|export)\b.*$/m.exec(body);
  if (left) {
    throw new Error(
      `the page script still has "${left[0]}"; expected no imports or exports`,
    );
  }
  if (/<\/script|<!--/i.test(body)) {
    throw new Error(
      "the page script has </script or <!--, which would end it inline",
    );
  }
  return `"use strict";\n(function () {\n${body}})();\n`;
}

/** The resource page's script (constant: the CSP allows it by its hash). */
export const PAGE_SCRIPT: string = inlineScript(pageJs, formatJs);

const SCRIPT_HASH = createHash("sha256").update(PAGE_SCRIPT).digest("base64");

/** The `Content-Security-Policy` of the resource page (allows its script by hash). */
export const PAGE_CSP: string = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'unsafe-inline'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The `Content-Security-Policy` of pages without script (listing, refusals). */
export const STATIC_CSP: string = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'unsafe-inline'",
  "script-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
