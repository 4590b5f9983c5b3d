// A coarse clock for per-connection bookkeeping (idle and keepalive timeouts), so the data path
// does not call Date.now() for every chunk. One second of resolution is plenty for timeouts.
export const clock = { now: Date.now() };

let ticker: NodeJS.Timeout | undefined;
let users = 0;

export function startClock(): void {
  if (users++ === 0) {
    clock.now = Date.now();
    ticker = setInterval(() => (clock.now = Date.now()), 1000);
    ticker.unref();
  }
}

export function stopClock(): void {
  if (--users === 0 && ticker !== undefined) clearInterval(ticker);
}
