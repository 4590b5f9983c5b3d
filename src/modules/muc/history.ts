// A room's discussion history (XEP-0045 §7.2.15): the last messages with their time, and the
// part of them a newcomer asked for with <history maxchars maxstanzas seconds since/>.
import type Element from 'ltx/lib/Element.js';

export interface HistoryEntry {
  stanza: Element;
  stamp: number;
  chars: number;
}

/** What a user asked for in <history/> (XEP-0045 §7.2.15). */
export interface HistoryRequest {
  maxChars?: number;
  maxStanzas?: number;
  seconds?: number;
  since?: number;
}

export class DiscussionHistory {
  private entries: HistoryEntry[] = [];

  /** Adds a message, keeping at most `limit`. */
  add(stanza: Element, stamp: number, chars: number, limit: number): void {
    this.entries.push({ stanza, stamp, chars });
    this.trim(limit);
  }

  trim(limit: number): void {
    if (this.entries.length > limit) this.entries.splice(0, this.entries.length - limit);
  }

  /** The newest messages that fit every limit of the request, oldest first. */
  select(request: HistoryRequest, now = Date.now()): HistoryEntry[] {
    let entries = this.entries;
    if (request.maxStanzas !== undefined) entries = request.maxStanzas === 0 ? [] : entries.slice(-request.maxStanzas);
    const since = Math.max(request.since ?? 0, request.seconds !== undefined ? now - request.seconds * 1000 : 0);
    if (since > 0) entries = entries.filter((e) => e.stamp >= since);
    if (request.maxChars !== undefined) {
      let total = 0;
      let first = entries.length;
      while (first > 0 && total + entries[first - 1]!.chars <= request.maxChars) total += entries[--first]!.chars;
      entries = entries.slice(first);
    }
    return entries;
  }
}

export function historyRequest(history: Element | undefined): HistoryRequest {
  if (history === undefined) return {};
  const request: HistoryRequest = {};
  const number = (name: string) => {
    const value = history.attrs[name];
    if (value === undefined) return undefined;
    const n = Number(value);
    return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
  };
  const maxChars = number('maxchars');
  const maxStanzas = number('maxstanzas');
  const seconds = number('seconds');
  if (maxChars !== undefined) request.maxChars = maxChars;
  if (maxStanzas !== undefined) request.maxStanzas = maxStanzas;
  if (seconds !== undefined) request.seconds = seconds;
  if (history.attrs.since !== undefined) {
    const since = Date.parse(history.attrs.since);
    if (Number.isFinite(since)) request.since = since;
  }
  return request;
}
