/**
 * Signed sessions: with a shared secret, every request of a stream carries
 * `Spool-Auth: v1 <time> <nonce> <mac>`, where `mac` is HMAC-SHA256 over the
 * session id, the URL path, the time and the nonce (like AIStore's signed
 * envelope). The receiver checks the MAC, the clock skew and that the nonce
 * was not seen before, so a captured header cannot be replayed.
 *
 * Internal (see `./README.md`): the `Receiver` verifies, the worker signs.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { TransportError } from "../errors.ts";

/** Request header carrying the signature. */
export const AUTH_HEADER = "Spool-Auth";
/** Largest clock difference accepted between sender and receiver. */
export const MAX_SKEW_MS = 5 * 60_000;

function mac(
  secret: string,
  sessionId: string,
  path: string,
  time: string,
  nonce: string,
): Buffer {
  return createHmac("sha256", secret).update(
    `spool-transport-v1\n${sessionId}\n${path}\n${time}\n${nonce}`,
  ).digest();
}

/**
 * The `Spool-Auth` value for one request.
 *
 * @example
 * ```ts ignore
 * const value = signRequest("secret", "session-1", "/v1/objstream/x");
 * ```
 */
export function signRequest(
  secret: string,
  sessionId: string,
  path: string,
): string {
  const time = String(Date.now());
  const nonce = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const signature = mac(secret, sessionId, path, time, nonce).toString(
    "base64url",
  );
  return `v1 ${time} ${nonce} ${signature}`;
}

/** Checks signed requests and remembers nonces for the skew window. */
export class RequestVerifier {
  readonly #secret: string;
  #seen = new Map<string, number>();

  /** Creates a verifier for `secret`. */
  constructor(secret: string) {
    this.#secret = secret;
  }

  /** Throws `unauthorized` unless `value` signs this session and path. */
  verify(value: string | null, sessionId: string, path: string): void {
    const refuse = (why: string) =>
      new TransportError(
        "unauthorized",
        `${why}; expected '${AUTH_HEADER}: v1 <time> <nonce> <mac>' signed with the shared secret`,
        { sessionId },
      );
    if (value === null) throw refuse(`request has no ${AUTH_HEADER} header`);
    const parts = value.split(" ");
    if (parts.length !== 4 || parts[0] !== "v1") {
      throw refuse(`${AUTH_HEADER} is malformed`);
    }
    const [, time, nonce, signature] = parts;
    const sent = Number(time);
    const now = Date.now();
    if (!Number.isSafeInteger(sent) || Math.abs(now - sent) > MAX_SKEW_MS) {
      throw refuse(
        `${AUTH_HEADER} time ${JSON.stringify(time)} is more than ${
          MAX_SKEW_MS / 1000
        } s from the receiver's clock`,
      );
    }
    if (!/^[0-9a-f]{32}$/.test(nonce)) {
      throw refuse(`${AUTH_HEADER} nonce is not 32 hex digits`);
    }
    const expected = mac(this.#secret, sessionId, path, time, nonce);
    const given = Buffer.from(signature, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw refuse(`${AUTH_HEADER} signature does not match`);
    }
    this.#forgetOld(now);
    if (this.#seen.has(nonce)) {
      throw refuse(`${AUTH_HEADER} nonce was already used (a replay)`);
    }
    this.#seen.set(nonce, sent);
  }

  #forgetOld(now: number): void {
    // Insertion order is roughly time order: stop at the first fresh one.
    for (const [nonce, time] of this.#seen) {
      if (now - time <= MAX_SKEW_MS) break;
      this.#seen.delete(nonce);
    }
  }
}
