/**
 * Spool moves bytes while they are still being produced.
 *
 * - **Live resources**: upload over a WebSocket and get a reference at once;
 *   anyone can download the resource while it grows, by range or by
 *   following it to its end.
 * - **Object transport**: ordered streams of objects (header + body) to HTTP
 *   endpoints, each stream's send loop in a Web Worker.
 *
 * @example Upload and follow a live resource
 * ```ts
 * import { openDownload, startServer, startUpload } from "./mod.ts";
 *
 * await using server = await startServer({ port: 0, dataDir: await Deno.makeTempDir() });
 * const upload = await startUpload(server.url, { name: "build.log", mimeType: "text/plain" });
 * await using download = await openDownload(upload.reference);
 * const followed = new Response(download.follow()).text();
 * await upload.write(new TextEncoder().encode("step 1\nstep 2\n"));
 * await upload.finish();
 * console.log(await followed); // "step 1\nstep 2\n"
 * ```
 *
 * @example Send objects to a receiver endpoint
 * ```ts
 * import { Receiver, Stream } from "./mod.ts";
 *
 * await using receiver = new Receiver();
 * await receiver.listen("data");
 * receiver.register("data", "demo", async (header, body) => {
 *   console.log(header.name, body ? (await new Response(body).bytes()).length : 0);
 * });
 * const stream = new Stream(receiver.url("data", "demo"));
 * await stream.send({ name: "a.bin" }, new Uint8Array(1024));
 * await stream.send({ name: "header-only" });
 * await stream.fin();
 * ```
 *
 * @module
 */

// What a user calls. Wire codecs, message types and server internals are
// behind the subpath exports: `./server`, `./client`, `./transport`,
// `./protocol`.

// A server, and where it keeps resources.
export {
  type ServerOptions,
  type SpoolServer,
  startServer,
} from "./server/server.ts";
export type { ServerLimits } from "./server/limits.ts";
export {
  type ResourceStore,
  type ResourceWriter,
  TakenOverError,
} from "./server/store.ts";
export { FileStore, type FileStoreOptions } from "./server/file_store.ts";

// Uploading and downloading live resources.
export {
  startUpload,
  Upload,
  upload,
  type UploadBody,
  type UploadOptions,
} from "./client/upload.ts";
export {
  Download,
  type DownloadOptions,
  type FollowOptions,
  openDownload,
} from "./client/download.ts";

// What a resource is, and how things fail.
export type { ResourceState, ResourceStatus } from "./protocol/status.ts";
export {
  type ErrorCode,
  ResourceFailedError,
  SpoolError,
} from "./protocol/errors.ts";

// The object transport.
export * from "./transport/api.ts";
