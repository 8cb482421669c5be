/**
 * Fuzzing of the object transport's receive side: the pure codec (frame
 * parser, header codec) against a reference decoder, and a real receiver fed
 * thousands of random and mutated request bodies over raw HTTP while a
 * healthy stream sends to the same endpoint. Settings and replay: see
 * `_fuzz.ts`.
 */

import { assert, assertEquals } from "@std/assert";
import {
  type DecodedHeader,
  decodeHeader,
  encodeHeader,
  type ObjectHeader,
  type ReceivedHeader,
  Receiver,
  type RequestEndEvent,
  Stream,
  TRANSPORT_ERROR_CODES,
  TransportError,
} from "../transport/mod.ts";
import {
  base64,
  captureConsole,
  clip,
  CODEC_FACTOR,
  concat,
  fuzzSettings,
  hexDump,
  mutateBytes,
  mutateSegments,
  outcomeDifference,
  type ParseOutcome,
  randomChunking,
  randomObjectHeader,
  randomString,
  referenceDecodeHeader,
  referenceEncodeHeader,
  referenceParse,
  Rng,
  runFrameParser,
  serialize,
  TRUNCATION_CODES,
  validBody,
} from "./_fuzz.ts";
import { randomBytes, sha256 } from "./_helpers.ts";

const settings = fuzzSettings();
const { seed } = settings;

/** PRNG streams, one per use, so that uses never shift each other. */
const STREAM = {
  parser: 1,
  header: 2,
  http: 3,
  healthy: 4,
} as const;

const DEFAULT_LIMITS = { maxHeaderSize: 64 * 1024, maxPduSize: 1 << 20 };

function randomLimits(rng: Rng) {
  return rng.weighted([
    [3, () => DEFAULT_LIMITS],
    [1, () => ({ maxHeaderSize: 4096, maxPduSize: 64 * 1024 })],
    [
      1,
      () => ({
        maxHeaderSize: rng.range(22, 80),
        maxPduSize: rng.range(1, 64),
      }),
    ],
  ]);
}

/** An input for the parser: valid, structurally mutated, byte-mutated or random. */
function parserInput(
  rng: Rng,
  maxPduSize: number,
): { bytes: Uint8Array; valid: boolean } {
  return rng.weighted<{ bytes: Uint8Array; valid: boolean }>([
    [
      2,
      () => ({ bytes: serialize(validBody(rng, { maxPduSize })), valid: true }),
    ],
    [5, () => ({
      bytes: serialize(mutateSegments(rng, validBody(rng, { maxPduSize }))),
      valid: false,
    })],
    [2, () => ({
      bytes: mutateBytes(
        rng,
        serialize(validBody(rng, { maxPduSize })),
        rng.bytes(64),
      ),
      valid: false,
    })],
    [1, () => ({ bytes: rng.bytes(rng.size(300)), valid: false })],
  ]);
}

function failure(
  kind: string,
  index: number,
  detail: string,
  input?: Uint8Array,
): string {
  return `${kind} case #${index} (replay: ${settings.replay}): ${detail}` +
    (input
      ? `\n  input (${input.length} bytes, base64): ${
        clip(base64(input), 2000)
      }`
      : "");
}

Deno.test(`transport fuzz: FrameParser equals the reference decoder in any chunking (seed ${seed}, ${CODEC_FACTOR * settings.cases} cases)`, () => {
  const cases = CODEC_FACTOR * settings.cases;
  const codes = new Map<string, number>();
  for (let i = 0; i < cases; i++) {
    const rng = new Rng(seed, STREAM.parser, i);
    const limits = rng.chance(0.3) ? randomLimits(rng) : DEFAULT_LIMITS;
    const { bytes, valid } = parserInput(rng, limits.maxPduSize);
    const expected = referenceParse(bytes, limits);
    const code = expected.error ?? "ok";
    codes.set(code, (codes.get(code) ?? 0) + 1);
    if (valid && limits === DEFAULT_LIMITS && expected.error !== null) {
      throw new Error(
        failure(
          "parser",
          i,
          `the generator's valid body fails the reference with ${expected.error}`,
          bytes,
        ),
      );
    }
    for (let k = 0; k < 3; k++) {
      const chunks = randomChunking(rng, bytes);
      let actual: ParseOutcome & { offset: number };
      try {
        actual = runFrameParser(chunks, limits);
      } catch (error) {
        throw new Error(
          failure("parser", i, `threw a non-TransportError: ${error}`, bytes),
          { cause: error },
        );
      }
      const difference = outcomeDifference(actual, expected) ??
        (actual.error === null && actual.offset !== bytes.length
          ? `offset ${actual.offset} after a clean parse of ${bytes.length} bytes`
          : actual.offset > bytes.length
          ? `offset ${actual.offset} past the input`
          : null);
      if (difference !== null) {
        throw new Error(
          failure(
            "parser",
            i,
            `FrameParser differs from the reference: ${difference}\n  limits ${
              JSON.stringify(limits)
            }, ${chunks.length} chunks`,
            bytes,
          ),
        );
      }
    }
  }
  if (cases >= 4000) {
    // The generator must reach every decoding error, or the fuzz is shallow.
    for (
      const code of [
        "ok",
        "proto-hdr-short",
        "proto-hdr-invalid",
        "hdr-checksum",
        "hdr-too-large",
        "obj-hdr-short",
        "obj-hdr-malformed",
        "obj-data-eof",
        "obj-data-size",
        "pdu-hdr-short",
        "pdu-invalid",
        "pdu-data-eof",
        "frame-after-fin",
      ]
    ) {
      assert(
        (codes.get(code) ?? 0) > 0,
        `no case ended with ${code}: ${JSON.stringify([...codes])}`,
      );
    }
  }
});

/** A header with fields that may not fit, may not be strings, may be odd. */
function wildHeader(rng: Rng): ObjectHeader & { size: number } {
  const base = randomObjectHeader(rng);
  const header: ObjectHeader & { size: number } = {
    ...base,
    size: rng.weighted([
      [4, () => rng.size(1 << 20)],
      [1, () => -1],
      [
        1,
        () =>
          rng.pick([
            2 ** 53 - 1,
            2 ** 32,
            2 ** 32 - 1,
            2 ** 53,
            -2,
            0.5,
            NaN,
            Infinity,
          ]),
      ],
    ]),
  };
  if (rng.chance(0.3)) header.name = randomString(rng, 60); // may hold lone surrogates
  if (rng.chance(0.1)) {
    header.custom = {
      [randomString(rng, 8)]: randomString(rng, 8),
      b: "1",
      a: "2",
    };
  }
  if (rng.chance(0.05)) header.name = "x".repeat(rng.pick([65_535, 65_536]));
  if (rng.chance(0.05)) header.custom = { k: 7 as unknown as string };
  if (rng.chance(0.05)) header.name = "\ufeff" + header.name;
  return header;
}

function isWellFormed(header: ObjectHeader): boolean {
  const strings = [
    header.name,
    header.contentType ?? "",
    header.checksum?.type ?? "",
    header.checksum?.value ?? "",
    ...Object.entries(header.custom ?? {}).flat(),
  ];
  return strings.every((s) => typeof s === "string" && s.isWellFormed());
}

Deno.test(`transport fuzz: the header codec round-trips and rejects only with typed errors (seed ${seed}, ${CODEC_FACTOR * settings.cases} cases)`, () => {
  const cases = CODEC_FACTOR * settings.cases;
  let decoded = 0;
  for (let i = 0; i < cases; i++) {
    const rng = new Rng(seed, STREAM.header, i);
    const header = wildHeader(rng);
    // Encoding: bytes identical to the reference encoder, or a typed refusal.
    let bytes: Uint8Array | undefined;
    try {
      bytes = encodeHeader(header);
    } catch (error) {
      if (
        !(error instanceof TransportError) || error.code !== "obj-hdr-invalid"
      ) {
        throw new Error(
          failure(
            "encode",
            i,
            `threw ${error} for ${clip(JSON.stringify(header))}`,
          ),
        );
      }
    }
    const representable = Number.isSafeInteger(header.size) &&
      header.size >= -1 && isWellFormed(header) &&
      Object.values(header.custom ?? {}).every((v) => typeof v === "string");
    if (bytes !== undefined) {
      assert(
        representable,
        failure(
          "encode",
          i,
          `accepted a header it cannot carry faithfully: ${
            clip(JSON.stringify(header))
          }`,
        ),
      );
      const full = {
        name: header.name,
        opaque: header.opaque ?? new Uint8Array(0),
        contentType: header.contentType ?? "",
        checksum: header.checksum ?? { type: "", value: "" },
        custom: header.custom ?? {},
      };
      assertEquals(
        bytes,
        referenceEncodeHeader(full, header.size),
        failure("encode", i, "bytes differ from the reference encoder"),
      );
      const back = decodeHeader(bytes);
      assertEquals(
        back,
        referenceDecodeHeader(bytes),
        failure("round-trip", i, "decodeHeader differs from the reference"),
      );
      assertEquals(
        { name: back.name, size: back.size, contentType: back.contentType },
        {
          name: header.name,
          size: header.size,
          contentType: header.contentType ?? "",
        },
        failure("round-trip", i, "a field changed"),
      );
    } else {
      // Only headers that cannot be carried faithfully may be refused.
      const tooLong = [
        header.name,
        header.contentType ?? "",
        ...Object.entries(header.custom ?? {}).flat(),
      ]
        .some((s) =>
          typeof s === "string" && new TextEncoder().encode(s).length > 0xffff
        );
      assert(
        !representable || tooLong,
        failure(
          "encode",
          i,
          `refused a valid header ${clip(JSON.stringify(header))}`,
        ),
      );
    }
    // Decoding damaged bytes: the same answer as the reference decoder, errors typed.
    const input = mutateBytes(
      rng,
      bytes ?? referenceEncodeHeader(randomObjectHeader(rng), 0),
    );
    let actual: DecodedHeader | string;
    try {
      actual = decodeHeader(input);
    } catch (error) {
      if (!(error instanceof TransportError)) {
        throw new Error(
          failure("decode", i, `threw a non-TransportError ${error}`, input),
        );
      }
      actual = error.code;
    }
    let expected: DecodedHeader | string;
    const wireKeys: string[] = [];
    try {
      expected = referenceDecodeHeader(input, wireKeys);
    } catch (error) {
      expected = (error as { code: string }).code;
    }
    assertEquals(
      actual,
      expected,
      failure("decode", i, "differs from the reference decoder", input),
    );
    if (typeof actual !== "string") {
      decoded++;
      // A canonical input (keys sorted and distinct) re-encodes to itself.
      if (wireKeys.every((k, j) => j === 0 || wireKeys[j - 1] < k)) {
        assertEquals(
          encodeHeader({ ...actual, checksum: actual.checksum ?? undefined }),
          input,
          failure(
            "decode",
            i,
            "a decoded canonical header does not re-encode to its bytes",
            input,
          ),
        );
      }
    }
  }
  assert(
    decoded > cases / 20,
    `only ${decoded} of ${cases} damaged headers decoded: the mutations are too coarse`,
  );
});

// ---------------------------------------------------------------------------
// A real receiver over raw HTTP

const FUZZ_LIMITS = { maxHeaderSize: 4096, maxPduSize: 64 * 1024 };
const TRNAME = "fuzz";
const CONCURRENCY = 4;
const HEALTHY_OBJECTS = 240;

/** What the endpoint's handler saw, per session. */
type HandlerCall =
  | { kind: "object"; seq: number; header: DecodedHeader; body: Uint8Array }
  | { kind: "body-error"; seq: number; code: string }
  | { kind: "error"; seq: number; name: string; code: string }
  /** The handler returned without touching the body (it is drained). */
  | { kind: "ignored"; seq: number; name: string };

function snapshot(header: ReceivedHeader): DecodedHeader {
  return {
    name: header.name,
    opaque: header.opaque,
    size: header.size,
    contentType: header.contentType,
    checksum: header.checksum,
    custom: header.custom,
  };
}

/** What the handler must have seen for a body the reference decoded as `outcome`. */
function expectedRecords(
  outcome: ParseOutcome,
  ignoreBodies = false,
): HandlerCall[] {
  const records: HandlerCall[] = [];
  let current: {
    seq: number;
    header: DecodedHeader;
    hasBody: boolean;
    body: Uint8Array[];
  } | null = null;
  let lastSeq = -1;
  for (const event of outcome.events) {
    if (event.type === "object") {
      current = {
        seq: event.seq,
        header: event.header,
        hasBody: event.hasBody,
        body: [],
      };
      lastSeq = event.seq;
      if (ignoreBodies) {
        records.push({
          kind: "ignored",
          seq: event.seq,
          name: event.header.name,
        });
      }
    } else if (event.type === "data") current!.body.push(event.bytes);
    else if (event.type === "end") {
      if (!ignoreBodies) {
        records.push({
          kind: "object",
          seq: current!.seq,
          header: { ...current!.header, size: event.size },
          body: concat(current!.body),
        });
      }
      current = null;
    }
  }
  if (outcome.error !== null) {
    if (current !== null) {
      if (current.hasBody && !ignoreBodies) {
        records.push({
          kind: "body-error",
          seq: current.seq,
          code: outcome.error,
        });
      }
      records.push({
        kind: "error",
        seq: current.seq,
        name: current.header.name,
        code: outcome.error,
      });
    } else {records.push({
        kind: "error",
        seq: lastSeq,
        name: "",
        code: outcome.error,
      });}
  }
  return records;
}

interface HttpAnswer {
  status: number;
  json: unknown;
  raw: string;
}

const encoder = new TextEncoder();

/**
 * Sends one HTTP/1.1 request on a fresh connection and reads the answer to
 * the end (`Connection: close`); `null` if the server closed without one.
 */
async function rawHttp(
  port: number,
  head: string,
  body: Uint8Array[],
  options: { closeWrite?: boolean } = {},
): Promise<HttpAnswer | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const writing = (async () => {
      for (const part of [encoder.encode(head), ...body]) {
        for (let at = 0; at < part.length;) {
          at += await conn.write(part.subarray(at));
        }
      }
      if (options.closeWrite) await conn.closeWrite();
    })().catch((error) => error as Error);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    let readError: unknown;
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
      }
    } catch (error) {
      readError = error;
    }
    await writing; // a write cut short by an early answer is fine
    const text = new TextDecoder().decode(concat(chunks));
    if (text === "") {
      if (
        readError !== undefined &&
        !(readError instanceof Deno.errors.ConnectionReset)
      ) throw readError;
      return null;
    }
    const match = text.match(
      /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/,
    );
    if (!match) {
      throw new Error(`not an HTTP response: ${clip(JSON.stringify(text))}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(match[2]);
    } catch {
      throw new Error(
        `HTTP ${match[1]} answer is not JSON: ${clip(JSON.stringify(text))}`,
      );
    }
    return { status: Number(match[1]), json, raw: text };
  } finally {
    conn.close();
  }
}

async function compress(
  format: CompressionFormat,
  bytes: Uint8Array,
): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A promise that rejects after `ms` (for hang detection); the timer is always cleared. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`no answer within ${ms} ms: ${what} (a hang?)`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One network fuzz case: what is sent, and what must come back. */
interface HttpCase {
  label: string;
  head: string;
  body: Uint8Array[];
  closeWrite?: boolean;
  /** The receive loop runs (a request-end event and handler calls follow). */
  reachesLoop: boolean;
  /** Exact expectation: status, code and handler records. */
  expect?: {
    status: number;
    code?: string;
    outcome?: ParseOutcome;
    prefixOnly?: boolean;
  };
  /** Looser expectation: the allowed error codes (the answer may be 200 if `okAllowed`). */
  codes?: string[];
  okAllowed?: boolean;
  /** The handler returns at once for this request's objects (bodies drained). */
  ignoreBodies?: boolean;
}

function requestHead(
  options: {
    method?: string;
    path?: string;
    session?: string | null;
    compression?: string;
    length?: number;
    chunked?: boolean;
  },
): string {
  const lines = [
    `${options.method ?? "PUT"} ${
      options.path ?? `/v1/objstream/${TRNAME}`
    } HTTP/1.1`,
    "Host: 127.0.0.1",
  ];
  if (options.session !== null) {
    lines.push(`Spool-Session-Id: ${options.session}`);
  }
  if (options.compression !== undefined) {
    lines.push(`Spool-Compression: ${options.compression}`);
  }
  if (options.chunked) lines.push("Transfer-Encoding: chunked");
  else lines.push(`Content-Length: ${options.length ?? 0}`);
  lines.push("Connection: close", "", "");
  return lines.join("\r\n");
}

function chunkedBody(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(
      bytes.length - at,
      rng.range(1, rng.pick([16, 1000, 70_000])),
    );
    parts.push(
      encoder.encode(`${n.toString(16)}\r\n`),
      bytes.subarray(at, at + n),
      encoder.encode("\r\n"),
    );
    at += n;
  }
  parts.push(encoder.encode("0\r\n\r\n"));
  return [concat(parts)];
}

async function makeCase(index: number): Promise<HttpCase> {
  const rng = new Rng(seed, STREAM.http, index);
  const session = `fz-${seed}-${index}`;
  const frames = () =>
    rng.weighted<Uint8Array>([
      [2, () => serialize(validBody(rng, FUZZ_LIMITS))],
      [6, () => serialize(mutateSegments(rng, validBody(rng, FUZZ_LIMITS)))],
      [2, () => mutateBytes(rng, serialize(validBody(rng, FUZZ_LIMITS)))],
      [1, () => rng.bytes(rng.size(2000))],
    ]);
  return await rng.weighted<Promise<HttpCase>>([
    // Plain bodies, Content-Length or chunked: the reference decides the answer.
    [80, () => {
      const bytes = frames();
      const outcome = referenceParse(bytes, FUZZ_LIMITS);
      const chunked = rng.chance(0.3);
      const ignoreBodies = rng.chance(0.15);
      return Promise.resolve({
        label: `${chunked ? "chunked body" : "body"}${
          ignoreBodies ? ", bodies ignored" : ""
        }`,
        ignoreBodies,
        head: requestHead({
          session,
          chunked,
          length: bytes.length,
          compression: rng.chance(0.05) ? "none" : undefined,
        }),
        body: chunked ? chunkedBody(rng, bytes) : [bytes],
        reachesLoop: true,
        expect: {
          status: outcome.error === null ? 200 : 400,
          code: outcome.error ?? undefined,
          outcome,
        },
      });
    }],
    // A valid compressed stream of (possibly damaged) frames: same answer as uncompressed.
    [6, async () => {
      const format = rng.pick(["gzip", "deflate", "deflate-raw"] as const);
      const bytes = frames();
      const outcome = referenceParse(bytes, FUZZ_LIMITS);
      const packed = await compress(format, bytes);
      return {
        label: `${format} body`,
        head: requestHead({
          session,
          compression: format,
          length: packed.length,
        }),
        body: [packed],
        reachesLoop: true,
        expect: {
          status: outcome.error === null ? 200 : 400,
          code: outcome.error ?? undefined,
          outcome,
        },
      };
    }],
    // Damaged compressed bytes: a typed error (or, rarely, a body that still parses).
    [4, async () => {
      const format = rng.pick(["gzip", "deflate", "deflate-raw"] as const);
      const packed = rng.chance(0.3)
        ? rng.bytes(rng.size(500))
        : mutateBytes(rng, await compress(format, frames()));
      return {
        label: `damaged ${format} body`,
        head: requestHead({
          session,
          compression: format,
          length: packed.length,
        }),
        body: [packed],
        reachesLoop: true,
        codes: [...TRANSPORT_ERROR_CODES],
        okAllowed: true,
      };
    }],
    // The body ends early (the sender half-closes): connection-reset, or the
    // frame error met before the cut.
    [4, () => {
      const bytes = frames();
      const cut = rng.int(bytes.length + 1);
      const sent = bytes.subarray(0, cut);
      const outcome = referenceParse(sent, FUZZ_LIMITS);
      const codes = ["connection-reset"];
      if (outcome.error !== null && !TRUNCATION_CODES.has(outcome.error)) {
        codes.push(outcome.error);
      }
      return Promise.resolve({
        label: "short body",
        head: requestHead({
          session,
          length: bytes.length + rng.range(1, 100),
        }),
        body: [sent],
        closeWrite: true,
        reachesLoop: true,
        codes,
        expect: { status: 400, outcome, prefixOnly: true },
      });
    }],
    // Requests refused before the body is read.
    [6, () => {
      const bytes = rng.chance(0.5) ? frames() : new Uint8Array(0);
      return Promise.resolve(rng.weighted<HttpCase>([
        [1, () => ({
          label: "no session id",
          head: requestHead({ session: null, length: bytes.length }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 400, code: "bad-request" },
        })],
        [1, () => ({
          label: "session id too long",
          head: requestHead({
            session: "s".repeat(rng.range(201, 4000)),
            length: bytes.length,
          }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 400, code: "bad-request" },
        })],
        [1, () => ({
          label: "unknown compression",
          head: requestHead({
            session,
            compression: rng.pick(["br", "GZIP", "zstd", "gzip, deflate", "x"]),
            length: bytes.length,
          }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 400, code: "bad-request" },
        })],
        [1, () => ({
          label: "wrong method",
          head: requestHead({
            method: rng.pick(["POST", "GET", "DELETE", "PATCH", "OPTIONS"]),
            session,
            length: bytes.length,
          }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 405, code: "method-not-allowed" },
        })],
        [1, () => ({
          label: "unknown endpoint",
          head: requestHead({
            path: rng.pick([
              `/v1/objstream/${TRNAME}x`,
              "/v1/objstream/",
              "/v1/objstream",
              "/",
              "/v1/objstream/a/b",
              `/v2/objstream/${TRNAME}`,
              "/v1/objstream/%2e%2e",
            ]),
            session,
            length: bytes.length,
          }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 404, code: "unknown-endpoint" },
        })],
        [1, () => ({
          label: "malformed percent-encoding",
          head: requestHead({
            path: rng.pick([
              "/v1/objstream/%",
              "/v1/objstream/%zz",
              "/v1/objstream/%E0%A4%A",
              "/v1/objstream/%ff",
            ]),
            session,
            length: bytes.length,
          }),
          body: [bytes],
          reachesLoop: false,
          expect: { status: 400, code: "bad-request" },
        })],
      ]));
    }],
  ]);
}

/** Compares the handler's records with the expected ones. */
function checkRecords(
  actual: HandlerCall[],
  expected: HandlerCall[],
  prefixOnly: boolean,
): void {
  if (!prefixOnly) {
    assertEquals(actual, expected, "handler calls");
    return;
  }
  // The cut may fall anywhere: whole objects are a prefix of the reference's,
  // then at most a failed body, then exactly one error.
  const errorAt = actual.findIndex((r) => r.kind === "error");
  assert(
    errorAt === actual.length - 1,
    `handler calls must end with one error: ${
      JSON.stringify(actual.map((r) => r.kind))
    }`,
  );
  const wholes = actual.filter((r) => r.kind === "object");
  assertEquals(
    wholes,
    expected.filter((r) => r.kind === "object").slice(0, wholes.length),
    "objects delivered whole",
  );
}

Deno.test(`transport fuzz: a receiver answers every random and mutated request with a typed error, a healthy stream is untouched (seed ${seed}, ${settings.cases} cases)`, async () => {
  using logged = captureConsole();
  const ends = new Map<string, RequestEndEvent>();
  const endWaiters = new Map<string, (event: RequestEndEvent) => void>();
  await using receiver = new Receiver({
    ...FUZZ_LIMITS,
    onRequestEnd(event) {
      const waiter = endWaiters.get(event.sessionId);
      if (waiter) {
        endWaiters.delete(event.sessionId);
        waiter(event);
      } else ends.set(event.sessionId, event);
    },
  });
  await receiver.listen("data");
  const records = new Map<string, HandlerCall[]>();
  const ignoring = new Set<string>();
  const record = (sessionId: string, entry: HandlerCall) => {
    const list = records.get(sessionId) ?? [];
    records.set(sessionId, list);
    list.push(entry);
  };
  receiver.register("data", TRNAME, async (header, body, error) => {
    if (error !== undefined) {
      assert(
        error instanceof TransportError,
        `handler got a non-TransportError ${error}`,
      );
      record(header.sessionId, {
        kind: "error",
        seq: header.seq,
        name: header.name,
        code: error.code,
      });
      return;
    }
    if (ignoring.has(header.sessionId)) {
      record(header.sessionId, {
        kind: "ignored",
        seq: header.seq,
        name: header.name,
      });
      return; // the receiver drains the body
    }
    let bytes = new Uint8Array(0);
    if (body !== null) {
      try {
        bytes = await new Response(body).bytes();
      } catch (cause) {
        record(header.sessionId, {
          kind: "body-error",
          seq: header.seq,
          code: cause instanceof TransportError
            ? cause.code
            : `not a TransportError: ${cause}`,
        });
        return;
      }
    }
    record(header.sessionId, {
      kind: "object",
      seq: header.seq,
      header: snapshot(header),
      body: bytes,
    });
  });
  const url = receiver.url("data", TRNAME);
  const port = Number(url.port);

  // The healthy stream: objects of every body kind, sent as the fuzz goes on.
  const healthyRng = new Rng(seed, STREAM.healthy);
  const healthy = Array.from({ length: HEALTHY_OBJECTS }, (_, i) => {
    const kind = healthyRng.pick(
      ["bytes", "bytes", "stream", "empty"] as const,
    );
    const length = kind === "empty"
      ? 0
      : healthyRng.size(kind === "stream" ? 300_000 : 150_000);
    return { name: `h${i}`, kind, bytes: randomBytes(length, seed + i) };
  });
  const sent: string[] = [];
  const stream = new Stream(url, {
    burst: 32,
    onSent: (header, error) =>
      sent.push(`${header.name}:${error?.code ?? "ok"}`),
  });
  let queued = 0;
  let pacing = Promise.resolve();
  const pace = (fraction: number) => {
    const until = Math.min(
      HEALTHY_OBJECTS,
      Math.ceil(fraction * HEALTHY_OBJECTS),
    );
    pacing = pacing.then(async () => {
      for (; queued < until; queued++) {
        const { name, kind, bytes } = healthy[queued];
        const body = kind === "empty" ? null : kind === "bytes"
          ? bytes.slice() // over 64 KiB it is transferred: keep the original
          : ReadableStream.from(
            Array.from(
              { length: Math.ceil(bytes.length / 10_000) },
              (_, k) => bytes.slice(k * 10_000, (k + 1) * 10_000),
            ),
          );
        await stream.send({ name, contentType: kind }, body);
      }
    });
  };

  const failures: string[] = [];
  const codes = new Map<string, number>();
  let next = 0;
  let done = 0;
  let fuzzObjects = 0;
  let fuzzBytes = 0;
  const worker = async () => {
    for (
      let index = next++;
      index < settings.cases && failures.length === 0;
      index = next++
    ) {
      const c = await makeCase(index);
      const session = `fz-${seed}-${index}`;
      const what = `${c.label} case #${index} (replay: ${settings.replay})`;
      if (c.ignoreBodies) ignoring.add(session);
      try {
        const ended = c.reachesLoop
          ? new Promise<RequestEndEvent>((resolve) => {
            const early = ends.get(session);
            if (early) {
              ends.delete(session);
              resolve(early);
            } else endWaiters.set(session, resolve);
          })
          : undefined;
        const answer = await within(
          rawHttp(port, c.head, c.body, { closeWrite: c.closeWrite }),
          20_000,
          what,
        );
        const event = ended
          ? await within(ended, 20_000, `request end of ${what}`)
          : undefined;
        const mine = records.get(session) ?? [];
        records.delete(session);
        if (answer === null) {
          // Only a cut-short body may lose its answer; the handler still learns.
          assert(
            c.closeWrite,
            "the receiver closed the connection without an answer",
          );
        } else {
          const json = answer.json as {
            code?: unknown;
            message?: unknown;
            objects?: unknown;
            bytes?: unknown;
          };
          const code = answer.status === 200 ? "ok" : String(json.code);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (answer.status !== 200) {
            assert(
              (TRANSPORT_ERROR_CODES as readonly unknown[]).includes(json.code),
              `unknown error code in ${clip(answer.raw)}`,
            );
            assert(
              typeof json.message === "string" && json.message.length > 0,
              `no message in ${clip(answer.raw)}`,
            );
            // The status each code is documented with (docs/transport.md).
            const statuses: { [code: string]: number[] } = {
              "unknown-endpoint": [404],
              "bad-request": [400],
              "method-not-allowed": [405],
              "handler-failed": [500],
              "receiver-closed": [503],
            };
            assert(
              (statuses[String(json.code)] ?? [400]).includes(answer.status),
              `status of ${clip(answer.raw)}`,
            );
          } else {
            assert(
              c.expect?.status === 200 || c.okAllowed,
              `unexpected 200: ${clip(answer.raw)}`,
            );
            assert(
              Number.isSafeInteger(json.objects) &&
                Number.isSafeInteger(json.bytes),
              `bad 200 body ${clip(answer.raw)}`,
            );
          }
          if (c.expect !== undefined && !c.closeWrite) {
            assertEquals(
              answer.status,
              c.expect.status,
              `status of ${clip(answer.raw)}`,
            );
            if (c.expect.code !== undefined) {
              assertEquals(json.code, c.expect.code, "error code");
            }
          }
          if (c.codes !== undefined && answer.status !== 200) {
            assert(
              c.codes.includes(String(json.code)),
              `code ${json.code} not in ${c.codes.join(", ")}`,
            );
          }
          if (event !== undefined) {
            assertEquals(
              event.error?.code ?? "ok",
              answer.status === 200 ? "ok" : json.code,
              "request-end event",
            );
          }
        }
        if (event !== undefined) {
          if (c.closeWrite) {
            assert(event.error !== null, "a cut-short body ended cleanly");
          }
          if (c.codes !== undefined && event.error !== null) {
            assert(
              c.codes.includes(event.error.code),
              `request ended with ${event.error.code}, not one of ${
                c.codes.join(", ")
              }`,
            );
          }
          const sizes = c.expect?.outcome?.events.flatMap((e) =>
            e.type === "end" ? [e.size] : []
          );
          if (c.ignoreBodies) {
            // Drained objects count as delivered: the reference says which.
            assertEquals(event.objects, sizes!.length, "objects delivered");
            fuzzObjects += sizes!.length;
            for (const size of sizes!) fuzzBytes += size;
          } else {
            const delivered = mine.filter((r) => r.kind === "object");
            assertEquals(
              event.objects,
              delivered.length,
              "objects of the request-end event",
            );
            fuzzObjects += delivered.length;
            for (const r of delivered) {
              fuzzBytes += (r as { body: Uint8Array }).body.length;
            }
          }
          if (
            answer?.status === 200 && sizes !== undefined &&
            !c.expect?.prefixOnly
          ) {
            // Each case has its own session: its totals are this request's.
            assertEquals(
              answer.json,
              {
                objects: sizes.length,
                bytes: sizes.reduce((n, x) => n + x, 0),
              },
              "the 200 answer's totals",
            );
          }
          // A failed request is reported to the handler exactly once, last.
          const errors = mine.filter((r) => r.kind === "error");
          if (event.error === null) {
            assertEquals(
              errors.length,
              0,
              "errors given to the handler of a clean request",
            );
          } else {
            assertEquals(errors.length, 1, "errors given to the handler");
            assertEquals(
              (errors[0] as { code: string }).code,
              event.error.code,
              "code given to the handler",
            );
          }
          if (c.expect?.outcome !== undefined) {
            checkRecords(
              mine,
              expectedRecords(c.expect.outcome, c.ignoreBodies),
              c.expect.prefixOnly === true,
            );
          }
        } else {
          assertEquals(
            mine.length,
            0,
            "handler calls for a request refused before its body",
          );
        }
      } catch (error) {
        failures.push(
          `${what}: ${(error as Error).message}\n  head: ${
            JSON.stringify(c.head.slice(0, 300))
          }\n  body: ${hexDump(concat(c.body), 200)}`,
        );
      }
      done++;
      if (done % 64 === 0) pace(done / settings.cases);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  pace(1);
  await pacing;
  await stream.fin();
  const elapsed = performance.now() - started;
  if (failures.length > 0) throw new Error(failures.slice(0, 5).join("\n\n"));
  ends.delete(stream.sessionId);
  assertEquals(
    ends.size,
    0,
    `request ends of requests that should not have reached the loop: ${
      [...ends.keys()].slice(0, 5)
    }`,
  );

  // The healthy stream: every object, in order, byte for byte.
  assertEquals(sent, healthy.map((h) => `${h.name}:ok`));
  const got = records.get(stream.sessionId) ?? [];
  assertEquals(got.length, HEALTHY_OBJECTS, "healthy objects received");
  for (let i = 0; i < HEALTHY_OBJECTS; i++) {
    const r = got[i];
    if (r.kind !== "object") {
      throw new Error(`healthy object ${i} is a ${r.kind}`);
    }
    assertEquals(r.header.name, healthy[i].name);
    assertEquals(
      r.header.size,
      healthy[i].bytes.length,
      `size of ${healthy[i].name}`,
    );
    assertEquals(
      await sha256(r.body),
      await sha256(healthy[i].bytes),
      `bytes of ${healthy[i].name}`,
    );
  }
  const stats = receiver.stats().data[TRNAME];
  const mine = stats.sessions[stream.sessionId];
  assert(mine !== undefined, "the healthy session's statistics are gone");
  assertEquals({
    objects: mine.objects,
    errors: mine.errors,
    finished: mine.finished,
  }, {
    objects: HEALTHY_OBJECTS,
    errors: 0,
    finished: true,
  });
  const healthyBytes = healthy.reduce((n, h) => n + h.bytes.length, 0);
  assertEquals(
    stats.objects,
    HEALTHY_OBJECTS + fuzzObjects,
    "endpoint object count",
  );
  assertEquals(stats.bytes, healthyBytes + fuzzBytes, "endpoint byte count");
  assertEquals(logged.lines, [], "the receiver logged (it logs only on bugs)");
  // The fuzz must reach deep into the decoder, not stop at the check word.
  if (settings.cases >= 2000) {
    for (
      const code of [
        "ok",
        "hdr-checksum",
        "proto-hdr-invalid",
        "obj-hdr-malformed",
        "pdu-invalid",
        "obj-data-size",
        "bad-request",
        "unknown-endpoint",
        "connection-reset",
        "decompress-failed",
      ]
    ) {
      assert(
        (codes.get(code) ?? 0) > 0,
        `no answer with ${code}: ${JSON.stringify([...codes])}`,
      );
    }
  }
  console.log(
    `transport fuzz: ${settings.cases} requests in ${
      Math.round(elapsed)
    } ms; answers ${JSON.stringify(Object.fromEntries([...codes].sort()))}`,
  );
});
