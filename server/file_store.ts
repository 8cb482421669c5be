/**
 * The filesystem store: per resource a data file and a JSON metadata file,
 * under a two-character fan-out directory. Paths are built from validated ids
 * only, never from names given by users.
 *
 * @module
 */

import { join } from "node:path";
import type { ResourceStatus } from "../protocol/status.ts";
import { isResourceId } from "./resource_id.ts";
import type { ResourceStore, ResourceWriter } from "./store.ts";

/**
 * Options of {@linkcode FileStore}.
 *
 * @example
 * ```ts
 * import { FileStore, type FileStoreOptions } from "./file_store.ts";
 * const options: FileStoreOptions = { durable: true };
 * const openStore = (dir: string) => new FileStore(dir, options);
 * ```
 */
export interface FileStoreOptions {
  /** `fdatasync` at every checkpoint so checkpointed bytes survive power loss. Default `false`. */
  durable?: boolean;
}

/**
 * Thrown for an id that is not a store id; guards every path built from ids.
 *
 * @example
 * ```ts
 * import { FileStore, InvalidResourceIdError } from "./file_store.ts";
 * try {
 *   new FileStore("./spool-data").read("../etc/passwd", 0, 10);
 * } catch (error) {
 *   console.log(error instanceof InvalidResourceIdError); // true
 * }
 * ```
 */
export class InvalidResourceIdError extends Error {
  /** Creates the error for `id`. */
  constructor(id: string) {
    super(
      `invalid resource id ${
        JSON.stringify(id.slice(0, 64))
      }; expected 22 characters of [A-Za-z0-9_-]`,
    );
    this.name = "InvalidResourceIdError";
  }
}

/**
 * Thrown when another server holds the directory: two servers on one data
 * dir would overwrite each other's statuses.
 *
 * @example
 * ```ts ignore
 * import { FileStore, StoreInUseError } from "./file_store.ts";
 * try {
 *   await new FileStore("./spool-data").open();
 * } catch (error) {
 *   if (error instanceof StoreInUseError) console.error(error.message);
 * }
 * ```
 */
export class StoreInUseError extends Error {
  /** The error's code. */
  readonly code = "store-in-use";
  /** Creates the error for `dir`, held as `holder` says. */
  constructor(dir: string, holder: string) {
    super(
      `the data dir ${dir} is in use by another Spool server (${holder}); expected one server per data dir: stop that one or choose another --data-dir`,
    );
    this.name = "StoreInUseError";
  }
}

/** The lock file in a data dir, held (flock) while a server runs. */
const LOCK_FILE = "spool.lock";

/**
 * Largest buffer a read allocates. A read of fewer bytes allocates only what
 * it needs: thousands of small answers in flight at once (HTTP/2 streams)
 * must not each hold a 256 KiB buffer.
 */
const READ_CHUNK_SIZE = 256 * 1024;

/**
 * Stores resources under a directory: `<dir>/<id[0..2]>/<id>.data` and
 * `<id>.json`.
 *
 * @example
 * ```ts
 * import { FileStore } from "./file_store.ts";
 * const store = new FileStore(await Deno.makeTempDir());
 * console.log(await store.list()); // []
 * ```
 */
export class FileStore implements ResourceStore {
  readonly #dir: string;
  readonly #durable: boolean;
  #lock: Deno.FsFile | undefined;
  /** Opens of store reads in progress (settled either way). */
  readonly #opening = new Set<Promise<void>>();

  /** Creates a store rooted at `dir` (created when missing). */
  constructor(dir: string, options: FileStoreOptions = {}) {
    this.#dir = dir;
    this.#durable = options.durable ?? false;
  }

  /**
   * Locks the directory (created when missing) for this process: a second
   * server on it is refused with {@linkcode StoreInUseError} naming the
   * holder. The lock is the kernel's (`flock`), so it dies with its process:
   * a crashed server leaves no stale lock.
   */
  async open(): Promise<void> {
    if (this.#lock) return;
    const path = join(this.#dir, LOCK_FILE);
    let file: Deno.FsFile;
    try {
      await Deno.mkdir(this.#dir, { recursive: true });
      file = await Deno.open(path, { read: true, write: true, create: true });
    } catch (error) {
      // Said at start, not at the first upload.
      throw new Error(
        `the data dir ${this.#dir} cannot be used: ${
          (error as Error).message
        }; expected a directory this user can create files in`,
        { cause: error },
      );
    }
    let locked = false;
    try {
      locked = await file.tryLock(true);
      if (!locked) {
        const holder = (await Deno.readTextFile(path)).trim() ||
          "holder unknown";
        throw new StoreInUseError(this.#dir, holder);
      }
      const holder = `pid ${Deno.pid}, since ${new Date().toISOString()}`;
      await file.truncate(0);
      await file.write(new TextEncoder().encode(holder + "\n"));
    } catch (error) {
      if (locked) await file.unlock();
      file.close();
      throw error;
    }
    this.#lock = file;
  }

  /** Releases the directory lock. */
  async close(): Promise<void> {
    // A read cancelled while its file was opening still holds the open.
    await Promise.all(this.#opening);
    const lock = this.#lock;
    this.#lock = undefined;
    if (!lock) return;
    await lock.unlock();
    lock.close();
  }

  #paths(id: string): { folder: string; data: string; meta: string } {
    if (!isResourceId(id)) throw new InvalidResourceIdError(id);
    const folder = join(this.#dir, id.slice(0, 2));
    return {
      folder,
      data: join(folder, `${id}.data`),
      meta: join(folder, `${id}.json`),
    };
  }

  /** Creates the data file and saves the first status. */
  async create(status: ResourceStatus): Promise<ResourceWriter> {
    const paths = this.#paths(status.id);
    await Deno.mkdir(paths.folder, { recursive: true });
    const file = await Deno.open(paths.data, {
      write: true,
      createNew: true,
    });
    try {
      await this.save(status);
    } catch (error) {
      // A refused upload leaves nothing behind (a full disk, say).
      file.close();
      await Deno.remove(paths.data).catch(ignoreNotFound);
      throw error;
    }
    return new FileWriter(file, this.#durable);
  }

  /** Writes the status to a temporary file, then renames it over the old one. */
  async save(status: ResourceStatus): Promise<void> {
    const paths = this.#paths(status.id);
    const temporary = `${paths.meta}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(temporary, JSON.stringify(status));
      if (this.#durable) {
        using file = await Deno.open(temporary, { read: true, write: true });
        await file.syncData();
      }
      await Deno.rename(temporary, paths.meta);
    } catch (error) {
      // A half-written temporary file (a full disk) must not pile up.
      await Deno.remove(temporary).catch(ignoreNotFound);
      throw error;
    }
  }

  /** Reads `[start, end)` of the data file as a byte stream. */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
    const { data } = this.#paths(id);
    const opening = this.#opening;
    let file: Deno.FsFile | undefined;
    let cancelled = false;
    let position = start;
    const closeFile = () => {
      file?.close();
      file = undefined;
    };
    return new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: Math.max(
        1,
        Math.min(READ_CHUNK_SIZE, end - start),
      ),
      async pull(controller) {
        const request = controller.byobRequest!;
        const view = request.view as Uint8Array;
        if (file === undefined && position < end) {
          // Opened on the first pull, not at creation: a stream cancelled
          // before anyone read it never holds a file.
          const open = Deno.open(data, { read: true });
          // Its outcome is the read's; the store only waits for it at close.
          const settled = open.then(() => {}, () => {});
          opening.add(settled);
          settled.finally(() => opening.delete(settled));
          const opened = await open;
          if (cancelled) {
            opened.close();
            return;
          }
          file = opened;
          await file.seek(start, Deno.SeekMode.Start);
        }
        if (position >= end || !file) {
          closeFile();
          controller.close();
          request.respond(0);
          return;
        }
        const wanted = Math.min(view.byteLength, end - position);
        let read: number | null;
        try {
          read = await file.read(view.subarray(0, wanted));
        } catch (error) {
          closeFile();
          throw error;
        }
        if (read === null) {
          closeFile();
          throw new Error(
            `data of resource ${id} ends at byte ${position}; expected bytes up to ${end}`,
          );
        }
        position += read;
        request.respond(read);
        if (position >= end) {
          closeFile();
          controller.close();
        }
      },
      cancel() {
        cancelled = true;
        closeFile();
      },
    });
  }

  /** Length of the data file. */
  async dataSize(id: string): Promise<number> {
    return (await Deno.stat(this.#paths(id).data)).size;
  }

  /** Reads every `*.json` metadata file; skips temporary files. */
  async list(): Promise<ResourceStatus[]> {
    const statuses: ResourceStatus[] = [];
    let folders: Deno.DirEntry[];
    try {
      folders = await Array.fromAsync(Deno.readDir(this.#dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return statuses;
      throw error;
    }
    for (const folder of folders) {
      if (!folder.isDirectory) continue;
      for await (const entry of Deno.readDir(join(this.#dir, folder.name))) {
        const id = entry.name.slice(0, -".json".length);
        if (
          !entry.isFile || !entry.name.endsWith(".json") || !isResourceId(id)
        ) {
          continue;
        }
        const text = await Deno.readTextFile(this.#paths(id).meta);
        statuses.push(JSON.parse(text) as ResourceStatus);
      }
    }
    return statuses;
  }

  /** Removes both files of `id`. */
  async delete(id: string): Promise<void> {
    const paths = this.#paths(id);
    await Deno.remove(paths.meta).catch(ignoreNotFound);
    await Deno.remove(paths.data).catch(ignoreNotFound);
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

class FileWriter implements ResourceWriter {
  readonly #file: Deno.FsFile;
  readonly #durable: boolean;

  constructor(file: Deno.FsFile, durable: boolean) {
    this.#file = file;
    this.#durable = durable;
  }

  async append(chunk: Uint8Array): Promise<void> {
    let written = 0;
    while (written < chunk.byteLength) {
      written += await this.#file.write(chunk.subarray(written));
    }
  }

  async sync(): Promise<void> {
    if (this.#durable) await this.#file.syncData();
  }

  close(): Promise<void> {
    this.#file.close();
    return Promise.resolve();
  }
}
