/**
 * Load generator for the live-resource benchmarks, run as its own process so
 * the measured server never shares an event loop with its load. Each
 * subcommand prints one JSON line with its measurements.
 *
 *   spool-upload SERVER MIB      upload MIB MiB through the Spool client
 *   ws-upload URL MIB            the same bytes over a plain WebSocket
 *   spool-download REF           read a finished resource in one range
 *   ws-download URL              read the baseline's file
 *   followers REF N W            N followers to the end of a resource of
 *                                stamped W-byte writes (`_stamps.ts`); bytes
 *                                each got, write → follower latencies
 *   ws-followers URL N W         the same from N bare WebSockets until the
 *                                text `end BYTES` (BYTES: all that was sent)
 *   redis-subscribers PORT N W   the same from N Redis subscribers until the
 *                                message `end BYTES`
 *   idle REF N                   N open download sockets until stdin closes
 *   ws-idle URL N                N bare WebSockets until stdin closes
 *   mixed SERVER N MIB           N resources, each uploaded and followed once,
 *                                MIB MiB in all
 *   gets URL CA PROTOCOL CLIENTS STREAMS N
 *                                N GETs of URL (https, trusting the PEM file
 *                                CA) over PROTOCOL h2 or h1: CLIENTS clients,
 *                                each with STREAMS requests in flight; counts
 *                                the answers that were not `200` with the
 *                                bytes of the first one
 *
 * The follower commands print a first line when every follower is
 * connected, with `cpu`: this process's own user + system CPU seconds so
 * far (it exits right after its result, so it reports them itself). The
 * transfer commands report `cpuSeconds`, their CPU since their clock started.
 */

import { createHash } from "node:crypto";
import { cpuUsage } from "node:process";
import { openDownload, startUpload } from "../mod.ts";
import { ownCpuSeconds } from "../testing/process_cpu.ts";
import { summarize, WriteLatencies } from "./_stamps.ts";

const CHUNK = 1024 * 1024;
const HIGH_WATER = 4 * 1024 * 1024;

function payload(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 131 + 7) & 0xff;
  return bytes;
}

/** CPU-seconds (user + system) this process used since `since`. */
function cpuSeconds(since: { user: number; system: number }): number {
  const used = cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

function report(result: Record<string, unknown>): void {
  console.log(JSON.stringify(result));
}

async function spoolUpload(server: string, mib: number): Promise<void> {
  const chunk = payload(CHUNK);
  const cpu = cpuUsage();
  const started = performance.now();
  const upload = await startUpload(server, { name: "bench.bin" });
  for (let i = 0; i < mib; i++) await upload.write(chunk);
  const status = await upload.finish();
  const ms = performance.now() - started;
  await upload.closed();
  report({
    ms,
    bytes: status.size,
    cpuSeconds: cpuSeconds(cpu),
    reference: upload.reference,
  });
}

async function wsUpload(url: string, mib: number): Promise<void> {
  const chunk = payload(CHUNK);
  const cpu = cpuUsage();
  // Hashed as sent and checked against the server's hash, as Spool's client
  // (checksum on, its default) sends its hash for the server to check.
  const hash = createHash("sha256");
  const started = performance.now();
  const socket = new WebSocket(url);
  await new Promise((resolve) => socket.onopen = resolve);
  const done = new Promise<string>((resolve) =>
    socket.onmessage = (e) => resolve(String(e.data))
  );
  for (let i = 0; i < mib; i++) {
    while (socket.bufferedAmount > HIGH_WATER) {
      await new Promise((r) => setTimeout(r, 1));
    }
    socket.send(chunk);
    hash.update(chunk);
  }
  socket.send("end");
  const [, bytes, received] = (await done).split(" ");
  const sent = hash.digest("hex");
  const ms = performance.now() - started;
  socket.close();
  if (received !== sent) {
    throw new Error(`the server hashed ${received}; expected ${sent}`);
  }
  report({ ms, bytes: Number(bytes), cpuSeconds: cpuSeconds(cpu) });
}

async function spoolDownload(reference: string): Promise<void> {
  const cpu = cpuUsage();
  const started = performance.now();
  const download = await openDownload(reference);
  let bytes = 0;
  for await (const chunk of download.read(0, download.status.size)) {
    bytes += chunk.byteLength;
  }
  const ms = performance.now() - started;
  await download.close();
  report({ ms, bytes, cpuSeconds: cpuSeconds(cpu) });
}

async function wsDownload(url: string): Promise<void> {
  const cpu = cpuUsage();
  const started = performance.now();
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  let bytes = 0;
  await new Promise<void>((resolve) => {
    socket.onmessage = (event) => {
      if (typeof event.data === "string") resolve();
      else bytes += (event.data as ArrayBuffer).byteLength;
    };
  });
  const ms = performance.now() - started;
  socket.close();
  report({ ms, bytes, cpuSeconds: cpuSeconds(cpu) });
}

/** The result line of the follower commands, from each follower's view. */
function reportFollowers(
  views: WriteLatencies[],
  expectedBytes: (view: WriteLatencies) => number,
  failures: string[] = [],
): void {
  const complete =
    views.filter((view) => view.bytes === expectedBytes(view)).length;
  report({
    complete,
    count: views.length,
    bytes: views[0]?.bytes ?? 0,
    latency: summarize(views.map((view) => view.values)),
    cpu: ownCpuSeconds(),
    failed: failures.length,
    firstFailure: failures[0] ?? null,
  });
}

function ready(count: number): void {
  console.log(JSON.stringify({ ready: count, cpu: ownCpuSeconds() }));
}

async function followers(
  reference: string,
  count: number,
  writeSize: number,
): Promise<void> {
  const downloads = [];
  for (let i = 0; i < count; i++) downloads.push(await openDownload(reference));
  ready(count);
  const failures: string[] = [];
  const views = await Promise.all(downloads.map(async (download) => {
    const view = new WriteLatencies(writeSize);
    try {
      for await (const chunk of download.follow()) view.add(chunk);
    } catch (error) {
      // A follower that fails counts as incomplete, and its error is reported.
      failures.push(error instanceof Error ? error.message : String(error));
    }
    await download.close();
    return { view, size: download.status.size };
  }));
  const sizes = new Map(views.map(({ view, size }) => [view, size]));
  reportFollowers(
    views.map(({ view }) => view),
    (view) => sizes.get(view)!,
    failures,
  );
}

async function wsFollowers(
  url: string,
  count: number,
  writeSize: number,
): Promise<void> {
  const sockets: WebSocket[] = [];
  const done: Promise<WriteLatencies>[] = [];
  let sentBytes = NaN;
  const closes: string[] = [];
  for (let i = 0; i < count; i++) {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    const view = new WriteLatencies(writeSize);
    await new Promise((resolve) => socket.onmessage = resolve); // "ready"
    done.push(
      new Promise((resolve) => {
        socket.onmessage = (event) => {
          if (typeof event.data === "string") {
            sentBytes = endBytes(event.data);
            resolve(view);
          } else view.add(new Uint8Array(event.data as ArrayBuffer));
        };
        // Closed before `end`: it counts as incomplete, and says why.
        socket.onclose = (event) => {
          closes.push(`${event.code} ${JSON.stringify(event.reason)}`);
          resolve(view);
        };
      }),
    );
    sockets.push(socket);
  }
  ready(count);
  const views = await Promise.all(done);
  for (const socket of sockets) {
    socket.onclose = null;
    socket.close();
  }
  if (closes.length > 0) {
    console.error(
      `ws-followers: ${closes.length} sockets closed before "end" (first: ${
        closes[0]
      })`,
    );
  }
  reportFollowers(views, () => sentBytes);
}

/** BYTES of an `end BYTES` message, or NaN if `text` is not one. */
function endBytes(text: string): number {
  const match = text.match(/^end (\d+)$/);
  return match === null ? NaN : Number(match[1]);
}

/** What this file uses of `bench/_redis_peer.ts`. */
interface RedisPeer {
  subscribe(
    port: number,
    onMessage: (message: Uint8Array) => void,
  ): Promise<{ close(): Promise<void> }>;
}

async function redisSubscribers(
  port: number,
  count: number,
  writeSize: number,
): Promise<void> {
  // A computed specifier: only this command loads the bench-only package.
  const module = new URL("_redis_peer.ts", import.meta.url).href;
  const peer = await import(module) as RedisPeer;
  const subscribers = [];
  const done: Promise<WriteLatencies>[] = [];
  const decoder = new TextDecoder();
  let sentBytes = NaN;
  for (let i = 0; i < count; i++) {
    const view = new WriteLatencies(writeSize);
    const ended = Promise.withResolvers<WriteLatencies>();
    subscribers.push(
      await peer.subscribe(port, (message) => {
        // Writes are stamped (binary) and longer: a short `end N` ends the run.
        const end = message.byteLength < 32
          ? endBytes(decoder.decode(message))
          : NaN;
        if (Number.isNaN(end)) view.add(message);
        else {
          sentBytes = end;
          ended.resolve(view);
        }
      }),
    );
    done.push(ended.promise);
  }
  ready(count);
  const views = await Promise.all(done);
  await Promise.all(subscribers.map((subscriber) => subscriber.close()));
  reportFollowers(views, () => sentBytes);
}

async function idle(reference: string, count: number): Promise<void> {
  const downloads = [];
  for (let i = 0; i < count; i++) {
    downloads.push(await openDownload(reference));
  }
  console.log(JSON.stringify({ ready: count }));
  // Hold the sockets until the orchestrator closes our stdin.
  for await (const _ of Deno.stdin.readable) { /* wait */ }
  await Promise.all(downloads.map((download) => download.close()));
  report({ closed: count });
}

async function wsIdle(url: string, count: number): Promise<void> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = new WebSocket(url);
    await new Promise((resolve) => socket.onmessage = resolve); // "ready"
    sockets.push(socket);
  }
  console.log(JSON.stringify({ ready: count }));
  for await (const _ of Deno.stdin.readable) { /* wait */ }
  await Promise.all(sockets.map((socket) =>
    new Promise((resolve) => {
      socket.onclose = resolve;
      socket.close();
    })
  ));
  report({ closed: count });
}

async function mixed(
  server: string,
  count: number,
  mib: number,
): Promise<void> {
  const perResource = Math.max(1, Math.floor((mib * CHUNK) / count));
  const chunk = payload(Math.min(perResource, 256 * 1024));
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: count }, async () => {
    const upload = await startUpload(server, { name: "mixed.bin" });
    const follower = await openDownload(upload.reference);
    const followed = (async () => {
      let bytes = 0;
      for await (const piece of follower.follow()) bytes += piece.byteLength;
      return bytes;
    })();
    for (let sent = 0; sent < perResource; sent += chunk.byteLength) {
      await upload.write(
        chunk.subarray(0, Math.min(chunk.byteLength, perResource - sent)),
      );
    }
    const status = await upload.finish();
    const bytes = await followed;
    await Promise.all([upload.closed(), follower.close()]);
    return status.size === perResource && bytes === perResource;
  }));
  const ms = performance.now() - started;
  report({ ms, bytes: perResource * count, ok: results.every(Boolean) });
}

/** What {@linkcode gets} is asked to do. */
interface GetsLoad {
  url: string;
  caFile: string;
  protocol: string;
  clients: number;
  streams: number;
  requests: number;
}

async function gets(load: GetsLoad): Promise<void> {
  const caCerts = [await Deno.readTextFile(load.caFile)];
  const h2 = load.protocol === "h2";
  const clients = Array.from(
    { length: load.clients },
    () => Deno.createHttpClient({ caCerts, http2: h2, http1: !h2 }),
  );
  const first = await fetch(load.url, { client: clients[0] });
  const expected = await first.text();
  let started = 0, failures = 0;
  const begun = performance.now();
  const stream = async (client: Deno.HttpClient) => {
    while (started < load.requests) {
      started++;
      const response = await fetch(load.url, { client });
      const body = await response.text();
      if (response.status !== 200 || body !== expected) failures++;
    }
  };
  await Promise.all(
    clients.flatMap((client) =>
      Array.from({ length: load.streams }, () => stream(client))
    ),
  );
  const ms = performance.now() - begun;
  for (const client of clients) client.close();
  report({ ms, requests: started, failures, bytes: expected.length });
}

const [command, ...args] = Deno.args;
switch (command) {
  case "spool-upload":
    await spoolUpload(args[0], Number(args[1]));
    break;
  case "ws-upload":
    await wsUpload(args[0], Number(args[1]));
    break;
  case "spool-download":
    await spoolDownload(args[0]);
    break;
  case "ws-download":
    await wsDownload(args[0]);
    break;
  case "followers":
    await followers(args[0], Number(args[1]), Number(args[2]));
    break;
  case "ws-followers":
    await wsFollowers(args[0], Number(args[1]), Number(args[2]));
    break;
  case "redis-subscribers":
    await redisSubscribers(Number(args[0]), Number(args[1]), Number(args[2]));
    break;
  case "ws-idle":
    await wsIdle(args[0], Number(args[1]));
    break;
  case "idle":
    await idle(args[0], Number(args[1]));
    break;
  case "mixed":
    await mixed(args[0], Number(args[1]), Number(args[2]));
    break;
  case "gets":
    await gets({
      url: args[0],
      caFile: args[1],
      protocol: args[2],
      clients: Number(args[3]),
      streams: Number(args[4]),
      requests: Number(args[5]),
    });
    break;
  default:
    console.error(`unknown load command ${JSON.stringify(command)}`);
    Deno.exit(2);
}
