/**
 * Baseline for the live-resource benchmarks: a plain WebSocket server on
 * `Deno.serve` doing the same disk work as Spool without its protocol.
 * `/up` appends binary frames to a new file and answers the text `end` with
 * `done N SHA256`, the hash of the bytes received, as Spool's server hashes
 * every upload (the client checks it, as Spool's client does); `/down?bytes=N` streams the first N bytes of the latest file in 256 KiB
 * frames paced by `bufferedAmount`, then sends `end`. `/fan` sockets receive
 * every binary frame sent to `/produce` (a bare broadcast; `end` is relayed
 * too), the floor for fan-out.
 */

import { createHash } from "node:crypto";

const FRAME = 256 * 1024;
const HIGH_WATER = 1024 * 1024;
const dir = await Deno.makeTempDir({ prefix: "spool-bench-ws-" });
/**
 * Each upload writes a new file, as Spool writes a new resource: rewriting
 * one file in place reuses its blocks and ran 2.4× faster on this machine's
 * disk (733 vs 307 MiB/s for 1 GiB), which measured the disk, not Spool.
 */
let uploads = 0;
let path = `${dir}/data-0`;

async function drained(socket: WebSocket): Promise<void> {
  while (
    socket.readyState === WebSocket.OPEN && socket.bufferedAmount > HIGH_WATER
  ) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function serveUpload(socket: WebSocket): void {
  socket.binaryType = "arraybuffer";
  let file: Deno.FsFile | undefined;
  let chain = Promise.resolve();
  let bytes = 0;
  const hash = createHash("sha256");
  socket.onopen = () => {
    path = `${dir}/data-${++uploads}`;
    file = Deno.openSync(path, { write: true, create: true, truncate: true });
  };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {
      chain = chain.then(() => {
        file?.close();
        socket.send(`done ${bytes} ${hash.digest("hex")}`);
      });
      return;
    }
    const chunk = new Uint8Array(event.data as ArrayBuffer);
    // On receipt, as Spool's server hashes each frame as it appends it.
    hash.update(chunk);
    chain = chain.then(async () => {
      let written = 0;
      while (written < chunk.byteLength) {
        written += await file!.write(chunk.subarray(written));
      }
      bytes += chunk.byteLength;
    });
  };
}

function serveDownload(socket: WebSocket, total: number): void {
  socket.onopen = async () => {
    using file = await Deno.open(path);
    const buffer = new Uint8Array(FRAME);
    let sent = 0;
    while (sent < total) {
      await drained(socket);
      const n = await file.read(
        buffer.subarray(0, Math.min(FRAME, total - sent)),
      );
      if (n === null) break;
      socket.send(buffer.subarray(0, n));
      sent += n;
    }
    socket.send("end");
  };
}

const fans = new Set<WebSocket>();

function serveProducer(socket: WebSocket): void {
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    for (const fan of fans) {
      if (fan.readyState === WebSocket.OPEN) fan.send(event.data);
    }
  };
}

function serveFan(socket: WebSocket): void {
  socket.onopen = () => {
    fans.add(socket);
    socket.send("ready");
  };
  socket.onclose = () => fans.delete(socket);
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/`),
}, (request) => {
  const url = new URL(request.url);
  const { socket, response } = Deno.upgradeWebSocket(request);
  if (url.pathname === "/up") serveUpload(socket);
  else if (url.pathname === "/produce") serveProducer(socket);
  else if (url.pathname === "/fan") serveFan(socket);
  else serveDownload(socket, Number(url.searchParams.get("bytes")));
  return response;
});
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await Deno.remove(dir, { recursive: true });
  Deno.exit(0);
});
