/**
 * A transport receiver run as a subprocess by the big-object tests: its
 * handler lags behind the network on purpose, as one that writes each
 * piece to disk does, and reads with a mix of buffer sizes.
 *
 *   deno run -A tests/_lagging_receiver.ts FILE
 *
 * Writes every body to FILE (over the last one), a piece at a time.
 * Prints `Listening on URL`, then one JSON line per object:
 * `{"name","size","sha256","peakRss"}` (peak resident memory in bytes when
 * the object ended), or `{"error"}`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { Receiver } from "../transport/mod.ts";

/** Buffer sizes of the handler's reads, in turn: below, at and above 64 KiB. */
const READ_SIZES = [16 * 1024, 1024 * 1024, 64 * 1024, 100 * 1024];

async function peakRss(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(status.match(/^VmHWM:\s+(\d+) kB$/m)?.[1] ?? NaN) * 1024;
}

const path = Deno.args[0];
if (path === undefined) throw new Error("usage: _lagging_receiver.ts FILE");
const receiver = new Receiver();
await receiver.listen("data", { hostname: "127.0.0.1", port: 0 });
receiver.register("data", "lagging", async (header, body, error) => {
  if (error !== undefined) {
    console.log(JSON.stringify({ error: `${error.code}: ${error.message}` }));
    return;
  }
  const hash = createHash("sha256");
  let size = 0;
  using sink = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  if (body !== null) {
    const reader = body.getReader({ mode: "byob" });
    // One buffer per size, reused: garbage would show as memory too.
    const buffers = READ_SIZES.map((size) => new ArrayBuffer(size));
    for (let turn = 0;; turn++) {
      const which = turn % READ_SIZES.length;
      const { value, done } = await reader.read(
        new Uint8Array(buffers[which]),
      );
      if (value !== undefined) buffers[which] = value.buffer as ArrayBuffer;
      if (done) break;
      hash.update(value);
      size += value.byteLength;
      // A file write per piece, awaited: the handler lags behind the socket.
      for (let at = 0; at < value.byteLength;) {
        at += await sink.write(value.subarray(at));
      }
    }
  }
  console.log(JSON.stringify({
    name: header.name,
    size,
    sha256: hash.digest("hex"),
    peakRss: await peakRss(),
  }));
});
console.log(`Listening on ${receiver.url("data", "lagging").href}`);
