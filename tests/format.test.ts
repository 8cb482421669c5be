/**
 * The one way sizes and times are shown (`server/viewer/format.js`): the
 * CLI's progress line, the soak, and the viewer's pages and page script.
 */

import { assert, assertEquals } from "@std/assert";
import {
  formatBytes,
  formatTime,
  visibleText,
} from "../server/viewer/format.js";

const KiB = 1024;
const MiB = 1024 * KiB;

Deno.test("formatBytes: whole bytes below 1 KiB, one decimal below 100 of a unit, whole above, carried at 1024", () => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [14, "14 B"],
    [117.47, "117 B"],
    [1023, "1023 B"],
    [1023.6, "1.0 KiB"],
    [KiB, "1.0 KiB"],
    [1536, "1.5 KiB"],
    [2969, "2.9 KiB"],
    [99.94 * KiB, "99.9 KiB"],
    [99.96 * KiB, "100 KiB"],
    [1023.4 * KiB, "1023 KiB"],
    [1023.6 * KiB, "1.0 MiB"],
    [12.5 * MiB, "12.5 MiB"],
    [117.3 * MiB, "117 MiB"],
    [5e9, "4.7 GiB"],
    [3 * 1024 ** 5, "3.0 PiB"],
    [2 ** 60, "1024 PiB"],
  ];
  assertEquals(cases.map(([n]) => formatBytes(n)), cases.map(([, s]) => s));
});

Deno.test("formatBytes: never more than one decimal and never a grouping separator, over a sweep of sizes and rates", () => {
  for (let n = 0.5; n < 2 ** 50; n *= 1.0137) {
    const shown = formatBytes(n);
    assert(/^\d+(\.\d)? (B|KiB|MiB|GiB|TiB)$/.test(shown), `${n}: ${shown}`);
    assert(!/^\d+\.\d B$/.test(shown), `${n}: bytes are whole: ${shown}`);
  }
});

Deno.test("formatTime and visibleText: an ISO time in UTC; invisible characters as marked escapes", () => {
  assertEquals(
    formatTime("2026-11-24T01:53:55.120Z"),
    "2026-11-24 01:53:55 UTC",
  );
  assertEquals(formatTime("yesterday"), "yesterday");
  assertEquals(
    visibleText("invoice\u202efdp.exe\u0007\ud800"),
    "invoice\\u202Efdp.exe\\u0007\\uD800",
  );
  assertEquals(visibleText("a\u0000b", (e) => `[${e}]`), "a[\\u0000]b");
  assertEquals(visibleText("\ud83d\ude00 fine"), "\ud83d\ude00 fine");
});
