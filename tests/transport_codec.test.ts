import { assertEquals, assertThrows } from "@std/assert";
import {
  type Checksum,
  decodeFrameHeader,
  decodeHeader,
  encodeFrameHeader,
  encodeHeader,
  FLAG_PDU_LAST,
  FLAG_PDU_MODE,
  type FrameEvent,
  FrameParser,
  KIND_FIN,
  KIND_OBJECT,
  KIND_PDU,
  TransportError,
} from "../transport/mod.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function code(fn: () => unknown): string {
  const error = assertThrows(fn, TransportError);
  return (error as TransportError).code;
}

const SAMPLE = {
  name: "ab",
  size: 5,
  opaque: new Uint8Array([1, 2]),
  contentType: "t",
  checksum: { type: "x", value: "y" },
  custom: { k: "v" },
};
const SAMPLE_HEX = "00 02 61 62 " + // name
  "00 00 00 00 00 00 00 05 " + // size
  "00 00 00 02 01 02 " + // opaque
  "00 01 74 " + // contentType
  "00 01 78 00 01 79 " + // checksum type, value
  "00 01 00 01 6b 00 01 76"; // one custom pair

Deno.test("transport codec: object header golden bytes", () => {
  assertEquals(hex(encodeHeader(SAMPLE)), SAMPLE_HEX);
  assertEquals(
    hex(encodeHeader({ name: "", size: 0 })),
    hex(new Uint8Array(22)),
  );
  assertEquals(
    hex(encodeHeader({ name: "", size: -1 }).subarray(2, 10)),
    "ff ff ff ff ff ff ff ff",
  );
  assertEquals(
    hex(encodeHeader({ name: "", size: 2 ** 40 + 3 }).subarray(2, 10)),
    "00 00 01 00 00 00 00 03",
  );
  // Custom attributes are written sorted by key.
  assertEquals(
    encodeHeader({ name: "n", size: 0, custom: { b: "2", a: "1" } }),
    encodeHeader({ name: "n", size: 0, custom: { a: "1", b: "2" } }),
  );
});

Deno.test("transport codec: object header round trip", () => {
  const cases: {
    name: string;
    size: number;
    opaque?: Uint8Array;
    contentType?: string;
    checksum?: Checksum;
    custom?: Record<string, string>;
  }[] = [
    SAMPLE,
    { name: "", size: 0 },
    { name: "ünïcødé/𝄞", size: -1, opaque: new Uint8Array(40_000).fill(7) },
    {
      name: "x",
      size: Number.MAX_SAFE_INTEGER,
      checksum: { type: "sha256", value: "" },
    },
    {
      name: "p",
      size: 1,
      custom: JSON.parse('{"__proto__": "not a prototype", "": ""}'),
    },
  ];
  for (const header of cases) {
    const decoded = decodeHeader(encodeHeader(header));
    assertEquals(decoded.name, header.name);
    assertEquals(decoded.size, header.size);
    assertEquals(decoded.opaque, header.opaque ?? new Uint8Array(0));
    assertEquals(decoded.contentType, header.contentType ?? "");
    assertEquals(decoded.checksum, header.checksum ?? null);
    assertEquals(
      Object.entries(decoded.custom),
      Object.entries(header.custom ?? {}).sort(([a], [b]) => a < b ? -1 : 1),
    );
  }
});

Deno.test("transport codec: every truncation of a header is rejected", () => {
  const bytes = encodeHeader(SAMPLE);
  for (let n = 0; n < bytes.length; n++) {
    assertEquals(
      code(() => decodeHeader(bytes.subarray(0, n))),
      "obj-hdr-malformed",
      `length ${n}`,
    );
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assertEquals(code(() => decodeHeader(longer)), "obj-hdr-malformed");
  // Each u16 length prefix set to 0xffff overruns.
  for (const offset of [0, 18, 21, 24, 27, 29, 32]) {
    const bad = bytes.slice();
    bad[offset] = 0xff;
    bad[offset + 1] = 0xff;
    assertEquals(
      code(() => decodeHeader(bad)),
      "obj-hdr-malformed",
      `prefix at ${offset}`,
    );
  }
  const badUtf8 = bytes.slice();
  badUtf8[2] = 0xff;
  assertEquals(code(() => decodeHeader(badUtf8)), "obj-hdr-malformed");
  assertEquals(
    code(() => encodeHeader({ name: "x".repeat(70_000), size: 0 })),
    "obj-hdr-invalid",
  );
  assertEquals(
    code(() => encodeHeader({ name: "x", size: 1.5 })),
    "obj-hdr-invalid",
  );
  assertEquals(
    code(() => encodeHeader({ name: "x", size: -2 })),
    "obj-hdr-invalid",
  );
});

Deno.test("transport codec: frame header golden bytes and checks", () => {
  const frame = encodeFrameHeader({
    kind: KIND_OBJECT,
    flags: 0,
    length: 35,
    seq: 7,
  });
  assertEquals(hex(frame), "01 00 01 00 00 00 00 23 00 00 00 07 47 b3 4c 10");
  assertEquals(
    hex(encodeFrameHeader({ kind: KIND_FIN, flags: 0, length: 0, seq: 0 })),
    "03 00 01 00 00 00 00 00 00 00 00 00 13 91 0e 5a",
  );
  assertEquals(
    hex(
      encodeFrameHeader({
        kind: KIND_PDU,
        flags: FLAG_PDU_LAST,
        length: 65536,
        seq: 7,
      }),
    ),
    "02 02 01 00 00 01 00 00 00 00 00 07 7d 0e 43 ed",
  );
  assertEquals(decodeFrameHeader(frame, 0), {
    kind: 1,
    flags: 0,
    length: 35,
    seq: 7,
  });
  // Any single flipped bit is caught.
  for (let bit = 0; bit < 128; bit++) {
    const bad = frame.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    const got = code(() => decodeFrameHeader(bad, 0));
    assertEquals(got === "hdr-checksum" || got === "proto-hdr-invalid", true);
  }
  const renamed = frame.slice();
  renamed[0] = 9; // kind changed without re-signing
  assertEquals(code(() => decodeFrameHeader(renamed, 0)), "hdr-checksum");
  assertEquals(
    code(() =>
      decodeFrameHeader(
        encodeFrameHeader({ kind: 9, flags: 0, length: 0, seq: 0 }),
        0,
      )
    ),
    "proto-hdr-invalid",
  );
  assertEquals(
    code(() =>
      decodeFrameHeader(
        encodeFrameHeader({
          kind: KIND_OBJECT,
          flags: 0x80,
          length: 0,
          seq: 0,
        }),
        0,
      )
    ),
    "proto-hdr-invalid",
  );
  assertEquals(
    code(() =>
      decodeFrameHeader(
        encodeFrameHeader({ kind: KIND_FIN, flags: 0, length: 1, seq: 0 }),
        0,
      )
    ),
    "proto-hdr-invalid",
  );
});

/** A hand-built body: sized object, header-only, PDU object, fin. */
function sampleBody(): Uint8Array {
  const parts: Uint8Array[] = [];
  const h1 = encodeHeader({ name: "one", size: 5 });
  parts.push(
    encodeFrameHeader({
      kind: KIND_OBJECT,
      flags: 0,
      length: h1.length,
      seq: 0,
    }),
    h1,
    new Uint8Array([1, 2, 3, 4, 5]),
  );
  const h2 = encodeHeader({ name: "two", size: 0 });
  parts.push(
    encodeFrameHeader({
      kind: KIND_OBJECT,
      flags: 0,
      length: h2.length,
      seq: 1,
    }),
    h2,
  );
  const h3 = encodeHeader({ name: "three", size: -1 });
  parts.push(
    encodeFrameHeader({
      kind: KIND_OBJECT,
      flags: FLAG_PDU_MODE,
      length: h3.length,
      seq: 2,
    }),
    h3,
  );
  parts.push(
    encodeFrameHeader({ kind: KIND_PDU, flags: 0, length: 3, seq: 2 }),
    new Uint8Array([6, 7, 8]),
  );
  parts.push(
    encodeFrameHeader({
      kind: KIND_PDU,
      flags: FLAG_PDU_LAST,
      length: 2,
      seq: 2,
    }),
    new Uint8Array([9, 10]),
  );
  parts.push(
    encodeFrameHeader({ kind: KIND_FIN, flags: 0, length: 0, seq: 3 }),
  );
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function parseAll(body: Uint8Array, pieces: number[], options = {}): string[] {
  const parser = new FrameParser(options);
  const log: string[] = [];
  const take = (event: FrameEvent) => {
    if (event.type === "object") {
      log.push(
        `obj ${event.seq} ${event.header.name} ${event.header.size} ${event.hasBody}`,
      );
    } else if (event.type === "data") {
      const last = log.at(-1);
      const bytes = Array.from(event.bytes).join(",");
      if (last?.startsWith("data ")) log[log.length - 1] = `${last},${bytes}`;
      else log.push(`data ${bytes}`);
    } else if (event.type === "end") log.push(`end ${event.size}`);
    else log.push(`fin ${event.seq}`);
  };
  let at = 0;
  for (const n of [...pieces, body.length]) {
    parser.push(body.subarray(at, Math.min(body.length, at + n)));
    at = Math.min(body.length, at + n);
    for (let e = parser.next(); e !== null; e = parser.next()) take(e);
    if (at === body.length) break;
  }
  parser.finish();
  return log;
}

const EXPECTED = [
  "obj 0 one 5 true",
  "data 1,2,3,4,5",
  "end 5",
  "obj 1 two 0 false",
  "end 0",
  "obj 2 three -1 true",
  "data 6,7,8,9,10",
  "end 5",
  "fin 3",
];

Deno.test("transport codec: parser yields the same events for any chunking", () => {
  const body = sampleBody();
  assertEquals(parseAll(body, []), EXPECTED);
  assertEquals(parseAll(body, new Array(body.length).fill(1)), EXPECTED);
  for (let split = 1; split < body.length; split++) {
    assertEquals(parseAll(body, [split]), EXPECTED, `split at ${split}`);
  }
});

Deno.test("transport codec: every truncation of a stream gets its typed error", () => {
  const body = sampleBody();
  // Frame boundaries where an end of input is clean.
  const clean = new Set<number>();
  let at = 0;
  const h1 = encodeHeader({ name: "one", size: 5 }).length;
  at += 16 + h1 + 5;
  clean.add(0).add(at);
  at += 16 + encodeHeader({ name: "two", size: 0 }).length;
  clean.add(at);
  const objectThree = at;
  at += 16 + encodeHeader({ name: "three", size: -1 }).length + 16 + 3 + 16 + 2;
  clean.add(at);
  clean.add(body.length);
  const codes = new Set<string>();
  for (let n = 0; n <= body.length; n++) {
    const run = () => parseAll(body.subarray(0, n), []);
    if (clean.has(n)) run();
    else {
      const got = code(run);
      codes.add(got);
      if (n > objectThree + 16 + 10 && n < at) {
        assertEquals(
          got.startsWith("pdu-") || got === "obj-hdr-short",
          true,
          `${n}: ${got}`,
        );
      }
    }
  }
  assertEquals([...codes].sort(), [
    "obj-data-eof",
    "obj-hdr-short",
    "pdu-data-eof",
    "pdu-hdr-short",
    "proto-hdr-short",
  ]);
});

Deno.test("transport codec: parser rejects bad frames with typed errors", () => {
  const h = encodeHeader({ name: "x", size: -1 });
  const obj = (flags: number, seq = 0, length = h.length) =>
    encodeFrameHeader({ kind: KIND_OBJECT, flags, length, seq });
  const pdu = (flags: number, length: number, seq = 0) =>
    encodeFrameHeader({ kind: KIND_PDU, flags, length, seq });
  const cat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const run = (body: Uint8Array, options = {}) =>
    code(() => parseAll(body, [], options));
  assertEquals(run(new Uint8Array(16).fill(0xab)), "hdr-checksum");
  assertEquals(run(cat(obj(0), h)), "obj-hdr-malformed"); // size -1 without PDU mode
  assertEquals(run(cat(obj(FLAG_PDU_MODE, 0, 70_000))), "hdr-too-large");
  assertEquals(
    run(cat(obj(FLAG_PDU_MODE, 0, 100)), { maxHeaderSize: 64 }),
    "hdr-too-large",
  );
  assertEquals(run(cat(obj(FLAG_PDU_MODE, 0, 3))), "obj-hdr-malformed");
  assertEquals(run(cat(obj(FLAG_PDU_MODE), h, pdu(0, 0))), "pdu-invalid"); // empty non-last
  assertEquals(
    run(
      cat(obj(FLAG_PDU_MODE), h, pdu(FLAG_PDU_LAST, 1, 5), new Uint8Array(1)),
    ),
    "pdu-invalid",
  );
  assertEquals(run(cat(obj(FLAG_PDU_MODE), h, pdu(0, 2 << 20))), "pdu-invalid");
  assertEquals(run(cat(obj(FLAG_PDU_MODE), h, obj(0, 1))), "pdu-invalid");
  assertEquals(run(pdu(FLAG_PDU_LAST, 0)), "proto-hdr-invalid"); // PDU between objects
  const sized = encodeHeader({ name: "s", size: 3 });
  const sizedPdu = encodeFrameHeader({
    kind: KIND_OBJECT,
    flags: FLAG_PDU_MODE,
    length: sized.length,
    seq: 0,
  });
  assertEquals(
    run(cat(sizedPdu, sized, pdu(FLAG_PDU_LAST, 4), new Uint8Array(4))),
    "obj-data-size",
  );
  assertEquals(
    run(cat(sizedPdu, sized, pdu(FLAG_PDU_LAST, 2), new Uint8Array(2))),
    "obj-data-size",
  );
  const zero = encodeHeader({ name: "z", size: 0 });
  const z = (seq: number) =>
    encodeFrameHeader({
      kind: KIND_OBJECT,
      flags: 0,
      length: zero.length,
      seq,
    });
  assertEquals(run(cat(z(3), zero, z(3), zero)), "proto-hdr-invalid"); // seq must increase
  const fin = encodeFrameHeader({
    kind: KIND_FIN,
    flags: 0,
    length: 0,
    seq: 0,
  });
  assertEquals(run(cat(fin, new Uint8Array(1))), "frame-after-fin");
});
