/**
 * CPU time of a process, for the bench and the soak: user + system seconds
 * of all its threads (workers included), from Linux's `/proc/{pid}/stat`,
 * as `process_memory.ts` reads memory from `/proc/{pid}/status`.
 *
 * @module
 */

/**
 * Clock ticks per second of `/proc/{pid}/stat` (`USER_HZ`, what
 * `getconf CLK_TCK` prints): fixed at 100 by Linux's user-space ABI.
 */
export const TICKS_PER_SECOND = 100;

/**
 * User + system seconds in a `/proc/{pid}/stat` line. The command name (field
 * 2) is in parentheses and may hold spaces and parentheses itself, so the
 * fields are counted from the last `)`: `utime` and `stime` are fields 14
 * and 15.
 */
function parseStat(path: string, text: string, first = 14): number {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (the state), so field N is fields[N - 3].
  const user = Number(fields[first - 3]);
  const system = Number(fields[first + 1 - 3]);
  if (!Number.isFinite(user) || !Number.isFinite(system)) {
    throw new Error(
      `${path} has no user and system times at fields ${first} and ${
        first + 1
      }: ${JSON.stringify(text.slice(0, 200))}; expected Linux`,
    );
  }
  return (user + system) / TICKS_PER_SECOND;
}

/**
 * User + system CPU seconds process `pid` has used so far (all its
 * threads; not its children). Throws if the process is gone or this is not
 * Linux.
 *
 * @example
 * ```ts ignore
 * import { cpuSecondsOf } from "./process_cpu.ts";
 * console.log(await cpuSecondsOf(Deno.pid) >= 0); // true
 * ```
 */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const path = `/proc/${pid}/stat`;
  return parseStat(path, await Deno.readTextFile(path));
}

/**
 * User + system CPU seconds this process has used so far, read
 * synchronously (for a load generator that reports its own CPU in the same
 * line as its result, before it exits).
 *
 * @example
 * ```ts ignore
 * import { ownCpuSeconds } from "./process_cpu.ts";
 * const before = ownCpuSeconds();
 * let x = 0;
 * for (let i = 0; i < 1e7; i++) x += i;
 * console.log(ownCpuSeconds() >= before); // true
 * ```
 */
export function ownCpuSeconds(): number {
  const path = "/proc/self/stat";
  return parseStat(path, Deno.readTextFileSync(path));
}

/**
 * User + system CPU seconds of this process's children that have exited
 * and been waited for (`cutime` + `cstime`, fields 16 and 17): how to count
 * a short-lived subprocess such as `cp`, whose own `/proc` entry is gone by
 * the time it can be read.
 *
 * @example
 * ```ts ignore
 * import { exitedChildrenCpuSeconds } from "./process_cpu.ts";
 * const before = exitedChildrenCpuSeconds();
 * await new Deno.Command("true").output();
 * console.log(exitedChildrenCpuSeconds() >= before); // true
 * ```
 */
export function exitedChildrenCpuSeconds(): number {
  const path = "/proc/self/stat";
  return parseStat(path, Deno.readTextFileSync(path), 16);
}

/**
 * Measures the CPU seconds a set of running processes use between `start`
 * and `stop`: the sum over `pids` of user + system time. Every process must
 * still be running at `stop` (a process that exits meanwhile cannot be
 * read: have it report its own CPU with {@linkcode ownCpuSeconds}).
 *
 * @example
 * ```ts ignore
 * import { CpuMeter } from "./process_cpu.ts";
 * const meter = await CpuMeter.start([Deno.pid]);
 * // … the work …
 * console.log(await meter.stop() >= 0); // true
 * ```
 */
export class CpuMeter {
  readonly #pids: number[];
  readonly #before: number[];

  private constructor(pids: number[], before: number[]) {
    this.#pids = pids;
    this.#before = before;
  }

  /** Reads the CPU time of every process in `pids` now. */
  static async start(pids: number[]): Promise<CpuMeter> {
    return new CpuMeter(
      [...pids],
      await Promise.all(pids.map((pid) => cpuSecondsOf(pid))),
    );
  }

  /** CPU seconds the processes used since `start`, summed. */
  async stop(): Promise<number> {
    const after = await Promise.all(
      this.#pids.map((pid) => cpuSecondsOf(pid)),
    );
    return after.reduce((sum, now, i) => sum + now - this.#before[i], 0);
  }
}
