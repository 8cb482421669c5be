/** One benchmark figure next to its same-run baseline. */
export interface BenchRow {
  figure: string;
  value: number;
  unit: string;
  /** What the baseline is. */
  baseline: string;
  baselineValue: number;
  /**
   * A number: the ratio value/baseline must be at least this. `{ atMost }`:
   * the ratio must be at most that (for times). "lower": the value must be
   * at most the baseline. `{ valueAtMost }`: the value itself must be at
   * most that (an absolute goal; the baseline is for comparison). "info":
   * no goal.
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

/** value / baseline, and whether the goal holds. */
export function judge(
  row: BenchRow,
): { ratio: number; met: boolean | undefined } {
  const ratio = row.baselineValue === 0 ? NaN : row.value / row.baselineValue;
  if (row.goal === "info") return { ratio, met: undefined };
  if (row.goal === "lower") {
    return { ratio, met: row.value <= row.baselineValue };
  }
  if (typeof row.goal === "object" && "valueAtMost" in row.goal) {
    return { ratio, met: row.value <= row.goal.valueAtMost };
  }
  if (typeof row.goal === "object") {
    return { ratio, met: ratio <= row.goal.atMost };
  }
  return { ratio, met: ratio >= row.goal };
}

function format(value: number): string {
  if (!Number.isFinite(value)) return "-";
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Renders rows as a Markdown table, their notes numbered below it. */
export function markdownTable(rows: BenchRow[]): string {
  const lines = [
    "| figure | value | baseline (same run) | ratio | goal | met |",
    "|---|---|---|---|---|---|",
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
    const goal = row.goal === "info"
      ? "-"
      : row.goal === "lower"
      ? `≤ ${format(row.baselineValue)}`
      : typeof row.goal === "object" && "valueAtMost" in row.goal
      ? `≤ ${format(row.goal.valueAtMost)} ${row.unit}`
      : typeof row.goal === "object"
      ? `≤ ${row.goal.atMost}×`
      : `≥ ${row.goal}×`;
    lines.push(
      `| ${row.figure}${mark} | ${
        format(row.value)
      } ${row.unit} | ${row.baseline}: ${format(row.baselineValue)} | ${
        format(ratio)
      }× | ${goal} | ${met === undefined ? "-" : met ? "yes" : "**no**"} |`,
    );
  }
  if (notes.length > 0) {
    lines.push("");
    notes.forEach((note, index) => lines.push(`[${index + 1}] ${note}`, ""));
    lines.pop();
  }
  return lines.join("\n");
}
