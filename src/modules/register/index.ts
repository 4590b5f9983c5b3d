// XEP-0077: In-Band Registration. Before login: create an account (when the host's
// `registration` is open). After login: change the password, or remove the account.
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { AccountExistsError } from '../../accounts/store.js';
import { normalizeUsername, type Jid } from '../../core/jid.js';
import { defineModule } from '../../core/module.js';
import { StanzaError, errorReply, iqResult } from '../../core/stanza.js';
import { duration } from '../../config/units.js';
import { isLoopbackAddress } from '../../http/forwarded.js';
import type { RegistrationService } from '../invites/index.js';
import type { Invite } from '../invites/store.js';
import { isEmailAddress } from '../mail/store.js';

declare module '../../core/module.js' {
  interface Services {
    register: RegistrationService;
  }
}

const NS_REGISTER = 'jabber:iq:register';
const NS_REGISTER_FEATURE = 'http://jabber.org/features/iq-register';

export default defineModule({
  name: 'register',
  description: 'In-band registration, password change and account removal',
  implements: [{ spec: 'XEP-0077', version: '2.4', status: 'complete' }],
  options: z.strictObject({
    /** Shortest password accepted at registration or password change. */
    min_password_length: z.number().int().min(1).default(6),
    /** Accounts one IP address may create per `registration_window`. */
    registrations_per_ip: z.number().int().min(1).default(5),
    registration_window: duration().prefault('1h'),
    /**
     * Loopback addresses are not limited. Off by default: a reverse proxy or a web page on this
     * machine would otherwise be an unlimited account factory (4,763 accounts a minute).
     */
    exempt_loopback: z.boolean().default(false),
  }),
  setup(m) {
    // read at each use: `xmppd reload` may open or close registration
    const mode = () => m.host.settings.registration;
    const recentByAddress = new Map<string, number[]>();
    // in a cluster, each node's registrations count on the others (the key: "time address")
    const shareRegistration = m.sharedCache('recent-registrations', (key) => {
      const space = key.indexOf(' ');
      const address = key.slice(space + 1);
      recentByAddress.set(address, [...(recentByAddress.get(address) ?? []), Number(key.slice(0, space))]);
    });
    // the invites module, when loaded: in `invite` mode only a presented invitation registers (XEP-0445)
    const invites = () => m.optional('invites');
    const mailService = () => m.optional('mail');

    m.feature(NS_REGISTER);
    m.on('c2s/features', (e) => {
      if (e.stage === 'pre-auth' && mode() !== 'closed') e.features.push(`<register xmlns='${NS_REGISTER_FEATURE}'/>`);
    });

    const checkPassword = (password: string | null): string => {
      if (password === null || password.length < m.options.min_password_length) {
        throw new StanzaError('not-acceptable', `The password must have at least ${m.options.min_password_length} characters`);
      }
      return password;
    };

    // XEP-0077 §3.1: registration on a stream that has not authenticated yet
    m.on('c2s/unauthenticated-iq', ({ iq, stream, reply }) => {
      const query = iq.getChild('query', NS_REGISTER);
      if (query === undefined) return undefined;
      const invite = invites()?.presentedOn(stream);
      if (mode() === 'closed' || (mode() === 'invite' && invite === undefined)) {
        const why = mode() === 'closed' ? 'Registration is closed on this server' : 'Registration here needs an invitation';
        reply(errorReply(iq, new StanzaError('not-allowed', why, 'cancel')));
        return true;
      }
      if (iq.attrs.type === 'get') {
        const form = new Element('query', { xmlns: NS_REGISTER });
        form.c('instructions').t('Choose a username and password to register with this server.');
        // an invitation for one username (XEP-0445 §2.1) shows it
        if (invite?.username) form.c('username').t(invite.username);
        else form.c('username');
        form.c('password');
        reply(iqResult(iq, form));
        return true;
      }
      if (iq.attrs.type !== 'set') return true;
      register(query.getChildText('username') ?? '', query.getChildText('password'), stream.remoteAddress, invite).then(
        () => reply(iqResult(iq)),
        (err: unknown) => {
          if (!(err instanceof StanzaError)) m.log.error({ err }, 'registration failed');
          reply(errorReply(iq, err instanceof StanzaError ? err : new StanzaError('internal-server-error')));
        },
      );
      return true;
    });

    /** Creates an account (in-band, or from an invitation's page); the bare JID on success. */
    async function register(requested: string, requestedPassword: string | null, address: string, invite?: Invite): Promise<string> {
      const username = normalizeUsername(requested);
      if (username === null) throw new StanzaError('not-acceptable', 'Invalid username');
      if (invite?.username != null && invite.username !== username) throw new StanzaError('not-acceptable', `This invitation is for the username ${invite.username}`);
      const password = checkPassword(requestedPassword);
      // an invitation is its own limit (single use); the per-address limit is for open registration
      if (invite === undefined && !(m.options.exempt_loopback && isLoopbackAddress(address))) {
        const now = Date.now();
        const windowStart = now - m.options.registration_window * 1000;
        const recent = (recentByAddress.get(address) ?? []).filter((t) => t > windowStart);
        if (recent.length >= m.options.registrations_per_ip) {
          m.log.warn({ address }, 'registration refused: too many accounts from this address');
          throw new StanzaError('resource-constraint', 'Too many registrations from your address; try again later', 'wait');
        }
        recent.push(now);
        recentByAddress.set(address, recent);
        shareRegistration(`${now} ${address}`);
      }
      const create = async () => {
        try {
          await m.server.accounts.create(m.host.domain, username, password);
        } catch (err) {
          if (err instanceof AccountExistsError) throw new StanzaError('conflict', 'That username is taken');
          throw err;
        }
      };
      if (invite === undefined) await create();
      else await invites()!.redeem(invite, username, create);
      m.log.info({ account: `${username}@${m.host.domain}`, address, invited: invite !== undefined }, 'account registered');
      m.host.events.fire('account/created', { username, host: m.host });
      return `${username}@${m.host.domain}`;
    }

    m.provide('register', {
      minPasswordLength: m.options.min_password_length,
      register: async (username, password, address, invite) => {
        if (mode() === 'closed' || (mode() === 'invite' && invite === undefined)) throw new StanzaError('not-allowed', 'Registration is closed on this server');
        return register(username, password, address, invite);
      },
    } satisfies RegistrationService);

    // XEP-0077 §3.2-3.3: a logged-in user asks about, changes or removes their account. Clients
    // address these to the server (to='<domain>') or send them without 'to' (their own account);
    // either way they concern the sender's own account, and nobody else's.
    const ownAccount = ({ from, to }: { from: Jid; to: Jid }) => {
      if (from.domain !== m.host.domain || from.local === '' || (to.local !== '' && to.bare !== from.bare)) throw new StanzaError('forbidden');
    };
    m.iq('get', NS_REGISTER, (request) => {
      ownAccount(request);
      const { from } = request;
      const query = new Element('query', { xmlns: NS_REGISTER });
      query.c('registered');
      query.c('username').t(from.local);
      query.c('password');
      // the address password reset mails go to, for its owner only (the mail module keeps it)
      const mail = mailService();
      if (mail === undefined) return query;
      return mail.emailOf(from.local).then((email) => {
        if (email === null) query.c('email');
        else query.c('email').t(email);
        return query;
      });
    }, 'both');

    m.iq('set', NS_REGISTER, async (request) => {
      ownAccount(request);
      const { payload, from } = request;
      if (payload.getChild('remove') !== undefined) {
        m.log.info({ account: from.bare }, 'account removed by its owner');
        // XEP-0077 §3.2: the result goes out first (this handler answers at once), then the
        // account's streams end, once its row is deleted (a database round trip later); the
        // name is not given out again until its data is gone too
        m.server.deleteAccount(m.host.domain, from.local).catch((err: unknown) => m.log.error({ err, account: from.bare }, 'deleting a removed account failed'));
        return null;
      }
      const username = payload.getChildText('username');
      if (username !== null && normalizeUsername(username) !== from.local) throw new StanzaError('not-allowed', 'You can only change your own password');
      const email = payload.getChildText('email');
      if (email !== null) {
        const mail = mailService();
        if (mail === undefined) throw new StanzaError('feature-not-implemented', 'This server keeps no email addresses');
        // an empty <email/> clears it
        const address = email.trim() === '' ? null : email.trim();
        if (address !== null && !isEmailAddress(address)) throw new StanzaError('not-acceptable', 'That is not an email address');
        await mail.setEmail(from.local, address);
        m.log.info({ account: from.bare }, email.trim() === '' ? 'email address cleared' : 'email address set');
        if (payload.getChild('password') === undefined) return null;
      }
      const password = checkPassword(payload.getChildText('password'));
      await m.server.accounts.setPassword(m.host.domain, from.local, password);
      m.log.info({ account: from.bare }, 'password changed');
      return null;
    }, 'both');
  },
});
