// XEP-0050 Ad-Hoc Commands with the XEP-0133 Service Administration set, generated from the
// admin command registry (src/control): each command a host's admins may run is a command node,
// its typed arguments a data form (XEP-0004). Only JIDs in the host's `admins` list see or run
// them; anyone else gets <forbidden/>. Also sends the message of the day (XEP-0133 §4.24) to each
// user who comes online.
import { randomBytes } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { parseJid, type Jid } from '../../core/jid.js';
import { StanzaError } from '../../core/stanza.js';
import { commandList } from '../../control/commands.js';
import { CommandError, parseArgs, type AnyCommand, type ArgSpec, type ArgType } from '../../control/registry.js';
import { MotdStore, headline, motdMigrations } from './motd.js';

const NS_COMMANDS = 'http://jabber.org/protocol/commands';
const NS_DATA = 'jabber:x:data';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
/** XEP-0133 §3: its commands' nodes and their forms' FORM_TYPE. */
const NS_ADMIN = 'http://jabber.org/protocol/admin';
/** Registry commands without a XEP-0133 counterpart. */
const NS_XMPPD = 'urn:xmppd:admin';
/** An unfinished multi-stage command is forgotten after this. */
const SESSION_LIFETIME_MS = 10 * 60_000;

const FIELD_TYPES: Record<ArgType, string> = {
  jid: 'jid-single', jids: 'jid-multi', string: 'text-single', text: 'text-multi', password: 'text-private', boolean: 'boolean', integer: 'text-single',
};

function nodeOf(command: AnyCommand): string {
  return command.xep0133 !== undefined ? `${NS_ADMIN}#${command.xep0133}` : `${NS_XMPPD}#${command.name}`;
}

function fieldVar(name: string, spec: ArgSpec): string {
  return spec.field ?? name;
}

/** The command's arguments as a form to fill in (XEP-0004 §3.1). */
function argumentForm(command: AnyCommand): Element {
  const form = new Element('x', { xmlns: NS_DATA, type: 'form' });
  form.c('title').t(command.description);
  form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(command.xep0133 !== undefined ? NS_ADMIN : NS_XMPPD);
  for (const [name, spec] of Object.entries(command.args)) {
    const field = form.c('field', { var: fieldVar(name, spec), type: FIELD_TYPES[spec.type], label: spec.description });
    if (!spec.optional) field.c('required');
  }
  return form;
}

/** The submitted values, by argument name; text-multi lines joined, jid-multi as a list. */
function submittedArgs(command: AnyCommand, form: Element): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(command.args)) {
    const field = form.getChildren('field').find((f) => f.attrs.var === fieldVar(name, spec));
    const values = field?.getChildren('value').map((v) => v.getText()) ?? [];
    if (values.length === 0 || (values.length === 1 && values[0] === '')) continue;
    args[name] = spec.type === 'jids' ? values : spec.type === 'text' ? values.join('\n') : values[0];
  }
  return args;
}

/** The result as a form (XEP-0004 type result), with XEP-0133's field names where it has them. */
function resultForm(command: AnyCommand, result: unknown): Element {
  const form = new Element('x', { xmlns: NS_DATA, type: 'result' });
  form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(command.xep0133 !== undefined ? NS_ADMIN : NS_XMPPD);
  // XEP-0133 §4.21 and §4.19: the JIDs as a jid-multi field
  const jidsVar = command.xep0133 === 'get-online-users-list' ? 'onlineuserjids' : command.xep0133 === 'get-registered-users-list' ? 'registereduserjids' : undefined;
  if (jidsVar !== undefined && Array.isArray(result)) {
    const field = form.c('field', { var: jidsVar, type: 'jid-multi' });
    for (const item of result as unknown[]) field.c('value').t(typeof item === 'string' ? item : String((item as { jid?: unknown }).jid));
  }
  const text = command.format !== undefined ? command.format(result) : JSON.stringify(result, null, 2);
  const field = form.c('field', { var: 'result', type: 'text-multi', label: command.name });
  for (const line of text.split('\n')) field.c('value').t(line);
  return form;
}

/**
 * A command another module offers (XEP-0401's invitations): single stage, no arguments, run for
 * a user of this host (`admin`: only for its admins); it returns its result form.
 */
export interface ModuleCommand {
  node: string;
  name: string;
  admin: boolean;
  run(from: Jid): Promise<Element>;
}

/** `adhoc/commands`: modules push the commands they offer (asked at each request, so load order does not matter). */
export interface AdhocCommandsEvent {
  commands: ModuleCommand[];
}

declare module '../../core/event-map.js' {
  interface EventMap {
    'adhoc/commands': AdhocCommandsEvent;
  }
}

export default defineModule({
  name: 'adhoc',
  description: 'Ad-hoc commands: the server administration commands for the host\'s admins, from any XMPP client; the message of the day',
  implements: [
    { spec: 'XEP-0050', version: '1.3.0', status: 'complete', note: 'single-stage commands: one form, then the result' },
    { spec: 'XEP-0133', version: '1.3.1', status: 'partial', note: 'add-user, delete-user, disable-user, reenable-user, change-user-password, end-user-session, get-online-users-list, get-registered-users-list, announce, set-motd, delete-motd; plus every other admin command of the registry' },
  ],
  dependencies: ['disco'],
  migrations: motdMigrations,
  async setup(m) {
    const domain = m.host.domain;
    const motd = new MotdStore(m.db, domain);
    await motd.load();
    m.provide('adhoc', { setMotd: (subject, body) => motd.set(subject, body) });
    // XEP-0133 §4.24: "sent to users when they log in"; on initial presence, when they can take it
    m.on('presence/initial', ({ session }) => {
      if (motd.current !== null) m.deliver(session, headline(domain, session.jid.toString(), motd.current.subject, motd.current.body));
    });

    /** Commands an XMPP admin may run (`local` ones, such as reload, stay on the machine). */
    const available = commandList.filter((c) => c.access === 'admin');
    const byNode = new Map(available.map((c) => [nodeOf(c), c]));
    const sessions = new Map<string, { node: string; from: string; started: number }>();
    const isAdmin = (bare: string) => m.host.isAdmin(bare);

    m.feature(NS_COMMANDS);

    /** The commands other modules offer `from` (a user of this host; some only to admins). */
    const moduleCommands = (from: string): ModuleCommand[] => {
      if (parseJid(from)?.domain !== domain) return [];
      const event: AdhocCommandsEvent = { commands: [] };
      m.host.events.fire('adhoc/commands', event);
      return event.commands.filter((c) => !c.admin || isAdmin(from));
    };

    // XEP-0050 §2.2: the command list is the disco#items of the commands node
    m.on('disco/items-node', ({ node, from }) => {
      if (node !== NS_COMMANDS) return undefined;
      const query = new Element('query', { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS });
      for (const command of moduleCommands(from)) query.c('item', { jid: domain, node: command.node, name: command.name });
      if (isAdmin(from)) for (const command of available) query.c('item', { jid: domain, node: nodeOf(command), name: command.description });
      return query;
    });
    // §2.3: each command node answers disco#info
    m.on('disco/info-node', ({ node, from }) => {
      const offered = moduleCommands(from).find((c) => c.node === node);
      if (offered !== undefined) {
        const info = new Element('query', { xmlns: NS_DISCO_INFO, node });
        info.c('identity', { category: 'automation', type: 'command-node', name: offered.name });
        info.c('feature', { var: NS_COMMANDS });
        info.c('feature', { var: NS_DATA });
        return info;
      }
      if (!byNode.has(node)) return undefined;
      if (!isAdmin(from)) throw new StanzaError('forbidden', 'Only the server\'s admins may run this command');
      const query = new Element('query', { xmlns: NS_DISCO_INFO, node });
      query.c('identity', { category: 'automation', type: 'command-node', name: byNode.get(node)!.description });
      query.c('feature', { var: NS_COMMANDS });
      query.c('feature', { var: NS_DATA });
      return query;
    });

    m.iq('set', NS_COMMANDS, async ({ payload, from }) => {
      const node = payload.attrs.node ?? '';
      const offered = moduleCommands(from.bare).find((c) => c.node === node);
      if (offered !== undefined) {
        // single stage: executed at once (XEP-0050 §3.2), its result form in the completed reply
        if (payload.attrs.action === 'cancel') throw new StanzaError('bad-request', 'No command session to cancel');
        const completed = new Element('command', { xmlns: NS_COMMANDS, node, sessionid: randomBytes(12).toString('hex'), status: 'completed' });
        completed.append(await offered.run(from));
        m.log.info({ user: from.bare, command: node }, 'ad-hoc command done');
        return completed;
      }
      const command = byNode.get(node);
      if (command === undefined) throw new StanzaError('item-not-found', `No command ${node}`);
      // XEP-0133 §2: only the service's administrators
      if (!isAdmin(from.bare)) {
        m.log.warn({ from: from.toString(), node }, 'ad-hoc admin command refused: not an admin');
        throw new StanzaError('forbidden', 'Only the server\'s admins may run this command');
      }
      const action = payload.attrs.action ?? 'execute';
      const now = Date.now();
      for (const [id, s] of sessions) if (now - s.started > SESSION_LIFETIME_MS) sessions.delete(id);
      const reply = (status: string, sessionid: string) => new Element('command', { xmlns: NS_COMMANDS, node, sessionid, status });

      let sessionid = payload.attrs.sessionid;
      if (sessionid !== undefined) {
        const known = sessions.get(sessionid);
        // §4.4: an unknown or someone else's session
        if (known === undefined || known.node !== node || known.from !== from.toString()) throw new StanzaError('bad-request', 'No such command session');
        sessions.delete(sessionid);
        if (action === 'cancel') return reply('canceled', sessionid);
      } else {
        if (action === 'cancel') throw new StanzaError('bad-request', 'No command session to cancel');
        sessionid = randomBytes(12).toString('hex');
        // §3.3: a command with arguments starts by sending its form
        if (Object.keys(command.args).length > 0) {
          sessions.set(sessionid, { node, from: from.toString(), started: now });
          const executing = reply('executing', sessionid);
          executing.c('actions', { execute: 'complete' }).c('complete');
          executing.append(argumentForm(command));
          return executing;
        }
      }
      const submitted = payload.getChild('x', NS_DATA);
      if (Object.keys(command.args).length > 0 && (submitted === undefined || submitted.attrs.type !== 'submit')) throw new StanzaError('bad-request', 'The command needs its form submitted');
      const context = m.server.extensions.admin?.([domain]);
      if (context === undefined) throw new StanzaError('service-unavailable', 'Admin commands are not available on this server');
      const completed = reply('completed', sessionid);
      try {
        const args = parseArgs(command, submitted === undefined ? {} : submittedArgs(command, submitted));
        const result = await command.run(context, args);
        m.log.info({ admin: from.bare, command: command.name }, 'ad-hoc admin command done');
        completed.c('note', { type: 'info' }).t(command.format !== undefined ? command.format(result).split('\n')[0] ?? 'done' : 'done');
        completed.append(resultForm(command, result));
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        // §4.6: the command ran and refused; the reason for the admin to read
        completed.c('note', { type: 'error' }).t(err.message);
      }
      return completed;
    });
  },
});
