/**
 * Resource ids: 128 random bits from the platform CSPRNG, base64url encoded
 * (22 characters), so that knowing one reference reveals no other.
 *
 * @module
 */

const ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * Creates a new unguessable resource id.
 *
 * @example
 * ```ts
 * import { newResourceId } from "./resource_id.ts";
 * console.log(newResourceId().length); // 22
 * ```
 */
export function newResourceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

/**
 * Tells whether `id` has the shape of a resource id (and so is safe in paths).
 *
 * @example
 * ```ts
 * import { isResourceId } from "./resource_id.ts";
 * isResourceId("../../etc/passwd"); // false
 * ```
 */
export function isResourceId(id: string): boolean {
  return ID_PATTERN.test(id);
}
