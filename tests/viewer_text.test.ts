/**
 * The viewer's text modules without a browser (the page script bundles the
 * same files): terminal output as styled lines (`ansi.js`), bytes as lines
 * with their offsets (`line_text.js`), section markers (`sections.js`),
 * search (`search.js`), checkpoint times (`times.js`) and the time formats.
 */

import { assert, assertEquals } from "@std/assert";
import { AnsiParser, paletteColour, type Run } from "../server/viewer/ansi.js";
import { LineFeed } from "../server/viewer/line_text.js";
import { markerOf, SectionTracker } from "../server/viewer/sections.js";
import { compileSearch } from "../server/viewer/search.js";
import { CheckpointTimes } from "../server/viewer/times.js";
import {
  formatAgo,
  formatDuration,
  formatElapsed,
} from "../server/viewer/format.js";

const ESC = "\u001b";
const encoder = new TextEncoder();

/** The line `text` makes, as [text, style fields that are set] per run. */
function line(...pieces: string[]): [string, Record<string, unknown>][] {
  const parser = new AnsiParser();
  for (const piece of pieces) parser.write(piece);
  return shape(parser.endLine().runs);
}

function shape(runs: Run[]): [string, Record<string, unknown>][] {
  return runs.map((run) => [
    run.text,
    Object.fromEntries(
      Object.entries(run.style ?? {}).filter(([, v]) =>
        v !== null && v !== false
      ),
    ),
  ]);
}

Deno.test("ansi: 16 colours, bright colours, backgrounds, attributes and resets become styles", () => {
  assertEquals(line(`${ESC}[31mred${ESC}[0m plain`), [
    ["red", { fg: 1 }],
    [" plain", {}],
  ]);
  assertEquals(line(`${ESC}[1;91;42mA${ESC}[22;39mB${ESC}[49;101mC${ESC}[m`), [
    ["A", { fg: 9, bg: 2, bold: true }],
    ["B", { bg: 2 }],
    ["C", { bg: 9 }],
  ]);
  assertEquals(
    line(
      `${ESC}[2mdim${ESC}[22;3mit${ESC}[23;4mun${ESC}[24;7minv${ESC}[27;9mst${ESC}[29;8mhid${ESC}[28m.`,
    ),
    [
      ["dim", { dim: true }],
      ["it", { italic: true }],
      ["un", { underline: true }],
      ["inv", { inverse: true }],
      ["st", { strike: true }],
      ["hid", { hidden: true }],
      [".", {}],
    ],
  );
  // `ESC[;1m` is reset then bold; unknown codes change nothing.
  assertEquals(line(`${ESC}[31m${ESC}[;1mx${ESC}[5;53my`), [
    ["xy", { bold: true }],
  ]);
});

Deno.test("ansi: 256-colour and truecolour, with ; and : separators", () => {
  assertEquals(line(`${ESC}[38;5;208;48;5;21mx`), [["x", { fg: 208, bg: 21 }]]);
  assertEquals(line(`${ESC}[38;2;255;128;0mx`), [["x", { fg: "#ff8000" }]]);
  assertEquals(line(`${ESC}[48:2::10:20:30mx`), [["x", { bg: "#0a141e" }]]);
  assertEquals(line(`${ESC}[38:2:10:20:30mx`), [["x", { fg: "#0a141e" }]]);
  assertEquals(line(`${ESC}[38:5:9mx`), [["x", { fg: 9 }]]);
  // Out of range: ignored, the rest of the sequence still applies.
  assertEquals(line(`${ESC}[38;5;300;1mx`), [["x", { bold: true }]]);
  assertEquals(paletteColour(16), "#000000");
  assertEquals(paletteColour(231), "#ffffff");
  assertEquals(paletteColour(208), "#ff8700");
  assertEquals(paletteColour(232), "#080808");
  assertEquals(paletteColour(1), "#cd0000");
});

Deno.test("ansi: a carriage return overwrites as a terminal does; erases, moves and backspaces stay on the line", () => {
  assertEquals(line("10%\r20%\r100%"), [["100%", {}]]);
  assertEquals(line("abcdef\rxy"), [["xycdef", {}]]);
  assertEquals(line(`abcdef\r${ESC}[Kxy`), [["xy", {}]]);
  assertEquals(line("crlf line\r"), [["crlf line", {}]]);
  assertEquals(line(`abc${ESC}[2Dx`), [["axc", {}]]);
  assertEquals(line(`ab${ESC}[5Gc`), [["ab  c", {}]]);
  assertEquals(line(`ab${ESC}[3Cc`), [["ab   c", {}]]);
  assertEquals(line("ab\bc"), [["ac", {}]]);
  assertEquals(line(`abcdef${ESC}[3D${ESC}[1K!`), [["   !ef", {}]]);
  assertEquals(line(`abc${ESC}[2Kxy`), [["   xy", {}]]);
  assertEquals(line(`abcdef\r${ESC}[2X`), [["  cdef", {}]]);
  // A progress bar in colour: its last state, in its colours.
  assertEquals(
    line(
      `${ESC}[32m[==  ]${ESC}[0m 50%\r${ESC}[32m[====]${ESC}[0m 100%`,
    ),
    [["[====]", { fg: 2 }], [" 100%", {}]],
  );
});

Deno.test("ansi: other escapes (OSC titles and links, private modes, charsets, other lines, DCS) show nothing", () => {
  for (
    const [input, shown] of [
      [`${ESC}]0;window title\u0007text`, "text"],
      [`${ESC}]8;;https://example.com${ESC}\\link${ESC}]8;;${ESC}\\`, "link"],
      [`${ESC}[?25lhidden cursor${ESC}[?25h`, "hidden cursor"],
      [`${ESC}(Bcharset${ESC})0`, "charset"],
      [`up${ESC}[1A${ESC}[2Jdown${ESC}[3;4H`, "updown"],
      [`${ESC}Pq#0;2;0;0;0${ESC}\\dcs`, "dcs"],
      [`${ESC}7save${ESC}8${ESC}=`, "save"],
      [`\u009b31mc1 csi`, "c1 csi"],
      [`bell\u0007`, "bell"],
    ]
  ) {
    assertEquals(new AnsiParser().peek().text, "");
    const parser = new AnsiParser();
    parser.write(input);
    assertEquals(parser.endLine().text, shown, JSON.stringify(input));
  }
  assertEquals(line(`\u009b31mx`), [["x", { fg: 1 }]]);
});

Deno.test("ansi: control and bidirectional characters are shown as marked escapes", () => {
  assertEquals(line("a\u0000b\u202ec\u0001"), [
    ["a", {}],
    ["\\u0000", { ctl: true }],
    ["b", {}],
    ["\\u202E", { ctl: true }],
    ["c", {}],
    ["\\u0001", { ctl: true }],
  ]);
  assertEquals(line("tab\there"), [["tab\there", {}]]);
});

Deno.test("ansi: an escape split at any point between two pieces renders as if it came whole", () => {
  const text =
    `${ESC}[1;38;5;208mbold orange${ESC}[0m ${ESC}]0;title\u000710%\r${ESC}[38:2::1:2:3m✓ done${ESC}[K ${ESC}[4munder${ESC}[24m`;
  const whole = line(text);
  assertEquals(whole[0], ["✓ done ", { fg: "#010203" }]);
  for (let cut = 0; cut <= text.length; cut++) {
    assertEquals(
      line(text.slice(0, cut), text.slice(cut)),
      whole,
      `cut ${cut}`,
    );
  }
  // Also split three ways.
  for (let cut = 1; cut < text.length; cut += 3) {
    assertEquals(
      line(text.slice(0, cut), text.slice(cut, cut + 2), text.slice(cut + 2)),
      whole,
      `cuts ${cut}`,
    );
  }
});

Deno.test("ansi: the style carries over to the next line; a line keeps its start as written and at most maxChars characters", () => {
  const parser = new AnsiParser(10);
  parser.write(`${ESC}[32mgreen`);
  const first = parser.endLine();
  assertEquals(first.head, `${ESC}[32mgreen`);
  parser.write("0123456789abcde");
  const second = parser.endLine();
  assertEquals(shape(second.runs), [["0123456789", { fg: 2 }]]);
  assertEquals(second.dropped, 5);
  // A cut escape does not reach past its line.
  parser.write(`x${ESC}[3`);
  assertEquals(parser.endLine().text, "x");
  parser.write("1my");
  assertEquals(shape(parser.endLine().runs), [["1my", { fg: 2 }]]);
});

Deno.test("line feed: lines with their end offsets, whatever the chunks; a first partial line skipped; the last line at the end", () => {
  const text =
    `first ✓ line\r\n${ESC}[31mred ✗\n\nprogress 1\rprogress 2\nlast ü`;
  const bytes = encoder.encode(text);
  const whole = new LineFeed({ offset: 100 });
  const lines = whole.push(bytes);
  assertEquals(lines.map((l) => [l.text, l.end, l.complete]), [
    ["first ✓ line", 100 + encoder.encode("first ✓ line\r\n").length, true],
    [
      "red ✗",
      100 + encoder.encode(`first ✓ line\r\n${ESC}[31mred ✗\n`).length,
      true,
    ],
    [
      "",
      100 + encoder.encode(`first ✓ line\r\n${ESC}[31mred ✗\n\n`).length,
      true,
    ],
    ["progress 2", 100 + bytes.length - encoder.encode("last ü").length, true],
  ]);
  assertEquals(whole.partial()?.text, "last ü");
  assertEquals(whole.finish()?.end, 100 + bytes.length);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const feed = new LineFeed({ offset: 100 });
    const got = [
      ...feed.push(bytes.subarray(0, cut)),
      ...feed.push(bytes.subarray(cut)),
    ];
    assertEquals(
      got.map((l) => [shape(l.runs), l.end]),
      lines.map((l) => [shape(l.runs), l.end]),
      `cut ${cut}`,
    );
    assertEquals(feed.finish()?.text, "last ü", `cut ${cut}`);
  }
  const skipping = new LineFeed({ offset: 10, skipFirst: true });
  assertEquals(skipping.push(encoder.encode("end of an earl")), []);
  assertEquals(skipping.firstStart, -1);
  const after = skipping.push(encoder.encode("ier line\nnext\n"));
  assertEquals(after.map((l) => [l.text, l.end]), [["next", 10 + 23 + 5]]);
  assertEquals(skipping.firstStart, 10 + 23);
  assertEquals(skipping.partial(), null);
  assertEquals(skipping.finish(), null);
});

Deno.test("sections: GitLab and GitHub markers are recognised with their names, titles, times and options", () => {
  const start =
    `${ESC}[0Ksection_start:1700000000:build_step[collapsed=true]\r${ESC}[0KBuilding the thing`;
  assertEquals(markerOf(start, "Building the thing"), {
    kind: "start",
    flavour: "gitlab",
    name: "build_step",
    title: "Building the thing",
    time: 1700000000000,
    collapsed: true,
    prefix: 0,
  });
  const end = `${ESC}[0Ksection_end:1700000042:build_step\r${ESC}[0K`;
  assertEquals(markerOf(end, "")?.kind, "end");
  assertEquals(markerOf(end, "")?.time, 1700000042000);
  assertEquals(
    markerOf("section_start:1:plain", "section_start:1:plain")?.title,
    "plain",
  );
  assertEquals(markerOf("", "::group::Run tests ")?.title, "Run tests");
  assertEquals(markerOf("", "::group::Run tests")?.prefix, 9);
  assertEquals(
    markerOf("", "2024-05-01T10:00:00.1234567Z ##[group]Set up job")?.title,
    "Set up job",
  );
  assertEquals(markerOf("", "::endgroup::")?.kind, "end");
  assertEquals(markerOf("", "##[endgroup]")?.flavour, "github");
  for (
    const text of [
      "a ::group:: in the middle",
      "section_start: no",
      "::endgroup:: x",
      "",
    ]
  ) {
    assertEquals(markerOf(text, text), null, text);
  }
});

Deno.test("sections: GitLab sections nest and an outer end closes the inner; GitHub groups end at the next group; stray ends end nothing", () => {
  const tracker = new SectionTracker<string>();
  const texts = [
    "before",
    "section_start:10:outer",
    "o1",
    "section_start:11:inner",
    "i1",
    "section_end:12:outer",
    "::group::G1",
    "g1",
    "::group::G2",
    "::endgroup::",
    "section_end:13:nothing",
    "after",
  ];
  const chains = texts.map((text) =>
    tracker.place(text, markerOf(text, text)).chain.map((s) => s.title)
  );
  assertEquals(chains, [
    [],
    ["outer"],
    ["outer"],
    ["outer", "inner"],
    ["outer", "inner"],
    ["outer"],
    ["G1"],
    ["G1"],
    ["G2"],
    ["G2"],
    [],
    [],
  ]);
  const [outer, inner, g1, g2] = tracker.all;
  assertEquals([outer.end, inner.end], [
    "section_end:12:outer",
    "section_end:12:outer",
  ]);
  assertEquals([outer.startTime, outer.endTime], [10000, 12000]);
  assertEquals([g1.closed, g1.end, g2.end], [true, null, "::endgroup::"]);
  assertEquals(tracker.open, []);
});

Deno.test("search: plain text is literal and case-insensitive by default; regex and case options; invalid and empty-matching patterns", () => {
  const plain = compileSearch("a.b", { regex: false, caseSensitive: false });
  assertEquals(plain.find!("axb A.B a.b"), [[4, 7], [8, 11]]);
  const cased = compileSearch("Error", { regex: false, caseSensitive: true });
  assertEquals(cased.find!("error Error"), [[6, 11]]);
  const regex = compileSearch("e\\w+r", { regex: true, caseSensitive: false });
  assertEquals(regex.find!("an Error, an eraser"), [[3, 8], [13, 19]]);
  assert(compileSearch("(", { regex: true, caseSensitive: false }).error);
  assertEquals(compileSearch("", { regex: false, caseSensitive: false }), {});
  const empty = compileSearch("x*", { regex: true, caseSensitive: false });
  assertEquals(empty.find!("abxxc"), [[2, 4]]);
  const every = compileSearch(".", { regex: true, caseSensitive: false });
  assertEquals(every.find!("y".repeat(5000)).length, 1000, "bounded per line");
});

Deno.test("times: a byte's time is its first covering checkpoint; none before `from` or past the last", () => {
  const times = new CheckpointTimes();
  times.load({
    from: 10,
    checkpoints: [
      { size: 50, time: "2026-01-01T00:00:01.000Z" },
      { size: 90, time: "2026-01-01T00:00:02.000Z" },
    ],
  });
  times.add(70, Date.parse("2026-01-01T00:00:01.500Z"));
  times.add(70, 0); // known already
  assertEquals(times.sizes, [50, 70, 90]);
  assertEquals(times.timeOf(10), undefined);
  assertEquals(times.timeOf(11), Date.parse("2026-01-01T00:00:01.000Z"));
  assertEquals(times.timeOf(71), Date.parse("2026-01-01T00:00:02.000Z"));
  assertEquals(times.timeOf(91), undefined);
});

Deno.test("format: elapsed times, durations and times ago", () => {
  assertEquals(
    [0, 5234, 65_000, 3_723_000, -1500].map(formatElapsed),
    ["+0:00.0", "+0:05.2", "+1:05.0", "+1:02:03", "-0:01.5"],
  );
  assertEquals(
    [0, 400, 9_990, 12_000, 185_000, 3_720_000].map(formatDuration),
    ["0.0s", "0.4s", "9.9s", "12s", "3m 05s", "1h 02m"],
  );
  const now = Date.parse("2026-01-01T12:00:00Z");
  assertEquals(
    [
      "2026-01-01T12:00:03Z",
      "2026-01-01T12:00:10Z",
      "2026-01-01T11:59:18Z",
      "2026-01-01T11:55:00Z",
      "2026-01-01T09:00:00Z",
      "2025-12-31T12:00:00Z",
      "2025-12-25T12:00:00Z",
    ].map((iso) => formatAgo(iso, now)),
    [
      "just now",
      "just now",
      "42 s ago",
      "5 min ago",
      "3 h ago",
      "1 day ago",
      "7 days ago",
    ],
  );
});
