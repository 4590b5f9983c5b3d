// XEP-0484 Fast Authentication Streamlining Tokens: a client that logged in with its password
// through SASL2 asks for a token (<request-token/>), and logs in with it next time in one round
// trip with an HT-SHA-256 mechanism (draft-schmaus-kitten-sasl-ht) instead of a SCRAM exchange.
// Tokens belong to one account and one client installation (XEP-0388 <user-agent id/>), are
// stored hashed (./store.ts), expire, are rotated, end when the password changes or the account
// goes, and are listed and revoked by their owner (ad-hoc commands) or by the client itself
// (<fast invalidate='true'/>). The SASL exchange is c2s's (c2s/sasl/negotiation.ts); this module
// keeps the tokens and answers its events.
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';
import { duration } from '../../config/units.js';
import type { NegotiatingStream } from '../../c2s/stream.js';
import { tokenMechanisms, type TokenProof } from '../../c2s/sasl/negotiation.js';
import { escapeAttribute } from '../../xml/serialize.js';
import { FastTokenStore, credentialTag, fastMigrations, newToken, type FastDevice, type FastTokenRow } from './store.js';

export const NS_FAST = 'urn:xmpp:fast:0';
const NS_DATA = 'jabber:x:data';
/** How precisely "last used" is kept (ms): to the hour. */
const USED_AT_RESOLUTION = 3600_000;

/** Which of a device's two tokens a stream logged in with. */
interface UsedToken {
  row: FastTokenRow;
  current: boolean;
}

function counter(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

export default defineModule({
  name: 'fast',
  description: 'Login tokens for SASL2 clients: one round trip instead of a password exchange at each reconnection',
  implements: [{ spec: 'XEP-0484', version: '0.3.0', status: 'complete', note: 'HT-SHA-256-NONE and HT-SHA-256-EXPR; tokens per account and user agent, hashed, rotated; no TLS 0-RTT' }],
  migrations: fastMigrations,
  removeAccountData: async ({ db, host, username }) => void (await new FastTokenStore(db).revoke(host, username)),
  options: z.strictObject({
    /** How long a token stays valid after it is issued. */
    token_lifetime: duration().prefault('21d'),
  }),
  setup(m) {
    const store = new FastTokenStore(m.db);
    const domain = m.host.domain;
    // a token used, issued or revoked on another node is read again here
    m.onStop(store.notifyOthers(domain, m.sharedCache('tokens', (key) => store.forget(key))));
    const lifetime = m.options.token_lifetime * 1000;
    const usedBy = new WeakMap<NegotiatingStream, UsedToken>();

    /** The tag of the account's current password, and its disabled state; null when the account is gone. */
    const currentAccount = async (username: string): Promise<{ tag: string; disabled: string | null } | null> => {
      const credentials = await m.server.accounts.credentials(domain, username, 'sha256');
      return credentials === null ? null : { tag: credentialTag(credentials.salt, credentials.storedKey), disabled: credentials.disabled };
    };

    m.on('c2s/sasl2-inline', ({ stream, inline }) => {
      // XEP-0484 §3: the token mechanisms, inline in SASL2's feature
      inline.push(`<fast xmlns='${NS_FAST}'>${tokenMechanisms(stream.channelBinding()).map((mech) => `<mechanism>${mech}</mechanism>`).join('')}</fast>`);
    });

    // --- a login with a token --------------------------------------------------------------
    m.on('c2s/sasl2-token', async ({ stream, username, userAgent, mechanism, authenticate, proves }): Promise<TokenProof | null> => {
      const row = await store.get(domain, username, userAgent);
      // XEP-0484 §4: bound to the mechanism it was issued for
      if (row === undefined || row.mechanism !== mechanism) return null;
      const account = await currentAccount(username);
      if (account === null || row.credential_tag !== account.tag) {
        // the password changed since: every token issued before is void
        await store.revoke(domain, username, userAgent);
        return null;
      }
      const now = Date.now();
      const count = authenticate.getChild('fast', NS_FAST)?.attrs.count;
      const countValue = count === undefined || !/^[0-9]{1,15}$/.test(count) ? null : Number(count);
      const candidates: Array<{ key: string | null; expires: number; seen: number | null; current: boolean }> = [
        { key: row.key, expires: Number(row.expires_at), seen: counter(row.count), current: true },
        { key: row.previous_key, expires: Number(row.previous_expires_at ?? 0), seen: counter(row.previous_count), current: false },
      ];
      for (const candidate of candidates) {
        if (candidate.key === null || candidate.expires <= now) continue;
        const key = Buffer.from(candidate.key, 'base64');
        if (!proves(key)) continue;
        // XEP-0484 §5 (replay, with TLS 0-RTT in mind): a count must grow with each use of a token
        if (countValue !== null && candidate.seen !== null && countValue <= candidate.seen) {
          m.log.warn({ jid: `${username}@${domain}`, count: countValue, seen: candidate.seen }, 'FAST token replayed (count did not grow); refused');
          return null;
        }
        // written only when something changes: a count, the previous token to drop, or a
        // "last used" older than USED_AT_RESOLUTION (a login need not cost a database write)
        const stale = row.used_at === null || now - Number(row.used_at) > USED_AT_RESOLUTION;
        if (candidate.current) {
          if (countValue !== null || row.previous_key !== null || stale) await store.usedCurrent(row, countValue ?? candidate.seen, now);
        } else if (countValue !== null || stale) {
          await store.usedPrevious(row, countValue ?? candidate.seen, now);
        }
        usedBy.set(stream, { row, current: candidate.current });
        return { key, disabled: account.disabled };
      }
      return null;
    });

    // --- after a successful login: issue, rotate or invalidate -------------------------------
    m.on('c2s/sasl2-success', ({ stream, username, userAgent, authenticate, children }) => {
      const used = usedBy.get(stream);
      usedBy.delete(stream);
      const fast = authenticate.getChild('fast', NS_FAST);
      if (used !== undefined && (fast?.attrs.invalidate === 'true' || fast?.attrs.invalidate === '1')) {
        // XEP-0484 §4.3: the client is done with the token it logged in with (e.g. logging out)
        children.push(store.revoke(domain, username, used.row.user_agent).then(() => ''));
        return undefined;
      }
      const request = authenticate.getChild('request-token', NS_FAST);
      if (request === undefined || !userAgent?.id) return undefined;
      const mechanism = request.attrs.mechanism ?? '';
      if (!tokenMechanisms(stream.channelBinding()).includes(mechanism)) {
        m.log.debug({ jid: `${username}@${domain}`, mechanism }, 'FAST token requested for a mechanism not offered here; none issued');
        return undefined;
      }
      // a token is an extra (XEP-0484 leaves issuing one to the server): one that cannot be stored
      // (a full disk) leaves the login as it is, and the client keeps the token it holds, if any
      const agent = { id: userAgent.id, software: userAgent.software, device: userAgent.device };
      children.push(issue(username, agent, mechanism, used).catch((err: unknown) => {
        m.log.warn({ err, jid: `${username}@${domain}`, userAgent: agent.id }, 'FAST token could not be stored; the login goes on without one');
        return '';
      }));
      return undefined;
    });

    async function issue(username: string, agent: { id: string; software: string | null; device: string | null }, mechanism: string, used: UsedToken | undefined): Promise<string> {
      // a token login checked its token's tag against the account's moments ago
      const tag = used?.row.credential_tag ?? (await currentAccount(username))?.tag;
      if (tag === undefined) return '';
      const now = Date.now();
      // the token the client holds stays valid until it has used the new one once (rotation)
      let previous: { key: string; expiresAt: number } | null = null;
      if (used !== undefined) {
        previous = used.current
          ? { key: used.row.key, expiresAt: Number(used.row.expires_at) }
          : { key: used.row.previous_key!, expiresAt: Number(used.row.previous_expires_at) };
      } else {
        const existing = await store.get(domain, username, agent.id);
        if (existing !== undefined && existing.credential_tag === tag && Number(existing.expires_at) > now) {
          previous = { key: existing.key, expiresAt: Number(existing.expires_at) };
        }
      }
      const { token, key } = newToken();
      const expiresAt = now + lifetime;
      await store.issue(
        {
          host: domain,
          username,
          user_agent: agent.id,
          software: agent.software,
          device: agent.device,
          mechanism,
          key: key.toString('base64'),
          expires_at: expiresAt,
          credential_tag: tag,
        },
        previous,
        now,
      );
      m.log.info({ jid: `${username}@${domain}`, userAgent: agent.id, software: agent.software ?? undefined, mechanism }, 'FAST token issued');
      return `<token xmlns='${NS_FAST}' expiry='${new Date(expiresAt).toISOString()}' token='${escapeAttribute(token)}'/>`;
    }

    // --- the owner's view: list and revoke (ad-hoc commands, XEP-0050) ------------------------
    const describe = (device: FastDevice) =>
      `${device.software ?? 'unknown client'}${device.device ? ` on ${device.device}` : ''} (${device.userAgent}): ` +
      `issued ${new Date(device.createdAt).toISOString()}, last used ${device.usedAt === null ? 'never' : new Date(device.usedAt).toISOString()}, ` +
      `valid until ${new Date(device.expiresAt).toISOString()}`;
    const resultForm = (title: string, lines: string[]) => {
      const form = new Element('x', { xmlns: NS_DATA, type: 'result' });
      form.c('title').t(title);
      const field = form.c('field', { var: 'devices', type: 'text-multi', label: title });
      for (const line of lines) field.c('value').t(line);
      return form;
    };
    m.on('adhoc/commands', ({ commands }) => {
      commands.push({
        node: 'urn:xmppd:fast#list',
        name: 'List the devices that can log in without your password (FAST tokens)',
        admin: false,
        run: async (from) => {
          const devices = await store.devices(domain, from.local);
          return resultForm('Devices with a login token', devices.length === 0 ? ['none'] : devices.map(describe));
        },
      });
      commands.push({
        node: 'urn:xmppd:fast#revoke-all',
        name: 'Make every device log in with your password again (revoke all FAST tokens)',
        admin: false,
        run: async (from) => {
          const count = await store.revoke(domain, from.local);
          m.log.info({ jid: from.bare, count }, 'FAST tokens revoked by their owner');
          return resultForm('Login tokens revoked', [`${count} device(s) will ask for the password at their next login`]);
        },
      });
    });

    const sweep = setInterval(() => void store.expire().catch((err: unknown) => m.log.warn({ err }, 'clearing expired FAST tokens failed')), 3600_000);
    sweep.unref();
    m.onStop(() => clearInterval(sweep));
  },
});
