// Starting and stopping: a server that cannot open one of its listeners gives back what it had
// already opened and says which address was the problem.
import net from 'node:net';
import test from 'ava';
import { startServer } from '../helpers/server.js';

/** A loopback port free right now (the kernel's choice). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

test('a server whose HTTP port is taken fails to start, naming the address, and frees its client port', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const takenPort = (squatter.address() as net.AddressInfo).port;
  const c2sPort = await freePort();

  const error = await t.throwsAsync(startServer({
    config: {
      c2s: { listen: [{ host: '127.0.0.1', port: c2sPort, tls: 'starttls' }] },
      http: { listen: [{ host: '127.0.0.1', port: takenPort, tls: 'none' }] },
    },
  }));
  t.regex(error!.message, new RegExp(`HTTP.*127\\.0\\.0\\.1:${takenPort}.*in use`), error!.message);

  // the client listener opened before it is closed again: the port can be bound at once
  const again = net.createServer();
  await t.notThrowsAsync(new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen({ host: '127.0.0.1', port: c2sPort }, resolve);
  }));
  await new Promise<void>((resolve) => again.close(() => resolve()));
});
