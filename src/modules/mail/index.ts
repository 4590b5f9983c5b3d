// Mail, for what XMPP itself cannot do (issue 14): a forgotten password is reset from a link
// mailed to the account's address, invitations can go out by email, and a user who asked for it
// is told by mail of messages waiting while they stay away (a digest: senders and counts, never
// the messages themselves), unless a phone of theirs gets push notifications. Off until
// `modules.mail.smtp_url` is set. A user sets or clears their own address with the XEP-0077
// <email/> field (the register module asks this service); it is never shown to anyone else.
import { z } from 'zod';
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { normalizeUsername, parseJid } from '../../core/jid.js';
import { HttpError } from '../../http/service.js';
import { PAGE_POLICY, readForm, sendPage } from '../../http/pages.js';
import { duration, durationOrNever } from '../../config/units.js';
import { MailStore, isEmailAddress, mailMigrations } from './store.js';
import { donePage, invalidLinkPage, newPasswordPage, requestPage, unavailablePage } from './pages.js';

declare module '../../core/module.js' {
  interface Services {
    mail: MailService;
  }
}

const HTTP_PREFIX = '/reset';
const MAX_FORM_BYTES = 4096;
/** Without the register module (which sets the rule), the same default. */
const DEFAULT_MIN_PASSWORD_LENGTH = 6;

/** What other modules (register, invites) use of mail. */
export interface MailService {
  /** Whether mail can be sent (smtp_url is set). */
  readonly enabled: boolean;
  send(message: { to: string; subject: string; text: string }): Promise<void>;
  emailOf(username: string): Promise<string | null>;
  /** Sets (or with null, clears) the account's address; throws on one that is not an address. */
  setEmail(username: string, email: string | null): Promise<void>;
}

export const mailOptions = z.strictObject({
  /** smtp://user:password@host:587 (STARTTLS when offered) or smtps://host:465. Missing: no mail. */
  smtp_url: z.string().regex(/^smtps?:\/\//, { error: 'expected a URL like smtp://user:password@mail.example.org:587' }).optional(),
  /** The sender of the server's mail. Missing: xmppd <noreply@HOST>. */
  from: z.string().min(3).optional(),
  /** How long a mailed reset link works. */
  reset_link_ttl: duration().prefault('1h'),
  /** Reset mails one account may be sent per hour, and requests one address may make per hour. */
  resets_per_account: z.number().int().min(1).default(3),
  resets_per_address: z.number().int().min(1).default(10),
  /**
   * Digests (opt-in per account, by an ad-hoc command): a mail when messages have waited this
   * long for an account with no session and no push notifications; never turns them off.
   */
  digest_after: durationOrNever().prefault('12h'),
  /** How often waiting messages are looked at for digests. */
  digest_check_interval: duration().prefault('10m'),
});

const NS_DATA = 'jabber:x:data';
const DIGEST_NODE = 'urn:xmppd:mail#digest';

/** A transport for `smtp_url`, or null without one (the CLI uses it too, for invitations). */
export function mailTransport(smtpUrl: string | undefined): Transporter | null {
  return smtpUrl === undefined ? null : nodemailer.createTransport(smtpUrl);
}

export default defineModule({
  name: 'mail',
  description: 'Mail: password reset by a mailed link, invitations by email (off without modules.mail.smtp_url)',
  implements: [{ spec: 'XEP-0077', version: '2.4', status: 'partial', note: 'the <email/> field of an account, for password reset mails' }],
  migrations: mailMigrations,
  removeAccountData: async ({ db, host, username }) => {
    await db('account_emails').where({ host, username }).delete();
    await db('password_resets').where({ host, username }).delete();
    await db('mail_digests').where({ host, username }).delete();
  },
  options: mailOptions,
  setup(m) {
    const domain = m.host.domain;
    const store = new MailStore(m.db, domain);
    const transport = mailTransport(m.options.smtp_url);
    const from = m.options.from ?? `xmppd <noreply@${domain}>`;
    const recent = new Map<string, number[]>();
    m.onStop(() => transport?.close());

    const service: MailService = {
      enabled: transport !== null,
      async send({ to, subject, text }) {
        if (transport === null) throw new Error('mail is not configured (modules.mail.smtp_url)');
        await transport.sendMail({ from, to, subject, text });
      },
      emailOf: (username) => store.emailOf(username),
      async setEmail(username, email) {
        if (email !== null && !isEmailAddress(email)) throw new Error('not an email address');
        await store.setEmail(username, email);
      },
    };
    m.provide('mail', service);

    /** At most `limit` events per hour for `key`; true when this one is within it. */
    const withinLimit = (key: string, limit: number): boolean => {
      const now = Date.now();
      const times = (recent.get(key) ?? []).filter((t) => t > now - 3600_000);
      if (times.length >= limit) return false;
      times.push(now);
      recent.set(key, times);
      if (recent.size > 10_000) recent.clear(); // a flood of addresses must not grow this without bound
      return true;
    };

    /** Mails a reset link if the account exists, has an address and is within its limit. Never says which. */
    async function mailResetLink(account: string, address: string, baseUrl: string): Promise<void> {
      const jid = parseJid(account.trim());
      const username = jid !== null && jid.domain === domain && jid.resource === '' ? jid.local : normalizeUsername(account.trim());
      if (username === null || username === '') return;
      if (!withinLimit(`address:${address}`, m.options.resets_per_address)) {
        return void m.log.warn({ address }, 'password reset requests from this address are over the limit');
      }
      const email = await store.emailOf(username);
      if (email === null || !(await m.server.accounts.exists(domain, username))) return;
      if (!withinLimit(`account:${username}`, m.options.resets_per_account)) {
        return void m.log.warn({ account: `${username}@${domain}` }, 'password reset mails for this account are over the limit');
      }
      const token = await store.createReset(username, m.options.reset_link_ttl);
      await service.send({
        to: email,
        subject: `Reset your password on ${domain}`,
        text: `Someone (hopefully you) asked to reset the password of ${username}@${domain}.\n\n` +
          `Choose a new one here (the link works once, for ${Math.round(m.options.reset_link_ttl / 60)} minutes):\n${baseUrl}${HTTP_PREFIX}/${token}\n\n` +
          'If it was not you, ignore this mail: your password stays as it is.\n',
      });
      m.log.info({ account: `${username}@${domain}`, address }, 'password reset link mailed');
    }

    m.http({ prefix: HTTP_PREFIX, methods: ['GET', 'POST'], maxBodySize: MAX_FORM_BYTES }, async (request) => {
      if (transport === null) return sendPage(request, 404, unavailablePage(), PAGE_POLICY);
      const token = request.subpath;
      const post = request.req.method === 'POST';
      if (token === '') {
        if (!post) return sendPage(request, 200, requestPage(domain), PAGE_POLICY);
        const form = await readForm(request, MAX_FORM_BYTES);
        // the same answer whatever happened: nobody learns which accounts exist or have an address
        await mailResetLink(form.get('account') ?? '', request.req.socket.remoteAddress ?? 'unknown', request.baseUrl).catch((err: unknown) =>
          m.log.error({ err }, 'mailing a password reset link failed'),
        );
        return sendPage(request, 200, requestPage(domain, 'If that account has an email address, a link is on its way. It works for a limited time.'), PAGE_POLICY);
      }
      if (token.includes('/')) throw new HttpError(404, 'Not found');
      const username = await store.resetFor(token);
      if (username === null) return sendPage(request, 404, invalidLinkPage(), PAGE_POLICY);
      const jid = `${username}@${domain}`;
      if (!post) return sendPage(request, 200, newPasswordPage(jid), PAGE_POLICY);
      const form = await readForm(request, MAX_FORM_BYTES);
      const password = form.get('password') ?? '';
      const minLength = m.optional('register')?.minPasswordLength ?? DEFAULT_MIN_PASSWORD_LENGTH;
      if (password.length < minLength) return sendPage(request, 400, newPasswordPage(jid, `The password must have at least ${minLength} characters.`), PAGE_POLICY);
      if (password !== form.get('confirm')) return sendPage(request, 400, newPasswordPage(jid, 'The two passwords are not the same.'), PAGE_POLICY);
      if (!(await store.spendReset(token))) return sendPage(request, 404, invalidLinkPage(), PAGE_POLICY);
      await m.server.accounts.setPassword(domain, username, password);
      m.log.info({ account: jid, address: request.req.socket.remoteAddress }, 'password reset from a mailed link');
      sendPage(request, 200, donePage(jid), PAGE_POLICY);
    });

    const sweep = setInterval(() => void store.removeExpired().catch((err: unknown) => m.log.warn({ err }, 'clearing expired reset links failed')), 3600_000);
    sweep.unref();
    m.onStop(() => clearInterval(sweep));

    // --- digests of waiting messages (opt-in) ---------------------------------------------------

    const digestAfter = m.options.digest_after;
    if (transport === null || digestAfter === null) return;

    // a single-stage ad-hoc command (XEP-0050) any user of the host runs on their own account
    m.on('adhoc/commands', ({ commands }) => {
      commands.push({
        node: DIGEST_NODE,
        name: 'Email me about messages waiting for me (on/off)',
        admin: false,
        async run(from) {
          const email = await store.emailOf(from.local);
          const wanted = !(await store.digestWanted(from.local));
          if (wanted && email === null) return digestForm('Set your email address first (in your account settings: XEP-0077), then turn this on.');
          await store.setDigest(from.local, wanted);
          m.log.info({ account: from.bare, wanted }, 'mail digests turned ' + (wanted ? 'on' : 'off'));
          return digestForm(wanted
            ? `On: when messages have waited ${describe(digestAfter)} while you are away, ${email} gets a mail saying from whom (never what they say). Run this again to turn it off.`
            : 'Off: no more mails about waiting messages. Run this again to turn it on.');
        },
      });
    });

    let checking = false;
    const check = async () => {
      if (checking) return;
      checking = true;
      try {
        const offline = m.optional('offline');
        if (offline === undefined) return;
        const now = Date.now();
        for (const account of await store.digestAccounts()) {
          const bare = `${account.username}@${domain}`;
          // online (here or on another node), or a phone of theirs woken by push: the client tells them itself
          if (m.sessions.hasAccount(bare) || (await m.optional('push')?.registered(account.username))) continue;
          const waiting = await offline.waiting(account.username, account.lastSentAt);
          if (waiting === null || waiting.oldest > now - digestAfter * 1000) continue;
          await service.send({ to: account.email, subject: digestSubject(waiting.messages, domain), text: digestText(bare, waiting.senders, waiting.messages) });
          await store.digestSent(account.username, now);
          m.log.info({ account: bare, messages: waiting.messages }, 'mail digest of waiting messages sent');
        }
      } catch (err) {
        m.log.warn({ err }, 'mail digests not sent this time');
      } finally {
        checking = false;
      }
    };
    const digests = setInterval(() => void check(), m.options.digest_check_interval * 1000);
    digests.unref();
    m.onStop(() => clearInterval(digests));
  },
});

/** The result form of the digest command: one fixed field saying what now holds. */
function digestForm(text: string): Element {
  const form = new Element('x', { xmlns: NS_DATA, type: 'result' });
  form.c('title').t('Mail about waiting messages');
  form.c('field', { var: 'status', type: 'fixed', label: 'Status' }).c('value').t(text);
  return form;
}

function describe(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? '' : 's'}`;
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

function digestSubject(messages: number, domain: string): string {
  return `${messages === 1 ? 'A message waits' : `${messages} messages wait`} for you on ${domain}`;
}

/** Who wrote and how often; what they wrote stays on the server (and may be end-to-end encrypted anyway). */
function digestText(account: string, senders: ReadonlyMap<string, number>, messages: number): string {
  const lines = [...senders].sort((a, b) => b[1] - a[1]).map(([sender, count]) => `  ${sender}: ${count} message${count === 1 ? '' : 's'}`);
  return `${messages === 1 ? 'A message is' : `${messages} messages are`} waiting for ${account}:\n\n${lines.join('\n')}\n\n` +
    'Log in with your chat app to read them.\n\n' +
    'You get this mail because you asked for it; the same command in your chat app (server commands) turns it off.\n';
}
