/**
 * Typed command-line parsing over `@std/cli`'s `parseArgs`, with errors that
 * name the flag and what it expects.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

/** Bad command-line input; the message says what was wrong and what was expected. */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Which flags a command takes. */
export interface FlagSpec {
  /** Flags with a value. */
  string?: string[];
  /** Flags without a value. */
  boolean?: string[];
  /** Short aliases, e.g. `{ h: "help" }`. */
  alias?: Record<string, string>;
}

/** Parsed flags and positional arguments. */
export interface ParsedFlags {
  /** Positional arguments. */
  positional: string[];
  /** Values of string flags that were given. */
  strings: Record<string, string | undefined>;
  /** Boolean flags. */
  booleans: Record<string, boolean>;
}

/**
 * Parses `args`; unknown flags are a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * const flags = parseFlags(["--port", "0", "x"], { string: ["port"] });
 * console.log(flags.strings.port, flags.positional); // "0" [ "x" ]
 * ```
 */
export function parseFlags(args: string[], spec: FlagSpec): ParsedFlags {
  const unknown: string[] = [];
  const parsed = parseArgs(negativeValues(args, spec.string ?? []), {
    string: spec.string ?? [],
    boolean: spec.boolean ?? [],
    alias: spec.alias ?? {},
    unknown(arg: string) {
      if (arg.startsWith("-") && arg !== "-") {
        unknown.push(arg);
        return false;
      }
      return true;
    },
  }) as Record<string, unknown> & { _: (string | number)[] };
  if (unknown.length > 0) {
    const known = [...(spec.string ?? []), ...(spec.boolean ?? [])].map((f) =>
      `--${f}`
    );
    throw new UsageError(
      `unknown option ${unknown[0]}; expected one of ${known.join(", ")}`,
    );
  }
  const strings: Record<string, string | undefined> = {};
  for (const name of spec.string ?? []) {
    const value = parsed[name];
    if (Array.isArray(value)) {
      throw new UsageError(
        `--${name} given ${value.length} times; expected once`,
      );
    }
    strings[name] = value as string | undefined;
  }
  const booleans: Record<string, boolean> = {};
  for (const name of spec.boolean ?? []) booleans[name] = parsed[name] === true;
  return { positional: parsed._.map(String), strings, booleans };
}

/**
 * Joins a string flag and a value that looks like an option (`--start -5`)
 * into `--start=-5`, so that the value is checked as a value ("expected an
 * integer from 0") instead of being taken for an unknown option `-5`.
 */
function negativeValues(args: string[], flags: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const next = args[i + 1];
    if (
      arg.startsWith("--") && flags.includes(arg.slice(2)) &&
      next !== undefined && /^-[\d.]/.test(next)
    ) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}

/**
 * Reads an integer flag, or `fallback` when absent.
 *
 * @example
 * ```ts
 * import { integerFlag } from "./args.ts";
 * integerFlag({ port: "8080" }, "port", { min: 0, max: 65535, fallback: 8787 }); // 8080
 * ```
 */
export function integerFlag(
  strings: Record<string, string | undefined>,
  name: string,
  options: { min?: number; max?: number; fallback?: number } = {},
): number | undefined {
  const text = strings[name];
  if (text === undefined) return options.fallback;
  const value = Number(text);
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  if (
    text.trim() === "" || !Number.isInteger(value) || value < min || value > max
  ) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `>= ${min}`
      : `from ${min} to ${max}`;
    throw new UsageError(
      `--${name} is ${JSON.stringify(text)}; expected an integer ${range}`,
    );
  }
  return value;
}
