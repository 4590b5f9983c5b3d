// A progress line for long imports and exports: rewritten in place on a terminal at most five
// times a second, nothing at all when the output is not a terminal (a log, a pipe).
export class Progress {
  private readonly counts = new Map<string, number>();
  private last = 0;
  private shown = false;

  constructor(
    private readonly verb: string,
    private readonly out: NodeJS.WriteStream | null = process.stderr.isTTY ? process.stderr : null,
  ) {}

  tick(what: string, by = 1): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + by);
    if (this.out === null) return;
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    this.shown = true;
    this.out.write(`\r${this.line()}\x1b[K`);
  }

  private line(): string {
    return `${this.verb}: ${[...this.counts].map(([what, n]) => `${n} ${what}`).join(', ')}`;
  }

  /** Clears the line, so that the summary that follows starts on its own. */
  done(): void {
    if (this.out !== null && this.shown) this.out.write('\r\x1b[K');
  }
}
