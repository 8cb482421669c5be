/**
 * Fuzzing helpers: a seeded PRNG, mutators for JSON messages, bytes and
 * transport frames, and a reference decoder of the transport wire format
 * (written from `docs/transport.md`) used as an oracle.
 *
 * Settings come from the environment, so a failure can be replayed:
 *
 * - `SPOOL_FUZZ_SEED`: the seed (decimal or `0x` hex, default
 *   {@linkcode DEFAULT_SEED}); every test name shows the seed in use.
 * - `SPOOL_FUZZ_CASES`: cases of each network fuzz test (default
 *   {@linkcode DEFAULT_CASES}); the in-process codec fuzz tests run
 *   {@linkcode CODEC_FACTOR} times as many.
 *
 * Every case is generated from its own PRNG derived from (seed, stream,
 * case index), so the bytes a case sends do not depend on how many cases ran
 * before it or on timing. The network tests run several connections at once:
 * the server's timing, and what a case learns from earlier answers (upload
 * ids and tokens), may differ between runs; what each case sends does not.
 *
 * A default run: 6000 cases against a live server (`fuzz_live.test.ts`) and
 * 6000 against a transport receiver (`fuzz_transport.test.ts`), plus 12 000
 * in-process cases each for the message validators, the frame parser and
 * the header codec. Every failure message names its case and the settings
 * to replay it with, e.g.
 *
 * ```sh
 * SPOOL_FUZZ_SEED=389121 SPOOL_FUZZ_CASES=6000 deno test -A tests/fuzz_live.test.ts
 * ```
 */

import {
  checkWord,
  type DecodedHeader,
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  FrameParser,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
  type ObjectHeader,
  TransportError,
} from "../transport/mod.ts";

/** Seed used when `SPOOL_FUZZ_SEED` is unset. */
export const DEFAULT_SEED = 0x5f001;
/** Cases of each network fuzz test when `SPOOL_FUZZ_CASES` is unset. */
export const DEFAULT_CASES = 6000;
/** The in-process codec fuzz tests run this many times `cases`. */
export const CODEC_FACTOR = 2;

/** The settings of one fuzz run. */
export interface FuzzSettings {
  seed: number;
  cases: number;
  /** How to replay this run, for failure messages. */
  replay: string;
}

function envInteger(name: string, fallback: number, min: number): number {
  const text = Deno.env.get(name)?.trim();
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `${name} is ${JSON.stringify(text)}; expected an integer >= ${min}`,
    );
  }
  return value;
}

/** Reads `SPOOL_FUZZ_SEED` and `SPOOL_FUZZ_CASES`. */
export function fuzzSettings(): FuzzSettings {
  const seed = envInteger("SPOOL_FUZZ_SEED", DEFAULT_SEED, 0) >>> 0;
  const cases = envInteger("SPOOL_FUZZ_CASES", DEFAULT_CASES, 1);
  return {
    seed,
    cases,
    replay: `SPOOL_FUZZ_SEED=${seed} SPOOL_FUZZ_CASES=${cases}`,
  };
}

// ---------------------------------------------------------------------------
// PRNG

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A small seeded PRNG (sfc32); not for secrets. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator for `(seed, stream, index)`; streams name independent uses. */
  constructor(seed: number, stream = 0, index = 0) {
    this.#a = mix32(seed ^ 0x9e3779b9);
    this.#b = mix32(this.#a ^ Math.imul(stream + 1, 0x85ebca6b));
    this.#c = mix32(this.#b ^ Math.imul(index + 1, 0xc2b2ae35));
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform u32. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return (this.u32() * 2 ** 21 + (this.u32() >>> 11)) / 2 ** 53;
  }

  /** An integer in [0, n) (n up to 2^53). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi], inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Runs one of the weighted choices. */
  weighted<T>(choices: readonly (readonly [number, () => T])[]): T {
    let total = 0;
    for (const [weight] of choices) total += weight;
    let at = this.float() * total;
    for (const [weight, make] of choices) {
      if (at < weight) return make();
      at -= weight;
    }
    return choices[choices.length - 1][1]();
  }

  /** A size in [0, max], log-uniform: small sizes are as likely as big ones. */
  size(max: number): number {
    return Math.min(
      max,
      Math.floor(2 ** (this.float() * Math.log2(max + 2))) - 1,
    );
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    const words = new Uint32Array(out.buffer, 0, n >>> 2);
    for (let i = 0; i < words.length; i++) words[i] = this.u32();
    for (let i = words.length * 4; i < n; i++) out[i] = this.u32();
    return out;
  }
}

// ---------------------------------------------------------------------------
// Strings and bytes

const SPECIAL_CHARS = [
  "\u0000",
  "\u0001",
  "\u001f",
  "\u007f",
  "\u0080",
  "\u00ff",
  "\u2028",
  "\u2029",
  "\u202e",
  "\u200b",
  "\ufeff",
  "\ufffd",
  "\uffff",
  "\ud800",
  "\udfff",
  "\ud83d\ude00",
  "\u{10ffff}",
  "\n",
  "\r",
  "\t",
  '"',
  "\\",
  "/",
  "%",
  "?",
  "#",
  "..",
  "é",
  "漢",
];

/** A random string of up to `max` UTF-16 units, from ASCII to lone surrogates. */
export function randomString(
  rng: Rng,
  max = 40,
  options: { wellFormed?: boolean } = {},
): string {
  const length = rng.size(max);
  let text = "";
  const flavour = rng.int(4);
  while (text.length < length) {
    const r = rng.int(10);
    if (flavour === 0 || r < 5) {
      text += String.fromCharCode(rng.range(0x20, 0x7e)); // printable ASCII
    } else if (r < 7) {
      text += rng.pick(SPECIAL_CHARS);
    } else if (r < 9) {
      text += String.fromCodePoint(rng.range(0xa0, 0xd7ff));
    } else {
      text += String.fromCodePoint(rng.range(0x10000, 0x10ffff));
    }
  }
  return options.wellFormed ? text.toWellFormed() : text;
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const INTERESTING_U32 = [
  0,
  1,
  2,
  15,
  16,
  17,
  21,
  22,
  23,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
];

/** An interesting u32 (edges, limits) or a random one. */
export function interestingU32(rng: Rng, near?: number): number {
  return rng.weighted([
    [4, () => rng.pick(INTERESTING_U32)],
    [3, () => ((near ?? rng.int(64)) + rng.range(-3, 3)) >>> 0],
    [1, () => rng.u32()],
  ]);
}

/**
 * One to four byte-level mutations: bit flips, interesting bytes and words,
 * truncation, insertion, deletion, duplication and splicing from `donor`.
 */
export function mutateBytes(
  rng: Rng,
  input: Uint8Array,
  donor?: Uint8Array,
): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array<ArrayBuffer> = input.slice();
  const rounds = rng.range(1, 4);
  for (let round = 0; round < rounds; round++) {
    const at = rng.int(bytes.length + 1);
    const op = rng.int(10);
    if (op === 0 && bytes.length > 0) {
      const i = rng.int(bytes.length);
      bytes[i] ^= 1 << rng.int(8);
    } else if (op === 1 && bytes.length > 0) {
      bytes[rng.int(bytes.length)] = rng.pick([0, 1, 0x7f, 0x80, 0xfe, 0xff]);
    } else if (op === 2 && bytes.length >= 4) {
      const i = rng.int(bytes.length - 3);
      new DataView(bytes.buffer).setUint32(i, interestingU32(rng));
    } else if (op === 3) {
      bytes = bytes.slice(0, at); // truncate
    } else if (op === 4) {
      bytes = concat([
        bytes.subarray(0, at),
        rng.bytes(rng.size(64)),
        bytes
          .subarray(at),
      ]);
    } else if (op === 5) {
      const end = Math.min(bytes.length, at + rng.size(64));
      bytes = concat([bytes.subarray(0, at), bytes.subarray(end)]);
    } else if (op === 6) {
      const end = Math.min(bytes.length, at + rng.size(256));
      const to = rng.int(bytes.length + 1);
      const piece = bytes.slice(at, end);
      bytes = concat([bytes.subarray(0, to), piece, bytes.subarray(to)]);
    } else if (op === 7 && donor !== undefined && donor.length > 0) {
      const from = rng.int(donor.length);
      const piece = donor.subarray(from, from + rng.size(512));
      bytes = concat([bytes.subarray(0, at), piece, bytes.subarray(at)]);
    } else if (op === 8 && bytes.length >= 2) {
      const i = rng.int(bytes.length - 1);
      new DataView(bytes.buffer).setUint16(i, rng.pick([0, 1, 0xffff, 22]));
    } else if (bytes.length > 0) {
      const i = rng.int(bytes.length);
      bytes[i] = rng.u32();
    }
  }
  return bytes;
}

/**
 * Splits `bytes` into chunks: one piece, random cuts, or (for small inputs)
 * byte by byte. Empty chunks are included sometimes: a parser must cope.
 */
export function randomChunking(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const mode = rng.int(bytes.length <= 4096 ? 4 : 3);
  if (mode === 0 || bytes.length === 0) return [bytes];
  if (mode === 3) return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  const chunks: Uint8Array[] = [];
  const piece = mode === 1 && bytes.length <= 20_000 ? 17 : 4096;
  for (let at = 0; at < bytes.length;) {
    const n = rng.chance(0.05) ? 0 : rng.range(1, piece);
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

// ---------------------------------------------------------------------------
// JSON messages

/** JSON text inserted verbatim by {@linkcode toJson}. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** A JSON object whose keys may repeat (the text keeps every one). */
export class Entries {
  constructor(readonly entries: [string, unknown][]) {}
}

/** Serialises values, {@linkcode RawJson} and {@linkcode Entries} as JSON text. */
export function toJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof Entries) {
    return `{${
      value.entries.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(
        ",",
      )
    }}`;
  }
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return toJson(new Entries(Object.entries(value)));
  }
  return JSON.stringify(value) ?? "null";
}

/** A value of the wrong kind, an edge number, an odd string or a deep nest. */
export function interestingValue(rng: Rng): unknown {
  return rng.weighted<unknown>([
    [5, () =>
      rng.pick<unknown>([
        0,
        1,
        -1,
        0.5,
        -0.5,
        1e-7,
        2 ** 31 - 1,
        2 ** 31,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 32 + 1,
        2 ** 53 - 1,
        2 ** 53,
        2 ** 64,
        1e308,
        -1e308,
        Number.MAX_VALUE,
        Number.EPSILON,
        new RawJson("-0"),
        new RawJson("1e400"),
        new RawJson("-1e400"),
        new RawJson("1e-400"),
        new RawJson("1.0"),
        new RawJson("9007199254740993"),
        new RawJson("4294967295.0000000001"),
        new RawJson("123456789012345678901234567890123456789"),
      ])],
    [4, () =>
      rng.pick<unknown>([
        "",
        "0",
        "1",
        "-1",
        "NaN",
        "Infinity",
        "-Infinity",
        "null",
        "true",
        "1e3",
        "0x10",
        " 1",
        "read",
        "__proto__",
        "../../etc/passwd",
        "text/plain",
        "a".repeat(64),
        "0".repeat(64),
        "f".repeat(64),
      ])],
    [3, () => randomString(rng, 80)],
    [1, () => "x".repeat(rng.pick([1025, 65_536, 70_000, 300_000]))],
    [1, () => randomString(rng, 3000)],
    [
      3,
      () => rng.pick<unknown>([null, true, false, [], {}, [1, 2], { a: "b" }]),
    ],
    [1, () => {
      const depth = rng.pick([64, 1000, 20_000]);
      const [open, close] = rng.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
      return new RawJson(open.repeat(depth) + "1" + close.repeat(depth));
    }],
    [1, () => Array.from({ length: rng.pick([100, 5000]) }, (_, i) => i)],
    [1, () =>
      Object.fromEntries(
        Array.from({ length: rng.pick([10, 2000]) }, (_, i) => [`k${i}`, "v"]),
      )],
  ]);
}

/** Every message type of `protocol/messages.ts`, both directions. */
export const ALL_MESSAGE_TYPES = [
  "request-upload",
  "resume-upload",
  "end-of-input",
  "ready-for-upload",
  "ack",
  "final-status",
  "read",
  "follow",
  "credit",
  "cancel",
  "status",
  "read-end",
  "error",
] as const;

/**
 * Mutates a message: fields dropped, replaced with interesting values,
 * nudged, duplicated, the type changed, the whole thing wrapped or nested.
 */
export function mutateMessage(
  rng: Rng,
  message: Record<string, unknown>,
): unknown {
  const entries: [string, unknown][] = Object.entries(message);
  const rounds = rng.range(1, 3);
  for (let round = 0; round < rounds; round++) {
    const i = rng.int(entries.length);
    const op = rng.int(9);
    if (op === 0 && entries.length > 0) {
      entries.splice(i, 1);
    } else if (op === 1 && entries.length > 0) {
      entries[i] = [entries[i][0], interestingValue(rng)];
    } else if (op === 2 && entries.length > 0) {
      const [key, value] = entries[i];
      if (typeof value === "number") {
        entries[i] = [
          key,
          rng.pick([
            value + 1,
            value - 1,
            -value,
            value * 2 ** rng.range(1, 40),
            value + 0.5,
            String(value),
          ]),
        ];
      } else if (typeof value === "string") {
        entries[i] = [
          key,
          rng.pick([
            value + "x",
            value.slice(1),
            "",
            value.toUpperCase(),
            value.repeat(3),
            [value],
          ]),
        ];
      } else entries[i] = [key, interestingValue(rng)];
    } else if (op === 3 && entries.length > 0) {
      entries.push([entries[i][0], interestingValue(rng)]); // duplicate key
    } else if (op === 4) {
      const type = rng.weighted<unknown>([
        [4, () => rng.pick(ALL_MESSAGE_TYPES)],
        [1, () => rng.pick(ALL_MESSAGE_TYPES).toUpperCase()],
        [1, () => ` ${rng.pick(ALL_MESSAGE_TYPES)}`],
        [2, () => interestingValue(rng)],
      ]);
      const at = entries.findIndex(([key]) => key === "type");
      if (at >= 0) entries[at] = ["type", type];
      else entries.unshift(["type", type]);
    } else if (op === 5) {
      entries.push([
        rng.pick([
          "__proto__",
          "constructor",
          "",
          "requestId",
          "start",
          "end",
          "window",
          "bytes",
          "name",
          "metadata",
          "sha256",
          "token",
          "id",
          "x".repeat(300),
        ]),
        interestingValue(rng),
      ]);
    } else if (op === 6) {
      return rng.pick<unknown>([
        [new Entries(entries)],
        new Entries([["type", "read"], ["message", new Entries(entries)]]),
        toJson(new Entries(entries)),
        null,
        42,
      ]);
    } else if (op === 7 && entries.length > 1) {
      const j = rng.int(entries.length);
      [entries[i], entries[j]] = [entries[j], entries[i]];
    } else {
      entries.push([randomString(rng, 20), interestingValue(rng)]);
    }
  }
  return new Entries(entries);
}

/** Text-level damage: truncation, stray characters, doubled or spliced text. */
export function mutateText(rng: Rng, text: string): string {
  const at = rng.int(text.length + 1);
  return rng.weighted<string>([
    [3, () => text.slice(0, at)],
    [2, () => text.slice(0, at) + rng.pick(SPECIAL_CHARS) + text.slice(at)],
    [2, () => text.slice(0, at) + text.slice(at + rng.range(1, 8))],
    [1, () => text + text],
    [1, () => text + rng.pick(["\n", " ", ",", "}", "]", "garbage", "\u0000"])],
    [1, () => "\ufeff" + text],
    [1, () => ` \n\t${text}\r\n `],
    [1, () => text.replaceAll('"', "'")],
    [1, () => `/*x*/${text}`],
    [1, () => randomString(rng, 200)],
  ]);
}

// ---------------------------------------------------------------------------
// Transport frames

/** The fields of a frame header, each free to be out of range. */
export interface FrameFields {
  kind: number;
  flags: number;
  version: number;
  reserved: number;
  length: number;
  seq: number;
  /** An explicit (usually wrong) check word; the right one when absent. */
  check?: number;
}

/** A piece of a request body: a frame (header + payload) or raw body bytes. */
export type Segment =
  | { frame: FrameFields; payload: Uint8Array }
  | { raw: Uint8Array };

/** The 16 bytes of a frame header with any field values. */
export function frameHeaderBytes(fields: FrameFields): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  const w0 = ((fields.kind & 0xff) << 24 | (fields.flags & 0xff) << 16 |
    (fields.version & 0xff) << 8 | (fields.reserved & 0xff)) >>> 0;
  const w1 = fields.length >>> 0;
  const w2 = fields.seq >>> 0;
  view.setUint32(0, w0);
  view.setUint32(4, w1);
  view.setUint32(8, w2);
  view.setUint32(12, fields.check ?? checkWord(w0, w1, w2));
  return out;
}

/** The bytes of a sequence of segments. */
export function serialize(
  segments: readonly Segment[],
): Uint8Array<ArrayBuffer> {
  return concat(
    segments.flatMap((s) =>
      "raw" in s ? [s.raw] : [frameHeaderBytes(s.frame), s.payload]
    ),
  );
}

/** A random object header whose strings are well-formed. */
export function randomObjectHeader(
  rng: Rng,
): Required<Omit<ObjectHeader, "size">> {
  const custom: Record<string, string> = {};
  const pairs = rng.chance(0.6) ? 0 : rng.size(6);
  for (let i = 0; i < pairs; i++) {
    custom[randomString(rng, 12, { wellFormed: true })] = randomString(
      rng,
      30,
      {
        wellFormed: true,
      },
    );
  }
  return {
    name: randomString(rng, rng.chance(0.05) ? 2000 : 40, { wellFormed: true }),
    opaque: rng.chance(0.7)
      ? new Uint8Array(0)
      : rng.bytes(rng.size(rng.chance(0.05) ? 5000 : 40)),
    contentType: rng.chance(0.5) ? "" : rng.pick([
      "text/plain",
      "application/octet-stream",
      randomString(rng, 20, { wellFormed: true }),
    ]),
    checksum: rng.chance(0.7) ? { type: "", value: "" } : {
      type: rng.pick(["sha256", "md5", ""]),
      value: randomString(rng, 64, { wellFormed: true }),
    },
    custom,
  };
}

/** Encodes an object header exactly as the codec documents it (reference encoder). */
export function referenceEncodeHeader(
  header: Required<Omit<ObjectHeader, "size">>,
  size: number,
): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const u16 = (n: number) => new Uint8Array([n >>> 8 & 0xff, n & 0xff]);
  const u32 = (n: number) =>
    new Uint8Array([
      n >>> 24 & 0xff,
      n >>> 16 & 0xff,
      n >>> 8 & 0xff,
      n & 0xff,
    ]);
  const str = (s: string) => {
    const b = enc.encode(s);
    return [u16(b.length), b];
  };
  const keys = Object.keys(header.custom).sort();
  const parts: Uint8Array[] = [
    ...str(header.name),
    size === -1 ? u32(0xffffffff) : u32(Math.floor(size / 2 ** 32)),
    size === -1 ? u32(0xffffffff) : u32(size >>> 0),
    u32(header.opaque.length),
    header.opaque,
    ...str(header.contentType),
    ...str(header.checksum.type),
    ...str(header.checksum.value),
    u16(keys.length),
    ...keys.flatMap((k) => [...str(k), ...str(header.custom[k])]),
  ];
  return concat(parts);
}

/** What a valid body holds, object by object. */
export interface BodyPlan {
  segments: Segment[];
}

/**
 * A valid request body: objects of known size, header-only objects and
 * PDU-mode objects, with increasing (possibly wrapping, possibly gapped)
 * sequence numbers, usually ended by a fin.
 */
export function validBody(
  rng: Rng,
  limits: { maxPduSize: number } = { maxPduSize: 1 << 20 },
): Segment[] {
  const segments: Segment[] = [];
  let seq = rng.weighted([
    [5, () => 0],
    [1, () => 0xffffffff - rng.int(3)],
    [1, () => 0x7fffffff - rng.int(3)],
    [1, () => rng.u32()],
  ]);
  const objects = rng.weighted([[1, () => 0], [6, () => rng.range(1, 4)], [
    1,
    () => rng.range(5, 16),
  ]]);
  for (let i = 0; i < objects; i++) {
    if (i > 0) seq = (seq + (rng.chance(0.9) ? 1 : rng.range(2, 1000))) >>> 0;
    const header = randomObjectHeader(rng);
    const bodyLength = rng.chance(0.2)
      ? 0
      : rng.size(rng.chance(0.02) ? 150_000 : objects > 4 ? 300 : 3000);
    const body = rng.bytes(bodyLength);
    const pduMode = rng.chance(0.35);
    const declared = pduMode && rng.chance(0.7) ? -1 : bodyLength;
    const encoded = referenceEncodeHeader(header, declared);
    segments.push({
      frame: {
        kind: KIND_OBJECT,
        flags: pduMode ? FLAG_PDU_MODE : 0,
        version: 1,
        reserved: 0,
        length: encoded.length,
        seq,
      },
      payload: encoded,
    });
    if (!pduMode) {
      if (bodyLength > 0) segments.push({ raw: body });
      continue;
    }
    // Small PDUs for small bodies only: at most ~64 PDUs per object.
    const pduSize = Math.min(
      limits.maxPduSize,
      Math.max(
        rng.range(1, rng.pick([7, 512, 8192, 70_000])),
        Math.ceil(body.length / 64),
      ),
    );
    for (let at = 0;;) {
      const n = Math.min(pduSize, body.length - at);
      const last = at + n >= body.length;
      segments.push({
        frame: {
          kind: KIND_PDU,
          flags: last ? FLAG_PDU_LAST : 0,
          version: 1,
          reserved: 0,
          length: n,
          seq,
        },
        payload: body.subarray(at, at + n),
      });
      at += n;
      if (last) break;
    }
  }
  if (rng.chance(0.85)) {
    segments.push({
      frame: {
        kind: KIND_FIN,
        flags: 0,
        version: 1,
        reserved: 0,
        length: 0,
        seq: (seq + 1) >>> 0,
      },
      payload: new Uint8Array(0),
    });
  }
  return segments;
}

/**
 * Structural mutations of a body, each keeping the check words right (so the
 * receiver's deeper checks are reached) unless the mutation is the check
 * word: fields changed, frames dropped, duplicated, swapped or inserted,
 * payloads damaged, lengths off by a little or a lot.
 */
export function mutateSegments(rng: Rng, input: readonly Segment[]): Segment[] {
  const segments: Segment[] = input.map((s) =>
    "raw" in s ? { raw: s.raw } : { frame: { ...s.frame }, payload: s.payload }
  );
  const frames = () => segments.flatMap((s, i) => ("frame" in s ? [i] : []));
  const rounds = rng.range(1, 3);
  for (let round = 0; round < rounds; round++) {
    const indexes = frames();
    const fi = indexes.length > 0 ? rng.pick(indexes) : -1;
    const target = fi >= 0
      ? segments[fi] as Extract<Segment, { frame: FrameFields }>
      : undefined;
    const op = rng.int(12);
    if (op <= 3 && target) {
      const f = target.frame;
      const field = rng.pick(
        ["kind", "flags", "version", "reserved", "length", "seq"] as const,
      );
      if (field === "kind") f.kind = rng.pick([0, 1, 2, 3, 4, 0x81, 0xff]);
      else if (field === "flags") {
        f.flags = rng.pick([0, 1, 2, 3, 4, 0x80, 0xff]);
      } else if (field === "version") f.version = rng.pick([0, 2, 0xff]);
      else if (field === "reserved") f.reserved = rng.pick([1, 0x80, 0xff]);
      else if (field === "length") f.length = interestingU32(rng, f.length);
      else f.seq = interestingU32(rng, f.seq);
    } else if (op === 4 && target) {
      target.frame.check = rng.u32(); // a wrong check word, nearly surely
    } else if (op === 5 && fi >= 0) {
      segments.splice(fi, 1); // drop a frame
    } else if (op === 6 && fi >= 0) {
      const copy = segments[fi] as Extract<Segment, { frame: FrameFields }>;
      segments.splice(rng.int(segments.length + 1), 0, {
        frame: { ...copy.frame },
        payload: copy.payload,
      });
    } else if (op === 7 && segments.length > 1) {
      const i = rng.int(segments.length);
      const j = rng.int(segments.length);
      [segments[i], segments[j]] = [segments[j], segments[i]];
    } else if (op === 8 && target) {
      target.payload = mutateBytes(rng, target.payload);
      if (rng.chance(0.5)) target.frame.length = target.payload.length;
    } else if (op === 9) {
      const kind = rng.pick([KIND_OBJECT, KIND_PDU, KIND_FIN]);
      const payload = kind === KIND_FIN
        ? new Uint8Array(0)
        : kind === KIND_PDU
        ? rng.bytes(rng.size(100))
        : referenceEncodeHeader(randomObjectHeader(rng), rng.pick([-1, 0, 5]));
      segments.splice(rng.int(segments.length + 1), 0, {
        frame: {
          kind,
          flags: rng.pick([0, 0, FLAG_PDU_MODE, FLAG_PDU_LAST]),
          version: 1,
          reserved: 0,
          length: payload.length,
          seq: target?.frame.seq ?? 0,
        },
        payload,
      });
    } else if (op === 10) {
      const raws = segments.flatMap((s, i) => ("raw" in s ? [i] : []));
      if (raws.length > 0) {
        const ri = rng.pick(raws);
        const raw = (segments[ri] as { raw: Uint8Array }).raw;
        segments[ri] = {
          raw: rng.chance(0.5)
            ? raw.subarray(0, rng.int(raw.length + 1))
            : concat([raw, rng.bytes(rng.range(1, 40))]),
        };
      } else if (target) {
        target.frame.length = interestingU32(rng, target.frame.length);
      }
    } else {
      segments.push({ raw: rng.bytes(rng.size(64)) });
    }
  }
  return segments;
}

// ---------------------------------------------------------------------------
// Reference decoder (the oracle)

/** A normalised parse event; consecutive data events are merged. */
export type ParseEvent =
  | { type: "object"; seq: number; header: DecodedHeader; hasBody: boolean }
  | { type: "data"; bytes: Uint8Array }
  | { type: "end"; size: number }
  | { type: "fin"; seq: number };

/** The outcome of parsing a whole body. */
export interface ParseOutcome {
  events: ParseEvent[];
  /** The error code, or `null` if the body parsed cleanly. */
  error: string | null;
}

/** Codes that `FrameParser.finish` raises: the body ended inside a frame. */
export const TRUNCATION_CODES: ReadonlySet<string> = new Set([
  "proto-hdr-short",
  "obj-hdr-short",
  "obj-data-eof",
  "pdu-hdr-short",
  "pdu-data-eof",
]);

class RefError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes an object header per `docs/transport.md`; throws with a code.
 * The custom keys, in wire order, are appended to `wireKeys`.
 */
export function referenceDecodeHeader(
  bytes: Uint8Array,
  wireKeys: string[] = [],
): DecodedHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (at + n > bytes.length) throw new RefError("obj-hdr-malformed");
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const u16 = () => {
    take(2);
    return view.getUint16(at - 2);
  };
  const u32 = () => {
    take(4);
    return view.getUint32(at - 4);
  };
  const str = () => {
    const piece = take(u16());
    try {
      return strictUtf8.decode(piece);
    } catch {
      throw new RefError("obj-hdr-malformed");
    }
  };
  const name = str();
  const hi = u32();
  const lo = u32();
  const size = hi === 0xffffffff && lo === 0xffffffff ? -1 : hi * 2 ** 32 + lo;
  if (!Number.isSafeInteger(size)) throw new RefError("obj-hdr-malformed");
  const opaque = take(u32()).slice();
  const contentType = str();
  const type = str();
  const value = str();
  const count = u16();
  const custom: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const key = str();
    wireKeys.push(key);
    Object.defineProperty(custom, key, {
      value: str(),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  if (at !== bytes.length) throw new RefError("obj-hdr-malformed");
  return {
    name,
    opaque,
    size,
    contentType,
    checksum: type === "" && value === "" ? null : { type, value },
    custom,
  };
}

interface RefFrame {
  kind: number;
  flags: number;
  length: number;
  seq: number;
}

function refFrame(bytes: Uint8Array, at: number): RefFrame {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 16);
  const w0 = view.getUint32(0);
  const w1 = view.getUint32(4);
  const w2 = view.getUint32(8);
  // The check word, straight from the spec's pseudo-code.
  const fmix = (x: number) => {
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x = (x ^ (x >>> 13)) >>> 0;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  };
  const check = fmix(
    (w0 ^ fmix((w1 ^ fmix((w2 ^ 0x53504f4f) >>> 0)) >>> 0)) >>> 0,
  );
  if (check !== view.getUint32(12)) throw new RefError("hdr-checksum");
  const kind = w0 >>> 24;
  const flags = (w0 >>> 16) & 0xff;
  if (((w0 >>> 8) & 0xff) !== 1 || (w0 & 0xff) !== 0) {
    throw new RefError("proto-hdr-invalid");
  }
  const allowed = kind === 1 ? 0x01 : kind === 2 ? 0x02 : kind === 3 ? 0 : -1;
  if (allowed < 0 || (flags & ~allowed) !== 0) {
    throw new RefError("proto-hdr-invalid");
  }
  if (kind === 3 && w1 !== 0) throw new RefError("proto-hdr-invalid");
  return { kind, flags, length: w1, seq: w2 };
}

/**
 * Parses a whole body per `docs/transport.md`, non-incrementally: the
 * oracle for `FrameParser` and for what the receiver delivers.
 */
export function referenceParse(
  bytes: Uint8Array,
  limits: { maxHeaderSize: number; maxPduSize: number },
): ParseOutcome {
  const events: ParseEvent[] = [];
  let pieces: Uint8Array[] = [];
  const data = (piece: Uint8Array) => {
    if (piece.length > 0) pieces.push(piece);
  };
  const flush = () => {
    if (pieces.length > 0) events.push({ type: "data", bytes: concat(pieces) });
    pieces = [];
  };
  const push = (event: ParseEvent) => {
    flush();
    events.push(event);
  };
  let at = 0;
  let lastSeq = -1;
  const left = () => bytes.length - at;
  try {
    while (at < bytes.length) {
      if (left() < 16) throw new RefError("proto-hdr-short");
      const frame = refFrame(bytes, at);
      at += 16;
      if (frame.kind === 3) {
        push({ type: "fin", seq: frame.seq });
        if (at !== bytes.length) throw new RefError("frame-after-fin");
        break;
      }
      if (frame.kind !== 1) throw new RefError("proto-hdr-invalid");
      const ahead = (frame.seq - lastSeq) >>> 0;
      if (lastSeq >= 0 && (ahead === 0 || ahead >= 2 ** 31)) {
        throw new RefError("proto-hdr-invalid");
      }
      if (frame.length > limits.maxHeaderSize) {
        throw new RefError("hdr-too-large");
      }
      if (frame.length < 22) throw new RefError("obj-hdr-malformed");
      lastSeq = frame.seq;
      if (left() < frame.length) throw new RefError("obj-hdr-short");
      const header = referenceDecodeHeader(
        bytes.subarray(at, at + frame.length),
      );
      at += frame.length;
      const seq = frame.seq;
      if ((frame.flags & FLAG_PDU_MODE) === 0) {
        if (header.size === -1) throw new RefError("obj-hdr-malformed");
        push({ type: "object", seq, header, hasBody: header.size > 0 });
        if (left() < header.size) {
          data(bytes.subarray(at));
          at = bytes.length;
          throw new RefError("obj-data-eof");
        }
        data(bytes.subarray(at, at + header.size));
        at += header.size;
        push({ type: "end", size: header.size });
        continue;
      }
      push({ type: "object", seq, header, hasBody: true });
      let received = 0;
      for (;;) {
        if (left() < 16) throw new RefError("pdu-hdr-short");
        const pdu = refFrame(bytes, at);
        at += 16;
        if (
          pdu.kind !== 2 || pdu.seq !== seq || pdu.length > limits.maxPduSize
        ) {
          throw new RefError("pdu-invalid");
        }
        const last = (pdu.flags & FLAG_PDU_LAST) !== 0;
        if (pdu.length === 0 && !last) throw new RefError("pdu-invalid");
        received += pdu.length;
        if (header.size !== -1 && received > header.size) {
          throw new RefError("obj-data-size");
        }
        if (left() < pdu.length) {
          data(bytes.subarray(at));
          at = bytes.length;
          throw new RefError("pdu-data-eof");
        }
        data(bytes.subarray(at, at + pdu.length));
        at += pdu.length;
        if (!last) continue;
        if (header.size !== -1 && received !== header.size) {
          throw new RefError("obj-data-size");
        }
        push({ type: "end", size: received });
        break;
      }
    }
  } catch (error) {
    if (error instanceof RefError) {
      flush();
      return { events, error: error.code };
    }
    throw error;
  }
  flush();
  return { events, error: null };
}

/**
 * Runs `FrameParser` over `chunks` and normalises its events like
 * {@linkcode referenceParse}. Any exception other than a `TransportError`,
 * and a parser that keeps producing events without consuming input, fail.
 */
export function runFrameParser(
  chunks: readonly Uint8Array[],
  limits: { maxHeaderSize: number; maxPduSize: number },
): ParseOutcome & { offset: number } {
  const parser = new FrameParser(limits);
  const events: ParseEvent[] = [];
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  // Each event consumes a byte, or is one of at most three per frame.
  let budget = 4 * total + 16;
  let pieces: Uint8Array[] = [];
  const flush = () => {
    if (pieces.length > 0) events.push({ type: "data", bytes: concat(pieces) });
    pieces = [];
  };
  const push = (event: ParseEvent) => {
    if (--budget < 0) {
      throw new Error(
        `FrameParser produced too many events for ${total} bytes`,
      );
    }
    if (event.type === "data") {
      if (event.bytes.length === 0) {
        throw new Error("FrameParser produced an empty data event");
      }
      pieces.push(event.bytes);
      return;
    }
    flush();
    if (event.type === "object") {
      events.push({
        type: "object",
        seq: event.seq,
        header: event.header,
        hasBody: event.hasBody,
      });
      return;
    }
    events.push(event);
  };
  try {
    for (const chunk of chunks) {
      parser.push(chunk);
      for (let event = parser.next(); event !== null; event = parser.next()) {
        push(event as ParseEvent);
      }
    }
    parser.finish();
  } catch (error) {
    if (error instanceof TransportError) {
      flush();
      return { events, error: error.code, offset: parser.offset };
    }
    throw error;
  }
  flush();
  return { events, error: null, offset: parser.offset };
}

/** A short hex dump for failure messages. */
export function hexDump(bytes: Uint8Array, max = 96): string {
  const shown = Array.from(
    bytes.subarray(0, max),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return bytes.length > max ? `${shown}… (${bytes.length} bytes)` : shown;
}

/** The base64 of `bytes`, to paste a failing input into a regression test. */
export function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Shortens a string for failure messages. */
export function clip(text: string, max = 200): string {
  return text.length > max
    ? `${text.slice(0, max)}… (${text.length} chars)`
    : text;
}

function fnv(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h = Math.imul(h ^ bytes[i], 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** One line per event, with digests of headers and bytes: for compact diffs. */
export function summarizeEvents(events: readonly ParseEvent[]): string[] {
  return events.map((event) => {
    switch (event.type) {
      case "object": {
        const { opaque, ...rest } = event.header;
        return `object seq=${event.seq} hasBody=${event.hasBody} ${
          clip(JSON.stringify(rest), 300)
        } opaque=${opaque.length}:${fnv(opaque)}`;
      }
      case "data":
        return `data ${event.bytes.length}:${fnv(event.bytes)}`;
      case "end":
        return `end size=${event.size}`;
      case "fin":
        return `fin seq=${event.seq}`;
    }
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameEvent(a: ParseEvent, b: ParseEvent): boolean {
  if (a.type === "data" && b.type === "data") {
    return sameBytes(a.bytes, b.bytes);
  }
  if (a.type === "object" && b.type === "object") {
    const { opaque: x, custom: cx, ...ra } = a.header;
    const { opaque: y, custom: cy, ...rb } = b.header;
    return a.seq === b.seq && a.hasBody === b.hasBody && sameBytes(x, y) &&
      JSON.stringify(ra) === JSON.stringify(rb) &&
      JSON.stringify(Object.entries(cx)) === JSON.stringify(Object.entries(cy));
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Where two outcomes differ, in a few lines; `null` if they are equal. */
export function outcomeDifference(
  actual: ParseOutcome,
  expected: ParseOutcome,
): string | null {
  const n = Math.max(actual.events.length, expected.events.length);
  for (let i = 0; i < n; i++) {
    const a = actual.events[i];
    const e = expected.events[i];
    if (a === undefined || e === undefined || !sameEvent(a, e)) {
      const [sa] = a ? summarizeEvents([a]) : ["(none)"];
      const [se] = e ? summarizeEvents([e]) : ["(none)"];
      return `event #${i} is\n    ${sa}\n  expected\n    ${se}\n  (errors: ${actual.error} / expected ${expected.error})`;
    }
  }
  if (actual.error !== expected.error) {
    return `error is ${actual.error}, expected ${expected.error} (after ${n} equal events)`;
  }
  return null;
}

/** Captures console output (a server logs only on bugs); restores on dispose. */
export function captureConsole(): { lines: string[] } & Disposable {
  const lines: string[] = [];
  const saved = {
    error: console.error,
    warn: console.warn,
    debug: console.debug,
    info: console.info,
  };
  for (const name of Object.keys(saved) as (keyof typeof saved)[]) {
    console[name] = (...args: unknown[]) =>
      lines.push(`console.${name}: ${args.map(String).join(" ")}`);
  }
  return { lines, [Symbol.dispose]: () => Object.assign(console, saved) };
}
