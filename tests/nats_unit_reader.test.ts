/**
 * The engine connection's reader: whatever the reads, the parser gets the
 * server's bytes unchanged, in units that start and end at protocol
 * boundaries, with no message split and no unit written over later; a
 * message larger than the read buffer is read straight into its own; and a
 * real connection carries pieces of a whole segment byte-identical.
 */

import { assert, assertEquals } from "@std/assert";
import { concat } from "@std/bytes/concat";
import { type ReadInto, UnitReader } from "../server/nats/_unit_reader.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { SEGMENT_BYTES } from "../server/nats/subjects.ts";
import { randomBytes, sha256 } from "./_helpers.ts";
import { startNats } from "./_nats.ts";

const text = new TextEncoder();

/** A server's byte stream and the offsets where its protocol units end. */
function protocolStream(seed = 77): { bytes: Uint8Array; ends: number[] } {
  const payload = randomBytes(3000, seed);
  // Payloads that look like protocol: the splitter must count, not scan.
  payload.set(text.encode("\r\nMSG x 1 99999\r\nPING\r\n"), 100);
  const parts: Uint8Array[] = [
    text.encode('INFO {"server_id":"x","max_payload":1048576}\r\n'),
    text.encode("PING\r\n"),
    concat([text.encode("MSG spool.d.a.0 7 3000\r\n"), payload, crlf()]),
    text.encode("+OK\r\n"),
    concat([
      text.encode("HMSG spool.d.a.1 7 _INBOX.r 18 1018\r\n"),
      text.encode("NATS/1.0\r\nA: b\r\n\r\n"),
      payload.subarray(0, 1000),
      crlf(),
    ]),
    concat([text.encode("MSG s 1 0\r\n"), crlf()]),
    text.encode("-ERR 'Unknown Protocol Operation'\r\n"),
    concat([text.encode("MSG s 2 r 3\r\n"), text.encode("\r\r\n"), crlf()]),
    text.encode("PONG\r\n"),
  ];
  const ends: number[] = [];
  let at = 0;
  for (const part of parts) ends.push(at += part.byteLength);
  return { bytes: concat(parts), ends };
}

function crlf(): Uint8Array {
  return text.encode("\r\n");
}

/**
 * A source giving `bytes` in reads that end at `cuts` (and are never
 * larger than what the reader asks for); `reads` lists what it read into.
 */
function cutSource(
  bytes: Uint8Array,
  cuts: number[],
): { read: ReadInto; reads: Uint8Array[] } {
  const bounds = [...cuts, bytes.byteLength];
  const reads: Uint8Array[] = [];
  let at = 0;
  const read: ReadInto = (into) => {
    while (bounds.length > 0 && bounds[0] <= at) bounds.shift();
    if (bounds.length === 0) return Promise.resolve(null);
    const size = Math.min(bounds[0] - at, into.byteLength);
    into.set(bytes.subarray(at, at + size));
    reads.push(into);
    at += size;
    return Promise.resolve(size);
  };
  return { read, reads };
}

/** Every unit read from `bytes` cut at `cuts`, to the end. */
async function readUnits(
  bytes: Uint8Array,
  cuts: number[],
): Promise<Uint8Array[]> {
  const reader = new UnitReader(cutSource(bytes, cuts).read);
  const units: Uint8Array[] = [];
  for (let unit = await reader.next(); unit; unit = await reader.next()) {
    units.push(unit);
  }
  return units;
}

/** Reads `bytes` cut at `cuts`; checks the units against `ends`. */
async function checkSplit(
  bytes: Uint8Array,
  cuts: number[],
  ends: number[],
): Promise<void> {
  const units = await readUnits(bytes, cuts);
  // Joined after the last read: a unit written over by a later read differs.
  assertEquals(concat(units), bytes, `cut at ${cuts}`);
  let at = 0;
  for (const unit of units) {
    at += unit.byteLength;
    assert(ends.includes(at), `cut at ${cuts}: a unit ends at ${at}`);
  }
}

/** {@linkcode checkSplit} with `rounds` seeded cuttings of up to `most` cuts. */
async function checkRandomCuts(
  bytes: Uint8Array,
  ends: number[],
  options: { seed: number; rounds: number; most: number },
): Promise<void> {
  let seed = options.seed;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let round = 0; round < options.rounds; round++) {
    const cuts = Array.from(
      { length: 1 + (next() % options.most) },
      () => next() % bytes.byteLength,
    ).sort((a, b) => a - b);
    await checkSplit(bytes, cuts, ends);
  }
}

Deno.test("engine reader: every one and two cuts of a server's stream reach the parser unchanged, in units that end only at protocol boundaries", async () => {
  const { bytes, ends } = protocolStream();
  for (let cut = 0; cut <= bytes.byteLength; cut++) {
    await checkSplit(bytes, [cut], ends);
  }
  // Two cuts: around each boundary, and at random places.
  for (const end of ends) {
    for (let d = -3; d <= 3; d++) {
      for (const second of [end + d + 1, end + d + 7, bytes.byteLength]) {
        const first = Math.max(0, end + d);
        if (second >= first && second <= bytes.byteLength) {
          await checkSplit(bytes, [first, second], ends);
        }
      }
    }
  }
  await checkRandomCuts(bytes, ends, { seed: 7, rounds: 500, most: 12 });
});

Deno.test("engine reader: a message larger than the read buffer is one unit of its exact size, read straight into it; small units are views of a shared buffer", async () => {
  const big = randomBytes(300_000, 91);
  const line = text.encode(`MSG spool.d.a.2 7 ${big.byteLength}\r\n`);
  const small = protocolStream();
  const after = protocolStream(78);
  const bytes = concat([small.bytes, line, big, crlf(), after.bytes]);
  const bigEnd = small.bytes.byteLength + line.byteLength + big.byteLength + 2;
  const ends = [
    ...small.ends,
    bigEnd,
    ...after.ends.map((end) => bigEnd + end),
  ];
  await checkRandomCuts(bytes, ends, { seed: 11, rounds: 200, most: 40 });
  // Whole reads: the big message has a buffer of its own, read into directly.
  const source = cutSource(bytes, []);
  const reader = new UnitReader(source.read);
  const units: Uint8Array[] = [];
  for (let unit = await reader.next(); unit; unit = await reader.next()) {
    units.push(unit);
  }
  const message = units.find((unit) =>
    unit.byteLength === bigEnd - small.bytes.byteLength
  );
  if (message === undefined) throw new Error("the big message was split");
  assertEquals(message.buffer.byteLength, message.byteLength);
  assert(source.reads.some((into) => into.buffer === message.buffer));
  // What came before it in the same read: a view, not a copy.
  assert(units[0].buffer.byteLength > units[0].byteLength);
});

Deno.test("engine reader: a node's connection carries whole-segment pieces through the engine byte-identical", async () => {
  await using nats = await startNats();
  const engine = await NatsEngine.connect({ servers: [nats.url] });
  try {
    const pieces = Array.from(
      { length: 6 },
      (_, i) => randomBytes(i % 2 ? SEGMENT_BYTES : 70_001 * i + 1, 80 + i),
    );
    const got: string[] = [];
    const sub = engine.nc.subscribe("spool.test.gather", { max: 6 });
    const reading = (async () => {
      for await (const msg of sub) got.push(await sha256(msg.data));
    })();
    for (const piece of pieces) engine.nc.publish("spool.test.gather", piece);
    await reading;
    assertEquals(got, await Promise.all(pieces.map(sha256)));
  } finally {
    await engine.close();
  }
});
