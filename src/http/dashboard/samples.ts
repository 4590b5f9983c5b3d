// What the dashboard's charts draw: every `interval` seconds, a sample of the same counters
// /metrics serves (read through the prom-client registry, so the two cannot disagree), an
// hour of them kept in memory. Rates and the mean latency are the differences between two
// samples, as Prometheus's rate() would compute them.
import type { Registry } from 'prom-client';

/** One reading of the counters. */
export interface Sample {
  /** epoch ms */
  at: number;
  /** xmppd_stanzas_received_total{kind="message"} */
  messagesIn: number;
  /** xmppd_stanzas_sent_total{kind="message"} */
  messagesOut: number;
  /** xmppd_delivery_latency_seconds_sum and _count */
  latencySum: number;
  latencyCount: number;
  /** xmppd_connections by type */
  connections: Record<string, number>;
}

/** Between two samples: what a chart point shows. */
export interface Point {
  at: number;
  messagesInPerSecond: number;
  messagesOutPerSecond: number;
  /** Mean delivery latency in ms over the interval; null when nothing was delivered. */
  latencyMs: number | null;
  connections: number;
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number | undefined>;
  metricName?: string;
}

async function valuesOf(registry: Registry, name: string): Promise<MetricValue[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return [];
  const got = (await metric.get()) as { values: MetricValue[] };
  return got.values;
}

export class MetricsSamples {
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** How many samples make an hour. */
  readonly capacity: number;

  constructor(
    private readonly registry: Registry,
    /** seconds */
    readonly interval: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.capacity = Math.ceil(3600 / interval) + 1;
  }

  start(): void {
    if (this.timer !== undefined) return;
    void this.take();
    this.timer = setInterval(() => void this.take(), this.interval * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the counters now and keeps the reading (the oldest beyond an hour is dropped). */
  async take(now = Date.now()): Promise<void> {
    try {
      const [received, sent, latency, connections] = await Promise.all([
        valuesOf(this.registry, 'xmppd_stanzas_received_total'),
        valuesOf(this.registry, 'xmppd_stanzas_sent_total'),
        valuesOf(this.registry, 'xmppd_delivery_latency_seconds'),
        valuesOf(this.registry, 'xmppd_connections'),
      ]);
      const message = (values: MetricValue[]) => values.find((v) => v.labels.kind === 'message')?.value ?? 0;
      const named = (suffix: string) => latency.find((v) => v.metricName === `xmppd_delivery_latency_seconds${suffix}`)?.value ?? 0;
      this.samples.push({
        at: now,
        messagesIn: message(received),
        messagesOut: message(sent),
        latencySum: named('_sum'),
        latencyCount: named('_count'),
        connections: Object.fromEntries(connections.map((v) => [String(v.labels.type), v.value])),
      });
      if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
    } catch (err) {
      this.onError(err);
    }
  }

  /** The last hour, one point per interval between two samples, oldest first. */
  points(): Point[] {
    const points: Point[] = [];
    for (let i = 1; i < this.samples.length; i++) {
      const before = this.samples[i - 1]!;
      const after = this.samples[i]!;
      const seconds = (after.at - before.at) / 1000;
      if (seconds <= 0) continue;
      // a counter only goes down when the process restarted (never here): no negative rates
      const rate = (a: number, b: number) => Math.max(0, b - a) / seconds;
      const deliveries = after.latencyCount - before.latencyCount;
      points.push({
        at: after.at,
        messagesInPerSecond: rate(before.messagesIn, after.messagesIn),
        messagesOutPerSecond: rate(before.messagesOut, after.messagesOut),
        latencyMs: deliveries > 0 ? ((after.latencySum - before.latencySum) / deliveries) * 1000 : null,
        connections: Object.values(after.connections).reduce((a, b) => a + b, 0),
      });
    }
    return points;
  }

  /** The newest reading, if any. */
  latest(): Sample | undefined {
    return this.samples.at(-1);
  }
}
