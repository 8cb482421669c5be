/**
 * The viewer's HTML helper and page scripts, without a browser: every value
 * escaped unless it is built HTML; each page's one script is what its CSP's
 * hash allows, its entry file with the modules it imports bundled in.
 */

import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { markup, raw } from "../server/viewer/html.ts";
import {
  renderListingPage,
  renderResourcePage,
} from "../server/viewer/pages.ts";
import {
  bundleScript,
  LISTING_CSP,
  LISTING_SCRIPT,
  PAGE_CSP,
  PAGE_SCRIPT,
} from "../server/viewer/script.ts";

/** The one inline script of `page`, checked to be what `csp` allows. */
async function onlyScript(page: string, csp: string): Promise<string> {
  const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)];
  assertEquals(scripts.length, 1);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(scripts[0][1]),
  );
  const hash = btoa(String.fromCharCode(...new Uint8Array(digest)));
  assert(csp.includes(`script-src 'sha256-${hash}'`), csp);
  return scripts[0][1];
}

Deno.test("markup: escapes text and numbers in content and attributes, keeps built HTML, joins lists, leaves out false, null and undefined", () => {
  const hostile = `<img src=x onerror="alert('1')">&amp;`;
  const cell = markup`<td title="${hostile}">${hostile}</td>`;
  assertEquals(
    String(cell),
    `<td title="&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;amp;">&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;amp;</td>`,
  );
  assertEquals(
    String(markup`<tr>${[cell, cell]}</tr>`),
    `<tr>${cell}${cell}</tr>`,
  );
  assertEquals(
    String(markup`[${false}${null}${undefined}${0}${""}${raw("<b>")}]`),
    "[0<b>]",
  );
});

Deno.test("page scripts: each CSP allows exactly the script its page carries, the modules bundled in, no import or export left", async () => {
  const page = renderResourcePage({
    status: {
      id: "AAAAAAAAAAAAAAAAAAAAAA",
      name: "a.log",
      mimeType: "text/plain",
      metadata: {},
      status: "IN_PROGRESS",
      size: 0,
      createdAt: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
    },
    listing: true,
  });
  assertEquals(await onlyScript(page, PAGE_CSP), PAGE_SCRIPT);
  assertEquals(
    await onlyScript(renderListingPage([]), LISTING_CSP),
    LISTING_SCRIPT,
  );
  for (const script of [PAGE_SCRIPT, LISTING_SCRIPT]) {
    assertMatch(script, /^"use strict";\n\(function \(\) \{\n/);
    assertMatch(script, /\nfunction formatBytes\(bytes\) \{\n/);
    assertEquals(/^\s*(import|export)\b/m.test(script), false);
  }
  // Every module once, each before the ones that use it.
  for (const name of ["ansi", "line_text", "navigator", "log_view"]) {
    assertEquals(PAGE_SCRIPT.split(`const __${name} = `).length, 2, name);
  }
  assert(
    PAGE_SCRIPT.indexOf("const __ansi = ") <
      PAGE_SCRIPT.indexOf("const __line_text = "),
  );
});

Deno.test("page scripts: a module the viewer has not, an import cycle, a form of import not bundled, or </script is refused when the server starts", () => {
  const modules = {
    "a.js": 'import { b } from "./b.js";\nexport function a() {}\n',
    "b.js": 'import { a } from "./a.js";\nexport function b() {}\n',
    "c.js": "export const c = 1;\n",
  };
  assertThrows(
    () => bundleScript('import { x } from "./x.js";\n', modules),
    Error,
    "imports ./x.js, which is no module of the viewer",
  );
  assertThrows(
    () => bundleScript('import { a } from "./a.js";\n', modules),
    Error,
    "import each other; expected no import cycle",
  );
  assertThrows(
    () => bundleScript('import * as c from "./c.js";\n', modules),
    Error,
    `still has "import * as c from "./c.js";"`,
  );
  assertThrows(
    () => bundleScript('import { c } from "./c.js";\n"</script>";\n', modules),
    Error,
    "</script",
  );
  const script = bundleScript(
    'import { c as d } from "./c.js";\nconsole.log(d);\n',
    modules,
  );
  assertMatch(
    script,
    /const __c = \(function \(\) \{\nconst c = 1;\nreturn \{ c \};/,
  );
  assertMatch(script, /const \{ c: d \} = __c;/);
});

Deno.test("page scripts: no file of the viewer has a string over several lines (the bundle drops indents and comment lines)", async () => {
  const folder = new URL("../server/viewer/", import.meta.url);
  let files = 0;
  for await (const entry of Deno.readDir(folder)) {
    if (!entry.name.endsWith(".js")) continue;
    files++;
    const text = await Deno.readTextFile(new URL(entry.name, folder));
    text.split("\n").forEach((line, i) => {
      if (/^\s*(\/\/|\/\*|\*)/.test(line)) return;
      const where = `${entry.name}:${i + 1}`;
      assertEquals(line.split("`").length % 2, 1, `${where}: a \` left open`);
      assertEquals(/\\$/.test(line), false, `${where}: a \\ at the end`);
    });
  }
  assert(files >= 10, `${files} files`);
});
