/**
 * Optional access control of the live-resource server: a token that
 * creating an upload requires, and per-resource read tokens derived from a
 * server secret (so nothing token-related is stored with a resource). The
 * write tokens of uploads are derived from the same secret, so servers
 * sharing it accept each other's.
 *
 * Tokens travel as `Authorization: Bearer <token>` or as a `token` query
 * parameter (browsers cannot set headers on WebSockets); a request passes
 * when either one is right, so neither takes precedence.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { SpoolError } from "../protocol/errors.ts";

/** Options of {@linkcode ServerAuth}. */
export interface ServerAuthOptions {
  /** Token required to create uploads; unset: anyone may upload. */
  uploadToken?: string;
  /** Whether reading a resource requires its read token. */
  readTokens?: boolean;
  /** Secret the read and write tokens are derived from (at least 16 bytes). */
  secret: Uint8Array;
}

/**
 * The tokens a request presents: its bearer token and its `token` query
 * parameter, each when there. Both count: a proxy that adds its own
 * `Authorization` header must not hide a correct `?token=`.
 *
 * @example
 * ```ts
 * import { presentedTokens } from "./auth.ts";
 * presentedTokens(new Request("http://x/resources/a?token=t")); // ["t"]
 * ```
 */
export function presentedTokens(request: Request): string[] {
  const tokens: string[] = [];
  const header = request.headers.get("authorization");
  const bearer = header?.match(/^Bearer\s+(\S+)\s*$/i);
  if (bearer) tokens.push(bearer[1]);
  const query = new URL(request.url).searchParams.get("token");
  if (query !== null && query !== bearer?.[1]) tokens.push(query);
  return tokens;
}

/** Whether any of `given` is `expected`; every one is compared. */
function anyToken(given: string[], expected: string): boolean {
  let found = false;
  for (const token of given) found = sameToken(token, expected) || found;
  return found;
}

function sameToken(given: string, expected: string): boolean {
  // Compare digests: equal lengths, and no timing leak of the token itself.
  const a = createHmac("sha256", "spool-compare").update(given).digest();
  const b = createHmac("sha256", "spool-compare").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Checks upload and read tokens.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { ServerAuth } from "./auth.ts";
 * const auth = new ServerAuth({
 *   uploadToken: "s3cret-token",
 *   readTokens: true,
 *   secret: crypto.getRandomValues(new Uint8Array(32)),
 * });
 * assertEquals(auth.readToken("some-id")?.length, 22);
 * ```
 */
export class ServerAuth {
  readonly #uploadToken?: string;
  readonly #readTokens: boolean;
  readonly #secret: Uint8Array;

  /** Creates the checker. */
  constructor(options: ServerAuthOptions) {
    if (options.uploadToken !== undefined && options.uploadToken.length < 8) {
      throw new SpoolError(
        "invalid-argument",
        `uploadToken has ${options.uploadToken.length} characters; expected at least 8`,
      );
    }
    if (options.secret.byteLength < 16) {
      throw new SpoolError(
        "invalid-argument",
        `the token secret has ${options.secret.byteLength} bytes; expected at least 16`,
      );
    }
    this.#uploadToken = options.uploadToken;
    this.#readTokens = options.readTokens ?? false;
    this.#secret = options.secret;
  }

  /** Whether resources need read tokens. */
  get readTokens(): boolean {
    return this.#readTokens;
  }

  /** Why `request` may not create an upload, or `undefined` if it may. */
  uploadRefusal(request: Request): SpoolError | undefined {
    if (this.#uploadToken === undefined) return undefined;
    const given = presentedTokens(request);
    if (anyToken(given, this.#uploadToken)) return undefined;
    return new SpoolError(
      "forbidden",
      `${
        given.length === 0 ? "no" : "a wrong"
      } upload token was presented; this server requires its upload token as 'Authorization: Bearer <token>' or a 'token' query parameter`,
    );
  }

  /** The read token of resource `id`, or `undefined` if reads are open. */
  readToken(id: string): string | undefined {
    if (!this.#readTokens) return undefined;
    return createHmac("sha256", this.#secret).update(`read:${id}`).digest(
      "base64url",
    ).slice(0, 22);
  }

  /**
   * The write token of upload `id`: whoever has it may resume the upload.
   * Independent of its read token (another label under the same secret).
   */
  writeToken(id: string): string {
    return createHmac("sha256", this.#secret).update(`write:${id}`).digest(
      "base64url",
    ).slice(0, 22);
  }

  /** Why `request` may not read resource `id`, or `undefined` if it may. */
  readRefusal(request: Request, id: string): SpoolError | undefined {
    const expected = this.readToken(id);
    if (expected === undefined) return undefined;
    const given = presentedTokens(request);
    if (anyToken(given, expected)) return undefined;
    return new SpoolError(
      "forbidden",
      `${
        given.length === 0 ? "no" : "a wrong"
      } read token was presented for this resource; expected the 'token' of its reference URL (or 'Authorization: Bearer <token>')`,
    );
  }
}
