// The DOAP file and the standards table are generated from the modules' declarations; a stale
// committed copy means a claim drifted from the code.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { generatedFiles } from '../../scripts/gen-doap.js';
import { builtinModules } from '../../src/modules/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

for (const [file, expected] of Object.entries(generatedFiles())) {
  test(`${file} is up to date with the modules' declarations (run npm run doap)`, (t) => {
    t.is(fs.readFileSync(path.join(root, file), 'utf8'), expected);
  });
}

/** Modules that serve something other than an XMPP protocol (a web page), so claim none. */
const NOT_PROTOCOLS = new Set(['webchat']);

test('every module declares what it implements, with XEP or RFC names', (t) => {
  for (const module of builtinModules) {
    t.is(module.implements.length > 0, !NOT_PROTOCOLS.has(module.name), module.name);
    for (const claim of module.implements) t.regex(claim.spec, /^(XEP-\d{4}|RFC \d+)$/, `${module.name}: ${claim.spec}`);
  }
});

test('the DOAP lists XEP-0199 with its version', (t) => {
  t.regex(generatedFiles()['docs/xmppd.doap']!, /xep-0199\.html'\/>\s*<xmpp:version>2\.0\.1/);
});
