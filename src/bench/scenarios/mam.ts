// Scenario "mam": message archive queries (XEP-0313) on a big archive. One account's archive is
// filled with --mam-messages messages (1,000,000 by default) with --mam-peers contacts over the
// last --mam-days days, written straight into the running server's SQLite file in large
// transactions (untimed; skipped when the archive is already that big). Then, over real XMPP,
// --mam-queries of each shape are timed from the IQ sent to its result (every <result/> before it):
//   last_page     the last page of one conversation (<before/> empty), as a chat window opens
//   week_paging   a new device paging back through the last week of a conversation, page by page
//   window        a start/end window of one hour somewhere in the archive
//   ids           a lookup of 10 ids (XEP-0313 #extended)
import { randomInt } from 'node:crypto';
import { accountNames, closeAll, loginAll, registerAccounts, type BenchContext } from '../clients.js';
import type { XmppConnection } from '../connection.js';
import { escapeXml, type Stanza } from '../framing.js';
import { CpuMeter } from '../cpu.js';
import { LatencyRecorder, ratio, round, type LatencySummary } from '../stats.js';
import { openDatabase } from '../../storage/db.js';
import { IDS_PER_MS } from '../../modules/mam/store.js';

const NS_MAM = 'urn:xmpp:mam:2';
const NS_RSM = 'http://jabber.org/protocol/rsm';
const DAY = 86_400_000;
const ROWS_PER_STATEMENT = 500;
const ROWS_PER_TRANSACTION = 50_000;

interface Fin {
  complete: boolean;
  first: string | undefined;
}

/** Fills `owner`'s archive to `total` messages unless it holds that many already; returns how many were written. */
async function generate(ctx: BenchContext, owner: string, peers: string[]): Promise<{ written: number; seconds: number }> {
  const o = ctx.options;
  const db = await openDatabase({ driver: 'sqlite', sqliteFile: o.mamDb });
  const t0 = performance.now();
  try {
    // the server holds the file open too: wait for its writes rather than fail
    await db.raw('PRAGMA busy_timeout = 10000');
    // owners and peers are interned (mam_jid, src/modules/mam/store.ts)
    await db('mam_jid').insert([owner, ...peers].map((jid) => ({ jid }))).onConflict('jid').ignore();
    const numbers = new Map<string, number>();
    for (const row of (await db('mam_jid').whereIn('jid', [owner, ...peers]).select('id', 'jid')) as Array<{ id: number; jid: string }>) numbers.set(row.jid, Number(row.id));
    const ownerId = numbers.get(owner)!;
    const existing = Number(((await db('mam_entry').where('owner_id', ownerId).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
    if (existing >= o.mamMessages) return { written: 0, seconds: 0 };
    const end = Date.now() - 60_000;
    const span = o.mamDays * DAY;
    const step = span / o.mamMessages;
    const host = o.domain;
    ctx.log(`mam: writing ${o.mamMessages} messages into ${owner}'s archive in ${o.mamDb}`);
    for (let done = 0; done < o.mamMessages;) {
      await db.transaction(async (trx) => {
        const stop = Math.min(o.mamMessages, done + ROWS_PER_TRANSACTION);
        for (; done < stop;) {
          const messages = [];
          const entries = [];
          for (const last = Math.min(stop, done + ROWS_PER_STATEMENT); done < last; done++) {
            const peer = peers[done % peers.length]!;
            const time = Math.floor(end - span + done * step);
            const outgoing = done % 2 === 0;
            const from = outgoing ? `${owner}/bench` : `${peer}/phone`;
            const to = outgoing ? peer : owner;
            // ids are time * 1024 + a counter, as the server makes them (src/modules/mam/store.ts)
            const id = time * IDS_PER_MS + (done % IDS_PER_MS);
            messages.push({
              id, host, owner_a: ownerId, owner_b: 0,
              stanza: `<message xmlns="jabber:client" from="${from}" to="${to}" type="chat" id="g${done}"><body>Archived message number ${done}, with a body of ordinary length for a chat.</body></message>`,
            });
            entries.push({ owner_id: ownerId, id, with_id: numbers.get(peer)!, with_resource: outgoing ? '' : 'phone', nonce: randomInt(2 ** 25) });
          }
          await trx('mam_message').insert(messages);
          await trx('mam_entry').insert(entries);
        }
      });
      ctx.log(`mam: ${done} written`);
    }
    return { written: o.mamMessages - existing, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await db.destroy();
  }
}

export async function runMam(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const [user] = accountNames(o, 'mam', 1);
  const owner = `${user}@${o.domain}`;
  const peers = Array.from({ length: o.mamPeers }, (_, i) => `${o.prefix}peer${i}@${o.domain}`);
  const registration = await registerAccounts(ctx, [user!]);
  if (registration.ready.size === 0) throw new Error(`the account could not be registered: ${JSON.stringify(registration.failed.toJSON())}`);
  const generated = o.mamDb === '' ? { written: 0, seconds: 0 } : await generate(ctx, owner, peers);

  let connections: (XmppConnection | null)[] = [];
  try {
    const login = await loginAll(ctx, [user!], 1);
    connections = login.connections;
    const conn = connections[0];
    if (!conn) throw new Error(`could not log in: ${JSON.stringify(login.failed.toJSON())}`);

    let results = 0;
    let lastIds: string[] = [];
    conn.onStanza = (s: Stanza) => {
      if (s.name !== 'message') return;
      const match = /<result xmlns="urn:xmpp:mam:2"[^>]* id="([^"]+)"/.exec(s.xml);
      if (match) {
        results++;
        lastIds.push(match[1]!);
      }
    };
    let sequence = 0;
    const field = (name: string, value: string) => `<field var='${name}'><value>${escapeXml(value)}</value></field>`;
    /** One query, timed; returns the fin's flags. */
    async function query(fields: string, rsm: string, recorder: LatencyRecorder): Promise<Fin> {
      const id = `mam${++sequence}`;
      lastIds = [];
      const t0 = performance.now();
      const reply = await conn!.iq(
        `<iq type='set' id='${id}'><query xmlns='${NS_MAM}' queryid='${id}'><x xmlns='jabber:x:data' type='submit'>${field('FORM_TYPE', NS_MAM)}${fields}</x>`
          + `<set xmlns='${NS_RSM}'><max>${o.mamPage}</max>${rsm}</set></query></iq>`,
        id,
        'MAM query',
      );
      recorder.add(performance.now() - t0);
      return { complete: /complete=["']true["']/.test(reply.xml), first: /<first[^>]*>([^<]+)<\/first>/.exec(reply.xml)?.[1] };
    }

    const conversation = peers[0]!;
    ctx.log(`mam: ${o.mamQueries} queries of each shape on ${owner}'s archive`);
    const meter = new CpuMeter(o.pids);
    const lastPage = new LatencyRecorder();
    for (let i = 0; i < o.mamQueries; i++) await query(field('with', conversation), '<before/>', lastPage);
    const lastPageResults = results;

    const paging = new LatencyRecorder();
    const weekAgo = new Date(Date.now() - 7 * DAY).toISOString();
    let walks = 0;
    let pagedMessages = 0;
    const idSample: string[] = [];
    // walk back through the week of one conversation, page by page, until enough pages are timed
    while (paging.count < o.mamQueries) {
      walks++;
      let before = '';
      for (;;) {
        const fin = await query(field('with', peers[walks % peers.length]!) + field('start', weekAgo), `<before>${before}</before>`, paging);
        pagedMessages += lastIds.length;
        if (idSample.length < 1000) idSample.push(...lastIds);
        if (fin.complete || fin.first === undefined || paging.count >= o.mamQueries) break;
        before = fin.first;
      }
    }

    const window = new LatencyRecorder();
    const archiveStart = Date.now() - o.mamDays * DAY;
    for (let i = 0; i < o.mamQueries; i++) {
      const start = archiveStart + Math.random() * (o.mamDays * DAY - 3_600_000);
      await query(field('start', new Date(start).toISOString()) + field('end', new Date(start + 3_600_000).toISOString()), '', window);
    }

    const ids = new LatencyRecorder();
    let idsFound = 0;
    for (let i = 0; i < o.mamQueries && idSample.length > 0; i++) {
      const wanted = Array.from({ length: 10 }, () => idSample[randomInt(idSample.length)]!);
      await query(`<field var='ids'>${wanted.map((w) => `<value>${w}</value>`).join('')}</field>`, '', ids);
      idsFound += lastIds.length;
    }

    const cpu = meter.stop();
    const queries = lastPage.count + paging.count + window.count + ids.count;
    const summary = (r: LatencyRecorder): LatencySummary => r.summary(3);
    return {
      scenario: 'mam',
      archive_owner: owner,
      archive_messages: o.mamMessages,
      generated: generated.written,
      generate_s: round(generated.seconds, 1),
      page_size: o.mamPage,
      queries_per_shape: o.mamQueries,
      last_page: { ...summary(lastPage), results: lastPageResults },
      week_paging: { ...summary(paging), walks, messages: pagedMessages },
      window: summary(window),
      ids: { ...summary(ids), found: idsFound },
      total_results: results,
      queries_per_s: round(queries / (cpu.wall_ms / 1000), 1),
      server_cpu_ms_per_query: ratio(cpu.server_cpu_ms, queries, 3),
    };
  } finally {
    await closeAll(connections);
  }
}
