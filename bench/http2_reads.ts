/**
 * Server memory under many small HTTP/2 reads over TLS (issue 17): 20
 * clients × 100 streams of `GET /resources/{id}` on a 2-byte resource, next
 * to the same requests over HTTP/1.1. Each side gets a fresh server
 * subprocess; the load is a separate process.
 *
 * Before the fix each answer's read held a 256 KiB buffer, so 2,000 streams
 * in flight took the server from ~60 to ~650 MiB, kept after the load.
 */

import { startUpload } from "../mod.ts";
import { rssOf } from "../testing/process_memory.ts";
import { spawnSpool, startLoad } from "./_process.ts";
import type { BenchRow } from "./_row.ts";

const MIB = 1024 * 1024;
const FIXTURES = new URL("../tests/fixtures/", import.meta.url);

/** The load of {@linkcode benchHttp2Reads}. */
export interface Http2ReadsOptions {
  clients: number;
  streams: number;
  requests: number;
  /** Bound of the server's peak RSS growth under HTTP/2, in MiB. */
  peakBoundMib: number;
}

/** What one protocol's run did to the server. */
interface Run {
  peakGrowth: number;
  idleGrowth: number;
  failures: number;
  ms: number;
}

/** RSS once it stops falling (V8 collects the load's garbage when idle). */
async function settledRss(pid: number): Promise<number> {
  let low = await rssOf(pid);
  for (let quiet = 0; quiet < 10;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await rssOf(pid);
    if (now < low - 256 * 1024) {
      low = now;
      quiet = 0;
    } else quiet++;
  }
  return low;
}

async function runProtocol(
  protocol: "h1" | "h2",
  options: Http2ReadsOptions,
): Promise<Run> {
  const fixture = (name: string) => new URL(name, FIXTURES).pathname;
  const spool = await spawnSpool([
    "--cert",
    fixture("cert.pem"),
    "--key",
    fixture("key.pem"),
  ]);
  try {
    const caCerts = [await Deno.readTextFile(fixture("ca.pem"))];
    const up = await startUpload(spool.url, { name: "two.bin", caCerts });
    await up.send(new Uint8Array([104, 105]));
    await up.closed();
    const id = new URL(up.reference).pathname.split("/").pop()!;
    const url = new URL(`resources/${id}`, spool.url);
    url.protocol = "https:";
    const pid = spool.process.pid;
    const before = await settledRss(pid);
    const load = startLoad([
      "gets",
      url.href,
      fixture("ca.pem"),
      protocol,
      String(options.clients),
      String(options.streams),
      String(options.requests),
    ]);
    await load.release();
    let peak = before;
    let result: Record<string, unknown> | undefined;
    const done = load.next().then((r) => result = r);
    while (!result) {
      peak = Math.max(peak, await rssOf(pid));
      await Promise.race([done, new Promise((r) => setTimeout(r, 20))]);
    }
    await load.process.status;
    const idle = await settledRss(pid);
    return {
      peakGrowth: (peak - before) / MIB,
      idleGrowth: (idle - before) / MIB,
      failures: Number(result.failures) +
        (Number(result.requests) - options.requests),
      ms: Number(result.ms),
    };
  } finally {
    await spool.stop();
  }
}

/** Peak and idle server RSS growth under HTTP/2 reads, next to HTTP/1.1. */
export async function benchHttp2Reads(
  options: Http2ReadsOptions,
): Promise<BenchRow[]> {
  const h1 = await runProtocol("h1", options);
  const h2 = await runProtocol("h2", options);
  const load =
    `${options.clients} clients × ${options.streams} streams, ${options.requests} GETs of a 2-byte resource`;
  const failed = h1.failures + h2.failures;
  const note =
    `HTTPS server subprocess (tests/fixtures certificate), a fresh one per protocol; the load (bench/_load.ts gets) is another process with one Deno.createHttpClient per client. RSS from /proc; "idle" once RSS stopped falling for 2.5 s. h2 took ${
      (h2.ms / 1000).toFixed(1)
    } s, h1 ${
      (h1.ms / 1000).toFixed(1)
    } s. Deno.serve offers no HTTP/2 setting (200 streams per connection, fixed): see docs/http.md.`;
  const failedText = failed > 0 ? `, ${failed} FAILED` : "";
  return [
    {
      figure:
        `HTTP/2 over TLS, ${load}: server peak RSS growth vs its bound${failedText}`,
      value: h2.peakGrowth,
      unit: "MiB",
      baseline: "bound (was ~600-800 before issue 17)",
      baselineValue: options.peakBoundMib,
      goal: "lower",
      note,
    },
    {
      figure: `HTTP/2 over TLS, ${load}: server peak RSS growth vs HTTP/1.1`,
      value: h2.peakGrowth,
      unit: "MiB",
      baseline: "the same GETs over HTTP/1.1",
      baselineValue: h1.peakGrowth,
      goal: "info",
      note,
    },
    {
      figure: `HTTP/2 over TLS, ${load}: server RSS growth left once idle`,
      value: h2.idleGrowth,
      unit: "MiB",
      baseline: "the same GETs over HTTP/1.1",
      baselineValue: h1.idleGrowth,
      goal: "info",
      note,
    },
  ];
}
