/**
 * The data model of the shared engine, in one place: the stream, its
 * subjects, the headers pieces carry, and the lease bucket.
 *
 * - `spool.d.<id>.<segment>`: the bytes of resource `<id>`, as pieces that
 *   never cross a segment boundary; each piece carries its offset in
 *   {@linkcode OFFSET_HEADER}. A range is read by direct get, segment by
 *   segment.
 * - `spool.s.<id>`: the statuses of `<id>`, in the same stream as its
 *   bytes, so a status is stored after every byte it counts.
 * - KV bucket {@linkcode LEASE_BUCKET}: one key per live upload, the lease
 *   of the node taking it.
 *
 * @module
 */

/** The stream holding every resource's bytes and statuses. */
export const STREAM = "SPOOL";
/** The subjects of {@linkcode STREAM}. */
export const STREAM_SUBJECTS = "spool.>";
/** Every status subject (the filter of the status feed). */
export const STATUS_SUBJECTS = "spool.s.*";
/** The KV bucket of upload leases. */
export const LEASE_BUCKET = "spool-leases";
/** Header of a data piece: the offset of its first byte, in decimal. */
export const OFFSET_HEADER = "Spool-Offset";
/** Header of a status message that says the resource was deleted. */
export const DELETED_HEADER = "Spool-Deleted";
/**
 * Bytes per segment subject. Pieces are at most this long and never cross
 * a segment boundary, so a segment holds few pieces (one under load, when
 * the writer joins appends) and a range starts at a known subject. 1020
 * KiB: the largest whole KiB that leaves {@linkcode PIECE_HEADER_ROOM}
 * under the 1 MiB `max_payload` of a default server. Fewer, larger
 * messages cost the engine and both nodes less per byte than 256 KiB
 * ones (bench/ANALYSIS.md, "Cross-node follow").
 */
export const SEGMENT_BYTES = 1020 * 1024;
/** Room a piece's headers get within `max_payload` (theirs are ~100 bytes). */
export const PIECE_HEADER_ROOM = 4 * 1024;
/**
 * The stream's description, naming the data model: a node refuses a stream
 * whose messages were laid out otherwise (e.g. an earlier Spool's 256 KiB
 * segments) rather than misread them.
 */
export const DATA_MODEL =
  `spool data model 2: segments of ${SEGMENT_BYTES} bytes`;

/**
 * The subject of segment `segment` of resource `id`.
 *
 * @example
 * ```ts
 * import { dataSubject } from "./subjects.ts";
 * console.log(dataSubject("AAAAAAAAAAAAAAAAAAAAAA", 3)); // spool.d.AAAAAAAAAAAAAAAAAAAAAA.3
 * ```
 */
export function dataSubject(id: string, segment: number): string {
  return `spool.d.${id}.${segment}`;
}

/**
 * Every data subject of resource `id` (for purging it).
 *
 * @example
 * ```ts
 * import { dataSubjects } from "./subjects.ts";
 * console.log(dataSubjects("AAAAAAAAAAAAAAAAAAAAAA")); // spool.d.AAAAAAAAAAAAAAAAAAAAAA.*
 * ```
 */
export function dataSubjects(id: string): string {
  return `spool.d.${id}.*`;
}

/**
 * The status subject of resource `id`.
 *
 * @example
 * ```ts
 * import { statusSubject } from "./subjects.ts";
 * console.log(statusSubject("AAAAAAAAAAAAAAAAAAAAAA")); // spool.s.AAAAAAAAAAAAAAAAAAAAAA
 * ```
 */
export function statusSubject(id: string): string {
  return `spool.s.${id}`;
}

/**
 * The resource id of a status subject, or `undefined` for another subject.
 *
 * @example
 * ```ts
 * import { idOfStatusSubject } from "./subjects.ts";
 * console.log(idOfStatusSubject("spool.s.AAAAAAAAAAAAAAAAAAAAAA")); // AAAAAAAAAAAAAAAAAAAAAA
 * ```
 */
export function idOfStatusSubject(subject: string): string | undefined {
  const prefix = "spool.s.";
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : undefined;
}
