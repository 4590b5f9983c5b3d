// The overview's charts as inline SVG, drawn on the server from the samples (samples.ts): no
// script is needed to see them, and nothing but numbers we computed goes into the markup.
import { escapeHtml } from '../pages.js';
import type { Point } from './samples.js';

export interface Series {
  name: string;
  /** A CSS class of the dashboard's stylesheet (its colour). */
  className: string;
  value(point: Point): number | null;
}

const WIDTH = 640;
const HEIGHT = 180;
const LEFT = 56;
const RIGHT = 12;
const TOP = 14;
const BOTTOM = 26;

/** 1, 2, 4, 6, 8 × 10^n at or above `value`: an axis maximum whose quarters are round numbers too. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 8, 10]) if (value <= step * power * (1 + 1e-9)) return step * power;
  return 10 * power;
}

/** "−45 min", "−30 s": how long before now a tick of the time axis is. */
function ago(ms: number, span: number): string {
  if (ms === 0) return 'now';
  return span >= 120_000 ? `−${formatNumber(ms / 60_000)} min` : `−${Math.round(ms / 1000)} s`;
}

export function formatNumber(value: number): string {
  if (value === 0) return '0';
  if (Math.abs(value) >= 100) return Math.round(value).toString();
  if (Math.abs(value) >= 10) return value.toFixed(1).replace(/\.0$/, '');
  return value.toPrecision(2).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/**
 * A line chart of the last hour (`now` at the right edge; since the first sample when that is
 * more recent): one polyline per series, a gap where
 * a value is null, the y axis from 0 to a round maximum, with its unit.
 */
export function lineChart(options: { id: string; title: string; unit: string; points: Point[]; series: Series[]; now: number; intervalSeconds: number }): string {
  const { id, title, unit, points, series, now } = options;
  // the last hour, or the time since the first sample when the server is younger than that
  const firstSample = points.length > 0 ? points[0]!.at - options.intervalSeconds * 1000 : -Infinity;
  const from = Math.min(now - 60_000, Math.max(now - 3600_000, firstSample));
  const span = now - from;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const values = points.flatMap((p) => series.map((s) => s.value(p))).filter((v): v is number => v !== null);
  const max = niceCeiling(Math.max(0, ...values));
  const x = (at: number) => LEFT + (Math.max(0, at - from) / span) * plotWidth;
  const y = (v: number) => TOP + plotHeight - (v / max) * plotHeight;
  const coordinate = (n: number) => n.toFixed(1);

  const parts: string[] = [];
  // grid: four horizontal lines with their values, the time axis below
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const gy = coordinate(y(v));
    parts.push(`<line class="grid" x1="${LEFT}" y1="${gy}" x2="${WIDTH - RIGHT}" y2="${gy}"/>`);
    parts.push(`<text class="axis" x="${LEFT - 6}" y="${gy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatNumber(v))}</text>`);
  }
  for (let quarter = 4; quarter >= 0; quarter--) {
    const before = Math.round((span * quarter) / 4 / 1000) * 1000;
    const gx = coordinate(x(now - before));
    parts.push(`<text class="axis" x="${gx}" y="${HEIGHT - 8}" text-anchor="${quarter === 4 ? 'start' : quarter === 0 ? 'end' : 'middle'}">${ago(before, span)}</text>`);
  }
  parts.push(`<text class="axis unit" x="${LEFT}" y="${TOP - 4}">${escapeHtml(unit)}</text>`);

  let drawn = 0;
  for (const s of series) {
    // a polyline per run of known values: an interval with no delivery is a gap, not a zero
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1) parts.push(`<circle class="line ${s.className}" cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="1.5"/>`);
      else if (run.length > 1) parts.push(`<polyline class="line ${s.className}" points="${run.join(' ')}"/>`);
      drawn += run.length;
      run = [];
    };
    for (const point of points) {
      if (point.at < from) continue;
      const v = s.value(point);
      if (v === null) flush();
      else run.push(`${coordinate(x(point.at))},${coordinate(y(v))}`);
    }
    flush();
  }
  if (points.length === 0) {
    parts.push(`<text class="empty" x="${LEFT + plotWidth / 2}" y="${TOP + plotHeight / 2}" text-anchor="middle">collecting samples (one every ${options.intervalSeconds} s)…</text>`);
  }
  const legend = series
    .map((s) => {
      const last = [...points].reverse().map((p) => s.value(p)).find((v) => v !== null);
      return `<span class="key ${s.className}">${escapeHtml(s.name)}${last === undefined || last === null ? '' : `: <b>${escapeHtml(formatNumber(last))}</b> ${escapeHtml(unit)}`}</span>`;
    })
    .join(' ');
  return `<figure class="chart" id="${escapeHtml(id)}" data-points="${drawn}">
<figcaption>${escapeHtml(title)} <span class="legend">${legend}</span></figcaption>
<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(title)}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>
</figure>`;
}
