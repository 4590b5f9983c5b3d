// The terminal password prompt: echo must be off before the prompt shows. A person or a script
// that answers the moment the prompt appears would otherwise see the terminal echo the password
// (CI caught this once: the answer arrived between the prompt and the switch to raw mode).
import test from 'ava';
import { PassThrough, Writable } from 'node:stream';
import { readNewPassword, type PasswordInput } from '../../src/cli/password.js';

/** A fake terminal that records, in order, what was written and when echo went off and on. */
function terminal() {
  const events: string[] = [];
  const input = new PassThrough() as PassThrough & PasswordInput;
  input.isTTY = true;
  input.setRawMode = (mode: boolean) => events.push(mode ? 'echo off' : 'echo on');
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString();
      events.push(`wrote ${JSON.stringify(text)}`);
      // Answer each prompt as soon as it is written, like the test driving a real pty does.
      if (text.startsWith('Password')) setImmediate(() => input.write('secret\r'));
      done();
    },
  });
  return { input, output, events };
}

test('echo goes off before each prompt is written and back on after its line ends', async (t) => {
  const { input, output, events } = terminal();
  t.is(await readNewPassword(input, output), 'secret');
  t.deepEqual(events, [
    'echo off', 'wrote "Password: "', 'wrote "\\n"', 'echo on',
    'echo off', 'wrote "Password (again): "', 'wrote "\\n"', 'echo on',
  ]);
});
