// Bounded concurrency and small async helpers for the load generator.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run task(0..count-1) with at most `concurrency` in flight. Tasks are expected to catch
 * their own errors; one that throws anyway does not stop the others. Once `stop()` is true
 * no new task starts. Returns how many tasks were started.
 */
export async function runPool(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !stop()) {
      const i = next++;
      try {
        await task(i);
      } catch {
        // counted by the task itself
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return next;
}

/** Poll `done` every `stepMs` until it is true or `maxMs` has passed; true if it became true. */
export async function waitUntil(done: () => boolean, maxMs: number, stepMs = 20): Promise<boolean> {
  const end = performance.now() + maxMs;
  while (!done()) {
    if (performance.now() >= end) return false;
    await sleep(stepMs);
  }
  return true;
}

/**
 * Ends a phase early when the server is clearly not working: `limit` failures in a row
 * with no success between them. Without it, a hung server would cost
 * (tasks / concurrency) × timeout before the scenario gives up.
 */
export class FailureBreaker {
  private streak = 0;

  constructor(readonly limit: number) {}

  record(ok: boolean): void {
    this.streak = ok ? 0 : this.streak + 1;
  }

  get tripped(): boolean {
    return this.streak >= this.limit;
  }

  get reason(): string {
    return `not attempted: server looks down (${this.streak} failures in a row)`;
  }
}
