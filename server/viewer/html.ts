/**
 * HTML built with a tagged template that escapes every interpolation unless
 * it is HTML built the same way: `markup\`<b>${name}</b>\`` is safe whatever
 * `name` holds. Only the template's own text, and what {@linkcode raw} is
 * given, goes into the page as markup.
 *
 * (The tag is not called `html`: `deno fmt` formats templates tagged `html`
 * as HTML, which would rewrite the pages' markup and white space.)
 *
 * @module
 */

import { escape } from "@std/html/entities";

/**
 * HTML that is already built (by {@linkcode markup} or {@linkcode raw}): put
 * into other HTML as it is.
 *
 * @example
 * ```ts
 * import { markup } from "./html.ts";
 * const page = markup`<p>${"a < b"}</p>`;
 * console.log(String(page)); // "<p>a &lt; b</p>"
 * ```
 */
export class Html {
  readonly #text: string;

  /** Wraps markup; use {@linkcode markup} or {@linkcode raw} instead. */
  constructor(text: string) {
    this.#text = text;
  }

  /** The markup. */
  toString(): string {
    return this.#text;
  }
}

/**
 * What a `${…}` of {@linkcode markup} takes: text and numbers (escaped), built
 * {@linkcode Html} (as it is), lists of these (one after the other), and
 * `false`, `null` or `undefined` (nothing: for `${cond && markup`…`}`).
 */
export type HtmlValue =
  | string
  | number
  | Html
  | false
  | null
  | undefined
  | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.toString();
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === false || value === null || value === undefined) return "";
  return escape(String(value));
}

/**
 * Builds HTML: the template's text as it is, every value escaped for text
 * and for quoted attributes (`&`, `<`, `>`, `"`, `'`) unless it is
 * {@linkcode Html}.
 *
 * @example
 * ```ts
 * import { markup } from "./html.ts";
 * const name = `<img src=x onerror="alert(1)">`;
 * const row = markup`<td title="${name}">${name}</td>`;
 * console.log(String(markup`<tr>${[row, row]}</tr>`).includes("<img")); // false
 * ```
 */
export function markup(
  strings: TemplateStringsArray,
  ...values: HtmlValue[]
): Html {
  let text = strings[0];
  for (let i = 0; i < values.length; i++) {
    text += render(values[i]) + strings[i + 1];
  }
  return new Html(text);
}

/**
 * Markup that is trusted as it is (the page's own CSS and script): not
 * escaped. Never for text that comes from a request or a resource.
 *
 * @example
 * ```ts
 * import { markup, raw } from "./html.ts";
 * const style = markup`<style>${raw("b > i { color: red }")}</style>`;
 * console.log(String(style)); // "<style>b > i { color: red }</style>"
 * ```
 */
export function raw(text: string): Html {
  return new Html(text);
}
