// Work serialised per key (per account): each job starts once the previous one for the same
// key has settled, so read-modify-write sequences on one account's data never interleave.
// Keys with nothing pending cost nothing.
export class SerialQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, job: () => Promise<T> | T): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(job);
    const settled = next.catch(() => undefined);
    this.tails.set(key, settled);
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key);
    });
    return next;
  }

  /** Settles once everything queued for `key` so far has settled. */
  idle(key: string): Promise<unknown> {
    return this.tails.get(key) ?? Promise.resolve();
  }
}
