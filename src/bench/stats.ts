// Statistics for the load generator: latency percentiles, error tallies, rounding.

/**
 * Nearest-rank percentile of an ascending-sorted sample: the smallest value such that at
 * least p % of the sample is less than or equal to it. p in [0, 100]; p = 0 gives the
 * minimum, p = 100 the maximum. Returns null for an empty sample.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const rank = Math.ceil((p / 100) * n); // 1-based
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  mean_ms: number | null;
}

/**
 * Collects latency samples (ms) in a growable Float64Array. Beyond `capacity` samples it
 * switches to reservoir sampling (Vitter's algorithm R), so memory stays bounded while the
 * percentiles remain unbiased estimates; count, mean and max stay exact.
 */
export class LatencyRecorder {
  private samples: Float64Array;
  private stored = 0;
  private seen = 0;
  private sum = 0;
  private maximum = -Infinity;
  private sorted: Float64Array | null = null;

  constructor(
    private readonly capacity = 1 << 22,
    private readonly random: () => number = Math.random,
  ) {
    this.samples = new Float64Array(Math.min(capacity, 1 << 12));
  }

  get count(): number {
    return this.seen;
  }

  add(ms: number): void {
    this.seen++;
    this.sum += ms;
    if (ms > this.maximum) this.maximum = ms;
    this.sorted = null;
    if (this.stored < this.samples.length) {
      this.samples[this.stored++] = ms;
      return;
    }
    if (this.samples.length < this.capacity) {
      const grown = new Float64Array(Math.min(this.capacity, this.samples.length * 2));
      grown.set(this.samples);
      this.samples = grown;
      this.samples[this.stored++] = ms;
      return;
    }
    const j = Math.floor(this.random() * this.seen);
    if (j < this.samples.length) this.samples[j] = ms;
  }

  percentile(p: number): number | null {
    if (this.sorted === null) this.sorted = this.samples.slice(0, this.stored).sort();
    return percentile(this.sorted, p);
  }

  summary(digits = 2): LatencySummary {
    const empty = this.seen === 0;
    return {
      count: this.seen,
      p50_ms: round(this.percentile(50), digits),
      p99_ms: round(this.percentile(99), digits),
      max_ms: empty ? null : round(this.maximum, digits),
      mean_ms: empty ? null : round(this.sum / this.seen, digits),
    };
  }
}

/** Counts errors by message, so a run with 10 000 identical failures prints one line. */
export class ErrorTally {
  private readonly counts = new Map<string, number>();
  private n = 0;

  get total(): number {
    return this.n;
  }

  add(err: unknown, count = 1): void {
    const text = err instanceof Error ? err.message : String(err);
    const key = text.length > 160 ? text.slice(0, 160) + '…' : text;
    this.counts.set(key, (this.counts.get(key) ?? 0) + count);
    this.n += count;
  }

  /** Most frequent first, at most `limit` distinct messages, each key prefixed with `prefix`. */
  toJSON(limit = 10, prefix = ''): Record<string, number> {
    const entries = [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, limit);
    return Object.fromEntries(entries.map(([k, n]) => [prefix + k, n]));
  }
}

export function round(x: number | null | undefined, digits = 2): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** x / y rounded, or null when either is unknown or y is zero. */
export function ratio(x: number | null, y: number | null, digits = 2): number | null {
  if (x === null || y === null || y === 0) return null;
  return round(x / y, digits);
}
