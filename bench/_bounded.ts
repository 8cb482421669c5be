/** Time bounds and typed failures for benchmarks. */

/** A benchmark failed: lost or corrupted data, a hang, a crashed process. */
export class BenchError extends Error {
  /** Creates the error; `message` says what was expected and what happened. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BenchError";
  }
}

/** A benchmark did not finish within its time bound: it hangs or crawls. */
export class BenchTimeout extends BenchError {
  /** Creates the error; `message` names what did not finish in how long. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BenchTimeout";
  }
}

/** After the deadline, how long a run may take to end on its abort signal. */
const GRACE_MS = 5_000;

/**
 * Runs `run` with a signal that aborts after `ms`; rejects with a
 * {@linkcode BenchTimeout} naming `what` if it has not finished by then
 * (whether it then ends on the abort or is still running
 * {@linkcode GRACE_MS} ms later).
 *
 * @example
 * ```ts ignore
 * const rate = await bounded("fetch baseline", 30_000, (signal) => measure(signal));
 * ```
 */
export async function bounded<T>(
  what: string,
  ms: number,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const expired = new BenchTimeout(`${what} did not finish within ${ms} ms`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(expired);
      timer = setTimeout(() => reject(expired), GRACE_MS);
    }, ms);
  });
  try {
    return await Promise.race([run(controller.signal), late]);
  } catch (error) {
    if (controller.signal.aborted && error !== expired) {
      throw new BenchTimeout(expired.message, { cause: error });
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
