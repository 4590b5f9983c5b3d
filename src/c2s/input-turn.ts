// How much client input one event-loop turn may handle. Node reads every connection that has
// data in one poll phase, and libuv keeps reading one socket while it has more, so under
// overload a single turn could parse and route seconds' worth of stanzas: timers, database
// answers and writes all waited behind it (the archive's and push's reads timed out, held
// callbacks piled up in memory and garbage collection took half the CPU). Past the budget, a
// connection that brings more input stops being read until the next turn; what it sent waits in
// the kernel, and its sender feels TCP back-pressure, as from a server at capacity.
import type { ReadHolds } from './transport.js';

export class InputTurn {
  private spentMs = 0;
  private scheduled = false;
  private waiting: ReadHolds[] = [];
  /** Turns with input, and those that ran over the budget, since the last look (saturation()). */
  private turns = 0;
  private turnsOver = 0;

  constructor(private readonly budgetMs: number) {}

  /** `ms` of handling `reading`'s input were spent; past the budget, it is read again next turn. */
  charge(ms: number, reading: ReadHolds): void {
    this.spentMs += ms;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.nextTurn);
    }
    if (this.spentMs > this.budgetMs) {
      reading.hold();
      this.waiting.push(reading);
    }
  }

  /** The share of turns since the last call whose input ran over the budget (0 when none had input). */
  saturation(): number {
    const share = this.turns === 0 ? 0 : this.turnsOver / this.turns;
    this.turns = this.turnsOver = 0;
    return share;
  }

  private readonly nextTurn = (): void => {
    this.scheduled = false;
    this.turns++;
    if (this.spentMs > this.budgetMs) this.turnsOver++;
    this.spentMs = 0;
    const waiting = this.waiting;
    this.waiting = [];
    for (const reading of waiting) reading.release();
  };
}
