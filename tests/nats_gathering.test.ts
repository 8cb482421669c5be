/**
 * The gathering transport's splitter: whatever the reads, the parser gets
 * the server's bytes unchanged, in units that start and end at protocol
 * boundaries, with no message split; and a real connection through it
 * carries pieces of a whole segment byte-identical.
 */

import { assert, assertEquals } from "@std/assert";
import { concat } from "@std/bytes/concat";
import { MessageGatherer } from "../server/nats/_gathering_transport.ts";
import { NatsEngine } from "../server/nats/engine.ts";
import { SEGMENT_BYTES } from "../server/nats/subjects.ts";
import { randomBytes, sha256 } from "./_helpers.ts";
import { startNats } from "./_nats.ts";

const text = new TextEncoder();

/** A server's byte stream and the offsets where its protocol units end. */
function protocolStream(): { bytes: Uint8Array; ends: number[] } {
  const payload = randomBytes(3000, 77);
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

/** Feeds `bytes` cut at `cuts`; checks the units against `ends`. */
function checkSplit(bytes: Uint8Array, cuts: number[], ends: number[]): void {
  const gatherer = new MessageGatherer();
  const units: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.byteLength]) {
    units.push(...gatherer.push(bytes.subarray(from, cut)));
    from = cut;
  }
  assertEquals(concat(units), bytes, `cut at ${cuts}`);
  let at = 0;
  for (const unit of units) {
    at += unit.byteLength;
    assert(ends.includes(at), `cut at ${cuts}: a unit ends at ${at}`);
  }
}

Deno.test("gathering transport: every one and two cuts of a server's stream reach the parser unchanged, in units that end only at protocol boundaries", () => {
  const { bytes, ends } = protocolStream();
  for (let cut = 0; cut <= bytes.byteLength; cut++) {
    checkSplit(bytes, [cut], ends);
  }
  // Two cuts: around each boundary, and at random places.
  for (const end of ends) {
    for (let d = -3; d <= 3; d++) {
      for (const second of [end + d + 1, end + d + 7, bytes.byteLength]) {
        const first = Math.max(0, end + d);
        if (second >= first && second <= bytes.byteLength) {
          checkSplit(bytes, [first, second], ends);
        }
      }
    }
  }
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let round = 0; round < 500; round++) {
    const cuts = Array.from(
      { length: 1 + (next() % 12) },
      () => next() % bytes.byteLength,
    ).sort((a, b) => a - b);
    checkSplit(bytes, cuts, ends);
  }
});

Deno.test("gathering transport: a message that spans reads arrives as one unit of its exact size; reads of whole messages pass without a copy", () => {
  const { bytes, ends } = protocolStream();
  const gatherer = new MessageGatherer();
  // The third unit: the first MSG, its line and 3000 bytes.
  const start = ends[1];
  const third = ends[2] - start;
  const first = gatherer.push(bytes.subarray(0, start + 10));
  assertEquals(first.length, 1);
  assertEquals(first[0].buffer, bytes.buffer, "whole lines: a view");
  assertEquals(gatherer.push(bytes.subarray(start + 10, start + 2000)), []);
  const [message, rest] = gatherer.push(bytes.subarray(start + 2000));
  assertEquals(message.byteLength, third);
  assertEquals(message, bytes.subarray(start, start + third));
  assertEquals(rest.buffer, bytes.buffer, "what follows: a view");
  assertEquals(concat([first[0], message, rest]), bytes);
});

Deno.test("gathering transport: a node's connection carries whole-segment pieces through the engine byte-identical", async () => {
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
