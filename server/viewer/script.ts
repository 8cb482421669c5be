/**
 * The viewer pages' scripts, and their Content-Security-Policies. A page
 * cannot load modules (the CSP allows one inline script, by the hash of its
 * text), so each script is its entry file (`page.js`, `listing.js`) with the
 * modules it imports from this folder bundled in: each module once, in an
 * own function scope that returns its exports, before the modules that
 * import it; every `import { a, b } from "./x.js";` becomes
 * `const { a, b } = …;`. The files stay real ES modules, which `deno check`
 * and the unit tests import as they are.
 *
 * @module
 */

import { createHash } from "node:crypto";
import ansiJs from "./ansi.js" with { type: "text" };
import formatJs from "./format.js" with { type: "text" };
import lineLinksJs from "./line_links.js" with { type: "text" };
import lineTextJs from "./line_text.js" with { type: "text" };
import listingJs from "./listing.js" with { type: "text" };
import logSearchJs from "./log_search.js" with { type: "text" };
import logSectionsJs from "./log_sections.js" with { type: "text" };
import logTimesJs from "./log_times.js" with { type: "text" };
import logViewJs from "./log_view.js" with { type: "text" };
import navigatorJs from "./navigator.js" with { type: "text" };
import pageJs from "./page.js" with { type: "text" };
import readerJs from "./reader.js" with { type: "text" };
import renderJs from "./render.js" with { type: "text" };
import searchJs from "./search.js" with { type: "text" };
import sectionsJs from "./sections.js" with { type: "text" };
import timesJs from "./times.js" with { type: "text" };

/** The modules the entries may import, by file name. */
const MODULES: Readonly<Record<string, string>> = {
  "ansi.js": ansiJs,
  "format.js": formatJs,
  "line_links.js": lineLinksJs,
  "line_text.js": lineTextJs,
  "log_search.js": logSearchJs,
  "log_sections.js": logSectionsJs,
  "log_times.js": logTimesJs,
  "log_view.js": logViewJs,
  "navigator.js": navigatorJs,
  "reader.js": readerJs,
  "render.js": renderJs,
  "search.js": searchJs,
  "sections.js": sectionsJs,
  "times.js": timesJs,
};

/** `import { a, b as c } from "./x.js";`, possibly over several lines. */
const IMPORT = /^import\s*\{([^}]*)\}\s*from\s*"\.\/([a-z_]+\.js)";[ \t]*$/gm;
/** The name an `export` line declares. */
const EXPORT =
  /^export\s+(?:async\s+)?(?:function\*?|class|const|let)\s+([A-Za-z_$][\w$]*)/gm;

/** A module's imports: the file and the `{ … }` destructuring of each. */
function importsOf(source: string): { file: string; names: string }[] {
  return [...source.matchAll(IMPORT)].map((match) => ({
    file: match[2],
    names: match[1].split(",").map((name) => name.trim()).filter(Boolean)
      .map((name) => name.replace(/^(\S+)\s+as\s+(\S+)$/, "$1: $2")).join(
        ", ",
      ),
  }));
}

/** The variable a bundled module's exports are held in. */
function holder(file: string): string {
  return "__" + file.replace(/\.js$/, "");
}

/** `source` with its imports as destructurings and `export ` dropped. */
function localised(source: string): string {
  return source
    .replace(
      IMPORT,
      (_, names: string, file: string) =>
        `const { ${
          importsOf(`import {${names}} from "./${file}";`)[0].names
        } } = ${holder(file)};`,
    )
    .replace(/^export /gm, "");
}

/** The files `entry` needs, each after the ones it imports (depth first). */
function order(
  entry: string,
  modules: Readonly<Record<string, string>>,
): string[] {
  const done: string[] = [];
  const visiting: string[] = [];
  const visit = (source: string, name: string) => {
    for (const { file } of importsOf(source)) {
      if (done.includes(file)) continue;
      if (visiting.includes(file)) {
        throw new Error(
          `${name} and ${file} import each other; expected no import cycle`,
        );
      }
      const text = modules[file];
      if (text === undefined) {
        throw new Error(
          `${name} imports ./${file}, which is no module of the viewer; expected one of ${
            Object.keys(modules).join(", ")
          }`,
        );
      }
      visiting.push(file);
      visit(text, file);
      visiting.pop();
      done.push(file);
    }
  };
  visit(entry, "the entry");
  return done;
}

/** Comments on lines of their own (JSDoc, `//` lines): the page needs none. */
const COMMENT_LINES = /^[ \t]*(?:\/\*[\s\S]*?\*\/|\/\/[^\n]*)[ \t]*\n/gm;

/**
 * `source` without its comment lines (half of the files' text), indents
 * and blank lines. (No file of the folder has a string over several lines:
 * `viewer_html.test.ts` checks.)
 */
function uncommented(source: string): string {
  return source.replace(COMMENT_LINES, "").replace(/^[ \t]+/gm, "")
    .replace(/\n{2,}/g, "\n");
}

/** One module as a function that returns its exports. */
function wrapped(file: string, source: string): string {
  const exports = [...source.matchAll(EXPORT)].map((match) => match[1]);
  return `const ${holder(file)} = (function () {\n${
    localised(source)
  }return { ${exports.join(", ")} };\n})();\n`;
}

/**
 * `entry` with the modules it imports (from `modules`, by file name) bundled
 * in, as one classic script.
 *
 * @example
 * ```ts
 * import { bundleScript } from "./script.ts";
 * const script = bundleScript(
 *   'import { twice } from "./math.js";\nconsole.log(twice(2));\n',
 *   { "math.js": "export function twice(n) {\n  return 2 * n;\n}\n" },
 * );
 * console.log(script.includes("const { twice } = __math;")); // true
 * ```
 */
export function bundleScript(
  entry: string,
  modules: Readonly<Record<string, string>> = MODULES,
): string {
  const body = uncommented(
    order(entry, modules).map((file) => wrapped(file, modules[file])).join("") +
      localised(entry),
  );
  const left = /^\s*(import|export)\b.*$/m.exec(body);
  if (left) {
    throw new Error(
      `the page script still has "${
        left[0].trim()
      }"; expected only imports of the form import { … } from "./x.js";`,
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
export const PAGE_SCRIPT: string = bundleScript(pageJs);
/** The listing's script. */
export const LISTING_SCRIPT: string = bundleScript(listingJs);

/** A `script-src` that allows exactly `script`. */
function scriptSource(script: string): string {
  const hash = createHash("sha256").update(script).digest("base64");
  return `script-src 'sha256-${hash}'`;
}

/** A page's `Content-Security-Policy`, with its `script-src`. */
function policy(scriptSrc: string): string {
  return [
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'unsafe-inline'",
    scriptSrc,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** The `Content-Security-Policy` of the resource page (allows its script by hash). */
export const PAGE_CSP: string = policy(scriptSource(PAGE_SCRIPT));
/** The `Content-Security-Policy` of the listing (allows its script by hash). */
export const LISTING_CSP: string = policy(scriptSource(LISTING_SCRIPT));
/** The `Content-Security-Policy` of pages without script (refusals). */
export const STATIC_CSP: string = policy("script-src 'none'");
