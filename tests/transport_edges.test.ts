import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { Receiver, Stream, TransportError } from "../transport/mod.ts";
import { signRequest } from "../transport/internal/auth.ts";
import {
  type Received,
  recordInto,
  sha256,
  startTestReceiver,
} from "./_transport_helpers.ts";

Deno.test("transport edges: empty and reused bodies, fin after idle teardown, failed count", async () => {
  await using rx = await startTestReceiver();
  const received: Received[] = [];
  const url = recordInto(rx.receiver, "edges", received);
  const codes: string[] = [];
  const stream = new Stream(url, {
    idleTimeoutMs: 50,
    onSent: (_h, e) => codes.push(e?.code ?? "ok"),
  });
  // Unknown size but no bytes: one empty last PDU.
  await stream.send({ name: "empty-unknown", size: -1 }, new Uint8Array(0));
  // The caller reuses one small buffer: each send must keep its own bytes.
  const scratch = new Uint8Array(3);
  for (const text of ["aaa", "bbb", "ccc"]) {
    scratch.set(new TextEncoder().encode(text));
    await stream.send({ name: text }, scratch);
  }
  // A failure before the worker counts in stats().failed too.
  await stream.send({ name: "bad", size: 9 }, new Uint8Array(1)).catch(
    (error) => assertEquals(error.code, "obj-size-mismatch"),
  );
  // Idle teardown, then fin: a request is opened just for the fin frame.
  await rx.nextRequestEnd((e) => e.sessionId === stream.sessionId);
  const finRequest = rx.nextRequestEnd((e) => e.sessionId === stream.sessionId);
  await stream.fin();
  const end = await finRequest;
  assertEquals(end.fin, true);
  assertEquals(end.error, null);
  assertEquals(codes, ["ok", "ok", "ok", "ok", "obj-size-mismatch"]);
  assertEquals(received.map((r) => r.header.name), [
    "empty-unknown",
    "aaa",
    "bbb",
    "ccc",
  ]);
  assertEquals(received[0].header.size, 0);
  for (const [i, text] of ["aaa", "bbb", "ccc"].entries()) {
    assertEquals(
      received[i + 1].sha,
      await sha256(new TextEncoder().encode(text)),
    );
  }
  assertEquals(stream.stats().failed, 1);
  assertEquals(stream.stats().objects, 4);
  const session = rx.receiver.stats().data.edges.sessions[stream.sessionId];
  assertEquals(session.finished, true);
  assertEquals(session.requests, 2);
});

Deno.test("transport edges: a slow stream body does not hold back the objects before it", async () => {
  await using rx = await startTestReceiver();
  let firstArrived!: () => void;
  const arrived = new Promise<void>((resolve) => firstArrived = resolve);
  const order: string[] = [];
  rx.receiver.register("data", "slow", async (header, body) => {
    order.push(header.name);
    if (body !== null) await new Response(body).arrayBuffer();
    if (header.name === "first") firstArrived();
  });
  // Safety net only: if "first" were held back, fail instead of hanging.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"late">((resolve) =>
    timer = setTimeout(resolve, 20_000, "late")
  );
  let outcome: "in time" | "late" = "in time";
  const slow = new ReadableStream<Uint8Array>({
    async pull(controller) {
      outcome = await Promise.race([
        arrived.then(() => "in time" as const),
        deadline,
      ]);
      controller.enqueue(new Uint8Array(10));
      controller.close();
    },
  });
  const stream = new Stream(rx.receiver.url("data", "slow"));
  await stream.send({ name: "first" }, new Uint8Array(10));
  await stream.send({ name: "slow" }, slow);
  await stream.fin();
  clearTimeout(timer);
  assertEquals(outcome, "in time");
  assertEquals(order, ["first", "slow"]);
});

Deno.test("transport edges: bad URLs, headers, endpoint names and paths get typed errors", async () => {
  const code = (fn: () => unknown) => assertThrows(fn, TransportError).code;
  assertEquals(code(() => new Stream("ftp://127.0.0.1/x")), "invalid-argument");
  assertEquals(code(() => new Stream("not a url")), "invalid-argument");
  assertEquals(
    code(() =>
      new Stream("http://127.0.0.1/x", { headers: { "x-a": "1\r\nx-b: 2" } })
    ),
    "invalid-argument",
  );
  assertEquals(
    code(() =>
      new Stream("http://127.0.0.1/x", {
        headers: { "Transfer-Encoding": "identity" },
      })
    ),
    "invalid-argument",
  );
  await using rx = await startTestReceiver();
  for (const name of [".", "..", "a/b", ""]) {
    assertEquals(
      code(() => rx.receiver.register("data", name, () => {})),
      "invalid-argument",
      name,
    );
  }
  rx.receiver.register("data", "ok", () => {});
  const base = rx.receiver.url("data", "ok");
  const response = await fetch(new URL("/v1/objstream/%E0%A4%A", base), {
    method: "PUT",
    headers: { "Spool-Session-Id": "x" },
    body: new Uint8Array(0),
  });
  assertEquals(response.status, 400);
  const answer = await response.json();
  assertEquals(answer.code, "bad-request");
  assert(answer.message.includes("percent-encoding"), answer.message);
});

Deno.test("transport edges: a receiver can listen again after close", async () => {
  const receiver = new Receiver();
  await receiver.listen("a");
  await receiver.close();
  await receiver.listen("a");
  const names: string[] = [];
  receiver.register("a", "again", (header) => void names.push(header.name));
  const stream = new Stream(receiver.url("a", "again"));
  await stream.send({ name: "after-close" });
  await stream.fin();
  await receiver.close();
  assertEquals(names, ["after-close"]);
});

Deno.test("transport edges: a shared secret signs requests; unsigned, wrong and replayed ones get 401", async () => {
  const secret = "a-shared-secret-of-some-length";
  const receiver = new Receiver({ secret });
  try {
    await receiver.listen("a");
    const names: string[] = [];
    receiver.register("a", "signed", (header) => void names.push(header.name));
    const url = receiver.url("a", "signed");
    const signed = new Stream(url, { secret });
    await signed.send({ name: "ok" }, new Uint8Array(5));
    await signed.fin();
    for (
      const [label, options] of [["unsigned", {}], ["wrong", {
        secret: "not-the-shared-secret!",
      }]] as const
    ) {
      const stream = new Stream(url, options);
      await stream.send({ name: label });
      const error = await assertRejects(() => stream.fin(), TransportError);
      assertEquals(error.remoteCode, "unauthorized", label);
    }
    // A captured header cannot be used twice.
    const auth = signRequest(secret, {
      method: "PUT",
      sessionId: "replayed",
      path: url.pathname,
    });
    const put = () =>
      fetch(url, {
        method: "PUT",
        headers: { "Spool-Session-Id": "replayed", "Spool-Auth": auth },
        body: new Uint8Array(0),
      });
    const first = await put();
    assertEquals(first.status, 200);
    await first.body?.cancel();
    const replay = await put();
    assertEquals(replay.status, 401);
    assert((await replay.json()).message.includes("replay"));
    assertEquals(names, ["ok"]);
  } finally {
    await receiver.close();
  }
});

Deno.test("transport edges: https receivers, trusted through caCerts", async () => {
  const fixture = (name: string) =>
    Deno.readTextFile(new URL(`./fixtures/${name}`, import.meta.url));
  const receiver = new Receiver();
  try {
    const base = await receiver.listen("tls", {
      cert: await fixture("cert.pem"),
      key: await fixture("key.pem"),
    });
    assertEquals(base.protocol, "https:");
    const got: string[] = [];
    receiver.register("tls", "t", async (header, body) => {
      got.push(`${header.name}:${body ? await new Response(body).text() : ""}`);
    });
    const url = receiver.url("tls", "t");
    const stream = new Stream(url, { caCerts: [await fixture("ca.pem")] });
    await stream.send({ name: "over-tls" }, new TextEncoder().encode("hi"));
    await stream.fin();
    assertEquals(got, ["over-tls:hi"]);
    const untrusted = new Stream(url);
    await untrusted.send({ name: "x" });
    const error = await assertRejects(() => untrusted.fin(), TransportError);
    assertEquals(error.code, "receiver-gone");
  } finally {
    await receiver.close();
  }
});
