// XEP-0388 Extensible SASL Profile (SASL2): the same mechanisms and channel-binding rules as
// ./sasl.ts, in <authenticate/>, <challenge/>/<response/>, then <success/> (with the
// authorization identifier and the mechanism's additional data) or <failure/>; no stream restart
// after success (§2.6.1). Inline in the same round trip: XEP-0386 Bind2 (./bind2.ts), XEP-0198
// resumption, and what modules add (FAST tokens, XEP-0484, through the events below). Between a
// successful exchange and <success/>, XEP-0480 upgrade tasks the client asked for (<continue/>,
// <next/>, <task-data/>: ../sasl/upgrade.ts) give the account SCRAM keys it lacks.
//
// Offered only on TLS we terminate, where -PLUS is possible: a client that pins SASL2 (Monal)
// disables an account that offers SASL2 without channel binding. Legacy SASL stays offered beside it.
import type Element from 'ltx/lib/Element.js';
import { escapeAttribute, escapeText } from '../../xml/serialize.js';
import { NS_SM } from '../sm.js';
import { SaslNegotiation, decodeBase64, offeredMechanisms, type SaslStep, type TokenProof, type TokenVerifier } from '../sasl/negotiation.js';
import { UPGRADABLE, keysFromTaskData, newSalt, provesPassword, requestedUpgrades, saltXml, taskName, upgradeAdvertisement } from '../sasl/upgrade.js';
import { SCRAM_MECHANISMS, type ScramHash } from '../../accounts/credentials.js';
import type { NegotiatedSession, NegotiatingStream, StreamFeature, StreamState } from './feature.js';
import { bind2, bind2Inline } from './bind2.js';
import { resumable } from './sm.js';

export const NS_SASL2 = 'urn:xmpp:sasl:2';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

/** XEP-0388 §2.3: who is logging in; the id is stable per installation (a UUID). */
export interface UserAgent {
  id: string | null;
  software: string | null;
  device: string | null;
}

/** `c2s/sasl2-inline`: modules add their inline features to SASL2's <inline/> (FAST's <fast/>). */
export interface Sasl2InlineEvent {
  stream: NegotiatingStream;
  inline: string[];
}

/**
 * `c2s/sasl2-token`: a token login (XEP-0484). The handler returns a Promise of the key of a
 * token of `username`, issued to `userAgent` for `mechanism`, that `proves` accepts, with the
 * account's disabled state (read along with the password it checks the token against), or null.
 * `authenticate` is the client's element (its <fast count=... invalidate=.../>).
 */
export interface Sasl2TokenEvent {
  stream: NegotiatingStream;
  username: string;
  userAgent: string;
  mechanism: string;
  authenticate: Element;
  proves(key: Buffer): boolean;
}

/**
 * `c2s/sasl2-success`: authentication succeeded, <success/> is being written. Modules push
 * children for it (a FAST <token/>) or the promise of them to `children`.
 */
export interface Sasl2SuccessEvent {
  stream: NegotiatingStream;
  username: string;
  mechanism: string;
  userAgent: UserAgent | null;
  authenticate: Element;
  children: Array<string | Promise<string>>;
}

interface Exchange {
  negotiation: SaslNegotiation;
  authenticate: Element;
  userAgent: UserAgent | null;
}

type Success = Extract<SaslStep, { kind: 'success' }>;

/** XEP-0480 tasks between the exchange's success and <success/>: the first of `hashes` is under way. */
interface Tasks {
  exchange: Exchange;
  step: Success;
  hashes: ScramHash[];
  /** The account's iteration count, which the new keys share. */
  iterations: number;
  /** Sent with <task-data/> once the client said <next/>; null before. */
  salt: Buffer | null;
}

const exchanges = new WeakMap<NegotiatingStream, Exchange>();
const tasks = new WeakMap<NegotiatingStream, Tasks>();
/** Streams that were sent a <continue/>: §3.8, no <authenticate/> after it, even if a task failed. */
const continued = new WeakSet<NegotiatingStream>();
const userAgents = new WeakMap<NegotiatingStream, UserAgent>();

/** Whether SASL2 sent this stream a <continue/>: no other authentication may follow (XEP-0388 §3.8). */
export function continuedBySasl2(stream: NegotiatingStream): boolean {
  return continued.has(stream);
}

/** The user agent a stream logged in with through SASL2 (XEP-0388 §2.3), if it said. */
export function userAgentOf(stream: NegotiatingStream): UserAgent | undefined {
  return userAgents.get(stream);
}

/** SASL2 only where -PLUS is: TLS that this process terminates, with channel bindings. */
function offeredHere(stream: NegotiatingStream): boolean {
  if (stream.state !== 'connected' || !stream.secure) return false;
  const binding = stream.channelBinding();
  return binding !== null && binding.types.length > 0;
}

export const sasl2: StreamFeature = {
  name: 'sasl2',
  advertise(stream) {
    if (!offeredHere(stream)) return '';
    const hashes = stream.server.accounts.offeredHashes(stream.host);
    const mechanisms = offeredMechanisms(true, stream.channelBinding(), hashes).map((m) => `<mechanism>${m}</mechanism>`).join('');
    const event: Sasl2InlineEvent = { stream, inline: [bind2Inline(stream), `<sm xmlns='${NS_SM}'/>`] };
    stream.server.hosts.get(stream.host)!.events.fire('c2s/sasl2-inline', event);
    // XEP-0480 §2.1: the upgrades some account of this host needs (the hashes not offered for want of them)
    const upgrades = upgradeAdvertisement(UPGRADABLE.filter((hash) => !hashes.includes(hash)));
    return `<authentication xmlns='${NS_SASL2}'>${mechanisms}<inline>${event.inline.join('')}</inline>${upgrades}</authentication>`;
  },
  accepts: (element, stream) => stream.state !== 'bound' && element.attrs.xmlns === NS_SASL2,
  handle(element, stream) {
    // §3.8: once authenticated, another <authenticate/> is a stream error
    if (stream.state !== 'connected') return stream.close('policy-violation', 'Already authenticated');
    if (!offeredHere(stream)) return stream.close('policy-violation', 'SASL2 is offered only on TLS with channel binding');
    // XEP-0388 §3.8: after <continue/>, another <authenticate/> is a stream error
    if (element.name === 'authenticate' && continued.has(stream)) return stream.close('policy-violation', 'Already authenticated');
    const pending = tasks.get(stream);
    if (pending !== undefined || element.name === 'next' || element.name === 'task-data') return task(element, stream, pending);
    let step: Promise<SaslStep>;
    let exchange = exchanges.get(stream);
    switch (element.name) {
      case 'authenticate': {
        exchange = start(element, stream);
        exchanges.set(stream, exchange);
        const initial = element.getChild('initial-response');
        const data = initial === undefined ? Buffer.alloc(0) : decodeBase64(initial.getText());
        step = data === null ? Promise.resolve(failure('incorrect-encoding')) : exchange.negotiation.start(element.attrs.mechanism ?? '', data);
        break;
      }
      case 'response':
        if (exchange === undefined) return stream.write(failureXml(failure('malformed-request', 'no exchange in progress')));
        step = exchange.negotiation.respond(decodeBase64(element.getText()));
        break;
      case 'abort':
        exchanges.delete(stream);
        return stream.write(failureXml(failure('aborted')));
      default:
        return stream.write(failureXml(failure('malformed-request', `unexpected <${element.name}/>`)));
    }
    const current = exchange!;
    step.then(
      (result) => {
        if (stream.state === 'closed') return;
        if (result.kind === 'challenge') return stream.write(`<challenge xmlns='${NS_SASL2}'>${result.data.toString('base64')}</challenge>`);
        exchanges.delete(stream);
        if (result.kind === 'failure') {
          stream.server.metrics.authFailures++;
          return stream.write(failureXml(result));
        }
        return continueOrSucceed(stream, current, result).catch((err: unknown) => {
          stream.server.log.error({ err }, 'SASL2 login failed unexpectedly after authentication');
          stream.close('internal-server-error');
        });
      },
      (err: unknown) => {
        stream.server.log.error({ err }, 'SASL2 negotiation failed unexpectedly');
        stream.write(failureXml(failure('temporary-auth-failure')));
        exchanges.delete(stream);
      },
    );
  },
};

function start(authenticate: Element, stream: NegotiatingStream): Exchange {
  const agent = authenticate.getChild('user-agent');
  const userAgent: UserAgent | null =
    agent === undefined
      ? null
      : {
          id: agent.attrs.id !== undefined && agent.attrs.id !== '' ? agent.attrs.id.slice(0, 256) : null,
          software: agent.getChildText('software')?.slice(0, 256) ?? null,
          device: agent.getChildText('device')?.slice(0, 256) ?? null,
        };
  const events = stream.server.hosts.get(stream.host)!.events;
  // XEP-0484 §4: tokens are bound to the user agent, so a client without an id gets none
  const tokens: TokenVerifier | undefined =
    userAgent?.id && events.has('c2s/sasl2-token')
      ? async (username, mechanism, proves) => {
          const event: Sasl2TokenEvent = { stream, username, userAgent: userAgent.id!, mechanism, authenticate, proves };
          return ((await events.fire('c2s/sasl2-token', event)) as TokenProof | null | undefined) ?? null;
        }
      : undefined;
  const negotiation = new SaslNegotiation(stream.server, stream.authThrottle, stream.host, stream.remoteAddress, true, stream.channelBinding(), { tokens });
  return { negotiation, authenticate, userAgent };
}

/**
 * The exchange succeeded. XEP-0480 §2.2: when the client asked for upgrades the account needs
 * (and the login proved the password), <continue/> with the first task; else <success/>.
 */
async function continueOrSucceed(stream: NegotiatingStream, exchange: Exchange, step: Success): Promise<void> {
  const requested = provesPassword(step.mechanism) ? requestedUpgrades(exchange.authenticate) : [];
  const account = requested.length === 0 ? null : await stream.server.accounts.missingKeys(stream.host, step.username);
  const hashes = account === null ? [] : requested.filter((hash) => account.missing.includes(hash));
  if (account === null || hashes.length === 0) return succeeded(stream, exchange, step);
  if ((stream.state as StreamState) === 'closed') return;
  // two <authenticate/>s in flight at once: only the first to succeed counts (§3.8)
  if (stream.state !== 'connected' || tasks.has(stream)) return stream.close('policy-violation', 'Already authenticated');
  tasks.set(stream, { exchange, step, hashes, iterations: account.iterations, salt: null });
  continued.add(stream);
  stream.write(continueXml(step.data, hashes[0]!));
}

/** XEP-0388 §2.6.3: one task (XEP-0480 §2.2: a single one, a sequence when the client asked for several). */
function continueXml(data: Buffer | null, hash: ScramHash): string {
  const additional = data === null ? '' : `<additional-data>${data.toString('base64')}</additional-data>`;
  return `<continue xmlns='${NS_SASL2}'>${additional}<tasks><task>${taskName(hash)}</task></tasks><text xml:lang='en'>This account has no ${SCRAM_MECHANISMS[hash]} keys yet, as the client asked</text></continue>`;
}

/**
 * XEP-0388 §2.6.3 / XEP-0480 §3: the client's <next/> starts the task, and we send the salt and
 * iteration count; its <task-data/> brings the SaltedPassword, whose keys are stored. Each task
 * ends with <continue/> (the next one), <success/> or <failure/> (not authenticated then).
 */
function task(element: Element, stream: NegotiatingStream, pending: Tasks | undefined): void {
  const refuse = (condition: string, text: string) => {
    tasks.delete(stream);
    stream.server.log.info({ address: stream.remoteAddress, jid: pending && `${pending.step.username}@${stream.host}`, reason: text }, 'SASL2 upgrade task failed');
    stream.write(failureXml(failure(condition, text)));
  };
  if (pending === undefined) return stream.write(failureXml(failure('malformed-request', 'no task in progress')));
  const hash = pending.hashes[0]!;
  switch (element.name) {
    case 'abort':
      return refuse('aborted', 'aborted by the client');
    case 'next':
      if (pending.salt !== null) return refuse('malformed-request', 'the task has started already');
      if (element.attrs.task !== taskName(hash)) return refuse('invalid-mechanism', `the task offered is ${taskName(hash)}`);
      pending.salt = newSalt();
      return stream.write(`<task-data xmlns='${NS_SASL2}'>${saltXml(pending.salt, pending.iterations)}</task-data>`);
    case 'task-data': {
      if (pending.salt === null) return refuse('malformed-request', 'a task starts with <next/>');
      const keys = keysFromTaskData(element, hash, pending.salt, pending.iterations);
      if (typeof keys === 'string') return refuse('malformed-request', keys);
      const { username } = pending.step;
      pending.salt = null; // no second <task-data/> for the same salt
      stream.server.accounts.addKeys(stream.host, username, hash, keys).then(
        (stored) => {
          if ((stream.state as StreamState) === 'closed' || tasks.get(stream) !== pending) return;
          // not stored: another login gave the account these keys meanwhile, which is as good
          stream.server.log.info({ jid: `${username}@${stream.host}`, mechanism: SCRAM_MECHANISMS[hash], stored }, `XEP-0480 upgrade task: ${SCRAM_MECHANISMS[hash]} keys ${stored ? 'stored' : 'were there already'}`);
          pending.hashes.shift();
          if (pending.hashes.length > 0) return stream.write(continueXml(null, pending.hashes[0]!));
          tasks.delete(stream);
          // the mechanism's additional data went with the first <continue/>
          return succeeded(stream, pending.exchange, { ...pending.step, data: null });
        },
        (err: unknown) => {
          stream.server.log.error({ err }, 'storing the keys of a SASL2 upgrade task failed');
          refuse('temporary-auth-failure', 'the keys could not be stored');
        },
      ).catch((err: unknown) => {
        stream.server.log.error({ err }, 'SASL2 login failed unexpectedly after an upgrade task');
        stream.close('internal-server-error');
      });
      return;
    }
    default:
      return refuse('malformed-request', `<${element.name}/> during a task`);
  }
}

/** §2.6.1: <success/> with what the inline features did, then the features of the stream as it is now. */
async function succeeded(stream: NegotiatingStream, exchange: Exchange, step: Success): Promise<void> {
  const { authenticate, userAgent } = exchange;
  // two <authenticate/>s in flight at once: only the first to succeed counts (§3.8)
  if (stream.state !== 'connected') return stream.close('policy-violation', 'Already authenticated');
  stream.authenticated(step.username, false);
  if (userAgent !== null) userAgents.set(stream, userAgent);
  stream.server.log.info(
    { jid: `${step.username}@${stream.host}`, address: stream.remoteAddress, mechanism: step.mechanism, userAgent: userAgent ?? undefined },
    'SASL2 login',
  );
  const event: Sasl2SuccessEvent = { stream, username: step.username, mechanism: step.mechanism, userAgent, authenticate, children: [] };
  stream.server.hosts.get(stream.host)!.events.fire('c2s/sasl2-success', event);
  const children = (await Promise.all(event.children)).join('');
  // the client may have gone while modules worked (TypeScript still narrows state to 'connected')
  if ((stream.state as StreamState) === 'closed') return;
  const additional = step.data === null ? '' : `<additional-data>${step.data.toString('base64')}</additional-data>`;
  const success = (jid: string, inline: string) =>
    `<success xmlns='${NS_SASL2}'>${additional}<authorization-identifier>${escapeText(jid)}</authorization-identifier>${children}${inline}</success>`;

  // XEP-0198 §5 inline: resume instead of binding; when that fails the client's <bind/> goes on
  let failedResume = '';
  const resume = authenticate.getChild('resume', NS_SM);
  if (resume !== undefined) {
    const found = await resumable(resume, stream);
    if (found === null) return; // the stream was closed (an 'h' beyond what we sent)
    if (typeof found !== 'string') return resumeInline(stream, found, resume.attrs.previd ?? '', success);
    failedResume = found;
  }

  const bind = authenticate.getChild('bind', 'urn:xmpp:bind:0');
  if (bind !== undefined) {
    const bound = bind2(bind, stream, userAgent?.id ?? null);
    if ('refused' in bound) {
      // XEP-0386 §2.3: binding failed; the client may not go on with this stream
      stream.write(failureXml(failure('aborted', bound.refused.text ?? 'Resource binding failed')));
      return stream.close('policy-violation', bound.refused.text);
    }
    stream.write(success(stream.session!.jid.toString(), failedResume + bound.xml));
  } else {
    stream.write(success(`${step.username}@${stream.host}`, failedResume));
  }
  stream.sendFeatures();
}

function resumeInline(stream: NegotiatingStream, session: NegotiatedSession, previd: string, success: (jid: string, inline: string) => string): void {
  const resumed = `<resumed xmlns='${NS_SM}' h='${session.sm!.received}' previd='${escapeAttribute(previd)}'/>`;
  stream.resumeSession(session, previd, { success: success(session.jid.toString(), resumed) });
}

function failure(condition: string, text?: string): Extract<SaslStep, { kind: 'failure' }> {
  return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
}

/** §2.6.2: the RFC 6120 §6.5 condition, in its own namespace, and a text. */
function failureXml(step: Extract<SaslStep, { kind: 'failure' }>): string {
  const text = step.text ? `<text xml:lang='en'>${escapeText(step.text)}</text>` : '';
  return `<failure xmlns='${NS_SASL2}'><${step.condition} xmlns='${NS_SASL}'/>${text}</failure>`;
}

