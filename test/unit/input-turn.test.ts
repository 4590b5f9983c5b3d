// The budget of client input per event-loop turn (src/c2s/input-turn.ts): past it, a connection
// is not read again until the next turn, and most turns over budget mean the server is saturated.
import test from 'ava';
import { InputTurn } from '../../src/c2s/input-turn.js';
import { ReadHolds } from '../../src/c2s/transport.js';

function connection(): { reading: ReadHolds; paused: () => boolean } {
  let paused = false;
  const reading = new ReadHolds({ pause: () => (paused = true), resume: () => (paused = false) });
  return { reading, paused: () => paused };
}
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test('within the budget nothing stops reading; past it, each connection that brings more waits for the next turn', async (t) => {
  const turn = new InputTurn(10);
  const a = connection();
  const b = connection();
  turn.charge(4, a.reading);
  turn.charge(4, b.reading);
  t.false(a.paused() || b.paused());
  turn.charge(4, a.reading); // 12 ms this turn
  t.true(a.paused());
  t.false(b.paused(), 'only the connection that ran over');
  turn.charge(1, b.reading);
  t.true(b.paused());
  await nextTurn();
  t.false(a.paused() || b.paused(), 'read again in the next turn');
  turn.charge(9, a.reading);
  t.false(a.paused(), 'the budget starts again');
});

test('a connection already paused for another reason stays paused after the turn', async (t) => {
  const turn = new InputTurn(1);
  const a = connection();
  a.reading.hold(); // e.g. its rate limit
  turn.charge(5, a.reading);
  await nextTurn();
  t.true(a.paused());
  a.reading.release();
  t.false(a.paused());
});

test('saturation is the share of turns with input that ran over the budget', async (t) => {
  const turn = new InputTurn(10);
  const a = connection();
  t.is(turn.saturation(), 0);
  turn.charge(20, a.reading);
  await nextTurn();
  turn.charge(20, a.reading);
  await nextTurn();
  turn.charge(2, a.reading);
  await nextTurn();
  t.is(turn.saturation(), 2 / 3);
  t.is(turn.saturation(), 0, 'counted again from the last look');
});
