// The receiving side of the cluster's link between nodes (src/cluster/link.ts): a batch that is
// not what a node sends is dropped with a log line, and the batches after it still arrive.
import test from 'ava';
import pino from 'pino';
import type { Kernel } from '../../src/core/kernel.js';
import { RedisNodeLink } from '../../src/cluster/link.js';
import type { RedisClient } from '../../src/cluster/redis.js';

function receiver() {
  const delivered: string[] = [];
  const kernel = {
    sessions: { get: () => ({ send: (_stanza: unknown, xml: string) => delivered.push(xml) }) },
    router: { undelivered: () => undefined, route: () => undefined },
  } as unknown as Kernel;
  return { delivered, link: new RedisNodeLink(kernel, {} as RedisClient, pino({ level: 'silent' }), 'a') };
}

const batch = (...stanzas: string[]) => `${stanzas.map((xml) => `d\talice@localhost/phone\t${xml.length}`).join('\n')}\n\n${stanzas.join('')}`;

test('a well-formed batch delivers each stanza with its own XML, in order', (t) => {
  const { delivered, link } = receiver();
  link.receive(batch("<message id='1'/>", "<message id='2'><body>é &amp; ☕</body></message>"));
  t.deepEqual(delivered, ["<message id='1'/>", "<message id='2'><body>é &amp; ☕</body></message>"]);
});

test('a batch that is not well-formed is dropped, and the next one still arrives', (t) => {
  const { delivered, link } = receiver();
  link.receive(batch('<a><b></a>'));
  link.receive(batch("<message id='after'/>"));
  t.deepEqual(delivered, ["<message id='after'/>"]);
});

test('a batch whose lengths do not cover its body, or with no header, is dropped', (t) => {
  const { delivered, link } = receiver();
  link.receive("d\talice@localhost/phone\t999\n\n<message/>");
  link.receive("d\talice@localhost/phone\t4\nd\talice@localhost/phone\t6\n\n<message/>");
  link.receive('no header at all');
  link.receive('{not json');
  t.deepEqual(delivered, []);
});
