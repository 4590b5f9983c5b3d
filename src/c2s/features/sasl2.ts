// XEP-0388 Extensible SASL Profile (SASL2): the same mechanisms and channel-binding rules as
// ./sasl.ts, in <authenticate/>, <challenge/>/<response/>, then <success/> (with the
// authorization identifier and the mechanism's additional data) or <failure/>; no stream restart
// after success (§2.6.1). Inline in the same round trip: XEP-0386 Bind2 (./bind2.ts), XEP-0198
// resumption, and what modules add (FAST tokens, XEP-0484, through the events below).
//
// Offered only on TLS we terminate, where -PLUS is possible: a client that pins SASL2 (Monal)
// disables an account that offers SASL2 without channel binding. Legacy SASL stays offered beside it.
import type Element from 'ltx/lib/Element.js';
import { escapeAttribute, escapeText } from '../../xml/serialize.js';
import { NS_SM } from '../sm.js';
import { SaslNegotiation, decodeBase64, offeredMechanisms, type SaslStep, type TokenVerifier } from '../sasl/negotiation.js';
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
 * token of `username`, issued to `userAgent` for `mechanism`, that `proves` accepts, or null.
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

const exchanges = new WeakMap<NegotiatingStream, Exchange>();
const userAgents = new WeakMap<NegotiatingStream, UserAgent>();

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
    const mechanisms = offeredMechanisms(true, stream.channelBinding(), stream.server.accounts.offeredHashes(stream.host)).map((m) => `<mechanism>${m}</mechanism>`).join('');
    const event: Sasl2InlineEvent = { stream, inline: [bind2Inline(stream), `<sm xmlns='${NS_SM}'/>`] };
    stream.server.hosts.get(stream.host)!.events.fire('c2s/sasl2-inline', event);
    return `<authentication xmlns='${NS_SASL2}'>${mechanisms}<inline>${event.inline.join('')}</inline></authentication>`;
  },
  accepts: (element, stream) => stream.state !== 'bound' && element.attrs.xmlns === NS_SASL2,
  handle(element, stream) {
    // §3.8: once authenticated, another <authenticate/> is a stream error
    if (stream.state !== 'connected') return stream.close('policy-violation', 'Already authenticated');
    if (!offeredHere(stream)) return stream.close('policy-violation', 'SASL2 is offered only on TLS with channel binding');
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
        return succeeded(stream, current, result).catch((err: unknown) => {
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
          return ((await events.fire('c2s/sasl2-token', event)) as Buffer | null | undefined) ?? null;
        }
      : undefined;
  const negotiation = new SaslNegotiation(stream.server, stream.authThrottle, stream.host, stream.remoteAddress, true, stream.channelBinding(), { tokens });
  return { negotiation, authenticate, userAgent };
}

/** §2.6.1: <success/> with what the inline features did, then the features of the stream as it is now. */
async function succeeded(stream: NegotiatingStream, exchange: Exchange, step: Extract<SaslStep, { kind: 'success' }>): Promise<void> {
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

