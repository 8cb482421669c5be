/**
 * Writes a received object body to a file in large blocks, hashing each
 * block and writing it while the next one fills: receiving, hashing and the
 * disk overlap, and a file write costs one per block instead of one per
 * body read (64 KiB).
 *
 * @module
 */

/** Bytes written to the file at once. */
export const WRITE_BLOCK = 1024 * 1024;

/** What {@linkcode writeBody} feeds each block to (a `node:crypto` hash). */
export interface BlockHash {
  update(bytes: Uint8Array): unknown;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) at += await file.write(bytes.subarray(at));
}

/**
 * Reads `body` into `buffer` from `filled` on until the buffer is full or
 * the body ended; returns the buffer (reads move it) and the bytes in it.
 */
async function fill(
  reader: ReadableStreamBYOBReader,
  buffer: ArrayBuffer,
): Promise<{ buffer: ArrayBuffer; filled: number; done: boolean }> {
  let filled = 0;
  while (filled < buffer.byteLength) {
    const { value, done } = await reader.read(
      new Uint8Array(buffer, filled),
    );
    // A read moves the buffer; a cancelled body hands none back.
    buffer = value?.buffer ?? new ArrayBuffer(buffer.byteLength);
    if (done) return { buffer, filled, done: true };
    filled += value!.byteLength;
  }
  return { buffer, filled, done: false };
}

/**
 * Writes all of `body` to `file` and feeds it to `hash`; resolves with its
 * size once every byte is written, or rejects with the read's or the
 * write's error (after any write still running has ended). `body` may be
 * all of it as bytes. `size` is the
 * body's length if known, else -1: small bodies get small buffers.
 *
 * @example
 * ```ts ignore
 * import { createHash } from "node:crypto";
 * import { writeBody } from "./_write_body.ts";
 * const hash = createHash("sha256");
 * using file = await Deno.open("out.bin", { write: true, create: true });
 * const size = await writeBody(new Blob(["hello"]).stream(), file, hash, 5);
 * console.log(size, hash.digest("hex"));
 * ```
 */
export async function writeBody(
  body: Uint8Array | ReadableStream<Uint8Array>,
  file: Deno.FsFile,
  hash: BlockHash,
  size: number,
): Promise<number> {
  if (body instanceof Uint8Array) {
    // A small body that arrived whole (the receiver's wholeBodies): one write.
    hash.update(body);
    await writeAll(file, body);
    return body.byteLength;
  }
  const reader = body.getReader({ mode: "byob" });
  const blockSize = size >= 0 && size < WRITE_BLOCK
    ? Math.max(size, 1)
    : WRITE_BLOCK;
  let block = new ArrayBuffer(blockSize);
  /** The block being written, reused once its write ended. */
  let spare: ArrayBuffer | null = null;
  let writing: Promise<void> | null = null;
  let total = 0;
  try {
    for (;;) {
      const { buffer, filled, done } = await fill(reader, block);
      block = buffer;
      if (filled > 0) {
        const bytes = new Uint8Array(block, 0, filled);
        hash.update(bytes);
        total += filled;
        if (writing !== null) await writing;
        writing = writeAll(file, bytes);
        writing.catch(() => {
          // Awaited before the next write or at the end; this only keeps a
          // failure meanwhile from counting as an unhandled rejection.
        });
        const written = block;
        block = spare ?? new ArrayBuffer(blockSize);
        spare = written;
      }
      if (done) break;
    }
    if (writing !== null) await writing;
    writing = null;
    return total;
  } finally {
    // After a failure a write may still run: the file closes after it.
    if (writing !== null) {
      await writing.catch(() => {
        // Its error, if any, is not the one being reported.
      });
    }
  }
}
