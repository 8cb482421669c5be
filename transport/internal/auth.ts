/**
 * Signed sessions: with a shared secret, every request of a stream carries
 * `Spool-Auth: v2 <time> <nonce> <mac>`, where `mac` is HMAC-SHA256 over the
 * method, the session id, the URL path, the time and the nonce (like
 * AIStore's signed envelope). The receiver checks the MAC, the clock skew and
 * that the nonce was not seen before, so a captured header cannot be
 * replayed, nor used with another method, path or session.
 *
 * What a valid header proves: the request was opened by someone holding the
 * secret, for this method, path and session, within the skew window. It says
 * nothing of the body: over an untrusted network only TLS keeps the frames
 * from being changed (see docs/transport.md, "Signed sessions").
 *
 * Internal (see `./README.md`): the `Receiver` verifies, the worker signs.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { TransportError, type TransportErrorCode } from "../errors.ts";

/** Request header carrying the signature. */
export const AUTH_HEADER = "Spool-Auth";
/**
 * The scheme of {@linkcode AUTH_HEADER}'s value. `v2` added the method to the
 * MAC; a `v1` header is refused by name, so an old sender learns why.
 */
export const AUTH_SCHEME = "v2";
/** Largest clock difference accepted between sender and receiver. */
export const MAX_SKEW_MS = 5 * 60_000;
/**
 * Most nonces a verifier remembers. Each stays until its time is more than
 * {@linkcode MAX_SKEW_MS} old (at most 10 minutes, for a sender ahead of the
 * receiver's clock), ~120 bytes each: 100,000 is ~12 MB, room for 333 signed
 * requests a second for 5 minutes. When full of nonces that are still
 * valid, new requests are refused with {@linkcode NONCE_CACHE_FULL} (HTTP
 * 503) rather than forgetting a nonce that could then be replayed.
 */
export const MAX_NONCES = 100_000;
/** The code of a request refused because the nonce cache is full. */
export const NONCE_CACHE_FULL: TransportErrorCode = "nonce-cache-full";
/** The code of a request whose signature is missing, malformed or wrong. */
export const UNAUTHORIZED: TransportErrorCode = "unauthorized";

/** Characters of a field echoed back in a refusal, at most. */
const MAX_ECHOED = 32;
/** Decimal digits of a time in ms: up to year 2286 fits in 13, allow 16. */
const TIME = /^[0-9]{1,16}$/;
const NONCE = /^[0-9a-f]{32}$/;
/** base64url of the 32-byte MAC, without padding: 43 characters. */
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

/** What a signature covers besides the time and the nonce. */
export interface SignedRequest {
  /** The HTTP method, e.g. `PUT`. */
  method: string;
  /** The `Spool-Session-Id` of the request. */
  sessionId: string;
  /** The URL path, as sent (percent-encoded). */
  path: string;
}

function mac(
  secret: string,
  request: SignedRequest,
  time: string,
  nonce: string,
): Buffer {
  const { method, sessionId, path } = request;
  return createHmac("sha256", secret).update(
    `spool-transport-${AUTH_SCHEME}\n${method}\n${sessionId}\n${path}\n${time}\n${nonce}`,
  ).digest();
}

/** `text` for a message: quoted, at most {@linkcode MAX_ECHOED} characters. */
function echo(text: string): string {
  return text.length > MAX_ECHOED
    ? `${
      JSON.stringify(text.slice(0, MAX_ECHOED))
    }… (${text.length} characters)`
    : JSON.stringify(text);
}

/**
 * The `Spool-Auth` value for one request.
 *
 * @example
 * ```ts ignore
 * const value = signRequest("secret", {
 *   method: "PUT",
 *   sessionId: "session-1",
 *   path: "/v1/objstream/x",
 * });
 * ```
 */
export function signRequest(secret: string, request: SignedRequest): string {
  const time = String(Date.now());
  const nonce = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const signature = mac(secret, request, time, nonce).toString("base64url");
  return `${AUTH_SCHEME} ${time} ${nonce} ${signature}`;
}

/** The fields of a well-formed header, not yet checked against the secret. */
interface Fields {
  time: string;
  sent: number;
  nonce: string;
  signature: string;
}

/** Checks signed requests and remembers nonces for the skew window. */
export class RequestVerifier {
  readonly #secret: string;
  readonly #maxNonces: number;
  #seen = new Map<string, number>();

  /**
   * Creates a verifier for `secret` that remembers up to `maxNonces` nonces
   * (default {@linkcode MAX_NONCES}; tests make it small).
   */
  constructor(secret: string, maxNonces: number = MAX_NONCES) {
    this.#secret = secret;
    this.#maxNonces = maxNonces;
  }

  /** Nonces remembered now. */
  get nonces(): number {
    return this.#seen.size;
  }

  /**
   * Throws `unauthorized` unless `value` signs this method, session and
   * path; `nonce-cache-full` when a valid request cannot be remembered.
   */
  verify(value: string | null, request: SignedRequest): void {
    const { time, sent, nonce, signature } = this.#parse(value, request);
    const expected = mac(this.#secret, request, time, nonce);
    const given = Buffer.from(signature, "base64url");
    if (!timingSafeEqual(given, expected)) {
      throw refusal(`${AUTH_HEADER} signature does not match`, request);
    }
    const now = Date.now();
    this.#forgetOld(now, false);
    if (this.#seen.has(nonce)) {
      throw refusal(
        `${AUTH_HEADER} nonce was already used (a replay)`,
        request,
      );
    }
    if (this.#seen.size >= this.#maxNonces) this.#forgetOld(now, true);
    if (this.#seen.size >= this.#maxNonces) {
      throw new TransportError(
        NONCE_CACHE_FULL,
        `the receiver already remembers ${this.#maxNonces} nonces of the last ${
          MAX_SKEW_MS / 1000
        } s, its limit against replays; expected fewer signed requests, retry once older ones expired`,
        { sessionId: request.sessionId },
      );
    }
    this.#seen.set(nonce, sent);
  }

  /** The fields of `value`, or `unauthorized` saying what is malformed. */
  #parse(value: string | null, request: SignedRequest): Fields {
    if (value === null) {
      throw refusal(`request has no ${AUTH_HEADER} header`, request);
    }
    const parts = value.split(" ");
    if (parts.length !== 4) {
      throw refusal(
        `${AUTH_HEADER} is malformed: ${parts.length} space-separated fields`,
        request,
      );
    }
    const [scheme, time, nonce, signature] = parts;
    if (scheme !== AUTH_SCHEME) {
      throw refusal(
        `${AUTH_HEADER} scheme ${
          echo(scheme)
        } is not supported (v1 did not sign the method; update the sender)`,
        request,
      );
    }
    const sent = TIME.test(time) ? Number(time) : NaN;
    if (!Number.isSafeInteger(sent)) {
      throw refusal(
        `${AUTH_HEADER} time ${
          echo(time)
        } is malformed, expected decimal milliseconds since 1970`,
        request,
      );
    }
    if (Math.abs(Date.now() - sent) > MAX_SKEW_MS) {
      throw refusal(
        `${AUTH_HEADER} time ${time} is more than ${
          MAX_SKEW_MS / 1000
        } s from the receiver's clock`,
        request,
      );
    }
    if (!NONCE.test(nonce)) {
      throw refusal(`${AUTH_HEADER} nonce is not 32 hex digits`, request);
    }
    // The pattern lets the last character carry 2 low bits the 32 bytes do
    // not have; such spellings decode to the same bytes, so only the one
    // that encodes back to itself passes.
    if (
      !SIGNATURE.test(signature) ||
      Buffer.from(signature, "base64url").toString("base64url") !== signature
    ) {
      throw refusal(
        `${AUTH_HEADER} signature is malformed, expected the 43 characters of canonical base64url (no padding)`,
        request,
      );
    }
    return { time, sent, nonce, signature };
  }

  /**
   * Forgets nonces whose time left the skew window: they would be refused
   * as skewed anyway, so forgetting them opens no replay. Insertion order is
   * roughly time order, so the usual pass stops at the first fresh one; a
   * full cache gets a pass over all of them.
   */
  #forgetOld(now: number, all: boolean): void {
    for (const [nonce, time] of this.#seen) {
      if (now - time > MAX_SKEW_MS) this.#seen.delete(nonce);
      else if (!all) break;
    }
  }
}

function refusal(why: string, request: SignedRequest): TransportError {
  return new TransportError(
    UNAUTHORIZED,
    `${why}; expected '${AUTH_HEADER}: ${AUTH_SCHEME} <time> <nonce> <mac>' signed with the shared secret`,
    { sessionId: request.sessionId },
  );
}
