// Bounded concurrency and small async helpers for the load generator.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run task(0..count-1) with at most `concurrency` in flight. Tasks are expected to catch
 * their own errors; one that throws anyway does not stop the others.
 */
export async function runPool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      try {
        await task(i);
      } catch {
        // counted by the task itself
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
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
