// The module API undoes what a module registered when it stops (DESIGN.md "every registration
// is undone when the module stops"): hooks, IQ handlers, disco features, identities and items.
import test from 'ava';
import pino from 'pino';
import { VirtualHost } from '../../src/core/host.js';
import { ModuleContext } from '../../src/core/module.js';
import type { Kernel } from '../../src/core/kernel.js';

function host(): VirtualHost {
  return new VirtualHost({ domain: 'example.org', registration: 'closed', admins: [], modules: [] });
}

test('a stopped module leaves no hook, IQ handler, feature, identity or item behind', async (t) => {
  const h = host();
  const before = { features: [...h.features], accountFeatures: [...h.accountFeatures], identities: [...h.identities], items: [...h.items] };
  // these registrations touch the host only, not the kernel
  const m = new ModuleContext('example', {} as Kernel, h, {}, pino({ level: 'silent' }));
  m.feature('urn:example:0');
  m.accountFeature('urn:example:account:0');
  m.identity('pubsub', 'pep');
  m.discoItem('service.example.org', 'A service');
  m.iq('get', 'urn:example:0', () => null, 'both');
  m.on('session/bound', () => undefined);
  t.true(h.features.has('urn:example:0'));
  t.truthy(h.iqHandler('host', 'get', 'urn:example:0'));
  t.truthy(h.iqHandler('account', 'get', 'urn:example:0'));
  t.true(h.events.has('session/bound'));

  await m.stop();
  t.deepEqual([...h.features], before.features);
  t.deepEqual([...h.accountFeatures], before.accountFeatures);
  t.deepEqual(h.identities, before.identities);
  t.deepEqual(h.items, before.items);
  t.is(h.iqHandler('host', 'get', 'urn:example:0'), undefined);
  t.is(h.iqHandler('account', 'get', 'urn:example:0'), undefined);
  t.false(h.events.has('session/bound'));
});

test('a feature another module also declared stays when one of them stops', async (t) => {
  const h = host();
  const first = new ModuleContext('first', {} as Kernel, h, {}, pino({ level: 'silent' }));
  const second = new ModuleContext('second', {} as Kernel, h, {}, pino({ level: 'silent' }));
  first.feature('urn:shared');
  second.feature('urn:shared');
  await second.stop();
  t.true(h.features.has('urn:shared'));
  await first.stop();
  t.false(h.features.has('urn:shared'));
});

test('a stopped module\'s IQ namespace can be taken by another module', async (t) => {
  const h = host();
  const old = new ModuleContext('old', {} as Kernel, h, {}, pino({ level: 'silent' }));
  old.iq('set', 'urn:example:1', () => null);
  await old.stop();
  const replacement = new ModuleContext('new', {} as Kernel, h, {}, pino({ level: 'silent' }));
  t.notThrows(() => replacement.iq('set', 'urn:example:1', () => null));
});
