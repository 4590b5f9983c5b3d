import test from 'ava';
import { ReadHolds } from '../../src/c2s/transport.js';

function target() {
  const calls: string[] = [];
  return { calls, pause: () => calls.push('pause'), resume: () => calls.push('resume') };
}

test('reading resumes only when every holder has let go', (t) => {
  const socket = target();
  const holds = new ReadHolds(socket);
  holds.hold(); // storage backlog
  holds.hold(); // rate limit
  holds.release(); // the rate limit's pause ends first: still held for storage
  t.deepEqual(socket.calls, ['pause']);
  holds.release();
  t.deepEqual(socket.calls, ['pause', 'resume']);
});

test('a timed hold releases itself', async (t) => {
  const socket = target();
  const holds = new ReadHolds(socket);
  holds.holdFor(10);
  t.deepEqual(socket.calls, ['pause']);
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.deepEqual(socket.calls, ['pause', 'resume']);
});
