/**
 * Signed transport sessions (`Spool-Auth`) as a hostile client sees them:
 * what the MAC binds, which spellings pass, what an unsigned request learns,
 * and the bounds of the nonce cache.
 */

import { assert, assertEquals, assertThrows } from "@std/assert";
import { createHmac } from "node:crypto";
import { Receiver, type TransportErrorCode } from "../transport/mod.ts";
import { TransportError } from "../transport/errors.ts";
import {
  AUTH_HEADER,
  AUTH_SCHEME,
  MAX_SKEW_MS,
  NONCE_CACHE_FULL,
  RequestVerifier,
  type SignedRequest,
  signRequest,
  UNAUTHORIZED,
} from "../transport/internal/auth.ts";

const SECRET = "a-shared-secret-of-some-length";
const PUT: SignedRequest = {
  method: "PUT",
  sessionId: "s1",
  path: "/v1/objstream/x",
};

/** A fresh 32-hex-digit nonce. */
function nonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * A header for `request` at `time`, computed from docs/transport.md's
 * description of the MAC rather than by `signRequest`.
 */
function signAt(request: SignedRequest, time: number): string {
  const n = nonce();
  const mac = createHmac("sha256", SECRET).update(
    `spool-transport-v2\n${request.method}\n${request.sessionId}\n${request.path}\n${time}\n${n}`,
  ).digest("base64url");
  return `v2 ${time} ${n} ${mac}`;
}

function refusedWith(
  verify: () => void,
  code: TransportErrorCode,
): TransportError {
  const error = assertThrows(verify, TransportError);
  assertEquals(error.code, code, error.message);
  return error;
}

/** A receiver with a secret and one endpoint, `exists`, on network `a`. */
async function signedReceiver(): Promise<{ receiver: Receiver; base: URL }> {
  const receiver = new Receiver({ secret: SECRET });
  const base = await receiver.listen("a");
  receiver.register("a", "exists", () => {});
  return { receiver, base };
}

Deno.test("transport auth: the MAC is the documented one and covers the method: a signature made for PUT is refused for POST, GET and DELETE", async () => {
  const verifier = new RequestVerifier(SECRET);
  verifier.verify(signAt(PUT, Date.now()), PUT);
  verifier.verify(signRequest(SECRET, PUT), PUT);
  for (const method of ["POST", "GET", "DELETE", "put"]) {
    const error = refusedWith(
      () => verifier.verify(signRequest(SECRET, PUT), { ...PUT, method }),
      UNAUTHORIZED,
    );
    assert(error.message.includes("signature does not match"), error.message);
  }
  // Through HTTP: the same header on a POST is refused as unsigned, not
  // 405, and the session it was made for can still use it once.
  const { receiver, base } = await signedReceiver();
  try {
    const url = new URL("v1/objstream/exists", base);
    const header = signRequest(SECRET, {
      method: "PUT",
      sessionId: "moved",
      path: url.pathname,
    });
    const send = (method: string) =>
      fetch(url, {
        method,
        headers: { "Spool-Session-Id": "moved", [AUTH_HEADER]: header },
        body: new Uint8Array(0),
      });
    const post = await send("POST");
    assertEquals(post.status, 401);
    assertEquals((await post.json()).code, UNAUTHORIZED);
    const put = await send("PUT");
    assertEquals(put.status, 200);
    await put.body?.cancel();
  } finally {
    await receiver.close();
  }
});

Deno.test("transport auth: only the canonical base64url signature passes: `==` or `=` padding, an extra character, standard base64 or other low bits are refused", () => {
  const verifier = new RequestVerifier(SECRET);
  const valid = signRequest(SECRET, PUT);
  const [scheme, time, n, mac] = valid.split(" ");
  assertEquals(mac.length, 43);
  // The last of 43 characters carries 2 bits the 32 bytes do not have.
  const alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = alphabet.indexOf(mac[42]);
  const sibling = mac.slice(0, 42) + alphabet[last ^ 1];
  for (
    const spelling of [
      `${mac}==`,
      `${mac}=`,
      `${mac}A`,
      `${mac.replaceAll("-", "+").replaceAll("_", "/")}`,
      sibling,
      mac.slice(0, 42),
    ]
  ) {
    if (spelling === mac) continue; // the +/ swap may change nothing
    const error = refusedWith(
      () => verifier.verify(`${scheme} ${time} ${n} ${spelling}`, PUT),
      UNAUTHORIZED,
    );
    assert(error.message.includes("canonical base64url"), error.message);
  }
  verifier.verify(valid, PUT);
});

Deno.test("transport auth: with a secret, an unsigned request learns nothing: existing endpoint, missing endpoint, wrong method and a foreign path get the same 401", async () => {
  const { receiver, base } = await signedReceiver();
  try {
    const answers: string[] = [];
    for (
      const [method, path] of [
        ["PUT", "v1/objstream/exists"],
        ["PUT", "v1/objstream/zzz"],
        ["GET", "v1/objstream/exists"],
        ["GET", "v1/objstream/zzz"],
        ["POST", "elsewhere"],
        ["PUT", "v1/objstream/%zz"],
      ]
    ) {
      const response = await fetch(new URL(path, base), {
        method,
        headers: { "Spool-Session-Id": "probe" },
        body: method === "GET" ? undefined : new Uint8Array(0),
      });
      answers.push(`${response.status} ${await response.text()}`);
    }
    assertEquals(new Set(answers).size, 1, answers.join("\n"));
    assert(answers[0].startsWith("401 "), answers[0]);
    assertEquals(JSON.parse(answers[0].slice(4)).code, UNAUTHORIZED);
    assert(!answers[0].includes("zzz") && !answers[0].includes("PUT"));
  } finally {
    await receiver.close();
  }
});

Deno.test("transport auth: signed requests still learn 404 and 405", async () => {
  const { receiver, base } = await signedReceiver();
  try {
    for (
      const [method, path, status] of [
        ["PUT", "/v1/objstream/zzz", 404],
        ["POST", "/v1/objstream/exists", 405],
      ] as const
    ) {
      const response = await fetch(new URL(path, base), {
        method,
        headers: {
          "Spool-Session-Id": "signed",
          [AUTH_HEADER]: signRequest(SECRET, {
            method,
            sessionId: "signed",
            path,
          }),
        },
        body: new Uint8Array(0),
      });
      assertEquals(response.status, status);
      await response.body?.cancel();
    }
  } finally {
    await receiver.close();
  }
});

Deno.test("transport auth: a time that is not decimal milliseconds is malformed, not skewed; echoed fields are capped", () => {
  const verifier = new RequestVerifier(SECRET);
  const mac = signRequest(SECRET, PUT).split(" ")[3];
  for (
    const time of [
      "abc",
      "1e300",
      "-5",
      "12.5",
      "0x10",
      "",
      "99999999999999999",
      "9".repeat(5000),
    ]
  ) {
    const error = refusedWith(
      () => verifier.verify(`${AUTH_SCHEME} ${time} ${nonce()} ${mac}`, PUT),
      UNAUTHORIZED,
    );
    assert(error.message.includes("malformed"), error.message);
    assert(!error.message.includes("clock"), error.message);
    assert(error.message.length < 300, `${error.message.length} characters`);
  }
  const skewed = refusedWith(
    () => verifier.verify(signAt(PUT, Date.now() - 2 * MAX_SKEW_MS), PUT),
    UNAUTHORIZED,
  );
  assert(skewed.message.includes("clock"), skewed.message);
  // The old scheme is named, with the reason to update.
  const v1 = refusedWith(
    () => verifier.verify(`v1 ${Date.now()} ${nonce()} ${mac}`, PUT),
    UNAUTHORIZED,
  );
  assert(v1.message.includes(`"v1" is not supported`), v1.message);
  const long = refusedWith(
    () => verifier.verify(`${"x".repeat(5000)} 1 ${nonce()} ${mac}`, PUT),
    UNAUTHORIZED,
  );
  assert(long.message.length < 300, `${long.message.length} characters`);
});

Deno.test("transport auth: the nonce cache is bounded; full of valid nonces it refuses new requests and still refuses replays; expired nonces make room", () => {
  const verifier = new RequestVerifier(SECRET, 3);
  const first = signRequest(SECRET, PUT);
  verifier.verify(first, PUT);
  verifier.verify(signRequest(SECRET, PUT), PUT);
  // About to leave the window: valid now, expired a few ms later.
  const edge = Date.now() - MAX_SKEW_MS + 2;
  verifier.verify(signAt(PUT, edge), PUT);
  assertEquals(verifier.nonces, 3);
  const full = refusedWith(
    () => verifier.verify(signRequest(SECRET, PUT), PUT),
    NONCE_CACHE_FULL,
  );
  assert(full.message.includes("3 nonces"), full.message);
  const replay = refusedWith(() => verifier.verify(first, PUT), UNAUTHORIZED);
  assert(replay.message.includes("replay"), replay.message);
  // Waits on the clock itself (a few ms): the edge nonce's time leaves the
  // window, so it can be forgotten without opening a replay.
  while (Date.now() - edge <= MAX_SKEW_MS) {
    // Spin: the condition is the wall clock, there is no event to wait on.
  }
  verifier.verify(signRequest(SECRET, PUT), PUT);
  assertEquals(verifier.nonces, 3);
  refusedWith(() => verifier.verify(first, PUT), UNAUTHORIZED);
});
