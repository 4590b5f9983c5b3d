// Reads a Prosody 0.12 data directory (its `internal` storage: mod_storage_internal over
// util.datamanager) into the import sink. Layout: <data>/<host>/<store>/<user>.dat (a Lua table
// after `return`) or .list (one `item({...});` per archived entry), host, store and user names
// percent-encoded (%2e for '.', every byte outside [A-Za-z0-9]). Stores read: accounts, roster,
// vcard, private, offline, archive (MAM), pep and pep_<node>. Files are Lua literals read by
// src/migrate/lua.ts, never run; `.list` files are read entry by entry.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import Element from 'ltx/lib/Element.js';
import type { NodeConfig } from '../modules/pubsub/config.js';
import type { RosterItem } from '../modules/roster/store.js';
import { isTable, luaBytes, luaText, LuaSyntaxError, parseLuaItems, parseLuaReturn, type LuaTable, type LuaValue } from './lua.js';
import { ImportError, type AccountSecret, type ImportSink } from './sink.js';

/** Stores read from the account's other files; any other store is named in the report as left out. */
const KNOWN_STORES = new Set(['accounts', 'roster', 'vcard', 'private', 'offline', 'archive', 'pep']);
/** Bookkeeping stores of Prosody's own that hold nothing to carry over. */
const NOTHING_TO_CARRY = new Set(['archive_cleanup', 'cron', 'smacks_h', 'lastlog', 'lastlog2', 'account_details', 'account_roles', 'roster_versions']);

/** util.datamanager's encoding: %xx for each byte outside [A-Za-z0-9]. */
export function decodeProsodyName(name: string): string {
  return Buffer.from(name.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
}

export function encodeProsodyName(name: string): string {
  return [...Buffer.from(name, 'utf8')].map((b) => (/[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');
}

export class ProsodyReader {
  constructor(private readonly sink: ImportSink) {}

  async read(dataDir: string): Promise<void> {
    let hosts: fs.Dirent[];
    try {
      hosts = fs.readdirSync(dataDir, { withFileTypes: true }).filter((d) => d.isDirectory());
    } catch (err) {
      throw new ImportError(`cannot read the Prosody data directory ${dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!hosts.some((d) => fs.existsSync(path.join(dataDir, d.name, 'accounts')))) {
      throw new ImportError(`${dataDir} has no <host>/accounts folder: not a Prosody data directory with internal storage (data_path in prosody.cfg.lua)`);
    }
    for (const dir of hosts.sort((a, b) => a.name.localeCompare(b.name))) {
      const host = decodeProsodyName(dir.name);
      const hostDir = path.join(dataDir, dir.name);
      if (!fs.existsSync(path.join(hostDir, 'accounts'))) continue;
      if (!this.sink.servesHost(host)) continue;
      await this.readHost(host, hostDir);
    }
  }

  private async readHost(host: string, hostDir: string): Promise<void> {
    const stores = fs.readdirSync(hostDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    const pepStores = stores.filter((s) => decodeProsodyName(s).startsWith('pep_'));
    for (const store of stores) {
      const name = decodeProsodyName(store);
      if (!KNOWN_STORES.has(name) && !name.startsWith('pep_') && !NOTHING_TO_CARRY.has(name)) this.sink.ignored(`Prosody store "${name}" (not carried over)`);
    }
    const accountFiles = fs.readdirSync(path.join(hostDir, 'accounts')).filter((f) => f.endsWith('.dat')).sort();
    for (const file of accountFiles) {
      const encoded = file.slice(0, -'.dat'.length);
      const name = decodeProsodyName(encoded);
      const at = path.join(hostDir, 'accounts', file);
      const username = await this.sink.account(host, name, accountSecret(readDat(at), at, this.sink));
      if (username === null) continue;
      const file_ = (store: string, ext: '.dat' | '.list') => path.join(hostDir, store, `${encoded}${ext}`);

      const roster = readDatIfAny(file_('roster', '.dat'));
      if (roster !== undefined) await this.roster(host, username, roster);
      const vcard = readDatIfAny(file_('vcard', '.dat'));
      if (isTable(vcard)) await this.sink.vcard(host, username, toElement(vcard, file_('vcard', '.dat')));
      const priv = readDatIfAny(file_('private', '.dat'));
      if (isTable(priv)) {
        await this.sink.privateXml(host, username, [...priv.values()].filter(isTable).map((t) => toElement(t, file_('private', '.dat'))));
      }
      await readList(file_('offline', '.list'), async (item, at_) => {
        const { stanza, when } = archived(item, at_);
        await this.sink.offline(host, username, stanza, when ?? Date.now());
      });
      await readList(file_('archive', '.list'), async (item, at_) => {
        const { stanza, when } = archived(item, at_);
        if (stanza.name !== 'message') return;
        await this.sink.archive(host, username, stanza, when ?? Date.now());
      });
      const pep = readDatIfAny(file_('pep', '.dat'));
      if (isTable(pep)) {
        for (const [node, data] of pep) {
          if (typeof node !== 'string' || !isTable(data)) continue;
          await this.sink.pepNode(host, username, luaText(node)!, nodeConfig(data.get('config')));
        }
      }
      for (const store of pepStores) {
        const node = decodeProsodyName(store).slice('pep_'.length);
        await readList(path.join(hostDir, store, `${encoded}.list`), async (item, at_) => {
          const { stanza, when, key } = archived(item, at_);
          if (key === undefined) return;
          await this.sink.pepItem(host, username, node, key, stanza, when);
        });
      }
    }
  }

  private async roster(host: string, username: string, roster: LuaValue): Promise<void> {
    if (!isTable(roster)) return;
    const items: RosterItem[] = [];
    const pendingIn: Array<{ jid: string; status: string | null }> = [];
    for (const [key, value] of roster) {
      if (!isTable(value)) continue;
      if (key === false) {
        // [false] = { version, pending = { [jid] = true or the request's presence } }
        const pending = value.get('pending');
        if (isTable(pending)) {
          for (const [jid, request] of pending) {
            if (typeof jid !== 'string') continue;
            const status = isTable(request) ? statusOf(request) : null;
            pendingIn.push({ jid: luaText(jid)!, status });
          }
        }
        continue;
      }
      if (typeof key !== 'string') continue;
      const groups = value.get('groups');
      items.push({
        jid: luaText(key)!,
        name: luaText(value.get('name')) ?? null,
        subscription: (luaText(value.get('subscription')) ?? 'none') as RosterItem['subscription'],
        ask: luaText(value.get('ask')) === 'subscribe',
        groups: isTable(groups) ? [...groups.keys()].filter((g): g is string => typeof g === 'string').map((g) => luaText(g)!) : [],
      });
    }
    await this.sink.roster(host, username, items, pendingIn);
  }
}

/** What the accounts store holds: SCRAM keys (internal_hashed: SHA-1 in 0.12), or a password (internal_plain). */
function accountSecret(account: LuaValue, file: string, sink: ImportSink): AccountSecret {
  if (!isTable(account)) return { kind: 'none' };
  const storedKey = luaText(account.get('stored_key'));
  const serverKey = luaText(account.get('server_key'));
  const salt = luaBytes(account.get('salt'));
  const iterations = account.get('iteration_count');
  const hex = /^[0-9a-fA-F]{40}$/;
  if (storedKey !== undefined && serverKey !== undefined && salt !== undefined && typeof iterations === 'number') {
    if (hex.test(storedKey) && hex.test(serverKey) && Number.isInteger(iterations) && iterations > 0) {
      const b64 = (h: string) => Buffer.from(h, 'hex').toString('base64');
      return { kind: 'scram', credentials: { sha1: { salt: salt.toString('base64'), iterations, storedKey: b64(storedKey), serverKey: b64(serverKey) } } };
    }
    sink.ignored(`${file}: SCRAM data that is not SHA-1 (Prosody 0.12 hashes with SHA-1): that account has no password`);
  }
  const password = luaText(account.get('password'));
  if (password !== undefined && password !== '') return { kind: 'password', password };
  return { kind: 'none' };
}

function nodeConfig(config: LuaValue | undefined): Partial<NodeConfig> | undefined {
  if (!isTable(config)) return undefined;
  const out: Partial<NodeConfig> = {};
  const text = (k: string) => luaText(config.get(k));
  const max = config.get('max_items');
  if (typeof max === 'number' && Number.isInteger(max) && max > 0) out.max_items = max;
  else if (text('max_items') === 'max') out.max_items = 'max';
  const bool = (k: 'persist_items' | 'deliver_payloads' | 'deliver_notifications' | 'notify_retract' | 'notify_delete' | 'notify_config') => {
    const v = config.get(k);
    if (typeof v === 'boolean') out[k] = v;
  };
  for (const k of ['persist_items', 'deliver_payloads', 'deliver_notifications', 'notify_retract', 'notify_delete', 'notify_config'] as const) bool(k);
  const access = text('access_model');
  if (access === 'open' || access === 'presence' || access === 'roster' || access === 'whitelist') out.access_model = access;
  const publish = text('publish_model');
  if (publish === 'publishers' || publish === 'subscribers' || publish === 'open') out.publish_model = publish;
  const send = text('send_last_published_item');
  if (send === 'never' || send === 'on_sub' || send === 'on_sub_and_presence') out.send_last_published_item = send;
  if (text('title') !== undefined) out.title = text('title')!;
  return out;
}

function statusOf(presence: LuaTable): string | null {
  for (const [key, child] of presence) {
    if (typeof key === 'number' && isTable(child) && luaText(child.get('name')) === 'status') {
      const text = child.get(1);
      return luaText(text) ?? null;
    }
  }
  return null;
}

/** An archive entry (st.preserialize of the stanza plus key, when, with) as a stanza and its time (ms). */
function archived(item: LuaValue, at: string): { stanza: Element; when: number | undefined; key: string | undefined } {
  if (!isTable(item)) throw new ImportError(`${at}: an entry that is not a table`);
  // 0.12 keeps the fields beside the stanza's; older versions under `value`
  const value = item.get('value');
  const stanza = toElement(isTable(value) ? value : item, at);
  delete stanza.attrs.stamp; // the archive's own time, not the stanza's
  const when = item.get('when');
  return { stanza, when: typeof when === 'number' ? Math.round(when * 1000) : undefined, key: luaText(item.get('key')) };
}

/** util.stanza's preserialized form: { name = , attr = { }, [1..n] = child table or text }. */
function toElement(table: LuaTable, at: string, depth = 0): Element {
  const name = luaText(table.get('name'));
  if (name === undefined || depth > 60) throw new ImportError(`${at}: a stanza table without a name`);
  const attrs: Record<string, string> = {};
  const attr = table.get('attr');
  if (isTable(attr)) {
    for (const [k, v] of attr) if (typeof k === 'string' && typeof v === 'string') attrs[luaText(k)!] = luaText(v)!;
  }
  const element = new Element(name, attrs);
  for (let i = 1; table.has(i); i++) {
    const child = table.get(i)!;
    if (typeof child === 'string') element.t(luaText(child)!);
    else if (isTable(child)) element.append(toElement(child, at, depth + 1));
  }
  return element;
}

function luaProblem(file: string, err: unknown): never {
  if (err instanceof LuaSyntaxError) throw new ImportError(`${file}:${err.line}:${err.column}: ${err.message.replace(/ at line \d+, column \d+$/, '')}`);
  throw err;
}

function readDat(file: string): LuaValue {
  try {
    return parseLuaReturn(fs.readFileSync(file, 'latin1'));
  } catch (err) {
    return luaProblem(file, err);
  }
}

function readDatIfAny(file: string): LuaValue | undefined {
  return fs.existsSync(file) ? readDat(file) : undefined;
}

/**
 * The entries of a `.list` file, one at a time: util.serialization escapes newlines inside
 * strings, so each entry begins on a line of its own starting with `item(`.
 */
async function readList(file: string, each: (item: LuaValue, at: string) => Promise<void>): Promise<void> {
  if (!fs.existsSync(file)) return;
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'latin1' }), crlfDelay: Infinity });
  let buffer: string[] = [];
  let startLine = 1;
  let lineNo = 0;
  const flush = async () => {
    if (buffer.length === 0) return;
    let items: LuaValue[];
    try {
      items = parseLuaItems(buffer.join('\n'), startLine);
    } catch (err) {
      return luaProblem(file, err);
    }
    for (const item of items) await each(item, `${file}:${startLine}`);
    buffer = [];
  };
  for await (const line of lines) {
    lineNo++;
    if (line.startsWith('item(')) {
      await flush();
      startLine = lineNo;
    }
    buffer.push(line);
  }
  await flush();
}
