/**
 * Faults under `spool receive` and `spool send` (cli/transport_cli.ts), all
 * real subprocesses on 127.0.0.1: a receiver SIGKILLed while the sender has
 * written more than it stored, partial files, a receiver that runs out of
 * file descriptors.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { encodeHeader, Stream } from "../transport/mod.ts";
import { Children, hex256, kill, Lines, within } from "./_fault_actors.ts";
import { GatedProxy } from "./_gated_proxy.ts";
import { randomBytes } from "./_helpers.ts";
import { listTree, withTempDir } from "../testing/files.ts";

const SPOOL = new URL("../spool.ts", import.meta.url).pathname;
/** Guard against hangs only; nothing waits for it to pass. */
const GUARD_MS = 30_000;
const FRAME_HEADER_SIZE = 16;
const decoder = new TextDecoder();

/** A running `spool receive`. */
interface Receiving {
  child: Deno.ChildProcess;
  url: URL;
  stdout: Lines;
  stderr: Lines;
}

/**
 * Starts `spool receive --port 0 --dir DIR` (with `ulimit -n` under bash
 * if `maxFiles` is given) and waits for its "Listening on" line.
 */
async function startReceive(
  children: Children,
  dir: string,
  maxFiles?: number,
): Promise<Receiving> {
  const deno = [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    SPOOL,
    "receive",
    "--port",
    "0",
    "--dir",
    dir,
  ];
  const [command, ...args] = maxFiles === undefined
    ? deno
    : ["bash", "-c", `ulimit -n ${maxFiles} && exec "$0" "$@"`, ...deno];
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const receiving = children.add({
    child,
    url: new URL("http://127.0.0.1/"),
    stdout: new Lines(child.stdout),
    stderr: new Lines(child.stderr),
  }, (r) => Promise.all([r.stdout.rest(), r.stderr.rest()]));
  const first = await within(
    GUARD_MS,
    "the receiver's first line",
    receiving.stdout.until(() => true),
  );
  const match = first.match(/^Listening on (http:\/\/127\.0\.0\.1:\d+\/\S+)$/);
  if (match === null) throw new Error(`unexpected first line ${first}`);
  receiving.url = new URL(match[1]);
  return receiving;
}

/** `spool send ARGS…` as a subprocess; resolves when it exited. */
function spoolSend(
  children: Children,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", SPOOL, "send", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add({ child });
  return child.output().then((out) => ({
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  }));
}

Deno.test("fault transport cli: a receiver SIGKILLed behind the sender: send names exactly the objects it did not store and exits 1; the next receive removes the partial file", async () => {
  await withTempDir("spool-fcli-", async (dir) => {
    await using children = new Children();
    // 40 files; f030 is large, so the receiver can be stopped inside it.
    const names = Array.from(
      { length: 40 },
      (_, i) => `f${String(i + 1).padStart(3, "0")}`,
    );
    const bodies = names.map((name, i) =>
      randomBytes(name === "f030" ? 4 << 20 : 1000 + i, i + 1)
    );
    await Deno.mkdir(`${dir}/src`);
    for (const [i, name] of names.entries()) {
      await Deno.writeFile(`${dir}/src/${name}`, bodies[i]);
    }
    const out = `${dir}/out`;
    const receiving = await startReceive(children, out);
    // Let the receiver have f001..f029 and half of f030, no more; the relay
    // still takes everything the sender writes. (The HTTP head and chunk
    // size lines are a few hundred bytes, far inside f030's 2 MiB margin.)
    let limit = 2 << 20;
    for (let i = 0; i < 29; i++) {
      const header = encodeHeader({ name: names[i], size: bodies[i].length });
      limit += FRAME_HEADER_SIZE + header.length + bodies[i].length;
    }
    await using proxy = new GatedProxy(receiving.url, limit);
    const sent = spoolSend(children, [
      `${proxy.origin}${receiving.url.pathname}`,
      ...names.map((name) => `${dir}/src/${name}`),
    ]);
    for (let i = 0; i < 29; i++) {
      const line = await within(
        GUARD_MS,
        `the receiver's line for ${names[i]}`,
        receiving.stdout.until(() => true),
      );
      assertEquals(JSON.parse(line), {
        name: names[i],
        size: bodies[i].length,
        sha256: hex256(bodies[i]),
      });
    }
    // The receiver has confirmed f029 (#28) to the sender and now waits for
    // the rest of f030, which the relay holds back.
    await within(
      GUARD_MS,
      "the receiver's confirmation of f029",
      proxy.downstreamPasses((text) => text.includes('{"ack":28}\n')),
    );
    // A status wait, bounded: f030's temporary file shows up.
    for (let i = 0; !(await listTree(out)).some((n) => n.endsWith(".part"));) {
      assert(++i < 1000, "the receiver never started writing f030");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const status = await kill(receiving.child);
    assertEquals(status.signal, "SIGKILL");
    const result = await within(GUARD_MS, "spool send", sent);
    assert(proxy.held > 0, "the sender wrote nothing past the relay's limit");

    // What the receiver wrote whole: exactly f001..f029, plus f030's
    // temporary file.
    const tree = await listTree(out);
    const stored = tree.filter((name) => !name.endsWith(".part"));
    assertEquals(stored, names.slice(0, 29));
    for (const name of stored) {
      assertEquals(
        hex256(await Deno.readFile(`${out}/${name}`)),
        hex256(bodies[names.indexOf(name)]),
      );
    }
    const parts = tree.filter((name) => name.endsWith(".part"));
    assertEquals(parts.length, 1, tree.join());
    assertMatch(parts[0], /^\.f030\.[0-9a-f]{8}\.part$/);

    // The sender names exactly the others: the first and how many more.
    const missing = names.filter((name) => !stored.includes(name));
    assertEquals(result.code, 1, result.stderr);
    assertEquals(result.stdout, "");
    assertEquals(result.stderr.split("\n").length, 2, result.stderr);
    assert(
      result.stderr.startsWith(
        `spool send: not delivered: "${missing[0]}" (${dir}/src/${
          missing[0]
        }) and ${
          missing.length - 1
        } more after it, ${missing.length} of ${names.length} objects (${stored.length} delivered): receiver-gone: `,
      ),
      result.stderr,
    );

    // The next receive on the directory removes the partial file, says so,
    // and keeps the whole ones.
    const again = await startReceive(children, out);
    assertEquals(
      await within(
        GUARD_MS,
        "the cleanup line",
        again.stderr.until(() => true),
      ),
      `spool receive: removed 1 partial file (.part) that an earlier receive left in ${await Deno
        .realPath(out)}`,
    );
    assertEquals(await listTree(out), names.slice(0, 29));
    again.child.kill("SIGTERM");
    assertEquals((await again.child.status).code, 0);
  });
});

Deno.test("fault transport cli: an object that fails mid-body leaves no partial file; the receiver goes on", async () => {
  await withTempDir("spool-fcli-", async (dir) => {
    await using children = new Children();
    const out = `${dir}/out`;
    const receiving = await startReceive(children, out);
    const stream = new Stream(receiving.url.href);
    const bytes = randomBytes(300_000, 3);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes);
      },
    });
    await stream.send({ name: "cut.bin" }, body);
    // A status wait, bounded: the receiver's temporary file shows up.
    for (let i = 0; !(await listTree(out)).some((n) => n.endsWith(".part"));) {
      assert(++i < 1000, "the receiver never started writing");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await stream.abort("cut by the test");
    const line = await within(
      GUARD_MS,
      "the receiver's failure line",
      receiving.stderr.until(() => true),
    );
    assertMatch(
      line,
      /^spool receive: stream \S+ failed in object "cut\.bin": connection-reset: /,
    );
    assertEquals(await listTree(out), []);
    // The endpoint still takes a whole object.
    await Deno.mkdir(`${dir}/src`);
    await Deno.writeFile(`${dir}/src/ok.bin`, bytes);
    const sent = await spoolSend(children, [
      receiving.url.href,
      `${dir}/src/ok.bin`,
    ]);
    assertEquals(sent.code, 0, sent.stderr);
    assertEquals(JSON.parse(await receiving.stdout.until(() => true)), {
      name: "ok.bin",
      size: bytes.length,
      sha256: hex256(bytes),
    });
    assertEquals(await listTree(out), ["ok.bin"]);
    receiving.child.kill("SIGTERM");
    assertEquals((await receiving.child.status).code, 0);
  });
});

Deno.test("fault transport cli: a receiver out of file descriptors keeps its running stream, listens again once they are back, and never exits", async () => {
  await withTempDir("spool-fcli-", async (dir) => {
    await using children = new Children();
    const out = `${dir}/out`;
    const receiving = await startReceive(children, out, 64);
    let exited = false;
    receiving.child.status.then(() => exited = true);
    // A stream the receiver is in the middle of when descriptors run out.
    const head = randomBytes(200_000, 11);
    const tail = randomBytes(100_000, 12);
    let more!: ReadableStreamDefaultController<Uint8Array>;
    const running = new Stream(receiving.url.href, { confirm: true });
    await running.send(
      { name: "running.bin" },
      new ReadableStream({
        start(controller) {
          more = controller;
          controller.enqueue(head);
        },
      }),
    );
    // A status wait, bounded: the receiver's temporary file shows up.
    for (let i = 0; !(await listTree(out)).some((n) => n.endsWith(".part"));) {
      assert(++i < 1000, "the receiver never started writing");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    // Flood it with connections that never finish a request (every other
    // one sends half a request line), more than it has descriptors for.
    const flood: Deno.TcpConn[] = [];
    const port = Number(receiving.url.port);
    const encoder = new TextEncoder();
    for (let i = 0; i < 120; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        flood.push(conn);
        if (i % 2 === 1) await conn.write(encoder.encode("PUT /v1/obj"));
      } catch (error) {
        // Refused while it does not listen, or reset by a closing listener.
        if (!isClosed(error)) throw error;
      }
    }
    const failure = await within(
      GUARD_MS,
      "the receiver's accept failure",
      receiving.stderr.until((line) => line.includes("accepting connections")),
    );
    assertMatch(
      failure,
      /^spool: accepting connections on 127\.0\.0\.1:\d+ failed \(.*Too many open files.*\); requests already running go on; listening again in \d+ ms$/,
    );

    // The running stream goes on and is stored whole, out of descriptors.
    more.enqueue(tail);
    more.close();
    await within(GUARD_MS, "fin of the running stream", running.fin());
    assertEquals(JSON.parse(await receiving.stdout.until(() => true)), {
      name: "running.bin",
      size: head.length + tail.length,
      sha256: hex256(new Uint8Array([...head, ...tail])),
    });

    // Once the flood is gone the receiver listens again (it says so) and
    // serves a new sender end to end.
    for (const conn of flood) closeQuietly(conn);
    await Deno.mkdir(`${dir}/src`);
    const bytes = randomBytes(50_000, 13);
    await Deno.writeFile(`${dir}/src/after.bin`, bytes);
    let sent = await spoolSend(children, [
      receiving.url.href,
      `${dir}/src/after.bin`,
    ]);
    for (let attempt = 1; sent.code !== 0; attempt++) {
      assert(attempt < 20, `send never got through: ${sent.stderr}`);
      assertMatch(sent.stderr, /receiver-gone/);
      await within(
        GUARD_MS,
        "the receiver listening again",
        receiving.stderr.until((line) => line.includes("listening again on")),
      );
      sent = await spoolSend(children, [
        receiving.url.href,
        `${dir}/src/after.bin`,
      ]);
    }
    assertEquals(JSON.parse(await receiving.stdout.until(() => true)), {
      name: "after.bin",
      size: bytes.length,
      sha256: hex256(bytes),
    });
    assertEquals(await listTree(out), ["after.bin", "running.bin"]);
    assert(!exited, "the receiver exited");
    receiving.child.kill("SIGTERM");
    assertEquals((await receiving.child.status).code, 0);
  });
});

function isClosed(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.BrokenPipe;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // The receiver already closed it.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
