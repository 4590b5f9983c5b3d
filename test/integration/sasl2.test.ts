// Modern login: SASL2 (XEP-0388) with SCRAM-SHA-256-PLUS, Bind2 (XEP-0386) enabling carbons,
// stream management and CSI in the same round trip, stream resumption inline, and FAST tokens
// (XEP-0484) for the next login in one round trip — by a raw client that computes every proof
// itself, and by @xmpp/client 0.14, which uses all of it when offered.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { connect, xml } from '../helpers/clients.js';
import { startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { NS_SASL, openStream, read, readElement } from '../helpers/wire.js';
import {
  NS_BIND2, NS_CARBONS, NS_CSI, NS_FAST, NS_SASL2, NS_SM, issuedToken, sasl2Scram, sasl2Token, secured, tlsExporter, userAgent,
} from '../helpers/sasl2.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_COMMANDS = 'http://jabber.org/protocol/commands';

let server: TestServer;

test.before(async () => {
  // this file fails logins on purpose (wrong tokens, a downgrade), all from 127.0.0.1
  server = await startServer({ config: { c2s: { auth_throttle: { per_ip: { attempts: 1000 }, per_account_and_ip: { attempts: 1000 }, per_account: { attempts: 1000 } } } } });
  for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'karl', 'liam']) await server.createAccount(name);
});

test.after.always(async () => {
  await server?.stop();
});

function mechanisms(element: Element | undefined): string[] {
  return (element?.getChildren('mechanism') ?? []).map((m) => m.getText());
}

/** Bind2 with carbons, stream management (resumable) and CSI, as Conversations asks. */
const FULL_BIND = `<bind xmlns='${NS_BIND2}'><tag>phone</tag><enable xmlns='${NS_CARBONS}'/><enable xmlns='${NS_SM}' resume='true'/><inactive xmlns='${NS_CSI}'/></bind>`;

/** Logs in with SCRAM-SHA-256-PLUS (tls-exporter), binds with FULL_BIND and asks for a FAST token. */
async function fullLogin(username: string, agent: string, tokenMechanism = 'HT-SHA-256-EXPR', on: TestServer = server) {
  const { wire, socket } = await secured(on);
  const result = await sasl2Scram(wire, 'sha256', username, {
    binding: { type: 'tls-exporter', data: tlsExporter(socket) },
    inline: userAgent(agent) + FULL_BIND + `<request-token xmlns='${NS_FAST}' mechanism='${tokenMechanism}'/>`,
  });
  if (result.outcome !== 'success') throw new Error(`login failed: ${result.condition}`);
  await readElement(wire, 'stream:features');
  return { wire, socket, success: result.success, serverVerified: result.serverVerified };
}

test('SASL2 is offered beside SASL on TLS we terminate, with -PLUS, Bind2 inline features and FAST', async (t) => {
  const { wire, features } = await secured(server);
  t.teardown(() => wire.close());
  const authentication = features.getChild('authentication', NS_SASL2);
  t.truthy(authentication, 'SASL2 offered');
  t.deepEqual(mechanisms(authentication), ['SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  t.deepEqual(mechanisms(features.getChild('mechanisms', NS_SASL)), mechanisms(authentication), 'legacy SASL still offered, the same list');
  const inline = authentication!.getChild('inline')!;
  const bindFeatures = inline.getChild('bind', NS_BIND2)!.getChild('inline')!.getChildren('feature').map((f) => f.attrs.var);
  t.true(bindFeatures.includes(NS_SM) && bindFeatures.includes(NS_CSI) && bindFeatures.includes(NS_CARBONS), bindFeatures.join(' '));
  t.truthy(inline.getChild('sm', NS_SM));
  t.deepEqual(mechanisms(inline.getChild('fast', NS_FAST)), ['HT-SHA-256-EXPR', 'HT-SHA-256-NONE']);
});

test('before TLS, SASL2 is not offered (no channel binding possible), and <authenticate/> is refused', async (t) => {
  const { RawClient } = await import('../helpers/clients.js');
  const wire = await RawClient.open(server, { tls: false });
  t.teardown(() => wire.close());
  const features = await openStream(wire, server.domain);
  t.is(features.getChild('authentication', NS_SASL2), undefined);
  wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='PLAIN'><initial-response>AGFsaWNlAHg=</initial-response></authenticate>`);
  await wire.waitClosed();
  t.pass();
});

test('SCRAM-SHA-256-PLUS with Bind2: one round trip gives a bound session with carbons, stream management and CSI, and a FAST token', async (t) => {
  const { wire, success, serverVerified } = await fullLogin('alice', crypto.randomUUID());
  t.teardown(() => wire.close());
  t.true(serverVerified, 'the server signature in <additional-data/> checks out');
  const jid = success.getChildText('authorization-identifier')!;
  t.regex(jid, /^alice@localhost\/phone\.[A-Za-z0-9_-]{8}$/, 'resource = tag + suffix (XEP-0386 §2.3)');
  const bound = success.getChild('bound', NS_BIND2)!;
  const enabled = bound.getChild('enabled', NS_SM)!;
  t.is(enabled.attrs.resume, 'true');
  t.truthy(enabled.attrs.id);
  const token = issuedToken(success);
  t.truthy(token, 'a FAST token in <success/>');
  t.true(token!.token.length > 64);
  t.true(Date.parse(token!.expiry) > Date.now());

  // the session as the admin sees it: stream management on, and inactive (CSI inline)
  const session = (await server.server.admin!().sessions()).find((s) => s.jid === jid);
  t.true(session?.sm, 'stream management');
  t.true(session?.inactive, 'CSI <inactive/> applied inline');
  t.is(session?.client, 'xmppd tests (test machine)', 'the user agent it named, for the admin');

  // stream management works on the bound stream: an ack request is answered
  wire.write(`<r xmlns='${NS_SM}'/>`);
  t.is((await readElement(wire, 'a')).attrs.h, '0');

  // carbons are on: a message alice sends from another device comes back as a <sent/> copy
  wire.write(`<presence/>`);
  const other = await connect(server, 'alice', { resource: 'laptop' });
  t.teardown(() => other.stop());
  await other.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'carbon-1' }, xml('body', {}, 'hello from the laptop')));
  // (a carbon nests the original <message/>, which readElement cannot delimit: match the copy's wrapper)
  const carbon = await read(wire, /<message[^>]*>\s*<sent xmlns=["']urn:xmpp:carbons:2["'][\s\S]*?<\/sent>\s*<\/message>/);
  t.true(carbon[0].includes('hello from the laptop'), carbon[0]);
});

test('FAST: the next login with the token takes one round trip (HT-SHA-256-EXPR) and binds again', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('bob', agent);
  first.wire.close();
  const token = issuedToken(first.success)!.token;

  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Token(wire, 'bob', token, {
    mechanism: 'HT-SHA-256-EXPR',
    cbData: tlsExporter(socket),
    inline: userAgent(agent) + FULL_BIND,
  });
  t.is(result.outcome, 'success');
  if (result.outcome !== 'success') return;
  t.is(result.challenges, 0, 'no challenge: one round trip');
  t.true(result.serverVerified, 'the responder hash proves the server knows the token');
  t.regex(result.success.getChildText('authorization-identifier')!, /^bob@localhost\/phone\./);
  t.truthy(result.success.getChild('bound', NS_BIND2)?.getChild('enabled', NS_SM));
});

test('FAST: a token is bound to its user agent, its mechanism and the TLS channel (-EXPR)', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('carol', agent);
  first.wire.close();
  const token = issuedToken(first.success)!.token;

  for (const attempt of [
    { label: 'another user agent', agent: crypto.randomUUID(), mechanism: 'HT-SHA-256-EXPR' as const, cb: 'ours' },
    { label: 'another mechanism', agent, mechanism: 'HT-SHA-256-NONE' as const, cb: 'none' },
    { label: 'another TLS channel', agent, mechanism: 'HT-SHA-256-EXPR' as const, cb: 'other' },
  ]) {
    const { wire, socket } = await secured(server);
    const cbData = attempt.cb === 'ours' ? tlsExporter(socket) : attempt.cb === 'other' ? crypto.randomBytes(32) : Buffer.alloc(0);
    const result = await sasl2Token(wire, 'carol', token, { mechanism: attempt.mechanism, cbData, inline: userAgent(attempt.agent) });
    wire.close();
    t.is(result.outcome === 'failure' ? result.condition : 'success', 'not-authorized', attempt.label);
  }
});

test('FAST: rotation keeps the old token until the new one is used; count must grow; invalidate ends it', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('dave', agent, 'HT-SHA-256-NONE');
  first.wire.close();
  const oldToken = issuedToken(first.success)!.token;
  const login = async (token: string, fast = `<fast xmlns='${NS_FAST}'/>`, extra = '') => {
    const { wire } = await secured(server);
    const result = await sasl2Token(wire, 'dave', token, { inline: userAgent(agent) + extra, fast });
    wire.close();
    return result;
  };

  // a login with the token asks for a new one
  const rotated = await login(oldToken, undefined, `<request-token xmlns='${NS_FAST}' mechanism='HT-SHA-256-NONE'/>`);
  t.is(rotated.outcome, 'success');
  const newToken = rotated.outcome === 'success' ? issuedToken(rotated.success)!.token : '';
  t.truthy(newToken);
  t.not(newToken, oldToken);
  t.is((await login(oldToken)).outcome, 'success', 'the old token still works while the new one was never used');
  t.is((await login(newToken, `<fast xmlns='${NS_FAST}' count='5'/>`)).outcome, 'success', 'the new one works');
  t.is((await login(oldToken)).outcome, 'failure', 'once the new one was used, the old one is gone');

  // XEP-0484 replay protection: the same count twice is refused
  t.is((await login(newToken, `<fast xmlns='${NS_FAST}' count='5'/>`)).outcome, 'failure', 'a count that did not grow');
  t.is((await login(newToken, `<fast xmlns='${NS_FAST}' count='6'/>`)).outcome, 'success');

  // the client is done with its token (logging out)
  t.is((await login(newToken, `<fast xmlns='${NS_FAST}' count='7' invalidate='true'/>`)).outcome, 'success');
  t.is((await login(newToken, `<fast xmlns='${NS_FAST}' count='8'/>`)).outcome, 'failure', 'invalidated');
});

test('FAST: a password change voids every token', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('erin', agent, 'HT-SHA-256-NONE');
  first.wire.close();
  const token = issuedToken(first.success)!.token;
  await server.server.accounts.setPassword(server.domain, 'erin', 'a brand new password');
  const { wire } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Token(wire, 'erin', token, { inline: userAgent(agent) });
  t.is(result.outcome === 'failure' ? result.condition : 'success', 'not-authorized');
});

test('SASL2 refuses the downgrade: a client saying "y" while -PLUS was offered', async (t) => {
  const { wire } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Scram(wire, 'sha256', 'alice', { flag: 'y', inline: FULL_BIND });
  t.is(result.outcome, 'failure');
  if (result.outcome === 'failure') {
    t.is(result.condition, 'not-authorized');
    t.is(result.failure.attrs.xmlns, NS_SASL2);
  }
});

test('SASL2: a wrong password fails with <not-authorized/> and the client may try again on the same stream', async (t) => {
  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const wrong = await sasl2Scram(wire, 'sha256', 'frank', { password: 'not the password' });
  t.is(wrong.outcome === 'failure' ? wrong.condition : 'success', 'not-authorized');
  const right = await sasl2Scram(wire, 'sha256', 'frank', { binding: { type: 'tls-exporter', data: tlsExporter(socket) } });
  t.is(right.outcome, 'success');
  if (right.outcome === 'success') t.is(right.success.getChildText('authorization-identifier'), 'frank@localhost', 'no Bind2: the bare JID');
  // §2.6.1: no restart; the features of the authenticated stream follow, legacy binding among them
  const features = await readElement(wire, 'stream:features');
  t.truthy(features.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind'));
  // §3.8: authenticating again is a stream error
  wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='PLAIN'><initial-response>AGZyYW5rAHg=</initial-response></authenticate>`);
  await read(wire, /<stream:error>/);
  t.pass();
});

test('SASL2 resumes a stream-management session inline (XEP-0198 in <authenticate/>) and resends what was not acknowledged', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('grace', agent);
  const previd = first.success.getChild('bound', NS_BIND2)!.getChild('enabled', NS_SM)!.attrs.id!;
  const jid = first.success.getChildText('authorization-identifier')!;
  first.wire.write(`<presence/>`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  first.wire.socket.destroy(); // the connection is lost; the session waits
  // a message arrives while the client is away
  // (not alice: her phone in the test above counts on the only carbon being its own laptop's)
  const sender = await connect(server, 'karl', { resource: 'sender' });
  t.teardown(() => sender.stop());
  await sender.send(xml('message', { to: jid, type: 'chat', id: 'while-away' }, xml('body', {}, 'are you there?')));
  await new Promise((resolve) => setTimeout(resolve, 200));

  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Scram(wire, 'sha256', 'grace', {
    binding: { type: 'tls-exporter', data: tlsExporter(socket) },
    inline: userAgent(agent) + `<resume xmlns='${NS_SM}' previd='${previd}' h='0'/>` + FULL_BIND,
  });
  t.is(result.outcome, 'success', result.outcome === 'failure' ? result.failure.toString() : '');
  if (result.outcome !== 'success') return;
  t.truthy(result.success.getChild('resumed', NS_SM), result.success.toString());
  t.is(result.success.getChild('bound', NS_BIND2), undefined, 'resumed, so not bound afresh');
  t.is(result.success.getChildText('authorization-identifier'), jid, 'the resumed session\'s full JID');
  await readElement(wire, 'stream:features');
  const resent = await readElement(wire, 'message');
  t.is(resent.attrs.id, 'while-away');
});

test('@xmpp/client 0.14 logs in with SASL2 and Bind2, gets a FAST token, and reconnects with it', async (t) => {
  const c = await connect(server, 'bob', { resource: 'desk', bind2: true });
  t.teardown(() => c.stop());
  t.regex(c.jid, /^bob@localhost\/desk\./, 'Bind2: the resource starts with the tag');
  const fast = (c.xmpp as unknown as { fast: { fetch(): Promise<{ token: string; mechanism: string } | undefined> } }).fast;
  const token = await fast.fetch();
  t.is(token?.mechanism, 'HT-SHA-256-NONE');
  // the next login: the FAST mechanism, watched on the wire
  const sent: string[] = [];
  c.xmpp.on('send', (element: unknown) => sent.push(String(element)));
  await c.xmpp.stop();
  await c.xmpp.start();
  t.true(sent.some((s) => s.includes("mechanism=\"HT-SHA-256-NONE\"") || s.includes("mechanism='HT-SHA-256-NONE'")), sent.join('\n'));
  // and the session works: the server answers a ping
  const pong = await c.request(xml('iq', { type: 'get', to: 'localhost', id: 'ping-after-fast' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
});

test('a user lists and revokes their FAST tokens with ad-hoc commands', async (t) => {
  const agent = crypto.randomUUID();
  const first = await fullLogin('liam', agent, 'HT-SHA-256-NONE');
  first.wire.close();
  const token = issuedToken(first.success)!.token;
  const c = await connect(server, 'liam', { resource: 'admin-console' });
  t.teardown(() => c.stop());
  const run = async (node: string) =>
    (await c.request(xml('iq', { type: 'set', to: 'localhost' }, xml('command', { xmlns: NS_COMMANDS, node, action: 'execute' })))).getChild('command', NS_COMMANDS)!;
  const listed = await run('urn:xmppd:fast#list');
  const lines = listed.getChild('x', 'jabber:x:data')!.getChildren('field').flatMap((f) => f.getChildren('value').map((v) => v.getText()));
  t.true(lines.some((line) => line.includes(agent) && line.includes('xmppd tests')), lines.join('\n'));
  await run('urn:xmppd:fast#revoke-all');
  const { wire } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Token(wire, 'liam', token, { inline: userAgent(agent) });
  t.is(result.outcome, 'failure', 'revoked');
});

test('deleting an account deletes its FAST tokens (the account lifecycle cascade)', async (t) => {
  await server.createAccount('heidi');
  const first = await fullLogin('heidi', crypto.randomUUID(), 'HT-SHA-256-NONE');
  first.wire.close();
  const rows = () => server.server.db('fast_tokens').where({ host: server.domain, username: 'heidi' }).count<Array<{ n: number | string }>>({ n: '*' });
  t.is(Number((await rows())[0]!.n), 1);
  await server.server.deleteAccount(server.domain, 'heidi');
  t.is(Number((await rows())[0]!.n), 0);
});

test('the admin lists an account\'s token holders and revokes one device with the CLI (xmppd user tokens / revoke-tokens)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-fast-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  const storage = testStorageConfig(dir);
  fs.writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\nlog:\n  level: silent\nhosts:\n  - domain: localhost\n${storage ? `storage: ${JSON.stringify(storage)}\n` : ''}`);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(root, 'dist', 'src', 'main.js'), '--config', config, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const own = await startServer({ dataDir: dir });
  t.teardown(() => own.stop());
  await own.createAccount('ivan');
  const phone = crypto.randomUUID();
  const laptop = crypto.randomUUID();
  const tokens = new Map<string, string>();
  for (const agent of [phone, laptop]) {
    const login = await fullLogin('ivan', agent, 'HT-SHA-256-NONE', own);
    login.wire.close();
    tokens.set(agent, issuedToken(login.success)!.token);
  }
  const listed = await cli('user', 'tokens', 'ivan@localhost');
  t.is(listed.code, 0, listed.stderr);
  t.true(listed.stdout.includes(phone) && listed.stdout.includes(laptop), listed.stdout);
  const attempt = async (agent: string) => {
    const { wire } = await secured(own);
    const result = await sasl2Token(wire, 'ivan', tokens.get(agent)!, { inline: userAgent(agent) });
    wire.close();
    return result.outcome;
  };
  // used twice (the second login finds the token in the server's memo): the revocation must reach that too
  t.is(await attempt(phone), 'success');
  t.is(await attempt(phone), 'success');
  const revoked = await cli('user', 'revoke-tokens', 'ivan@localhost', '--agent', phone);
  t.is(revoked.code, 0, revoked.stderr);
  t.regex(revoked.stdout, /1 device/);
  t.is(await attempt(phone), 'failure', 'the revoked device');
  t.is(await attempt(laptop), 'success', 'the other device keeps its token');
});
