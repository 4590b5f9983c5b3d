// The server's Prometheus metrics (served at /metrics by src/http/endpoints.ts). The hot path
// (every stanza in and out) only bumps numbers in plain fields; prom-client objects read them
// when Prometheus scrapes, so no label hashing, closure or allocation happens per stanza.
import { Counter, Gauge, Registry, type Metric } from 'prom-client';

/** Stanza counts by kind, bumped on the hot path. */
export class StanzaCounts {
  message = 0;
  presence = 0;
  iq = 0;

  count(name: string): void {
    if (name === 'message') this.message++;
    else if (name === 'presence') this.presence++;
    else if (name === 'iq') this.iq++;
  }
}

/** Upper bounds (seconds) of the delivery latency buckets: tens of microseconds to seconds. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * A histogram with fixed buckets in a typed array: observe() is a short scan and three additions.
 * (prom-client's Histogram builds a closure and hashes a label object per observation.)
 */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  private sum = 0;

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
  }

  /** The mean observation; NaN before the first. */
  get mean(): number {
    return this.sum / this.count;
  }

  get count(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  /** In prom-client's metric format, so the registry prints it like its own histograms. */
  get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    let cumulative = 0;
    LATENCY_BUCKETS.forEach((bound, i) => {
      cumulative += this.counts[i]!;
      values.push({ labels: { le: bound }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    const total = cumulative + this.counts[LATENCY_BUCKETS.length]!;
    values.push({ labels: { le: '+Inf' }, value: total, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: total, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
  }
}

export type HostGaugeReader = () => number | Promise<number>;

export class ServerMetrics {
  /** Scraped by /metrics; modules may register their own metrics on it (names start with xmppd_). */
  readonly registry = new Registry();
  readonly stanzasIn = new StanzaCounts();
  readonly stanzasOut = new StanzaCounts();
  authFailures = 0;
  /** Bytes received by HTTP file upload (the upload module adds to it). */
  readonly uploadBytes: Counter;
  private readonly deliveryLatency = new FastHistogram(
    'xmppd_delivery_latency_seconds',
    'From the arrival of client data to the handing over of the stanzas it caused to their recipients’ connections',
  );
  /**
   * performance.now() when the client data being handled arrived (0: none). Set around the
   * synchronous handling of one read, so a delivery during it knows what it is part of.
   */
  handlingSince = 0;
  private readonly hostGauges = new Map<string, Map<string, HostGaugeReader>>();

  /** `connectionCounts`: open connections by kind (the edges know them). */
  constructor(readonly connectionCounts: () => Record<string, number>) {
    const registers = [this.registry];
    new Gauge({
      name: 'xmppd_connections',
      help: 'Open connections by type',
      labelNames: ['type'],
      registers,
      collect() {
        for (const [type, n] of Object.entries(connectionCounts())) this.set({ type }, n);
      },
    });
    const stanzaCounter = (name: string, help: string, counts: StanzaCounts) =>
      new Counter({
        name,
        help,
        labelNames: ['kind'],
        registers,
        collect() {
          this.reset();
          this.inc({ kind: 'message' }, counts.message);
          this.inc({ kind: 'presence' }, counts.presence);
          this.inc({ kind: 'iq' }, counts.iq);
        },
      });
    stanzaCounter('xmppd_stanzas_received_total', 'Stanzas received from clients, by kind', this.stanzasIn);
    stanzaCounter('xmppd_stanzas_sent_total', 'Stanzas sent to clients, by kind', this.stanzasOut);
    const metrics = this;
    new Counter({
      name: 'xmppd_auth_failures_total',
      help: 'Failed client authentication attempts (SASL)',
      registers,
      collect() {
        this.reset();
        this.inc(metrics.authFailures);
      },
    });
    this.uploadBytes = new Counter({ name: 'xmppd_upload_bytes_total', help: 'Bytes received by HTTP file upload', registers });
    this.registry.registerMetric(this.deliveryLatency as unknown as Metric);
  }

  /** The stanza being handed to a connection was caused by the client data being handled now. */
  delivered(): void {
    if (this.handlingSince !== 0) this.deliveryLatency.observe((performance.now() - this.handlingSince) / 1000);
  }

  get deliveriesObserved(): number {
    return this.deliveryLatency.count;
  }

  /** Mean delivery latency in seconds since the start; NaN before the first delivery. */
  get meanDeliverySeconds(): number {
    return this.deliveryLatency.mean;
  }

  /** The per-host gauges' current values for one host, by metric name (e.g. xmppd_offline_messages). */
  async hostGaugeValues(host: string): Promise<Record<string, number>> {
    const values: Record<string, number> = {};
    for (const [name, readers] of this.hostGauges) {
      const read = readers.get(host);
      if (read !== undefined) values[name] = await read();
    }
    return values;
  }

  /**
   * A gauge with a `host` label whose value each virtual host reads when scraped (e.g. the
   * offline module's queue length). The same name may be registered once per host.
   */
  hostGauge(name: string, help: string, host: string, read: HostGaugeReader): () => void {
    let readers = this.hostGauges.get(name);
    if (readers === undefined) {
      const created = new Map<string, HostGaugeReader>();
      readers = created;
      this.hostGauges.set(name, created);
      new Gauge({
        name,
        help,
        labelNames: ['host'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const [domain, reader] of created) this.set({ host: domain }, await reader());
        },
      });
    }
    if (readers.has(host)) throw new Error(`metric ${name} is already read for ${host}`);
    readers.set(host, read);
    return () => void readers.delete(host);
  }
}
