// XEP-0198 stream management: enabling it and resuming a session before binding (§5), then
// acks and ack requests on the bound stream (§4). The counters live in ../sm.ts; which sessions
// wait to be resumed is the stream's (resumableSession, resumeSession, makeResumable).
import type Element from 'ltx/lib/Element.js';
import { NS_SM, StreamManagement, issuingNode } from '../sm.js';
import type { NegotiatedSession, NegotiatingStream, StreamFeature } from './feature.js';

const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

export const streamManagement: StreamFeature = {
  name: 'sm',
  advertise: (stream) => (stream.state === 'authenticated' ? `<sm xmlns='${NS_SM}'/>` : ''),
  accepts: (element, stream) => element.attrs.xmlns === NS_SM && (stream.state === 'authenticated' || stream.state === 'bound'),
  handle(element, stream) {
    if (stream.state === 'authenticated') {
      if (element.name === 'resume') return resume(element, stream);
      if (element.name === 'enable') return stream.write(smFailed('unexpected-request', 'Bind a resource before enabling stream management'));
      // RFC 6120 §7.1: nothing else before binding
      return stream.close('not-authorized', 'Authenticate and bind a resource first');
    }
    const session = stream.session!;
    const sm = session.sm;
    switch (element.name) {
      case 'enable':
        return stream.write(enable(element, stream));
      case 'r':
        if (sm === null) return;
        return sm.whenHandled((h) => stream.write(`<a xmlns='${NS_SM}' h='${h}'/>`));
      case 'a': {
        if (sm === null) return;
        const h = handledCount(element);
        if (h === null) return notACount(element, stream);
        const unackedBefore = sm.unackedCount;
        if (!sm.acknowledge(h)) return handledCountTooHigh(h, sm.sentCount, stream);
        // XEP-0198 §4: what went out while the answered <r/> was on its way is still unacknowledged,
        // and no <r/> would ask about it until more output goes: asked now, or a client that closes
        // its stream next leaves it to be handled as undelivered (an offline message stored again).
        // Only after an answer that acknowledged something: a client whose count stays behind ours
        // (@xmpp/client does not count the IQ results its own requests take) would be asked again
        // at once, forever.
        if (sm.unackedCount < unackedBefore) stream.requestAck();
        return;
      }
      default:
        return stream.write(smFailed('unexpected-request', `<${element.name}/> is not expected now`));
    }
  },
};

/**
 * XEP-0198 §3: stream management on the bound session; returns <enabled/> or <failed/>, to write
 * on its own or inside a Bind2 <bound/> (XEP-0386 §2.4).
 */
export function enable(element: Element, stream: NegotiatingStream): string {
  const session = stream.session!;
  if (session.sm !== null) return smFailed('unexpected-request', 'Stream management is already enabled');
  const wantsResume = element.attrs.resume === 'true' || element.attrs.resume === '1';
  const timeout = stream.settings.resumeTimeout;
  const resumable = wantsResume && timeout > 0;
  // in a cluster the id names this node, for a client that resumes on another (takeOverSession)
  session.sm = new StreamManagement(resumable, stream.server.nodeId);
  if (resumable) stream.makeResumable(session);
  const resume = resumable ? ` resume='true' max='${timeout}'` : '';
  return `<enabled xmlns='${NS_SM}' id='${session.sm.id}'${resume}/>`;
}

/** XEP-0198 §5: take over a session that lost its connection, before binding. */
function resume(element: Element, stream: NegotiatingStream): void {
  const found = resumable(element, stream);
  if (found instanceof Promise) return void found.then((taken) => resumed(taken, element, stream));
  resumed(found, element, stream);
}

function resumed(found: NegotiatedSession | string | null, element: Element, stream: NegotiatingStream): void {
  if (typeof found === 'string') return stream.write(found);
  if (found === null) return;
  stream.resumeSession(found, element.attrs.previd ?? '');
}

/**
 * The session a <resume/> names, checked (XEP-0198 §5): the session, or the <failed/> to answer
 * (the client binds afresh), or null when the stream was closed (an 'h' beyond what was sent).
 * In a cluster, a session of another node is handed over from there (a promise then).
 * Also used inline in SASL2 (XEP-0198 §5 "inline", XEP-0388).
 */
export function resumable(element: Element, stream: NegotiatingStream): NegotiatedSession | string | null | Promise<NegotiatedSession | string | null> {
  const previd = element.attrs.previd ?? '';
  const session = stream.resumableSession(previd);
  if (session === undefined) {
    const node = issuingNode(previd);
    const h = handledCount(element);
    // in a cluster: issued by another node, or by this one for a session that moved on since
    if (node !== undefined && stream.server.nodeId !== undefined && h !== null) {
      return stream.takeOverSession(node, previd, h).then((taken) => {
        if (taken === null || !('failed' in taken)) return taken;
        if (taken.failed === 'item-not-found') return smFailed('item-not-found', 'No such session to resume; bind a new one');
        handledCountTooHigh(h, taken.sent, stream);
        return null;
      });
    }
  }
  if (session === undefined || session.ended || session.jid.bare !== `${stream.username}@${stream.host}` || session.sm === null) {
    // unknown, expired, or someone else's: bind afresh (§5)
    return smFailed('item-not-found', 'No such session to resume; bind a new one');
  }
  const sm = session.sm;
  const h = handledCount(element);
  if (h === null) {
    notACount(element, stream);
    return null;
  }
  if (!sm.acknowledge(h)) {
    handledCountTooHigh(h, sm.sentCount, stream);
    return null;
  }
  return session;
}

/**
 * XEP-0198 §4: an 'h' acknowledging more than was sent is fatal; v1.6 says by how much with
 * <handled-count-too-high/>. An 'h' that is not an unsignedInt gets the condition alone.
 */
function notACount(element: Element, stream: NegotiatingStream): void {
  stream.close('undefined-condition', `'h' must be a count of stanzas, not '${element.attrs.h ?? ''}'`);
}

function handledCountTooHigh(h: number, sent: number, stream: NegotiatingStream): void {
  stream.close(
    'undefined-condition',
    `You acknowledged ${h} stanzas, but only ${sent} were sent`,
    false,
    `<handled-count-too-high xmlns='${NS_SM}' h='${h}' send-count='${sent}'/>`,
  );
}

/** The 'h' of an <a/> or <resume/>: an xs:unsignedInt (XEP-0198 §4), or null when it is not one. */
function handledCount(element: Element): number | null {
  const text = element.attrs.h ?? '';
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const h = Number(text);
  return h <= 0xffffffff ? h : null;
}

export function smFailed(condition: string, text: string): string {
  return `<failed xmlns='${NS_SM}'><${condition} xmlns='${NS_STANZAS}'/><text xmlns='${NS_STANZAS}'>${text}</text></failed>`;
}
