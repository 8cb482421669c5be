/**
 * The error tables of the docs name every code there is: a code missing
 * from docs/protocol.md leaves clients guessing what it means.
 */

import { assertEquals } from "@std/assert";
import { ERROR_CODES, SpoolError } from "../protocol/mod.ts";
import { TRANSPORT_ERROR_CODES, TransportError } from "../transport/errors.ts";

const DOCS = new URL("../docs/", import.meta.url);

/** The first column of the table under `## Errors` of a Markdown file. */
async function tableCodes(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(file, DOCS));
  const section = text.slice(text.indexOf("\n## Errors"));
  const end = section.indexOf("\n## ", 1);
  return [
    ...(end === -1 ? section : section.slice(0, end)).matchAll(
      /^\| (?:\d{3} +\| )?`([a-z-]+)` +\|/gm,
    ),
  ].map((match) => match[1]);
}

Deno.test("docs: docs/protocol.md's error table has exactly the codes of ERROR_CODES", async () => {
  const documented = await tableCodes("protocol.md");
  assertEquals(
    ERROR_CODES.filter((code) => !documented.includes(code)),
    [],
    "codes missing from the table",
  );
  assertEquals(
    documented.filter((code) =>
      !(ERROR_CODES as readonly string[]).includes(code)
    ),
    [],
    "codes in the table that do not exist",
  );
  assertEquals(new Set(documented).size, documented.length, "a code twice");
});

Deno.test("docs: docs/http.md's error table only names existing codes", async () => {
  const documented = await tableCodes("http.md");
  assertEquals(
    documented.filter((code) =>
      !(ERROR_CODES as readonly string[]).includes(code)
    ),
    [],
  );
  assertEquals(documented.length >= 10, true, `${documented}`);
});

Deno.test("errors: both halves speak one dialect: kebab-case codes, and a TransportError is a SpoolError", () => {
  const kebab = /^[a-z]+(?:-[a-z]+)*$/;
  assertEquals(
    [...ERROR_CODES, ...TRANSPORT_ERROR_CODES].filter((code) =>
      !kebab.test(code)
    ),
    [],
  );
  const error: unknown = new TransportError("stream-terminated", "fin sent");
  assertEquals(error instanceof SpoolError, true);
  assertEquals(
    error instanceof SpoolError ? [error.code, error.name] : [],
    ["stream-terminated", "TransportError"],
  );
});
