/**
 * Load generator for the live-resource benchmarks, run as its own process so
 * the measured server never shares an event loop with its load. Each
 * subcommand prints one JSON line with its measurements.
 *
 *   spool-upload SERVER MIB      upload MIB MiB through the Spool client
 *   ws-upload URL MIB            the same bytes over a plain WebSocket
 *   spool-download REF           read a finished resource in one range
 *   ws-download URL              read the baseline's file
 *   followers REF N              N followers to the end; bytes each got
 *   ws-followers URL N           N bare WebSockets counting bytes until `end`
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
 */

import { cpuUsage } from "node:process";
import { openDownload, startUpload } from "../mod.ts";

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
  }
  socket.send("end");
  const answer = await done;
  const ms = performance.now() - started;
  socket.close();
  report({
    ms,
    bytes: Number(answer.split(" ")[1]),
    cpuSeconds: cpuSeconds(cpu),
  });
}

async function spoolDownload(reference: string): Promise<void> {
  const started = performance.now();
  const download = await openDownload(reference);
  let bytes = 0;
  for await (const chunk of download.read(0, download.status.size)) {
    bytes += chunk.byteLength;
  }
  const ms = performance.now() - started;
  await download.close();
  report({ ms, bytes });
}

async function wsDownload(url: string): Promise<void> {
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
  report({ ms, bytes });
}

async function followers(reference: string, count: number): Promise<void> {
  const downloads = [];
  for (let i = 0; i < count; i++) downloads.push(await openDownload(reference));
  console.log(JSON.stringify({ ready: count }));
  const results = await Promise.all(downloads.map(async (download) => {
    let bytes = 0;
    for await (const chunk of download.follow()) bytes += chunk.byteLength;
    const finished = performance.now();
    await download.close();
    return { bytes, finished, size: download.status.size };
  }));
  const complete = results.filter((r) => r.bytes === r.size).length;
  const spread = Math.max(...results.map((r) => r.finished)) -
    Math.min(...results.map((r) => r.finished));
  report({
    complete,
    count,
    bytes: results[0]?.bytes ?? 0,
    finishSpreadMs: spread,
  });
}

async function wsFollowers(url: string, count: number): Promise<void> {
  const sockets: WebSocket[] = [];
  const done: Promise<number>[] = [];
  for (let i = 0; i < count; i++) {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    let bytes = 0;
    await new Promise((resolve) => socket.onmessage = resolve); // "ready"
    done.push(
      new Promise((resolve) => {
        socket.onmessage = (event) => {
          if (typeof event.data === "string") resolve(bytes);
          else bytes += (event.data as ArrayBuffer).byteLength;
        };
      }),
    );
    sockets.push(socket);
  }
  console.log(JSON.stringify({ ready: count }));
  const received = await Promise.all(done);
  for (const socket of sockets) socket.close();
  report({
    complete: received.filter((b) => b === received[0]).length,
    count,
    bytes: received[0],
  });
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
    await followers(args[0], Number(args[1]));
    break;
  case "ws-followers":
    await wsFollowers(args[0], Number(args[1]));
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
