// Human units for configuration values: durations ("30s", "5m", "1d") and byte sizes ("256KiB").
// A bare number keeps its base unit (seconds, bytes), so `ping_timeout: 60` and `60s` mean the same.

import { z } from 'zod';

export const DURATION_HINT = 'expected a duration like 30s, 5m, 1d';
export const DURATION_OR_NEVER_HINT = 'expected a duration like 30s, 5m, 1d, or never';
export const SIZE_HINT = 'expected a size like 256KiB, 10MiB, 1GB';

const SECONDS_PER_UNIT: Readonly<Record<string, number>> = {
  ms: 0.001, millisecond: 0.001, milliseconds: 0.001,
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600,
  d: 86_400, day: 86_400, days: 86_400,
  w: 604_800, week: 604_800, weeks: 604_800,
  // A year is 365 days: retention periods, not calendar arithmetic.
  y: 31_536_000, year: 31_536_000, years: 31_536_000,
};

// Decimal units are powers of 1000 (kB, MB), binary units powers of 1024 (KiB, MiB), as in IEC 80000-13.
const BYTES_PER_UNIT: Readonly<Record<string, number>> = {
  b: 1, byte: 1, bytes: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

const NEVER_WORDS = new Set(['never', 'infinity']);

/** A value as an admin would recognise it in their YAML file, for "expected X, got Y" messages. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

// For values that are neither a number nor a string (true, a list, a map).
const wrongType = (hint: string) => (issue: { input?: unknown }) => `${hint}, got ${describeValue(issue.input)}`;

/** Parses "90", "30s", "1h30m", "2 days" into seconds; undefined when it is not a duration. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const text = input.trim().toLowerCase();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  // One or more "<number><unit>" parts, summed: "1h30m" is 5400 seconds.
  const part = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/y;
  let total = 0;
  let matched = 0;
  while (matched < text.length) {
    part.lastIndex = matched;
    const m = part.exec(text);
    if (!m) return undefined;
    const perUnit = SECONDS_PER_UNIT[m[2]!];
    if (perUnit === undefined) return undefined;
    total += Number(m[1]) * perUnit;
    matched = part.lastIndex;
  }
  return total;
}

/** Parses 1024, "256KiB", "10 MB" into bytes (rounded to a whole byte); undefined when it is not a size. */
export function parseByteSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(input.trim());
  if (!m) return undefined;
  const perUnit = m[2] === '' ? 1 : BYTES_PER_UNIT[m[2]!.toLowerCase()];
  if (perUnit === undefined) return undefined;
  return Math.round(Number(m[1]) * perUnit);
}

/** A duration in seconds: a number of seconds or a string like "30s", "5m", "2h", "7d", "1w", "1y". */
export function duration() {
  return z.union([z.number(), z.string()], { error: wrongType(DURATION_HINT) }).transform((value, ctx) => {
    const seconds = parseDuration(value);
    if (seconds === undefined) {
      ctx.addIssue({ code: 'custom', message: `${DURATION_HINT}, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return seconds;
  });
}

/** Like duration(), but "never" or "infinity" turn the feature off: the result is null. */
export function durationOrNever() {
  return z.union([z.number(), z.string()], { error: wrongType(DURATION_OR_NEVER_HINT) }).transform((value, ctx): number | null => {
    if (typeof value === 'string' && NEVER_WORDS.has(value.trim().toLowerCase())) return null;
    const seconds = parseDuration(value);
    if (seconds === undefined) {
      ctx.addIssue({ code: 'custom', message: `${DURATION_OR_NEVER_HINT}, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return seconds;
  });
}

/** A size in bytes: a number of bytes or a string like "256KiB", "10MiB", "1GiB", "500kB", "1MB". */
export function byteSize() {
  return z.union([z.number(), z.string()], { error: wrongType(SIZE_HINT) }).transform((value, ctx) => {
    const bytes = parseByteSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `${SIZE_HINT}, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return bytes;
  });
}

/** Like byteSize(), but "never" or "infinity" turn the limit off: the result is null. */
export function byteSizeOrNever() {
  return z.union([z.number(), z.string()], { error: wrongType(SIZE_HINT) }).transform((value, ctx): number | null => {
    if (typeof value === 'string' && NEVER_WORDS.has(value.trim().toLowerCase())) return null;
    const bytes = parseByteSize(value);
    if (bytes === undefined || bytes === 0) {
      ctx.addIssue({ code: 'custom', message: `${SIZE_HINT} (or never), got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return bytes;
  });
}
