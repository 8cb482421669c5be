/**
 * Statuses read back from the store at start-up are checked like uploads
 * are: a status saved by an older server (or edited by hand) may hold a MIME
 * type, name or other field that today's upload validation refuses, and
 * those fields reach HTTP headers and the viewer. Each bad field is replaced
 * by a safe value and the change is described, so that the caller can log
 * it. The resource's bytes are never touched.
 *
 * @module
 */

import {
  isMetadata,
  isMimeType,
  isResourceName,
  MAX_NAME_LENGTH,
} from "../protocol/validate.ts";
import type { ResourceStatus } from "../protocol/status.ts";
import { FALLBACK_MIME_TYPE } from "./_header.ts";
import { clipText, loggable } from "./_text.ts";

/** The name given to a resource whose stored name is not a string at all. */
export const UNNAMED = "unnamed";
/** Longest `error` kept (reasons the server writes are far shorter). */
const MAX_ERROR_LENGTH = 2000;
/** ISO 8601 times are 24 characters; anything much longer is not one. */
const MAX_TIME_LENGTH = 40;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** How much of a replaced value a change description quotes. */
const QUOTED_CHARS = 80;

/** A stored status made safe, and what was changed. */
export interface SanitizedStatus {
  /** The status to serve. */
  status: ResourceStatus;
  /** One line per field that was replaced, quoting (the start of) the old value. */
  changes: string[];
}

function quote(value: unknown): string {
  if (typeof value !== "string") {
    return value === undefined ? "nothing" : `a ${typeof value}`;
  }
  const shown = `"${loggable(value, QUOTED_CHARS)}"`;
  return value.length > QUOTED_CHARS
    ? `${shown} (${value.length} characters)`
    : shown;
}

/** A replacement for a name that is not valid: as much of it as can be kept. */
function safeName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) return UNNAMED;
  return clipText(name.toWellFormed(), MAX_NAME_LENGTH);
}

function isTime(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_TIME_LENGTH;
}

/**
 * Checks the fields of a stored status that reach headers and pages:
 * `name`, `mimeType`, `metadata`, `size` (replaced by `dataSize()`),
 * `sha256`, `error` and the times.
 *
 * @example
 * ```ts ignore
 * const { status, changes } = await sanitizeStoredStatus(stored, () => store.dataSize(stored.id));
 * for (const change of changes) console.warn(`spool: resource ${status.id}: ${change}`);
 * ```
 */
export async function sanitizeStoredStatus(
  stored: ResourceStatus,
  dataSize: () => Promise<number>,
): Promise<SanitizedStatus> {
  const status = { ...stored };
  const changes: string[] = [];
  const replace = <K extends keyof ResourceStatus>(
    field: K,
    value: ResourceStatus[K],
    why: string,
  ) => {
    changes.push(
      `stored ${field} ${quote(stored[field])} is not ${why}; now ${
        value === undefined ? "removed" : quote(value)
      }`,
    );
    if (value === undefined) delete status[field];
    else status[field] = value;
  };
  if (!isResourceName(stored.name)) {
    replace(
      "name",
      safeName(stored.name),
      `a name of at most ${MAX_NAME_LENGTH} characters of well-formed Unicode`,
    );
  }
  if (!isMimeType(stored.mimeType)) {
    replace(
      "mimeType",
      FALLBACK_MIME_TYPE,
      "a valid MIME type (RFC 9110 media-type, ASCII, at most 255 characters)",
    );
  }
  if (!isMetadata(stored.metadata)) {
    replace("metadata", {}, "an object of strings of at most 64 KiB of JSON");
  }
  if (!Number.isSafeInteger(stored.size) || stored.size < 0) {
    replace("size", await dataSize(), "an integer >= 0");
  }
  if (stored.sha256 !== undefined && !SHA256_HEX.test(String(stored.sha256))) {
    replace("sha256", undefined, "64 lowercase hex digits");
  }
  if (
    stored.error !== undefined &&
    (typeof stored.error !== "string" ||
      stored.error.length > MAX_ERROR_LENGTH)
  ) {
    replace(
      "error",
      clipText(String(stored.error), MAX_ERROR_LENGTH),
      `a string of at most ${MAX_ERROR_LENGTH} characters`,
    );
  }
  const now = new Date().toISOString();
  for (const field of ["createdAt", "updatedAt"] as const) {
    if (!isTime(stored[field])) replace(field, now, "an ISO 8601 time");
  }
  if (stored.finishedAt !== undefined && !isTime(stored.finishedAt)) {
    replace("finishedAt", now, "an ISO 8601 time");
  }
  return { status, changes };
}
