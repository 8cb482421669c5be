/** Min, median and max of one side's figure over its runs. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  /** How many runs. */
  runs: number;
}

/** CPU seconds per unit of work (per object, per GB), both sides' medians. */
export interface CpuCost {
  /** What one unit is, e.g. `"CPU-µs/object"`. */
  unit: string;
  /** The measured side's median. */
  value: number;
  /** The baseline's median, if it is a measured peer. */
  baseline?: number;
}

/** One benchmark figure next to its same-run baseline. */
export interface BenchRow {
  figure: string;
  /** The figure: the median over its runs where there are several. */
  value: number;
  unit: string;
  /** What the baseline is. */
  baseline: string;
  /** The baseline's figure: its median over its runs where there are several. */
  baselineValue: number;
  /** Min/median/max over interleaved runs of the value and the baseline. */
  spread?: { value: Spread; baseline?: Spread };
  /** CPU seconds per unit of work of both sides. */
  cpu?: CpuCost;
  /**
   * A number: the ratio value/baseline must be at least this. `{ atMost }`:
   * the ratio must be at most that (for times). `{ valueAtMost }`: the value
   * itself must be at most that (a fixed limit next to a measured peer).
   * "lower": the value must be at most the baseline. "info": no goal.
   */
  goal:
    | number
    | { atMost: number }
    | { valueAtMost: number }
    | "lower"
    | "info";
  /** How it was measured, printed under the table (rows may share one). */
  note?: string;
}

/**
 * Min, median and max of `values` (the mean of the middle two for an even
 * count).
 *
 * @example
 * ```ts ignore
 * spreadOf([3, 1, 2]); // { min: 1, median: 2, max: 3, runs: 3 }
 * ```
 */
export function spreadOf(values: number[]): Spread {
  if (values.length === 0) {
    throw new RangeError("spreadOf: no values; expected at least one run");
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
  return { min: sorted[0], median, max: sorted.at(-1)!, runs: sorted.length };
}

/** value / baseline, and whether the goal holds. */
export function judge(
  row: BenchRow,
): { ratio: number; met: boolean | undefined } {
  const ratio = row.baselineValue === 0 ? NaN : row.value / row.baselineValue;
  if (row.goal === "info") return { ratio, met: undefined };
  if (row.goal === "lower") {
    return { ratio, met: row.value <= row.baselineValue };
  }
  if (typeof row.goal === "object") {
    return "atMost" in row.goal
      ? { ratio, met: ratio <= row.goal.atMost }
      : { ratio, met: row.value <= row.goal.valueAtMost };
  }
  return { ratio, met: ratio >= row.goal };
}

function format(value: number): string {
  if (!Number.isFinite(value)) return "-";
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** ` (min–max, N runs)` after a median, or nothing for a single figure. */
function spreadText(spread: Spread | undefined): string {
  if (spread === undefined || spread.runs < 2) return "";
  return ` (${format(spread.min)}–${format(spread.max)}, ${spread.runs} runs)`;
}

/** The CPU cell: both sides' CPU per unit and their ratio. */
function cpuText(cpu: CpuCost | undefined): string {
  if (cpu === undefined) return "-";
  if (cpu.baseline === undefined) return `${format(cpu.value)} ${cpu.unit}`;
  return `${format(cpu.value)} vs ${format(cpu.baseline)} ${cpu.unit} (${
    format(cpu.value / cpu.baseline)
  }×)`;
}

function goalText(row: BenchRow): string {
  if (row.goal === "info") return "-";
  if (row.goal === "lower") return `≤ ${format(row.baselineValue)}`;
  if (typeof row.goal === "object") {
    return "atMost" in row.goal
      ? `≤ ${row.goal.atMost}×`
      : `value ≤ ${format(row.goal.valueAtMost)} ${row.unit}`;
  }
  return `≥ ${row.goal}×`;
}

/**
 * Renders rows as a Markdown table, their notes numbered below it. Values
 * and baselines are medians, followed by their min–max over the runs; the
 * ratio and the goal use the medians.
 */
export function markdownTable(rows: BenchRow[]): string {
  const lines = [
    "| figure | value | baseline (same run) | ratio | goal | met | CPU per unit of work: value vs baseline |",
    "|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  for (const row of rows) {
    const { ratio, met } = judge(row);
    let mark = "";
    if (row.note !== undefined) {
      let index = notes.indexOf(row.note);
      if (index < 0) index = notes.push(row.note) - 1;
      mark = ` [${index + 1}]`;
    }
    const value = `${format(row.value)} ${row.unit}${
      spreadText(row.spread?.value)
    }`;
    const baseline = `${row.baseline}: ${format(row.baselineValue)}${
      spreadText(row.spread?.baseline)
    }`;
    lines.push(
      `| ${row.figure}${mark} | ${value} | ${baseline} | ${format(ratio)}× | ${
        goalText(row)
      } | ${met === undefined ? "-" : met ? "yes" : "**no**"} | ${
        cpuText(row.cpu)
      } |`,
    );
  }
  if (notes.length > 0) {
    lines.push("");
    notes.forEach((note, index) => lines.push(`[${index + 1}] ${note}`, ""));
    lines.pop();
  }
  return lines.join("\n");
}
