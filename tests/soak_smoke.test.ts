import { assert, assertEquals, assertMatch } from "@std/assert";

const SOAK = new URL("../soak/main.ts", import.meta.url).pathname;

Deno.test("soak smoke: 2 s of quick mixed load verifies every byte and reports RSS", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SOAK,
      "--seconds",
      "2",
      "--quick",
      "--uploaders",
      "2",
      "--streams",
      "1",
      "--progress-seconds",
      "1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, `${stdout}\n${stderr}`);
  assert(stdout.includes("\n  bytes lost: 0\n"), stdout);
  assert(stdout.includes("\n  bytes corrupted: 0\n"), stdout);
  assert(stdout.includes("\n  errors: 0\n"), stdout);
  assert(stdout.includes("soak: PASS"), stdout);
  // Progress lines and an RSS table with the server's and receiver's RSS.
  assertMatch(stdout, /\[\s+\d+ s\] moved .* bytes lost: 0,/);
  assertMatch(
    stdout,
    /RSS over time \(MiB\):\n\s+time\s+server\s+receiver\s+driver\n/,
  );
  const moved = Number(stdout.match(/bytes moved: (\d+)/)?.[1]);
  assert(moved > 0, `bytes moved: ${moved}`);
  const peak = stdout.match(/peak\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/);
  assert(peak && Number(peak[1]) > 0 && Number(peak[2]) > 0, "RSS sampled");
});

Deno.test("soak smoke: --help and bad usage", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SOAK, "--help"],
  }).output();
  assertEquals(help.code, 0);
  assert(
    new TextDecoder().decode(help.stdout).includes("Usage: deno task soak"),
  );
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SOAK, "--bogus"],
  }).output();
  assertEquals(bad.code, 2);
  assert(
    new TextDecoder().decode(bad.stderr).startsWith(
      "soak: unknown option --bogus",
    ),
  );
});
