// `npm run bench:floor -- --logins N`: the login floor runs its own TLS server and clients to the
// end, every connection made in each shape (the resumed shape fails unless TLS 1.3 resumed), and
// reports CPU per connection as numbers. Figures are not judged here (no timing in the suite).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const floor = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'bench', 'floor.js');

test('bench:floor --logins makes every login-shaped connection, resumed ones resumed, and reports CPU per shape', async (t) => {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [floor, '--logins', '20'], { timeout: 60_000 }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out))),
  );
  const result = JSON.parse(stdout) as Record<string, unknown>;
  t.is(result['scenario'], 'tls-floor-logins');
  t.is(result['logins'], 20);
  for (const shape of ['scram', 'fast', 'fast_resumed', 'plain_tcp']) {
    const perLogin = (result[shape] as { server_cpu_ms_per_login: unknown }).server_cpu_ms_per_login;
    t.is(typeof perLogin, 'number', shape);
    t.true((perLogin as number) >= 0, shape);
  }
  t.is(typeof result['fast_resumed_vs_scram'], 'number');
});
