/**
 * Fuzzing of the live-resource protocol: the message validators against a
 * reference written from `docs/protocol.md`, and a real server fed thousands
 * of random and mutated messages on upload and download sockets while a
 * healthy upload and a follower run; their bytes are checked at the end.
 * Settings and replay: see `_fuzz.ts`.
 */

import { assert, assertEquals } from "@std/assert";
import { openDownload, startUpload, upload } from "../mod.ts";
import {
  decodeDataFrame,
  ERROR_CODES,
  MAX_CONTROL_MESSAGE_CHARS,
  parseDownloadClientMessage,
  parseUploadClientMessage,
  peekRequestId,
  RESOURCE_STATES,
  type ResourceStatus,
  SpoolError,
} from "../protocol/mod.ts";
import {
  ALL_MESSAGE_TYPES,
  captureConsole,
  clip,
  CODEC_FACTOR,
  Entries,
  fuzzSettings,
  interestingValue,
  mutateMessage,
  mutateText,
  randomString,
  Rng,
  toJson,
} from "./_fuzz.ts";
import { randomBytes, readAll, sha256, startTestServer } from "./_helpers.ts";
import { RawSocket } from "./_raw_socket.ts";

const settings = fuzzSettings();
const { seed } = settings;

/** PRNG streams, one per use, so that uses never shift each other. */
const STREAM = {
  validator: 101,
  uploadCase: 102,
  downloadCase: 103,
  oneShot: 104,
  lane: 200,
} as const;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const ID = /^[A-Za-z0-9_-]{22}$/;

// ---------------------------------------------------------------------------
// Message generators

/** MIME types at the edges of RFC 9110's grammar and of the 255-character bound. */
const HOSTILE_MIME_TYPES = [
  "text/plain; a=\u0001",
  "text/plain; a=\u001f",
  "text/plain; a=\u007f",
  "text/plain;\u0000",
  "text/plain; a=\u0100",
  "text/\ufeffplain",
  "text/plain\r\nx-injected: 1",
  'text/plain; charset="utf-8"',
  'a/b; q="\\"\\\\;"; r=s',
  'a/b; q="unterminated',
  "a/b;;  ;c=d ;",
  "a/b; c",
  "a/b ",
  " a/b",
  "a/b;\tc=d",
  "!#$%&'*+-.^_`|~/x",
  "a/b/c",
  "a/" + "b".repeat(253),
  "a/" + "b".repeat(254),
  "a/" + "b".repeat(70_000),
];

/** Names at the edges: lone surrogates, controls, overrides, the bound. */
const HOSTILE_NAMES = [
  "a\ud800b",
  "\udc00",
  "end\udbff",
  "\ud83d\ude00",
  "invoice\u202efdp.exe",
  "nul\u0000and\u0007bell\r\n",
  "n".repeat(1024),
  "n".repeat(1025),
  "😀".repeat(512),
  "😀".repeat(512) + "x",
];

/** What a generator knows about its target. */
interface Target {
  /** Ids of resources that exist (some of them). */
  ids: readonly string[];
  /** Upload ids and write tokens the fuzz learned from its own uploads. */
  learned: readonly { id: string; token: string }[];
  /** The checkpointed size last seen (download sockets). */
  size: number;
}

function smallId(rng: Rng): number {
  // More ids than maxRequestsPerSocket (8): the limit must be reachable.
  return rng.chance(0.9) ? rng.int(12) : rng.pick([2 ** 32 - 1, 2 ** 31, 255]);
}

function offsetNear(rng: Rng, size: number): number {
  return rng.weighted([
    [6, () => rng.int(size + 1)],
    [1, () => size],
    [1, () => 0],
    [1, () => size + rng.range(1, 100)],
  ]);
}

function windowField(rng: Rng): Record<string, unknown> {
  return rng.weighted<Record<string, unknown>>([
    [3, () => ({})],
    // Small windows keep reads in flight until credit comes (or never).
    [4, () => ({ window: rng.range(1, 4096) })],
    [3, () => ({ window: rng.range(1, 64 * 1024) })],
    [1, () => ({ window: rng.pick([1, 2 ** 26, 2 ** 30, MAX_SAFE]) })],
  ]);
}

/** A valid message of `type` (valid as far as its shape goes). */
function baseMessage(
  rng: Rng,
  type: typeof ALL_MESSAGE_TYPES[number],
  target: Target,
): Record<string, unknown> {
  const id = () =>
    rng.weighted<string>([
      [3, () => rng.pick(target.ids)],
      [
        1,
        () => (target.learned.length > 0 ? rng.pick(target.learned).id : "x"),
      ],
      [1, () => randomString(rng, 30)],
    ]);
  const status = (): ResourceStatus => ({
    id: id(),
    name: "n",
    mimeType: "text/plain",
    metadata: {},
    status: rng.pick(RESOURCE_STATES),
    size: rng.int(1000),
    createdAt: new Date(0).toISOString(),
    updatedAt: new Date(0).toISOString(),
  });
  switch (type) {
    case "request-upload": {
      const message: Record<string, unknown> = {
        type,
        name: rng.chance(0.1)
          ? rng.pick(HOSTILE_NAMES)
          : randomString(rng, 60, { wellFormed: true }) || "n",
      };
      if (rng.chance(0.5)) {
        message.mimeType = rng.chance(0.5)
          ? rng.pick(HOSTILE_MIME_TYPES)
          : rng.pick([
            "text/plain",
            "application/json; charset=utf-8",
            "a/b",
          ]);
      }
      if (rng.chance(0.03)) {
        // Around the 64 KiB limit, in ASCII and in 3-byte characters.
        message.metadata = {
          k: rng.pick(["a", "漢"]).repeat(
            rng.pick([21_000, 22_000, 30_000, 65_000, 65_540]),
          ),
        };
      } else if (rng.chance(0.4)) {
        message.metadata = Object.fromEntries(
          Array.from(
            { length: rng.size(5) },
            () => [randomString(rng, 10), randomString(rng, 30)],
          ),
        );
      }
      return message;
    }
    case "resume-upload": {
      const learned = target.learned.length > 0 && rng.chance(0.4)
        ? rng.pick(target.learned)
        : undefined;
      return {
        type,
        id: learned?.id ?? id(),
        token: learned && rng.chance(0.8)
          ? learned.token
          : randomString(rng, 30) || "t",
      };
    }
    case "end-of-input":
      return rng.chance(0.5) ? { type } : {
        type,
        sha256: Array.from(
          rng.bytes(32),
          (b) => b.toString(16).padStart(2, "0"),
        ).join(""),
      };
    case "ready-for-upload":
      return {
        type,
        id: id(),
        reference: "ws://x/resources/y",
        window: 100,
        token: "t",
        offset: 0,
        resumeGraceMs: 0,
      };
    case "ack":
      return { type, offset: rng.int(1000) };
    case "final-status":
    case "status":
      return { type, resource: status() };
    case "read": {
      const start = offsetNear(rng, target.size);
      const end = rng.chance(0.8)
        ? Math.max(start, offsetNear(rng, target.size))
        : offsetNear(rng, target.size);
      return { type, requestId: smallId(rng), start, end, ...windowField(rng) };
    }
    case "follow":
      return {
        type,
        requestId: smallId(rng),
        start: offsetNear(rng, target.size),
        ...windowField(rng),
      };
    case "credit":
      return {
        type,
        requestId: smallId(rng),
        bytes: rng.chance(0.8)
          ? rng.range(1, 256 * 1024)
          : rng.pick([MAX_SAFE, 2 ** 40]),
      };
    case "cancel":
      return { type, requestId: smallId(rng) };
    case "read-end":
      return { type, requestId: smallId(rng), bytes: rng.int(1000) };
    case "error":
      return {
        type,
        code: rng.pick(ERROR_CODES),
        message: "m",
        requestId: smallId(rng),
      };
  }
}

/** One fuzz message: JSON text (valid, mutated, damaged), random text, or a binary frame. */
function fuzzMessage(
  rng: Rng,
  preferred: readonly typeof ALL_MESSAGE_TYPES[number][],
  target: Target,
): string | Uint8Array {
  return rng.weighted<string | Uint8Array>([
    [70, () => {
      const type = rng.chance(0.8)
        ? rng.pick(preferred)
        : rng.pick(ALL_MESSAGE_TYPES);
      const message = baseMessage(rng, type, target);
      const value = rng.chance(0.4) ? message : mutateMessage(rng, message);
      const text = toJson(value);
      return rng.chance(0.1) ? mutateText(rng, text) : text;
    }],
    [
      10,
      () =>
        rng.chance(0.9)
          ? rng.bytes(rng.size(rng.chance(0.02) ? 700_000 : 70_000))
          : new TextEncoder().encode(
            toJson(baseMessage(rng, rng.pick(preferred), target)),
          ),
    ],
    [5, () => randomString(rng, 300)],
    [3, () => toJson(interestingValue(rng))],
    [2, () => toJson(new Entries([["type", interestingValue(rng)]]))],
  ]);
}

// ---------------------------------------------------------------------------
// Reference validators (docs/protocol.md)

type Verdict = { code: string } | { message: Record<string, unknown> };

function referenceDownload(text: string): Verdict {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: "malformed-message" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { code: "malformed-message" };
  }
  const m = value as Record<string, unknown>;
  if (typeof m.type !== "string") return { code: "malformed-message" };
  const isInt = (v: unknown, min: number, max: number) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
  const fail = { code: "invalid-field" };
  const id = m.requestId;
  switch (m.type) {
    case "read": {
      if (
        !isInt(id, 0, 2 ** 32 - 1) || !isInt(m.start, 0, MAX_SAFE) ||
        !isInt(m.end, 0, MAX_SAFE)
      ) return fail;
      if ((m.start as number) > (m.end as number)) {
        return { code: "invalid-range" };
      }
      if (m.window !== undefined && !isInt(m.window, 1, MAX_SAFE)) return fail;
      const out: Record<string, unknown> = {
        type: "read",
        requestId: id,
        start: m.start,
        end: m.end,
      };
      if (m.window !== undefined) out.window = m.window;
      return { message: out };
    }
    case "follow": {
      if (!isInt(id, 0, 2 ** 32 - 1) || !isInt(m.start, 0, MAX_SAFE)) {
        return fail;
      }
      if (m.window !== undefined && !isInt(m.window, 1, MAX_SAFE)) return fail;
      const out: Record<string, unknown> = {
        type: "follow",
        requestId: id,
        start: m.start,
      };
      if (m.window !== undefined) out.window = m.window;
      return { message: out };
    }
    case "credit":
      if (!isInt(id, 0, 2 ** 32 - 1) || !isInt(m.bytes, 1, MAX_SAFE)) {
        return fail;
      }
      return { message: { type: "credit", requestId: id, bytes: m.bytes } };
    case "cancel":
      if (!isInt(id, 0, 2 ** 32 - 1)) return fail;
      return { message: { type: "cancel", requestId: id } };
    default:
      return { code: "unknown-type" };
  }
}

/**
 * docs/protocol.md: "an RFC 9110 media type (`type/subtype`, then optional
 * `; name=value` parameters whose values are tokens or quoted strings) of
 * printable ASCII, at most 255 characters". Written as a scanner, apart from
 * the server's regular expression.
 */
function referenceMediaType(value: string): boolean {
  if (value.length > 255) return false;
  const tchar = (c: string | undefined) =>
    c !== undefined && (/[A-Za-z0-9]/.test(c) || "!#$%&'*+-.^_`|~".includes(c));
  const vchar = (c: string | undefined) =>
    c !== undefined && c >= "\x21" && c <= "\x7e";
  let i = 0;
  const token = () => {
    const from = i;
    while (tchar(value[i])) i++;
    return i > from;
  };
  const ows = () => {
    while (value[i] === " " || value[i] === "\t") i++;
  };
  const quoted = () => {
    if (value[i++] !== '"') return false;
    for (;;) {
      const c = value[i++];
      if (c === '"') return true;
      if (c === "\\") {
        const next = value[i++];
        if (next !== " " && next !== "\t" && !vchar(next)) return false;
      } else if (c !== " " && c !== "\t" && !vchar(c)) return false;
    }
  };
  if (!token() || value[i++] !== "/" || !token()) return false;
  while (i < value.length) {
    ows();
    if (value[i++] !== ";") return false;
    ows();
    // An empty parameter: `a/b;;c=d` and a trailing `;` are allowed.
    if (i === value.length || value[i] === ";") continue;
    if (!token() || value[i++] !== "=") return false;
    if (value[i] === '"' ? !quoted() : !token()) return false;
  }
  return true;
}

function referenceUpload(text: string): Verdict {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: "malformed-message" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { code: "malformed-message" };
  }
  const m = value as Record<string, unknown>;
  if (typeof m.type !== "string") return { code: "malformed-message" };
  const fail = { code: "invalid-field" };
  const str = (v: unknown, max: number) =>
    typeof v === "string" && v.length >= 1 && v.length <= max;
  switch (m.type) {
    case "request-upload": {
      // "1 to 1024 characters of well-formed Unicode"
      if (!str(m.name, 1024) || !(m.name as string).isWellFormed()) {
        return fail;
      }
      if (
        m.mimeType !== undefined &&
        !(typeof m.mimeType === "string" && referenceMediaType(m.mimeType))
      ) return fail;
      const metadata = m.metadata === undefined ? {} : m.metadata;
      if (
        typeof metadata !== "object" || metadata === null ||
        Array.isArray(metadata)
      ) return fail;
      if (!Object.values(metadata).every((v) => typeof v === "string")) {
        return fail;
      }
      // "metadata is an object of strings (at most 64 KiB of JSON)"
      if (
        new TextEncoder().encode(JSON.stringify(metadata)).length > 64 * 1024
      ) return fail;
      return {
        message: {
          type: "request-upload",
          name: m.name,
          mimeType: m.mimeType ?? "application/octet-stream",
          metadata,
        },
      };
    }
    case "resume-upload":
      if (!str(m.id, 64) || !str(m.token, 64)) return fail;
      return { message: { type: "resume-upload", id: m.id, token: m.token } };
    case "end-of-input":
      if (
        m.sha256 !== undefined &&
        !(typeof m.sha256 === "string" && /^[0-9a-f]{64}$/.test(m.sha256))
      ) return fail;
      return {
        message: m.sha256 === undefined
          ? { type: "end-of-input" }
          : { type: "end-of-input", sha256: m.sha256 },
      };
    default:
      return { code: "unknown-type" };
  }
}

function verdictOf(parse: (text: string) => unknown, text: string): Verdict {
  try {
    return { message: parse(text) as Record<string, unknown> };
  } catch (error) {
    if (!(error instanceof SpoolError)) throw error;
    assert(error.message.length > 0, "an error without a message");
    return { code: error.code };
  }
}

Deno.test(`live fuzz: the message validators agree with the protocol's reference (seed ${seed}, ${CODEC_FACTOR * settings.cases} cases)`, () => {
  const cases = CODEC_FACTOR * settings.cases;
  const target: Target = {
    ids: ["AAAAAAAAAAAAAAAAAAAAAA"],
    learned: [],
    size: 1000,
  };
  const seen = new Set<string>();
  for (let i = 0; i < cases; i++) {
    const rng = new Rng(seed, STREAM.validator, i);
    const raw = fuzzMessage(
      rng,
      rng.chance(0.5)
        ? ["read", "follow", "credit", "cancel"]
        : ["request-upload", "resume-upload", "end-of-input"],
      target,
    );
    const where = `validator case #${i} (replay: ${settings.replay})`;
    if (typeof raw !== "string") {
      // Binary frames: a data frame decodes or is refused as malformed.
      try {
        const frame = decodeDataFrame(raw);
        assertEquals(frame.payload.length, raw.length - 4, where);
      } catch (error) {
        assert(
          error instanceof SpoolError && error.code === "malformed-message",
          `${where}: ${error}`,
        );
        assert(raw.length < 4, where);
      }
      continue;
    }
    // What the server receives: a WebSocket text frame carries well-formed Unicode.
    const text = raw.toWellFormed();
    for (
      const [name, parse, reference] of [
        ["download", parseDownloadClientMessage, referenceDownload],
        ["upload", parseUploadClientMessage, referenceUpload],
      ] as const
    ) {
      let actual: Verdict;
      try {
        actual = verdictOf(parse, text);
      } catch (error) {
        throw new Error(
          `${where}: the ${name} validator threw ${error} for ${
            clip(JSON.stringify(text))
          }`,
          { cause: error },
        );
      }
      const expected = reference(text);
      seen.add(
        `${name}:${"code" in expected ? expected.code : expected.message.type}`,
      );
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        throw new Error(
          `${where}: the ${name} validator on ${
            clip(JSON.stringify(text), 300)
          }\n  gives   ${clip(JSON.stringify(actual), 300)}\n  expected ${
            clip(JSON.stringify(expected), 300)
          }`,
        );
      }
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch { /* not JSON: no id to peek */ }
    const id = (json as { requestId?: unknown } | null)?.requestId;
    assertEquals(
      peekRequestId(text),
      typeof id === "number" && Number.isInteger(id) && id >= 0 && id < 2 ** 32
        ? id
        : undefined,
      `${where}: peekRequestId`,
    );
  }
  if (cases >= 4000) {
    for (
      const outcome of [
        "download:read",
        "download:follow",
        "download:credit",
        "download:cancel",
        "download:invalid-range",
        "upload:request-upload",
        "upload:resume-upload",
        "upload:end-of-input",
        "upload:invalid-field",
        "upload:unknown-type",
        "upload:malformed-message",
      ]
    ) assert(seen.has(outcome), `no case reached ${outcome}`);
  }
});

// ---------------------------------------------------------------------------
// A real server

/** A resource the fuzz may target; `content` is known for the fixtures. */
interface Known {
  id: string;
  content: Uint8Array | null;
}

interface IdState {
  /** Starts of the reads and follows sent with this id. */
  starts: Set<number>;
  cancelled: boolean;
  /** Offset of the next byte of the session in progress, if anchored. */
  cursor?: number;
  /** Payload bytes of the session in progress. */
  bytes: number;
  /**
   * Whether byte counts are exact: sessions of one id are sequential and end
   * with read-end (or resource-failed), unless one was cancelled silently.
   */
  exact: boolean;
}

const SYNC = "fuzz-sync-";

/**
 * A fuzz socket: every message the server sends is checked as it arrives;
 * problems are added to `failures` with the socket's recent history.
 */
class FuzzSocket {
  readonly socket: WebSocket;
  readonly opened: Promise<boolean>;
  readonly closed: Promise<CloseEvent>;
  closing = false;
  /** Error codes received. */
  readonly codes = new Set<string>();
  status?: ResourceStatus;
  #ids = new Map<number, IdState>();
  #syncs = new Map<string, () => void>();
  #syncCount = 0;
  #lastAck = -1;
  #sent: string[] = [];
  /** Upload sockets: text messages sent, and the answers they got. */
  #texts = 0;
  #answers = 0;
  #answered: (() => void) | undefined;
  #received = 0;
  /** A text message over the server's control-message limit was sent: the server ends the socket. */
  sentOversized = false;

  constructor(
    url: URL,
    readonly kind: "upload" | "download",
    readonly resource: Known | null,
    readonly label: string,
    readonly failures: string[],
    readonly learned: { id: string; token: string }[],
    readonly count: (what: string) => void = () => {},
  ) {
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve) => {
      this.socket.addEventListener("open", () => resolve(true), { once: true });
      this.socket.addEventListener("close", () => resolve(false), {
        once: true,
      });
    });
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener("close", (event) => {
        for (const wake of this.#syncs.values()) wake();
        resolve(event);
      })
    );
    this.socket.onmessage = (event) => {
      this.#received++;
      try {
        if (typeof event.data === "string") this.#text(event.data);
        else this.#binary(new Uint8Array(event.data as ArrayBuffer));
      } catch (error) {
        this.fail((error as Error).message);
      }
    };
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  fail(problem: string): void {
    this.failures.push(
      `${this.label} (${this.kind}${
        this.resource ? ` of ${this.resource.id}` : ""
      }, replay: ${settings.replay}): ${problem}\n  last sent: ${
        this.#sent.join("\n             ")
      }`,
    );
  }

  send(data: string | Uint8Array, caseIndex: number): void {
    if (!this.open) return;
    this.#sent.push(
      `#${caseIndex} ${
        typeof data === "string"
          ? clip(JSON.stringify(data), 160)
          : `<binary ${data.length} bytes>`
      }`,
    );
    if (this.#sent.length > 6) this.#sent.shift();
    this.socket.send(data as string);
    if (typeof data === "string" && data.length > MAX_CONTROL_MESSAGE_CHARS) {
      this.sentOversized = true;
    }
    if (typeof data === "string" && this.kind === "upload") this.#texts++;
    if (typeof data === "string" && this.kind === "download") {
      this.#track(data.toWellFormed());
    }
  }

  /** Resolves once the server answered everything sent so far (or closed). */
  async sync(): Promise<void> {
    if (!this.open) return;
    const name = `${SYNC}${this.#syncCount++}`;
    const answered = new Promise<void>((resolve) =>
      this.#syncs.set(name, resolve)
    );
    this.socket.send(JSON.stringify({ type: name }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.fail(
          `no answer to a sync probe within 20 s (a hang?); ${this.#received} messages received`,
        );
        resolve();
      }, 20_000);
    });
    await Promise.race([answered, timeout]);
    clearTimeout(timer);
    this.#syncs.delete(name);
  }

  /**
   * Upload sockets answer every text message (ready-for-upload, error or
   * final-status), some only after store I/O: resolves once as many answers
   * as messages arrived, or the socket closed; reports a hang after 20 s.
   */
  async allAnswered(): Promise<void> {
    if (this.kind !== "upload") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        this.#answered = resolve;
        this.#answer(0);
      }),
      this.closed,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.fail(
            `${
              this.#texts - this.#answers
            } of ${this.#texts} text messages unanswered after 20 s (a hang?)`,
          );
          resolve();
        }, 20_000);
      }),
    ]);
    clearTimeout(timer);
    this.#answered = undefined;
  }

  #answer(n: number): void {
    this.#answers += n;
    if (this.#answers >= this.#texts) this.#answered?.();
  }

  async close(): Promise<CloseEvent> {
    this.closing = true;
    if (
      this.socket.readyState === WebSocket.OPEN ||
      this.socket.readyState === WebSocket.CONNECTING
    ) {
      this.socket.close();
    }
    return await this.closed;
  }

  #state(id: number): IdState {
    let state = this.#ids.get(id);
    if (state === undefined) {
      state = { starts: new Set(), cancelled: false, bytes: 0, exact: true };
      this.#ids.set(id, state);
    }
    return state;
  }

  /** Records the request ids of a sent message as the server will read it. */
  #track(text: string): void {
    const peeked = peekRequestId(text);
    if (peeked !== undefined) this.#state(peeked);
    let message;
    try {
      message = parseDownloadClientMessage(text);
    } catch {
      return;
    }
    if (message.type === "heartbeat") return;
    const state = this.#state(message.requestId);
    if (message.type === "read" || message.type === "follow") {
      state.starts.add(message.start);
    } else if (message.type === "cancel") {
      state.cancelled = true;
      state.exact = false;
    }
  }

  #text(text: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text);
    } catch {
      throw new Error(`the server sent text that is not JSON: ${clip(text)}`);
    }
    if (
      typeof message !== "object" || message === null || Array.isArray(message)
    ) {
      throw new Error(`the server sent a non-object: ${clip(text)}`);
    }
    const types = this.kind === "upload"
      ? ["ready-for-upload", "ack", "final-status", "error"]
      : ["status", "read-end", "error"];
    if (!types.includes(message.type as string)) {
      throw new Error(`unexpected message type: ${clip(text)}`);
    }
    if (message.type !== "error") this.count(`got ${message.type}`);
    const isInt = (v: unknown, min = 0) =>
      typeof v === "number" && Number.isSafeInteger(v) && v >= min;
    switch (message.type) {
      case "error": {
        const code = message.code as string;
        if (!(ERROR_CODES as readonly string[]).includes(code)) {
          throw new Error(`unknown error code: ${clip(text)}`);
        }
        if (typeof message.message !== "string" || message.message === "") {
          throw new Error(`error without a message: ${clip(text)}`);
        }
        const sync = (message.message as string).match(/"(fuzz-sync-\d+)"/)
          ?.[1];
        if (
          code === "unknown-type" && sync !== undefined && this.#syncs.has(sync)
        ) {
          this.#syncs.get(sync)!();
          return;
        }
        this.count(`got error ${code}`);
        this.codes.add(code);
        // Errors about binary frames answer no text message.
        if (code !== "unexpected-binary" && code !== "flow-control") {
          this.#answer(1);
        }
        if (code === "internal") {
          throw new Error(`an internal error (a server bug): ${clip(text)}`);
        }
        if (message.requestId !== undefined) {
          if (this.kind === "upload") {
            throw new Error(`a request id on an upload socket: ${clip(text)}`);
          }
          const state = this.#ids.get(message.requestId as number);
          if (state === undefined) {
            throw new Error(
              `an error for a request id never sent: ${clip(text)}`,
            );
          }
          if (code === "resource-failed") {
            state.cursor = undefined;
            state.bytes = 0;
          }
        }
        return;
      }
      case "status": {
        const status = message.resource as ResourceStatus;
        this.#checkStatus(status, text);
        if (this.resource !== null && status.id !== this.resource.id) {
          throw new Error(`status of another resource: ${clip(text)}`);
        }
        const previous = this.status;
        if (previous !== undefined) {
          if (status.size < previous.size) {
            throw new Error(`size shrank from ${previous.size}: ${clip(text)}`);
          }
          if (
            RESOURCE_STATES.indexOf(status.status) <
              RESOURCE_STATES.indexOf(previous.status)
          ) {
            throw new Error(
              `state went back from ${previous.status}: ${clip(text)}`,
            );
          }
          if (previous.status === "COMPLETED" || previous.status === "FAILED") {
            assertEquals(
              status,
              previous,
              "a finished resource's status changed",
            );
          }
        }
        this.status = status;
        return;
      }
      case "read-end": {
        const state = this.#ids.get(message.requestId as number);
        if (state === undefined || state.starts.size === 0) {
          throw new Error(`read-end of a request never sent: ${clip(text)}`);
        }
        if (!isInt(message.bytes)) {
          throw new Error(`bad byte count: ${clip(text)}`);
        }
        if (
          this.resource?.content && state.exact && message.bytes !== state.bytes
        ) {
          throw new Error(
            `read-end says ${message.bytes} bytes, ${state.bytes} arrived: ${
              clip(text)
            }`,
          );
        }
        if (this.resource?.content && state.exact) {
          this.count("read-end counts checked");
        }
        state.cursor = undefined;
        state.bytes = 0;
        return;
      }
      case "ready-for-upload": {
        this.#answer(1);
        const { id, reference, window, token, offset, resumeGraceMs } = message;
        if (
          typeof id !== "string" || !ID.test(id) ||
          typeof reference !== "string" || !reference.includes(id) ||
          !isInt(window, 1) || typeof token !== "string" || token === "" ||
          !isInt(offset) || !isInt(resumeGraceMs)
        ) throw new Error(`malformed ready-for-upload: ${clip(text)}`);
        this.learned.push({ id, token });
        this.#lastAck = offset as number;
        return;
      }
      case "ack":
        if (
          !isInt(message.offset) || (message.offset as number) < this.#lastAck
        ) {
          throw new Error(
            `ack offset ${message.offset} after ${this.#lastAck}: ${
              clip(text)
            }`,
          );
        }
        this.#lastAck = message.offset as number;
        return;
      case "final-status": {
        this.#answer(1);
        const status = message.resource as ResourceStatus;
        this.#checkStatus(status, text);
        if (status.status !== "COMPLETED" && status.status !== "FAILED") {
          throw new Error(`final-status not final: ${clip(text)}`);
        }
        return;
      }
    }
  }

  #checkStatus(status: ResourceStatus, text: string): void {
    const ok = typeof status === "object" && status !== null &&
      typeof status.id === "string" && ID.test(status.id) &&
      RESOURCE_STATES.includes(status.status) &&
      Number.isSafeInteger(status.size) && status.size >= 0 &&
      typeof status.name === "string" && typeof status.mimeType === "string" &&
      (status.status !== "COMPLETED" ||
        /^[0-9a-f]{64}$/.test(status.sha256 ?? "")) &&
      (status.status !== "FAILED" || typeof status.error === "string");
    if (!ok) throw new Error(`malformed status: ${clip(text)}`);
  }

  #binary(frame: Uint8Array): void {
    if (this.kind === "upload") {
      throw new Error(
        `a binary frame of ${frame.length} bytes on an upload socket`,
      );
    }
    if (frame.length <= 4) {
      throw new Error(`a data frame of ${frame.length} bytes`);
    }
    this.count("got data frame");
    const id = new DataView(frame.buffer, frame.byteOffset).getUint32(0);
    const payload = frame.subarray(4);
    const state = this.#ids.get(id);
    if (state === undefined || state.starts.size === 0) {
      throw new Error(`data for request ${id}, never asked for`);
    }
    const content = this.resource?.content;
    if (!content) return;
    const matches = (at: number) => {
      if (at + payload.length > content.length) return false;
      for (let i = 0; i < payload.length; i++) {
        if (content[at + i] !== payload[i]) return false;
      }
      return true;
    };
    if (state.cursor === undefined || !matches(state.cursor)) {
      const start = [...state.starts].find(matches);
      if (start === undefined) {
        throw new Error(
          `${payload.length} bytes for request ${id} match no requested offset (${[
            ...state.starts,
          ]}) nor the cursor ${state.cursor}`,
        );
      }
      if (state.cursor !== undefined) state.exact = false; // a new session began without a read-end
      state.cursor = start;
      state.bytes = 0;
    }
    state.cursor += payload.length;
    state.bytes += payload.length;
    if (this.status !== undefined && state.cursor > this.status.size) {
      throw new Error(
        `bytes up to ${state.cursor} served past the checkpointed size ${this.status.size}`,
      );
    }
  }
}

const LANES = 6;

Deno.test(`live fuzz: random and mutated messages never crash or hang the server nor touch a healthy upload (seed ${seed}, ${settings.cases} cases)`, async () => {
  using logged = captureConsole();
  await using server = await startTestServer({
    uploadWindow: 256 * 1024,
    limits: { maxRequestsPerSocket: 8 },
  });
  const wsBase = new URL(server.url);
  wsBase.protocol = "ws:";
  const resourceUrl = (id: string) => new URL(`resources/${id}`, wsBase);

  // Fixtures: a finished resource, an empty one, a failed one.
  const doneData = randomBytes(96 * 1024, seed);
  let doneId = "";
  await upload(server.url, doneData, {
    name: "done.bin",
    onReady: (u) => doneId = u.id,
  });
  let emptyId = "";
  await upload(server.url, new Uint8Array(0), {
    name: "empty.bin",
    onReady: (u) => emptyId = u.id,
  });
  const failing = await startUpload(server.url, { name: "failed.bin" });
  const failedData = randomBytes(10_000, seed + 1);
  await failing.write(failedData);
  {
    await using watcher = await openDownload(failing.reference);
    await watcher.waitForStatus((s) => s.size === failedData.length);
    failing.abort("fuzz fixture");
    await failing.closed();
    await watcher.waitForStatus((s) => s.status === "FAILED");
  }

  // The healthy upload and its follower, paced by the fuzz's progress.
  const healthyData = randomBytes(512 * 1024, seed + 2);
  const healthy = await startUpload(server.url, {
    name: "healthy.bin",
    mimeType: "application/octet-stream",
  });
  const follower = await openDownload(healthy.reference);
  // Settled early, so that a failure elsewhere is not masked by this one.
  const followed = readAll(follower.follow()).then(
    (bytes) => ({ bytes }),
    (error: Error) => ({ bytes: null, error }),
  );
  let written = 0;
  let writeError: unknown;
  let writing = Promise.resolve();
  const pace = (fraction: number) => {
    const until = Math.ceil(Math.min(1, fraction) * healthyData.length);
    writing = writing.then(async () => {
      while (written < until && writeError === undefined) {
        const n = Math.min(16 * 1024, until - written);
        await healthy.write(healthyData.subarray(written, written + n));
        written += n;
      }
    }).catch((error) => void (writeError ??= error));
  };

  const known: Known[] = [
    { id: doneId, content: doneData },
    { id: emptyId, content: new Uint8Array(0) },
    { id: failing.id, content: failedData },
    { id: healthy.id, content: healthyData },
  ];
  const failures: string[] = [];
  const learned: { id: string; token: string }[] = [];
  const target = (size: number): Target => ({
    ids: [...known.map((k) => k.id), ...learned.slice(0, 8).map((l) => l.id)],
    learned,
    size,
  });
  const counts = new Map<string, number>();
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  let done = 0;

  /** A socket to a path that names no resource (or one, in disguise). */
  const oneShotSocket = async (rng: Rng, index: number) => {
    const real = rng.pick(known).id;
    const id = rng.weighted<string>([
      [3, () => real.slice(0, rng.int(22)) + real.slice(rng.int(22) + 1)],
      [3, () => real.slice(0, 21) + rng.pick(["A", "_", "-", "0"])],
      [2, () => real + randomString(rng, 5)],
      [2, () => randomString(rng, 40)],
      [
        1,
        () =>
          rng.pick([
            "%",
            "%zz",
            "%E0%A4%A",
            "..",
            ".",
            "%2e%2e",
            "a%2Fb",
            "%00",
            "x".repeat(3000),
          ]),
      ],
      [
        1,
        () =>
          Array.from(
            real,
            (c) => rng.chance(0.3) ? `%${c.charCodeAt(0).toString(16)}` : c,
          ).join(""),
      ],
      [1, () => real.toLowerCase()],
    ]);
    const url = new URL(wsBase);
    url.pathname = `/resources/${
      rng.chance(0.5) ? id : encodeURIComponent(id.toWellFormed())
    }`;
    const match = url.pathname.match(/^\/resources\/([^/]+)$/);
    let decoded = match?.[1];
    try {
      decoded = decoded === undefined ? undefined : decodeURIComponent(decoded);
    } catch { /* malformed escapes name no resource */ }
    const exists = known.some((k) => k.id === decoded) ||
      learned.some((l) => l.id === decoded);
    const socket = new FuzzSocket(
      url,
      "download",
      null,
      `one-shot case #${index} ${clip(url.pathname, 80)}`,
      failures,
      learned,
    );
    const opened = await socket.opened;
    if (!match) {
      if (opened) {
        socket.fail("a socket opened on a path that is not a resource");
      }
      await socket.close();
      count("ws: no route");
      return;
    }
    if (!opened) {
      socket.fail("the upgrade was refused for a resource path");
      await socket.close();
      return;
    }
    if (exists) {
      await socket.sync();
      if (socket.status === undefined) {
        socket.fail("no status on a resource that exists");
      }
      const event = await socket.close();
      if (event.code === 4404) {
        socket.fail("closed as not found, though the resource exists");
      }
      count("ws: existing id in disguise");
      return;
    }
    // The server answers not-found and closes: a sync probe would race the
    // close, so wait for the close itself (20 s at most: a hang otherwise).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const event = await Promise.race([
      socket.closed,
      new Promise<CloseEvent>((resolve) => {
        timer = setTimeout(() => {
          socket.fail("a socket to an unknown id still open after 20 s");
          resolve(socket.close());
        }, 20_000);
      }),
    ]);
    clearTimeout(timer);
    if (event.code !== 4404 || !socket.codes.has("not-found")) {
      socket.fail(
        `closed with ${event.code} after errors ${[
          ...socket.codes,
        ]}, expected not-found and 4404`,
      );
    }
    count("ws: unknown id");
  };

  /**
   * A plain HTTP request beside the sockets: never a 5xx, JSON that parses,
   * 404 for ids that name nothing, a resource's bytes never past what it has.
   */
  const httpCase = async (rng: Rng, index: number) => {
    const resource = rng.pick(known);
    const real = resource.id;
    const path = rng.pick([
      `/resources/${real}`,
      `/resources/${real}/status`,
      `/resources/${real}/${
        randomString(rng, 8, { wellFormed: true }).replaceAll("/", "")
      }`,
      `/resources/${real}x`,
      `/resources/${real}/`,
      "/resources/",
      "/upload",
      "/",
      "/nope",
      "/view/",
      `/view/${real}`,
      "/resources/%zz",
      `/resources/${
        encodeURIComponent(randomString(rng, 30, { wellFormed: true }))
      }`,
    ]);
    const method = rng.pick([
      "GET",
      "GET",
      "GET",
      "HEAD",
      "POST",
      "PUT",
      "DELETE",
      "PATCH",
      "OPTIONS",
    ]);
    const headers: Record<string, string> = {};
    if (rng.chance(0.3)) {
      headers.range = rng.pick([
        `bytes=${rng.int(100)}-${rng.int(200_000)}`,
        "bytes=-5",
        "bytes=0-",
        "bytes=x",
        "bytes=5-1",
        "bytes=0-1,3-4",
        `bytes=${"9".repeat(rng.range(16, 30))}-`,
        `bytes=-${"9".repeat(rng.range(16, 30))}`,
        `bytes=0-${"9".repeat(rng.range(16, 30))}`,
        `bytes=0-1,${"9".repeat(20)}-`,
        `bytes=${"9".repeat(20)}-,${"9".repeat(21)}-`,
      ]);
    }
    const url = new URL(path, server.url);
    const response = await fetch(url, {
      method,
      headers,
      body: method === "POST" || method === "PUT" ? "x" : undefined,
    });
    const bytes = await response.bytes();
    const where = `http case #${index} ${method} ${url.pathname} ${
      JSON.stringify(headers)
    } (replay: ${settings.replay})`;
    const text = () => clip(new TextDecoder().decode(bytes.subarray(0, 300)));
    count(`http ${response.status}`);
    if (response.status >= 500) {
      failures.push(`${where}: status ${response.status}: ${text()}`);
    }
    if (
      response.status === 405 && response.headers.get("allow") !== "GET, HEAD"
    ) {
      failures.push(`${where}: a 405 without 'Allow: GET, HEAD'`);
    }
    if (method === "HEAD") {
      if (bytes.length > 0) {
        failures.push(`${where}: a HEAD answer with a body`);
      }
      return;
    }
    const type = response.headers.get("content-type") ?? "";
    let json: unknown;
    if (type.includes("json")) {
      try {
        json = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        failures.push(`${where}: a ${type} answer is not JSON: ${text()}`);
        return;
      }
    }
    // docs/http.md: every refusal is {"code", "message"}, codes from ERROR_CODES.
    if (response.status >= 400) {
      const error = json as Record<string, unknown> | undefined;
      if (
        error === undefined || Object.keys(error).join() !== "code,message" ||
        !ERROR_CODES.includes(error.code as typeof ERROR_CODES[number]) ||
        typeof error.message !== "string"
      ) {
        failures.push(
          `${where}: an error answer not {code, message}: ${text()}`,
        );
      }
    }
    const match = url.pathname.match(/^\/resources\/([^/]+)(\/[^/]*)?$/);
    if (method !== "GET" || match === null) return;
    if (match[1] !== real) {
      if (response.status !== 404) {
        failures.push(
          `${where}: expected 404 for an unknown id, got ${response.status}`,
        );
      }
    } else if (match[2] === "/status") {
      if (
        response.status !== 200 ||
        (json as ResourceStatus | undefined)?.id !== real
      ) {
        failures.push(
          `${where}: expected the status, got ${response.status} ${text()}`,
        );
      }
    } else if (
      match[2] === undefined && response.status === 200 && json === undefined &&
      !headers.range
    ) {
      // The bytes up to the checkpoint: a prefix of what was uploaded.
      const content = resource.content!;
      const prefix = bytes.length <= content.length &&
        bytes.every((b, k) => b === content[k]);
      if (!prefix) {
        failures.push(
          `${where}: ${bytes.length} bytes that are not a prefix of the resource's ${content.length}`,
        );
      }
    }
  };

  const lane = async (laneIndex: number) => {
    const rng = new Rng(seed, STREAM.lane, laneIndex);
    let index = laneIndex;
    const nextIndex = () => {
      const i = index;
      index += LANES;
      done++;
      if (done % 50 === 0) pace(done / settings.cases);
      return i;
    };
    while (index < settings.cases && failures.length === 0) {
      const choice = rng.weighted<"upload" | "download" | "one-shot" | "http">([
        // A socket takes ~50 cases, the others one each: ~3% of the cases.
        [40, () => "upload"],
        [50, () => "download"],
        [100, () => "one-shot"],
        [40, () => "http"],
      ]);
      if (choice === "one-shot" || choice === "http") {
        const i = nextIndex();
        const caseRng = new Rng(seed, STREAM.oneShot, i);
        await (choice === "http"
          ? httpCase(caseRng, i)
          : oneShotSocket(caseRng, i));
        continue;
      }
      const resource = choice === "download"
        ? (rng.chance(0.9) || learned.length === 0
          ? rng.pick(known)
          : { id: rng.pick(learned.slice(0, 8)).id, content: null })
        : null;
      const url = resource
        ? resourceUrl(resource.id)
        : new URL("upload", wsBase);
      const socket = new FuzzSocket(
        url,
        choice,
        resource,
        `lane ${laneIndex} socket`,
        failures,
        learned,
        count,
      );
      if (!(await socket.opened)) {
        socket.fail("the socket did not open");
        break;
      }
      count(`${choice} sockets`);
      const batch = rng.range(1, 100);
      for (let k = 0; k < batch && index < settings.cases && socket.open; k++) {
        const i = nextIndex();
        const caseRng = new Rng(
          seed,
          choice === "upload" ? STREAM.uploadCase : STREAM.downloadCase,
          i,
        );
        const message = fuzzMessage(
          caseRng,
          choice === "upload"
            ? ["request-upload", "resume-upload", "end-of-input"]
            : ["read", "follow", "credit", "cancel"],
          target(socket.status?.size ?? 0),
        );
        count(`${choice} ${typeof message === "string" ? "text" : "binary"}`);
        socket.send(message, i);
        if (k % 16 === 15) await socket.sync();
      }
      await socket.sync();
      await socket.allAnswered();
      const closedByServer = !socket.open;
      const event = await socket.close();
      if (closedByServer) {
        // Two reasons to close a fuzz socket: its upload was resumed
        // elsewhere, or it sent a control message over the limit. A client
        // still sending when the server closes may see the close as 0 (its
        // bytes meet a closed socket, which resets): every oversized close
        // is seen so, and a replaced upload's 4409 sometimes.
        const resumed = choice === "upload" &&
          (event.code === 4409 || event.code === 0);
        if (!resumed && !socket.sentOversized) {
          socket.fail(
            `the server closed the socket with ${event.code} ${
              JSON.stringify(event.reason)
            }`,
          );
        }
        count(`closed by the server with ${event.code}`);
      }
    }
  };

  const started = performance.now();
  await Promise.all(
    Array.from(
      { length: LANES },
      (_, i) =>
        lane(i).catch((error) =>
          failures.push(
            `lane ${i} (replay: ${settings.replay}) threw: ${
              error?.stack ?? error
            }`,
          )
        ),
    ),
  );
  const fuzzMs = performance.now() - started;
  if (failures.length > 0) {
    await writing;
    healthy.abort("the fuzz failed");
    await healthy.closed();
    await follower.close();
    await followed;
    throw new Error(
      `${failures.length} failures; the first ones:\n\n${
        failures.slice(0, 5).join("\n\n")
      }`,
    );
  }

  // The healthy upload and its follower: byte-identical.
  pace(1);
  await writing;
  if (writeError !== undefined) {
    throw new Error(`the healthy upload failed: ${writeError}`);
  }
  const final = await healthy.finish();
  assertEquals(final.status, "COMPLETED", `healthy upload: ${final.error}`);
  assertEquals(final.size, healthyData.length);
  assertEquals(final.sha256, await sha256(healthyData));
  const got = await followed;
  if (got.bytes === null) throw new Error(`the follower failed: ${got.error}`);
  assertEquals(
    await sha256(got.bytes),
    await sha256(healthyData),
    "the follower's bytes",
  );
  await follower.close();

  // Liveness: fresh good requests are served.
  const fresh = randomBytes(70_000, seed + 3);
  let freshReference = "";
  const freshStatus = await upload(server.url, fresh, {
    name: "fresh.bin",
    onReady: (u) => freshReference = u.reference,
  });
  assertEquals(freshStatus.status, "COMPLETED");
  {
    await using download = await openDownload(freshReference);
    assertEquals(await readAll(download.read(0, fresh.length)), fresh);
  }
  const raw = await RawSocket.open(resourceUrl(doneId));
  assertEquals((await raw.expect("status")).type, "status");
  raw.send({ type: "read", requestId: 1, start: 0, end: doneData.length });
  const parts: Uint8Array[] = [];
  for (let got = 0; got < doneData.length;) {
    const message = await raw.next();
    if ("binary" in message) {
      parts.push(message.binary.subarray(4));
      got += message.binary.length - 4;
    }
  }
  assertEquals(await raw.expect("read-end"), {
    type: "read-end",
    requestId: 1,
    bytes: doneData.length,
  });
  await raw.close();
  assertEquals(
    await sha256(
      new Uint8Array(
        await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer(),
      ),
    ),
    await sha256(doneData),
  );
  // The fixtures are as they were.
  assertEquals(server.registry.get(doneId)?.status.status, "COMPLETED");
  assertEquals(server.registry.get(failing.id)?.status.status, "FAILED");
  assertEquals(server.registry.get(failing.id)?.status.size, failedData.length);

  // Whatever names and MIME types the fuzz got accepted, every resource
  // answers over HTTP with its MIME type as Content-Type, and has a page.
  let served = 0;
  for (const resource of [...server.registry.all()].slice(0, 300)) {
    const { id, mimeType } = resource.status;
    const what = `resource ${id} (${clip(JSON.stringify(mimeType))})`;
    const head = await fetch(new URL(`resources/${id}`, server.url), {
      method: "HEAD",
    });
    assertEquals(head.status, 200, `HEAD of ${what}`);
    assertEquals(head.headers.get("content-type"), mimeType.trim(), what);
    const page = await fetch(new URL(`view/${id}`, server.url));
    assertEquals(page.status, 200, `the page of ${what}`);
    await page.body?.cancel();
    served++;
  }
  const listing = await fetch(new URL("view/", server.url));
  assertEquals(listing.status, 200, "the listing");
  await listing.body?.cancel();
  count(`http: ${served} resources served`);

  assertEquals(logged.lines, [], "the server logged (it logs only on bugs)");
  if (settings.cases >= 2000) {
    for (
      const what of [
        "upload sockets",
        "download sockets",
        "ws: unknown id",
        "upload binary",
        "download binary",
      ]
    ) {
      assert(
        (counts.get(what) ?? 0) > 0,
        `nothing of ${what}: ${JSON.stringify([...counts])}`,
      );
    }
  }
  console.log(
    `live fuzz: ${settings.cases} cases in ${Math.round(fuzzMs)} ms; ${
      JSON.stringify(Object.fromEntries([...counts].sort()))
    }`,
  );
});
