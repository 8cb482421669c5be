/**
 * The viewer's HTML helper and page script, without a browser: every value
 * escaped unless it is built HTML; the resource page's one script is what the
 * CSP's hash allows, page.js with format.js in place of its import.
 */

import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { markup, raw } from "../server/viewer/html.ts";
import { renderResourcePage } from "../server/viewer/pages.ts";
import {
  inlineScript,
  PAGE_CSP,
  PAGE_SCRIPT,
} from "../server/viewer/script.ts";

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

Deno.test("page script: the CSP allows exactly the script the page carries; page.js includes format.js instead of importing it", async () => {
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
  const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)];
  assertEquals(scripts.length, 1);
  assertEquals(scripts[0][1], PAGE_SCRIPT);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(PAGE_SCRIPT),
  );
  const hash = btoa(String.fromCharCode(...new Uint8Array(digest)));
  assert(PAGE_CSP.includes(`script-src 'sha256-${hash}'`), PAGE_CSP);
  assertMatch(PAGE_SCRIPT, /^"use strict";\n\(function \(\) \{\n/);
  assertMatch(PAGE_SCRIPT, /\nfunction formatBytes\(bytes\) \{\n/);
  assertEquals(/^\s*(import|export)\b/m.test(PAGE_SCRIPT), false);
});

Deno.test("page script: a page.js without its one import of ./format.js, or with </script in it, is refused when the server starts", () => {
  const format = "export function f() {}\n";
  assertThrows(
    () => inlineScript("f();\n", format),
    Error,
    "page.js imports ./format.js 0 times; expected once",
  );
  assertThrows(
    () =>
      inlineScript(
        'import { f } from "./format.js";\nimport { g } from "./other.js";\n',
        format,
      ),
    Error,
    `still has "import { g } from "./other.js";"`,
  );
  assertThrows(
    () =>
      inlineScript('import { f } from "./format.js";\n"</script>";\n', format),
    Error,
    "</script",
  );
});
