// Invitations (XEP-0401 easy onboarding): an admin invites someone to create an account
// (`xmppd invite create`), a user invites a friend to become a contact and, where allowed, to
// create an account on this host first. The link opens a landing page (./page.ts) with the
// xmpp: URI for an installed client and a form to register in the browser; a client registers
// in-band with the token (XEP-0445 pre-authenticated registration, checked by the register
// module) or, already having an account elsewhere, sends a subscription request carrying it
// (XEP-0379), which is approved on the inviter's behalf.
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';
import { StanzaError, errorReply, iqResult } from '../../core/stanza.js';
import type { NegotiatingStream } from '../../c2s/stream.js';
import { HttpError } from '../../http/service.js';
import { PAGE_POLICY, readForm, sendPage } from '../../http/pages.js';
import { duration } from '../../config/units.js';
import { InviteStore, invitationRegisters, inviteMigrations, inviteUri, type Invite, type NewInvite } from './store.js';
import { goneInvitePage, landingPage, registeredPage } from './page.js';

declare module '../../core/module.js' {
  interface Services {
    invites: InviteService;
  }
}

export const NS_PARS = 'urn:xmpp:pars:0';
const NS_INVITE_FEATURE = 'urn:xmpp:invite';
const NS_DATA = 'jabber:x:data';
const HTTP_PREFIX = '/invite';
const MAX_FORM_BYTES = 4096;

/** What the register module (and the CLI) use of invitations. */
export interface InviteService {
  store: InviteStore;
  /** Seconds a new invitation stays valid unless told otherwise. */
  defaultTtl: number;
  create(invite: Omit<NewInvite, 'ttl'> & { ttl?: number }): Promise<Invite>;
  /** The invitation a not-yet-authenticated stream presented (XEP-0445), still valid. */
  presentedOn(stream: NegotiatingStream): Invite | undefined;
  /**
   * Spends `invite` for a new account: `create` makes the account; the invitation is spent
   * first so two registrations cannot share it, and put back if `create` fails. A contact
   * invitation then makes the new account and the inviter mutual contacts.
   */
  redeem(invite: Invite, username: string, create: () => Promise<void>): Promise<void>;
  /** XEP-0401 §4 / XEP-0379 §2: the xmpp: URI of an invitation. */
  uri(invite: Invite): string;
  /** The landing page of an invitation on this host's HTTP listener. */
  landingUrl(invite: Invite): string;
}

/** What the invitation pages need of the register module (registration rules live there). */
export interface RegistrationService {
  /** Shortest password accepted (modules.register.min_password_length). */
  minPasswordLength: number;
  /** Creates an account as in-band registration would (checks, limits, log line, events); throws StanzaError. */
  register(username: string, password: string, address: string, invite?: Invite): Promise<string>;
}

export default defineModule({
  name: 'invites',
  description: 'Invitations to create an account or become a contact, with a landing page',
  implements: [
    { spec: 'XEP-0401', version: '0.5.0', status: 'complete', note: 'invitations from a client (ad-hoc commands urn:xmpp:invite#invite and #create-account, with the adhoc module) and the CLI; a landing page with registration in the browser' },
    { spec: 'XEP-0445', version: '0.2.0', status: 'complete', note: 'pre-authenticated in-band registration: <preauth/> before XEP-0077' },
    { spec: 'XEP-0379', version: '0.3.3', status: 'complete', note: "a subscription request with the inviter's token is approved and answered with one back" },
  ],
  dependencies: ['roster'],
  migrations: inviteMigrations,
  // invitations a deleted user made go with the account
  removeAccountData: async ({ db, host, username }) => void (await db('invites').where({ host, inviter: username }).delete()),
  options: z.strictObject({
    /** How long an invitation stays valid. */
    ttl: duration().prefault('7d'),
    /** A user's contact invitation also lets the friend create an account here (`ibr=y`), where registration is by invitation. */
    users_invite_accounts: z.boolean().default(true),
  }),
  setup(m) {
    const store = new InviteStore(m.db);
    const domain = m.host.domain;
    const presented = new WeakMap<NegotiatingStream, Invite>();
    const roster = m.use('roster');
    const ttl = m.options.ttl;

    const registrationAllowed = (invite: Invite) => invitationRegisters(invite, m.host.settings.registration, m.options.users_invite_accounts);

    const service: InviteService = {
      store,
      defaultTtl: ttl,
      create: (invite) => store.create(domain, { ...invite, ttl: invite.ttl ?? ttl, mayRegister: invite.mayRegister ?? m.options.users_invite_accounts }),
      presentedOn(stream) {
        const invite = presented.get(stream);
        return invite !== undefined && invite.expiresAt > Date.now() ? invite : undefined;
      },
      async redeem(invite, username, create) {
        if (!(await store.spend(domain, invite.token))) throw new StanzaError('not-allowed', 'The invitation was used already or revoked', 'cancel');
        try {
          await create();
        } catch (err) {
          await store.restore(invite).catch((restoreErr: unknown) => m.log.error({ err: restoreErr }, 'could not put back an unused invitation'));
          throw err;
        }
        m.log.info({ account: `${username}@${domain}`, inviter: invite.inviter }, 'invitation redeemed');
        if (invite.kind === 'contact' && invite.inviter !== null) await roster.befriend(username, invite.inviter);
      },
      uri: (invite) => inviteUri(invite, registrationAllowed(invite)),
      landingUrl: (invite) => m.httpUrl(`${HTTP_PREFIX}/${invite.token}`),
    };
    m.provide('invites', service);

    // --- XEP-0401 §3: invitations made from a client, as ad-hoc commands (the adhoc module) ----

    /** The result form of an invitation command: its URI, its landing page, its expiry. */
    const invitationForm = (invite: Invite) => {
      const form = new Element('x', { xmlns: NS_DATA, type: 'result' });
      form.c('title').t('Your invitation');
      form.c('field', { var: 'uri', type: 'text-single', label: 'Invitation link for a chat app' }).c('value').t(service.uri(invite));
      form.c('field', { var: 'landing-url', type: 'text-single', label: 'Invitation page' }).c('value').t(service.landingUrl(invite));
      form.c('field', { var: 'expire', type: 'text-single', label: 'Valid until' }).c('value').t(new Date(invite.expiresAt).toISOString());
      return form;
    };
    m.on('adhoc/commands', ({ commands }) => {
      // a user invites a contact (who may also create an account here, users_invite_accounts)
      commands.push({
        node: 'urn:xmpp:invite#invite',
        name: 'Invite someone to chat with you',
        admin: false,
        run: async (from) => invitationForm(await service.create({ kind: 'contact', inviter: from.local })),
      });
      // an admin invites someone to create an account
      commands.push({
        node: 'urn:xmpp:invite#create-account',
        name: 'Invite someone to create an account',
        admin: true,
        run: async () => invitationForm(await service.create({ kind: 'account' })),
      });
    });

    // --- XEP-0445: a token presented before in-band registration --------------------------------

    m.on('c2s/features', (e) => {
      if (e.stage === 'pre-auth' && m.host.settings.registration !== 'closed') e.features.push(`<register xmlns='${NS_INVITE_FEATURE}'/>`);
    });

    m.on('c2s/unauthenticated-iq', ({ iq, stream, reply }) => {
      const preauth = iq.getChild('preauth', NS_PARS);
      if (preauth === undefined) return undefined;
      if (iq.attrs.type !== 'set') {
        reply(errorReply(iq, new StanzaError('bad-request', 'Present an invitation with an IQ set')));
        return true;
      }
      store.find(domain, preauth.attrs.token ?? '').then(
        (invite) => {
          if (invite === null || !registrationAllowed(invite)) {
            m.log.info({ address: stream.remoteAddress }, 'an unknown, expired or spent invitation was presented');
            return reply(errorReply(iq, new StanzaError('item-not-found', 'This invitation is not valid (used, revoked or expired)', 'cancel')));
          }
          // XEP-0445 §3: not spent yet, only when the registration succeeds
          presented.set(stream, invite);
          reply(iqResult(iq));
        },
        (err: unknown) => {
          m.log.error({ err }, 'checking an invitation failed');
          reply(errorReply(iq, new StanzaError('internal-server-error')));
        },
      );
      return true;
    });

    // --- XEP-0379: a subscription request carrying the inviter's token ----------------------------

    m.on('presence/bare', (e) => {
      const preauth = e.stanza.attrs.type === 'subscribe' ? e.stanza.getChild('preauth', NS_PARS) : undefined;
      if (preauth === undefined || e.to.domain !== domain || e.to.local === '') return undefined;
      const token = preauth.attrs.token ?? '';
      const username = e.to.local;
      const contact = e.from.bare;
      // the request goes on as an ordinary one unless the token is this user's own contact invitation
      void approveIfInvited(token, username, contact, e.stanza);
      return true;
    }, 20);

    async function approveIfInvited(token: string, username: string, contact: string, request: Element): Promise<void> {
      try {
        const invite = await store.find(domain, token);
        if (invite !== null && invite.kind === 'contact' && invite.inviter === username && (await store.spend(domain, token))) {
          m.log.info({ account: `${username}@${domain}`, contact }, 'subscription approved by invitation');
          return await roster.approveInvited(username, contact);
        }
      } catch (err) {
        m.log.error({ err }, 'checking an invitation in a subscription request failed');
      }
      // not a valid invitation: the request is an ordinary one, for the user to decide
      const plain = new Element('presence', { ...request.attrs });
      for (const child of request.children) if (typeof child === 'string' || !child.is('preauth', NS_PARS)) plain.append(child);
      m.route(plain);
    }

    // --- the landing page ------------------------------------------------------------------------

    m.http({ prefix: HTTP_PREFIX, methods: ['GET', 'POST'], maxBodySize: MAX_FORM_BYTES }, async (request) => {
      const token = request.subpath;
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(token)) throw new HttpError(404, 'Not found');
      const invite = await store.find(domain, token);
      if (invite === null) return sendPage(request, 404, goneInvitePage(), PAGE_POLICY);
      const canRegister = registrationAllowed(invite);
      if (request.req.method !== 'POST') return sendPage(request, 200, landingPage({ invite, uri: service.uri(invite), canRegister }), PAGE_POLICY);
      if (!canRegister) throw new HttpError(403, 'This invitation does not create accounts');

      const form = await readForm(request, MAX_FORM_BYTES);
      const username = invite.username ?? form.get('username') ?? '';
      const password = form.get('password') ?? '';
      const again = (error: string) => sendPage(request, 400, landingPage({ invite, uri: service.uri(invite), canRegister, error, username }), PAGE_POLICY);
      if (password !== form.get('confirm')) return again('The two passwords are not the same.');
      const registration = m.optional('register');
      if (registration === undefined) return again('Registration is not available on this server.');
      let jid: string;
      try {
        jid = await registration.register(username, password, request.req.socket.remoteAddress ?? 'unknown', invite);
      } catch (err) {
        if (err instanceof StanzaError) return again(err.text ?? 'That did not work; try another username.');
        throw err;
      }
      const webchat = m.host.settings.modules.includes('webchat') ? `${request.baseUrl}/chat/` : null;
      sendPage(request, 200, registeredPage(jid, invite.kind === 'contact' && invite.inviter !== null ? `${invite.inviter}@${domain}` : null, webchat), PAGE_POLICY);
    });

    // expired invitations are cleared now and then, not on every lookup
    const sweep = setInterval(() => void store.removeExpired().catch((err: unknown) => m.log.warn({ err }, 'clearing expired invitations failed')), 3600_000);
    sweep.unref();
    m.onStop(() => clearInterval(sweep));
  },
});
