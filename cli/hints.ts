/**
 * One-line hints for the failures a new user meets first: TLS certificates
 * that are not trusted or not usable, `http` and `https` mixed up, a server
 * that is not there, a missing token. The CLIs add them to the error line.
 *
 * @module
 */

import { LIMIT_FLAGS } from "../server/limits.ts";

/** What the failing command was doing, for the token hints. */
export type HintContext = "upload" | "read";

/** Patterns of error messages, and what to do about each. */
const HINTS: [RegExp, (context: HintContext) => string][] = [
  [
    /UnknownIssuer/,
    () =>
      "the server's certificate is not signed by a CA this client trusts: pass that CA with --ca FILE (or SPOOL_CA_FILE)",
  ],
  [
    /CaUsedAsEndEntity/,
    () =>
      "the server's certificate is a CA certificate used as its own leaf (what a bare `openssl req -x509` makes): make it with -addext basicConstraints=critical,CA:FALSE, or make a CA and a leaf it signs (README, Deployment)",
  ],
  [
    /NotValidForName|certificate not valid for name/i,
    () =>
      "the server's certificate is not for the host name in the URL: use the name (or IP) it was issued for",
  ],
  [
    /Expired|NotValidYet/,
    () => "the server's certificate is out of its validity period",
  ],
  [
    /invalid HTTP version parsed|answered with TLS, not HTTP/,
    () => "the server speaks TLS: use https:// or wss://",
  ],
  [
    /InvalidContentType|corrupt message/,
    () => "the server does not speak TLS: use http:// or ws://",
  ],
  [
    /Connection refused|tcp connect error/,
    () =>
      "nothing listens there: is a Spool server running at that host and port?",
  ],
];

const TOKEN_HINTS: Record<HintContext, string> = {
  upload:
    "pass the server's upload token with --upload-token T, or SPOOL_UPLOAD_TOKEN=T",
  read:
    "use the reference with its ?token=… as the uploader got it, or pass --token T",
};

/**
 * The hint for `error`, if one fits: by its code (`forbidden`) or by the
 * words of its message.
 *
 * @example
 * ```ts
 * import { hintFor } from "./hints.ts";
 * console.log(hintFor(new Error("invalid peer certificate: UnknownIssuer"), "read"));
 * // "the server's certificate is not signed by a CA this client trusts: …"
 * ```
 */
export function hintFor(
  error: unknown,
  context: HintContext,
): string | undefined {
  if ((error as { code?: unknown })?.code === "forbidden") {
    return TOKEN_HINTS[context];
  }
  const message = error instanceof Error ? error.message : String(error);
  const limit = message.match(/\(limit (\w+)\)$/)?.[1];
  if (limit !== undefined && limit in LIMIT_FLAGS) {
    return `the server's ${
      LIMIT_FLAGS[limit as keyof typeof LIMIT_FLAGS]
    } sets it`;
  }
  for (const [pattern, hint] of HINTS) {
    if (pattern.test(message)) return hint(context);
  }
  return undefined;
}
