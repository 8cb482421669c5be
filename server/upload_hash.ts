/**
 * The SHA-256 a live upload builds over its bytes, as it takes them.
 *
 * @module
 */

import { createHash } from "node:crypto";

/**
 * The SHA-256 of an upload's bytes, given in order. A resource taken over
 * from another node starts with one still reading back the bytes stored
 * before (`server/nats/_catch_up_hash.ts`), whose digest is a promise.
 *
 * @example
 * ```ts
 * import { sha256UploadHash } from "./upload_hash.ts";
 * const hash = sha256UploadHash();
 * hash.update(new TextEncoder().encode("abc"));
 * console.log(hash.digest()); // ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
 * ```
 */
export interface UploadHash {
  /** Takes the upload's next bytes (the caller does not change them later). */
  update(bytes: Uint8Array): void;
  /**
   * The upload's first `bytes` bytes are stored: a hash still reading back
   * earlier bytes may read these from the store instead of keeping them.
   */
  stored?(bytes: number): void;
  /**
   * Lowercase hex of the hash of every byte given, at once when it has
   * them all (or once it has); called once.
   */
  digest(): string | Promise<string>;
  /** The upload ended without a digest (failed, handed over): stop any work. */
  release?(): void;
  /** Resolves if the hash can never be made (what it had to read back failed). */
  failed?: Promise<Error>;
}

/**
 * The {@linkcode UploadHash} of an upload started here: every byte is
 * hashed as it is given.
 *
 * @example
 * ```ts
 * import { sha256UploadHash } from "./upload_hash.ts";
 * const hash = sha256UploadHash();
 * console.log((await hash.digest()).length); // 64
 * ```
 */
export function sha256UploadHash(): UploadHash {
  const hash = createHash("sha256");
  return {
    update(bytes) {
      hash.update(bytes);
    },
    digest: () => hash.digest("hex"),
  };
}
