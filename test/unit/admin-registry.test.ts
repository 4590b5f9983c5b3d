// The admin command registry: one declaration per command, from which the CLI usage, the
// argument validation and the OpenAPI description are generated.
import test from 'ava';
import { announce, commandList, userAdd, sessionsKick } from '../../src/control/commands.js';
import { CommandError, parseArgs } from '../../src/control/registry.js';
import { usage } from '../../src/cli/registry.js';
import { openApiDocument } from '../../src/http/admin-api.js';

test('every command is declared with a unique name, a description and described arguments', (t) => {
  const names = commandList.map((c) => c.name);
  t.is(new Set(names).size, names.length);
  for (const command of commandList) {
    t.true(command.description.length > 10, command.name);
    for (const [name, spec] of Object.entries(command.args)) t.true(spec.description.length > 0, `${command.name} ${name}`);
  }
  t.true(commandList.filter((c) => c.needs === 'either').every((c) => c.name.startsWith('user.') || c.name.startsWith('invite.')), 'only account and invitation commands run without the server');
});

test('the CLI usage line comes from the declaration', (t) => {
  t.is(usage(userAdd), 'user add <jid> [--password <password>]');
  t.is(usage(sessionsKick), 'sessions kick <jid> [--reason <reason>] [--not-authorized]');
});

test('arguments are validated and coerced from the strings a CLI or a form sends', (t) => {
  t.deepEqual(parseArgs(sessionsKick, { jid: 'alice@localhost', 'not-authorized': '1' }), { jid: 'alice@localhost', 'not-authorized': true });
  const missing = t.throws(() => parseArgs(userAdd, { jid: 'alice@localhost' }), { instanceOf: CommandError });
  t.regex(missing.message, /^user\.add: password: /);
  t.throws(() => parseArgs(userAdd, { jid: 'a@b', password: 'x', colour: 'red' }), { instanceOf: CommandError });
});

test('text that would go into a stanza may not hold a character XML cannot carry', (t) => {
  t.deepEqual(parseArgs(announce, { text: 'line one\nline two\ttabbed' }), { text: 'line one\nline two\ttabbed' });
  for (const bad of ['bell\u0007', 'nul\u0000', '\uffff']) {
    const refused = t.throws(() => parseArgs(announce, { text: bad }), { instanceOf: CommandError });
    t.regex(refused.message, /^announce: text: contains a control character that XML cannot carry/);
  }
  // a password never goes into XML: what it may contain is SASL's business
  t.notThrows(() => parseArgs(userAdd, { jid: 'a@b', password: 'p\u0007ss' }));
});

test('the OpenAPI description has a POST per command with its arguments', (t) => {
  const doc = openApiDocument('1.2.3') as { paths: Record<string, { post: { requestBody: { content: { 'application/json': { schema: { properties: Record<string, { type: string }> } } } } } }> };
  t.is(Object.keys(doc.paths).length, commandList.length);
  t.deepEqual(doc.paths['/admin/api/sessions.kick']!.post.requestBody.content['application/json'].schema.properties['not-authorized'], { type: 'boolean', description: sessionsKick.args['not-authorized'].description });
});
