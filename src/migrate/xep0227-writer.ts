// Writes XEP-0227 1.1 (Portable Import/Export): every account of the chosen hosts with its SCRAM
// keys (§4 <scram-credentials/>, both hashes we hold; never a password, which we do not have),
// roster and pending subscription requests, vCard, private XML, offline messages, MAM archive
// (<archive xmlns='urn:xmpp:pie:0#mam'/> of urn:xmpp:mam:2 results) and PEP nodes with their
// items. Streamed: accounts, offline messages and archive rows are read page by page and
// written as they come, waiting for the file to drain, so memory does not grow with the data.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Knex } from 'knex';
import Element from 'ltx/lib/Element.js';
import { AccountStore } from '../accounts/store.js';
import { SCRAM_HASHES, SCRAM_MECHANISMS, type ScramCredentials } from '../accounts/credentials.js';
import { serialize, escapeAttribute } from '../xml/serialize.js';
import { RosterStore } from '../modules/roster/store.js';
import { VcardStore } from '../modules/vcard/store.js';
import { PrivateStore } from '../modules/private/store.js';
import { OfflineStore } from '../modules/offline/store.js';
import { ArchiveStore, idToTime, publicId } from '../modules/mam/store.js';
import { PubsubStore } from '../modules/pubsub/store.js';
import { configForm, parseConfig } from '../modules/pubsub/config.js';
import { NS_PUBSUB, NS_PUBSUB_OWNER } from '../modules/pubsub/ns.js';
import { NS_PIE, NS_PIE_MAM, NS_PIE_SCRAM } from './xep0227-reader.js';
import type { Progress } from './progress.js';

const PAGE = 500;

export interface ExportCounts {
  accounts: number;
  messages: number;
}

export class Xep227Writer {
  readonly counts: ExportCounts = { accounts: 0, messages: 0 };
  private readonly accounts: AccountStore;
  private readonly pubsub: PubsubStore;

  constructor(
    private readonly db: Knex,
    private readonly out: Writable,
    private readonly progress: Progress,
  ) {
    this.accounts = new AccountStore(db);
    this.pubsub = new PubsubStore(db);
  }

  private async write(text: string): Promise<void> {
    if (!this.out.write(text)) await once(this.out, 'drain');
  }

  async writeAll(hosts: readonly string[]): Promise<void> {
    await this.write(`<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='${NS_PIE}'>\n`);
    for (const host of hosts) await this.writeHost(host);
    await this.write('</server-data>\n');
  }

  private async writeHost(host: string): Promise<void> {
    await this.write(`  <host jid="${escapeAttribute(host)}">\n`);
    const stores = {
      roster: new RosterStore(this.db, host),
      vcard: new VcardStore(this.db, host),
      private: new PrivateStore(this.db, host),
      offline: new OfflineStore(this.db, host),
      archive: new ArchiveStore(this.db, host, () => {}, { sqliteDirect: false }),
    };
    for (let after = ''; ;) {
      const page = await this.accounts.listPage(host, after, PAGE);
      for (const username of page) await this.writeUser(host, username, stores);
      if (page.length < PAGE) break;
      after = page.at(-1)!;
    }
    await this.write('  </host>\n');
  }

  private async writeUser(host: string, username: string, stores: {
    roster: RosterStore; vcard: VcardStore; private: PrivateStore; offline: OfflineStore; archive: ArchiveStore;
  }): Promise<void> {
    const held = await this.accounts.heldCredentials(host, username);
    if (held === null) return; // deleted meanwhile
    await this.write(`    <user name="${escapeAttribute(username)}">\n`);
    for (const hash of SCRAM_HASHES) {
      const credentials = held[hash];
      if (credentials !== null) await this.write(`      ${scramElement(SCRAM_MECHANISMS[hash], credentials)}\n`);
    }

    const roster = await stores.roster.load(username);
    stores.roster.evict(username);
    if (roster.items.size > 0) {
      const query = new Element('query', { xmlns: 'jabber:iq:roster' });
      for (const item of roster.items.values()) {
        const el = query.c('item', { jid: item.jid, subscription: item.subscription, ...(item.name ? { name: item.name } : {}), ...(item.ask ? { ask: 'subscribe' } : {}) });
        for (const group of item.groups) el.c('group').t(group);
      }
      await this.write(`      ${serialize(query)}\n`);
    }
    // pending incoming requests, as Prosody and ejabberd export them
    for (const [from, status] of roster.pendingIn) {
      const presence = new Element('presence', { xmlns: 'jabber:client', type: 'subscribe', from, to: `${username}@${host}` });
      if (status) presence.c('status').t(status);
      await this.write(`      ${serialize(presence)}\n`);
    }

    const vcard = await stores.vcard.get(username);
    if (vcard !== undefined) await this.write(`      ${vcard.vcard}\n`);

    const privateItems = await stores.private.list(username);
    if (privateItems.length > 0) await this.write(`      <query xmlns='jabber:iq:private'>${privateItems.map((i) => i.data).join('')}</query>\n`);

    await this.writeOffline(host, username, stores.offline);
    await this.writeArchive(host, username, stores.archive);
    await this.writePep(`${username}@${host}`);
    await this.write('    </user>\n');
    this.counts.accounts++;
    this.progress.tick('accounts');
  }

  private async writeOffline(host: string, username: string, store: OfflineStore): Promise<void> {
    let opened = false;
    for (let after = 0; ;) {
      const page = await store.list(username, PAGE, after);
      for (const message of page) {
        if (!opened) await this.write('      <offline-messages>\n');
        opened = true;
        // XEP-0227 §4.4: each with its XEP-0203 delay, when it was stored
        const delay = `<delay xmlns='urn:xmpp:delay' from="${escapeAttribute(host)}" stamp="${new Date(message.storedAt).toISOString()}">Offline Storage</delay>`;
        await this.write(`        ${insertBeforeEnd(message.stanza, delay)}\n`);
        this.counts.messages++;
        this.progress.tick('messages');
      }
      if (page.length < PAGE) break;
      after = page.at(-1)!.id;
    }
    if (opened) await this.write('      </offline-messages>\n');
  }

  private async writeArchive(host: string, username: string, store: ArchiveStore): Promise<void> {
    const owner = `${username}@${host}`;
    let opened = false;
    for (let minId = 0; ;) {
      const page = await store.page({ owner, minId }, PAGE, false);
      for (const row of page.rows) {
        if (!opened) await this.write(`      <archive xmlns='${NS_PIE_MAM}'>\n`);
        opened = true;
        await this.write(
          `        <result xmlns='urn:xmpp:mam:2' id="${publicId(row.id, row.nonce)}"><forwarded xmlns='urn:xmpp:forward:0'>` +
            `<delay xmlns='urn:xmpp:delay' stamp="${new Date(idToTime(row.id)).toISOString()}"/>${row.stanza}</forwarded></result>\n`,
        );
        this.counts.messages++;
        this.progress.tick('messages');
      }
      if (page.complete || page.rows.length === 0) break;
      minId = page.rows.at(-1)!.id + 1;
    }
    if (opened) await this.write('      </archive>\n');
  }

  /** PEP (XEP-0163): each node's configuration, then its items (as Prosody writes them). */
  private async writePep(service: string): Promise<void> {
    const nodes = await this.pubsub.nodes(service);
    if (nodes.length === 0) return;
    const owner = new Element('pubsub', { xmlns: NS_PUBSUB_OWNER });
    for (const node of nodes) {
      const form = configForm(parseConfig(node.config, true));
      form.attrs.type = 'submit';
      owner.c('configure', { node: node.node }).append(form);
    }
    await this.write(`      ${serialize(owner)}\n      <pubsub xmlns='${NS_PUBSUB}'>\n`);
    for (const node of nodes) {
      await this.write(`        <items node="${escapeAttribute(node.node)}">\n`);
      for (const item of await this.pubsub.items(node.id)) {
        await this.write(`          <item id="${escapeAttribute(item.id)}">${item.payload}</item>\n`);
      }
      await this.write('        </items>\n');
    }
    await this.write('      </pubsub>\n');
  }
}

function scramElement(mechanism: string, credentials: ScramCredentials): string {
  const el = new Element('scram-credentials', { xmlns: NS_PIE_SCRAM, mechanism });
  el.c('iter-count').t(String(credentials.iterations));
  el.c('salt').t(credentials.salt);
  el.c('server-key').t(credentials.serverKey);
  el.c('stored-key').t(credentials.storedKey);
  return serialize(el);
}

/** `<message ...>...</message>` with `child` added last (a self-closed one opened up). */
function insertBeforeEnd(stanza: string, child: string): string {
  if (stanza.endsWith('/>')) {
    const name = /^<([^\s/>]+)/.exec(stanza)?.[1] ?? 'message';
    return `${stanza.slice(0, -2)}>${child}</${name}>`;
  }
  const close = stanza.lastIndexOf('</');
  return `${stanza.slice(0, close)}${child}${stanza.slice(close)}`;
}
