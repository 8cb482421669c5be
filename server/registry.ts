/**
 * The resources a server knows: live ones created by uploads and finished
 * ones loaded from the store at start-up.
 *
 * @module
 */

import { isTerminal, type ResourceStatus } from "../protocol/status.ts";
import { Resource } from "./resource.ts";
import { isResourceId, newResourceId } from "./resource_id.ts";
import type { ResourceStore } from "./store.ts";
import { limitExceeded } from "./limits.ts";
import { SpoolError } from "../protocol/errors.ts";
import { sanitizeStoredStatus } from "./_stored_status.ts";
import { recordCheckpoints } from "./checkpoint_log.ts";

/**
 * What an uploader asks for.
 *
 * @example
 * ```ts
 * import type { NewResource, ResourceRegistry } from "./registry.ts";
 * const request: NewResource = { name: "build.log", mimeType: "text/plain", metadata: { job: "42" } };
 * const create = (registry: ResourceRegistry) => registry.create(request);
 * ```
 */
export interface NewResource {
  /** A label for the resource. */
  name: string;
  /** Its MIME type. */
  mimeType: string;
  /** Custom string metadata. */
  metadata: Record<string, string>;
}

/**
 * Learns of resources that appear (`created`: a new upload) and disappear
 * (`expired`) in a registry.
 *
 * @example
 * ```ts
 * import type { RegistryListener } from "./registry.ts";
 * const log: RegistryListener = (resource, change) => console.log(change, resource.status.id);
 * ```
 */
export type RegistryListener = (
  resource: Resource,
  change: "created" | "expired",
) => void;

/** Expired ids remembered for `gone` answers; older ones become unknown. */
const MAX_EXPIRED_IDS = 100_000;

/**
 * Reason recorded for uploads that were live when the server stopped.
 *
 * @example
 * ```ts
 * import { INTERRUPTED_REASON } from "./registry.ts";
 * import type { ResourceStatus } from "../protocol/status.ts";
 * // Uploads the previous server process left unfinished.
 * const interrupted = (status: ResourceStatus) => status.error === INTERRUPTED_REASON;
 * ```
 */
export const INTERRUPTED_REASON =
  "the server stopped while the upload was in progress";

/**
 * Saves a status fixed at start-up. A store that refuses (a full disk)
 * must not keep the server from starting: the fix is in memory and is made
 * again at the next start.
 */
async function saveAtLoad(
  store: ResourceStore,
  status: ResourceStatus,
  what: string,
): Promise<void> {
  try {
    await store.save(status);
  } catch (error) {
    console.warn(
      `spool: resource ${status.id}: saving its ${what} status failed (it is made again at the next start):`,
      error,
    );
  }
}

/**
 * Creates, finds and loads resources.
 *
 * @example
 * ```ts ignore
 * const registry = await ResourceRegistry.load(store, { checkpointMs: 250 });
 * const resource = await registry.create({ name: "a.log", mimeType: "text/plain", metadata: {} });
 * ```
 */
export class ResourceRegistry {
  readonly #store: ResourceStore;
  readonly #checkpointMs: number;
  readonly #resources = new Map<string, Resource>();
  /** Ids of expired resources (most recent last), to answer `gone`. */
  readonly #expired = new Set<string>();
  /** Live resources, and uploads being created (they hold a slot already). */
  readonly #live = new Set<Resource>();
  readonly #creating = new Set<Promise<Resource>>();
  readonly #listeners = new Set<RegistryListener>();
  /** Set once the server is closing: no upload starts any more. */
  #closing: string | undefined;
  /** Finds ids this registry does not know (set by a shared store's cluster). */
  #lookUp: ((id: string) => Promise<Resource | undefined>) | undefined;

  private constructor(store: ResourceStore, checkpointMs: number) {
    this.#store = store;
    this.#checkpointMs = checkpointMs;
  }

  /**
   * Loads every stored resource. Uploads that were live when the server last
   * stopped become `FAILED`, with every byte that reached the store readable.
   * Stored fields that uploads could not set today (a MIME type with control
   * characters, a name with lone surrogates, …) are replaced by safe values
   * and saved; each change is logged with the old value quoted (its start).
   */
  static async load(
    store: ResourceStore,
    options: { checkpointMs: number; shared?: boolean },
  ): Promise<ResourceRegistry> {
    const registry = new ResourceRegistry(store, options.checkpointMs);
    // A shared store's resources come from its feed (`adopt`); an upload
    // not finished there may be live on another node, not interrupted.
    if (options.shared) return registry;
    for (const stored of await store.list()) {
      if (!isResourceId(stored.id)) {
        console.warn(
          `spool: skipped a stored status whose id ${
            JSON.stringify(String(stored.id).slice(0, 64))
          } is not a resource id`,
        );
        continue;
      }
      let { status, changes } = await sanitizeStoredStatus(
        stored,
        () => store.dataSize(stored.id),
      );
      for (const change of changes) {
        console.warn(`spool: resource ${status.id}: ${change}`);
      }
      if (changes.length > 0 && isTerminal(status)) {
        await saveAtLoad(store, status, "sanitized");
      }
      if (!isTerminal(status)) {
        const now = new Date().toISOString();
        status = {
          ...status,
          status: "FAILED",
          size: await store.dataSize(status.id),
          error: INTERRUPTED_REASON,
          updatedAt: now,
          finishedAt: now,
        };
        await saveAtLoad(store, status, "interrupted");
      }
      registry.#resources.set(
        status.id,
        new Resource(store, status, { checkpointMs: options.checkpointMs }),
      );
    }
    return registry;
  }

  /**
   * Creates a live resource in state `INITIATED`. With `maxLive`, refuses
   * with `limit-exceeded` when that many uploads are live or being created;
   * the slot is taken before the store is awaited, so concurrent requests
   * cannot all slip under the limit.
   */
  async create(
    request: NewResource,
    options: { maxLive?: number } = {},
  ): Promise<Resource> {
    if (this.#closing !== undefined) {
      throw new SpoolError("unavailable", this.#closing);
    }
    const taken = this.#live.size + this.#creating.size;
    if (options.maxLive !== undefined && taken >= options.maxLive) {
      throw limitExceeded(
        "maxUploads",
        options.maxLive,
        `a new upload (${taken} in progress)`,
      );
    }
    const creating = this.#createNow(request);
    this.#creating.add(creating);
    try {
      return await creating;
    } finally {
      this.#creating.delete(creating);
    }
  }

  async #createNow(request: NewResource): Promise<Resource> {
    const now = new Date().toISOString();
    const status: ResourceStatus = {
      id: newResourceId(),
      name: request.name,
      mimeType: request.mimeType,
      metadata: request.metadata,
      status: "INITIATED",
      size: 0,
      createdAt: now,
      updatedAt: now,
    };
    const writer = await this.#store.create(status);
    const resource = new Resource(this.#store, status, {
      checkpointMs: this.#checkpointMs,
      writer,
    });
    recordCheckpoints(resource);
    this.#resources.set(status.id, resource);
    this.#addLive(resource);
    for (const listener of this.#listeners) listener(resource, "created");
    return resource;
  }

  /**
   * Calls `listener` for every resource created or expired from now on;
   * returns the function that stops it.
   */
  listen(listener: RegistryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counts `resource` live until it ends or another node takes it over. */
  #addLive(resource: Resource): void {
    this.#live.add(resource);
    const gone = () => this.#live.delete(resource);
    resource.finished.then(gone);
    resource.handedOver.then(gone);
  }

  /**
   * Puts `resource`, an upload this node took over from another, in place
   * of the resource of its id, whose watchers (followers here) then hear its
   * statuses. A closing registry fails it with the closing reason instead.
   */
  async takeOver(resource: Resource): Promise<void> {
    if (this.#closing !== undefined) {
      await resource.fail(this.#closing);
      throw new SpoolError("unavailable", this.#closing);
    }
    const id = resource.status.id;
    const before = this.#resources.get(id);
    this.#resources.set(id, resource);
    this.#addLive(resource);
    if (before !== undefined && before !== resource) {
      resource.watch((status) => before.mirror(status));
    }
  }

  /** The resource with `id`, if any (malformed ids find nothing). */
  get(id: string): Resource | undefined {
    return isResourceId(id) ? this.#resources.get(id) : undefined;
  }

  /**
   * Lets `lookUp` find ids this registry does not know: on a shared store a
   * new upload on another node may be asked for here before this node's
   * status feed brought it (a reference handed on at once).
   */
  lookUpWith(lookUp: (id: string) => Promise<Resource | undefined>): void {
    this.#lookUp = lookUp;
  }

  /**
   * Looks for `id` beyond this registry, when {@linkcode get} found nothing
   * and a look-up applies (a shared store, a well-formed id not expired);
   * `undefined` when none applies.
   */
  lookUp(id: string): Promise<Resource | undefined> | undefined {
    if (this.#lookUp === undefined || !isResourceId(id)) return undefined;
    if (this.#expired.has(id)) return undefined;
    return this.#lookUp(id);
  }

  /**
   * Deletes a finished resource from the registry and the store; its id
   * is remembered as expired. Live resources are never expired.
   */
  async expire(resource: Resource): Promise<void> {
    const id = resource.status.id;
    if (resource.live || this.#resources.get(id) !== resource) return;
    this.#resources.delete(id);
    this.#rememberExpired(id, resource);
    await resource.settled();
    await this.#store.delete(id);
  }

  /**
   * Adds a resource another node holds (a shared store's feed found it);
   * an id already known keeps its resource. Returns whether it was added.
   */
  adopt(resource: Resource): boolean {
    const id = resource.status.id;
    if (this.#resources.has(id)) return false;
    this.#resources.set(id, resource);
    return true;
  }

  /** Drops `id` (another node deleted it); it is remembered as expired. */
  forget(id: string): void {
    const resource = this.#resources.get(id);
    if (resource?.live) return;
    this.#resources.delete(id);
    this.#rememberExpired(id, resource);
  }

  /** Remembers `id` as expired and tells the listeners of `resource`, if known. */
  #rememberExpired(id: string, resource: Resource | undefined): void {
    this.#expired.add(id);
    if (resource !== undefined) {
      for (const listener of this.#listeners) listener(resource, "expired");
    }
    if (this.#expired.size > MAX_EXPIRED_IDS) {
      this.#expired.delete(this.#expired.values().next().value!);
    }
  }

  /** Whether `id` named a resource that expired (since this server started). */
  expired(id: string): boolean {
    return this.#expired.has(id);
  }

  /**
   * Tries once more to save every final status the store refused (the
   * server is closing); those still refused are logged and given up.
   */
  async flushSaves(): Promise<void> {
    await Promise.all(
      [...this.#resources.values()].map((resource) =>
        resource.flushSave({ stop: true })
      ),
    );
  }

  /** Every resource, live and finished. */
  all(): IterableIterator<Resource> {
    return this.#resources.values();
  }

  /**
   * Ends every live upload with `reason` and refuses new ones (the server is
   * closing); resolves once each has published and saved its final status.
   */
  async close(reason: string): Promise<void> {
    this.#closing ??=
      `${reason}; expected a new upload only on a running server`;
    // Uploads being created are live once created: fail them too.
    await Promise.allSettled([...this.#creating]);
    const live = [...this.#live];
    await Promise.all(live.map((resource) => resource.fail(reason)));
  }

  /** Every resource whose upload has not ended. */
  live(): IterableIterator<Resource> {
    return this.#live.values();
  }
}
