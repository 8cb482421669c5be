// @ts-check
/**
 * The viewer's search: a query as a matcher of line text, plain text or a
 * regular expression, case-insensitive unless asked. No DOM here.
 *
 * @module
 */

/** Matches one line gives at most (a regex like `.` matches every character). */
const MAX_MATCHES_PER_LINE = 1000;

/**
 * Finds the matches of a query in one line: `[start, end)` character ranges.
 *
 * @typedef {(text: string) => [number, number][]} Matcher
 */

/**
 * A matcher of `query`, or why it is not one (an invalid regex). An empty
 * query matches nothing.
 *
 * @example
 * ```ts
 * import { compileSearch } from "./search.js";
 * const { find } = compileSearch("error", { regex: false, caseSensitive: false });
 * console.log(find?.("Error: an error")); // [[0, 5], [10, 15]]
 * ```
 *
 * @param {string} query
 * @param {{ regex: boolean, caseSensitive: boolean }} options
 * @returns {{ find?: Matcher, error?: string }}
 */
export function compileSearch(query, options) {
  if (query === "") return {};
  const source = options.regex
    ? query
    : query.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  /** @type {RegExp} */
  let pattern;
  try {
    pattern = new RegExp(source, options.caseSensitive ? "g" : "gi");
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
  return {
    find(text) {
      /** @type {[number, number][]} */
      const found = [];
      pattern.lastIndex = 0;
      for (let match; (match = pattern.exec(text)) !== null;) {
        const end = match.index + match[0].length;
        // An empty match marks nothing; step past it.
        if (end === match.index) pattern.lastIndex++;
        else found.push([match.index, end]);
        if (found.length >= MAX_MATCHES_PER_LINE) break;
      }
      return found;
    },
  };
}
