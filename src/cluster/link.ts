// The NodeLink (src/core/ports.ts) of a cluster: stanzas for sessions on other nodes, and the
// commands nodes give each other, over one Redis pub/sub channel per node.
//
// Stanzas are batched per destination node and event-loop turn: one PUBLISH carries every
// stanza this node has for that node in the turn (one command per stanza costs about three
// times the CPU). A batch is a header line per stanza — `op TAB full-JID TAB length` — a blank
// line, then the stanzas' XML one after the other; the receiver parses the XML of the whole
// batch in one pass and hands each session its stanza with the XML as it came (no
// re-serialisation). Pub/sub keeps the order of one publisher's messages, so stanzas from one
// sender to one recipient stay in order.
//
// PUBLISH answers how many subscribers got the batch: none means the node is gone (killed, its
// Redis connection closed), and its stanzas are handled here as undelivered (offline storage,
// the account's other resources, an error to the sender), as when a local session ends.
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import { parseJid } from '../core/jid.js';
import type { Kernel } from '../core/kernel.js';
import type { DeliveryTracker, HandOffAnswer, HandOffRequest, NodeLink, SessionHandOff, SessionRef } from '../core/ports.js';
import { StanzaError, type StreamErrorCondition } from '../core/stanza.js';
import { StreamParser } from '../xml/parser.js';
import { serialize } from '../xml/serialize.js';
import { channels } from './keys.js';
import type { RedisClient } from './redis.js';

/** What a stanza in a batch is for. */
const enum Op {
  /** Deliver to the session of this full JID (or route it as undelivered if it has gone). */
  Deliver = 'd',
  /** Route it on the receiving node, as if it had arrived there (a room held by that node). */
  Route = 'r',
}

interface Outgoing {
  op: Op;
  jid: string;
  stanza: Element;
  xml: string;
  tracker: DeliveryTracker | undefined;
}

/** A command to another node (JSON on its channel, told apart from batches by the leading `{`). */
type Command =
  | { cmd: 'close'; jid: string; condition: StreamErrorCondition; text?: string | undefined }
  /** XEP-0198 §5 across nodes: hand over a resumable session (answered by a `handoff`) */
  | { cmd: 'takeover'; id: number; request: HandOffRequest }
  | { cmd: 'handoff'; id: number; answer: HandOffAnswer };

/**
 * How long a node waits for another to hand over a session before telling the client to bind
 * afresh. A live node answers in milliseconds; one killed an instant ago may still count as a
 * subscriber for Redis, and the client should not wait for its heartbeat to expire.
 */
const TAKEOVER_TIMEOUT_MS = 3_000;

export interface LinkCounters {
  stanzasOut: number;
  stanzasIn: number;
  batchesOut: number;
  undeliverable: number;
}

export class RedisNodeLink implements NodeLink {
  private readonly queued = new Map<string, Outgoing[]>();
  private flushScheduled = false;
  readonly counters: LinkCounters = { stanzasOut: 0, stanzasIn: 0, batchesOut: 0, undeliverable: 0 };
  /** Stanzas of a batch being read, in document order. */
  private parsed: Element[] = [];
  private readonly parser = new StreamParser(
    {
      onStreamStart() {},
      onStreamEnd() {},
      onStanza: (stanza) => void this.parsed.push(stanza),
      onParseError: (condition, text) => this.log.error({ condition, text }, 'a batch from another node is not well-formed XML; dropped'),
    },
    Number.MAX_SAFE_INTEGER,
  );

  /** Called when a node no longer listens (before its stanzas are handled as undelivered). */
  onNodeGone: (node: string) => void = () => {};

  /** Takeovers asked of other nodes, waiting for their answer. */
  private readonly takeovers = new Map<number, (answer: HandOffAnswer) => void>();
  private nextTakeover = 0;
  /**
   * Sessions handed over to this node and not bound yet (full JID): stanzas the old node sends
   * on meanwhile wait here, in order, instead of going to offline storage.
   */
  private readonly arriving = new Map<string, Array<{ stanza: Element; xml: string }>>();

  /** Told when this node handed a session to another (the directory points its JID there at once). */
  onHandedOver: (handOff: SessionHandOff, node: string) => void = () => {};

  constructor(
    private readonly kernel: Kernel,
    private readonly redis: RedisClient,
    private readonly log: Logger,
    readonly node: string,
  ) {}

  takeOver(node: string, request: HandOffRequest): Promise<HandOffAnswer> {
    const id = ++this.nextTakeover;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.takeovers.delete(id);
        this.log.warn({ node, previd: request.previd }, 'another node did not hand over a session in time; the client binds afresh');
        resolve({ failed: 'item-not-found' });
      }, TAKEOVER_TIMEOUT_MS);
      this.takeovers.set(id, (answer) => {
        clearTimeout(timer);
        this.takeovers.delete(id);
        resolve(answer);
      });
      const command: Command = { cmd: 'takeover', id, request };
      this.redis.publishToNode(channels.node(node), JSON.stringify(command)).then(
        (receivers) => void (receivers === 0 && this.takeovers.get(id)?.({ failed: 'item-not-found' })), // that node is gone
        () => this.takeovers.get(id)?.({ failed: 'item-not-found' }),
      );
    });
  }

  deliver(ref: SessionRef, stanza: Element, xml: string | undefined, tracker: DeliveryTracker | undefined): void {
    this.enqueue(ref.node, { op: Op.Deliver, jid: ref.jid.toString(), stanza, xml: xml ?? serialize(stanza), tracker });
  }

  /** Hands a stanza to another node to route there (e.g. to the room it holds). */
  routeOn(node: string, stanza: Element, to: string): void {
    this.enqueue(node, { op: Op.Route, jid: to, stanza, xml: serialize(stanza), tracker: undefined });
  }

  close(ref: SessionRef, condition: string, text: string | undefined): void {
    this.command(ref.node, { cmd: 'close', jid: ref.jid.toString(), condition: condition as StreamErrorCondition, text });
  }

  command(node: string, command: Command): void {
    this.redis.publishToNode(channels.node(node), JSON.stringify(command)).catch((err: unknown) => {
      this.log.warn({ err, node, command: command.cmd }, 'a command to another node could not be sent');
    });
  }

  /** A session is on its way to this node: hold what arrives for it until it is bound (arrived). */
  private expectSession(jid: string): void {
    this.arriving.set(jid, []);
    // bound in a moment; should that fail, what waited is handled as for a session gone
    setTimeout(() => this.arrived(jid), TAKEOVER_TIMEOUT_MS).unref();
  }

  /** The session handed over is bound here (or will not be): what waited for it goes to it. */
  arrived(jid: string): void {
    const held = this.arriving.get(jid);
    if (held === undefined) return;
    this.arriving.delete(jid);
    const parsed = parseJid(jid);
    if (parsed === null) return;
    const session = this.kernel.sessions.get(parsed.bare, parsed.resource);
    for (const { stanza, xml } of held) {
      if (session !== undefined) session.send(stanza, xml);
      else void this.kernel.router.undelivered(stanza, parsed);
    }
  }

  private enqueue(node: string, item: Outgoing): void {
    let queue = this.queued.get(node);
    if (queue === undefined) this.queued.set(node, (queue = []));
    queue.push(item);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** One PUBLISH per destination node for everything queued this turn. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const [node, items] of this.queued) {
      this.queued.delete(node);
      let header = '';
      let body = '';
      for (const item of items) {
        header += `${item.op}\t${item.jid}\t${item.xml.length}\n`;
        body += item.xml;
      }
      this.counters.batchesOut++;
      this.counters.stanzasOut += items.length;
      this.redis.publishToNode(channels.node(node), `${header}\n${body}`).then(
        (receivers) => {
          if (receivers > 0) {
            for (const item of items) item.tracker?.delivered();
          } else {
            // its sessions leave this node's directory first, or routing them again would pick them again
            this.log.warn({ node, stanzas: items.length }, 'a cluster node no longer listens; its sessions are taken as gone and its stanzas as undelivered');
            this.onNodeGone(node);
            for (const item of items) this.undeliverable(item, false);
          }
        },
        (err: unknown) => {
          this.log.warn({ err: (err as Error).message, node, stanzas: items.length }, 'stanzas for another node could not be sent (Redis unreachable)');
          for (const item of items) this.undeliverable(item, true);
        },
      );
    }
  };

  /**
   * A stanza that did not reach its node. Node gone: as when a local session ends (offline
   * storage, another resource). Redis unreachable: the sender gets a `wait` error (RFC 6120
   * §8.3.3.15 recipient-unavailable) rather than nothing, for it to retry.
   */
  private undeliverable(item: Outgoing, linkDown: boolean): void {
    this.counters.undeliverable++;
    if (item.tracker !== undefined) return item.tracker.undelivered();
    const router = this.kernel.router;
    if (linkDown) {
      if (item.stanza.name !== 'presence') router.bounce(item.stanza, new StanzaError('recipient-unavailable', 'The recipient\'s server node cannot be reached; try again'));
      return;
    }
    const jid = parseJid(item.jid);
    if (jid === null) return;
    if (item.op === Op.Deliver) void router.undelivered(item.stanza, jid);
    else router.bounce(item.stanza, new StanzaError('recipient-unavailable'));
  }

  /** A message on this node's channel: a batch of stanzas or a command. */
  receive(message: string): void {
    if (message.charCodeAt(0) === 123 /* { */) return this.runCommand(message);
    const headerEnd = message.indexOf('\n\n');
    if (headerEnd === -1) return this.log.error('a batch from another node has no header; dropped');
    const lines = message.slice(0, headerEnd).split('\n');
    const bodyStart = headerEnd + 2;
    // the lengths must cover the body exactly, or the XML written to clients would not be each stanza's own
    let total = 0;
    for (const line of lines) total += Number(line.slice(line.lastIndexOf('\t') + 1));
    if (total !== message.length - bodyStart) return this.log.error({ declared: total, body: message.length - bodyStart }, 'a batch from another node has wrong lengths; dropped');
    this.parsed = [];
    this.parser.startFramed();
    this.parser.write(message.slice(bodyStart));
    const stanzas = this.parsed;
    if (stanzas.length !== lines.length) return this.log.error({ expected: lines.length, got: stanzas.length }, 'a batch from another node does not match its header; dropped');
    let offset = bodyStart;
    for (let i = 0; i < lines.length; i++) {
      const [op, jidText, length] = lines[i]!.split('\t') as [string, string, string];
      const xml = message.slice(offset, (offset += Number(length)));
      this.counters.stanzasIn++;
      try {
        this.dispatch(op, jidText, stanzas[i]!, xml);
      } catch (err) {
        this.log.error({ err, op, jid: jidText }, 'a stanza from another node failed');
      }
    }
  }

  private dispatch(op: string, jidText: string, stanza: Element, xml: string): void {
    const jid = parseJid(jidText);
    if (jid === null) return;
    if (op === Op.Deliver) {
      const session = this.kernel.sessions.get(jid.bare, jid.resource);
      if (session !== undefined) session.send(stanza, xml);
      else if (this.arriving.has(jidText)) this.arriving.get(jidText)!.push({ stanza, xml });
      else void this.kernel.router.undelivered(stanza, jid);
    } else if (op === Op.Route) {
      this.kernel.router.route(stanza);
    }
  }

  private runCommand(message: string): void {
    let command: Command;
    try {
      command = JSON.parse(message) as Command;
    } catch {
      return this.log.error('a command from another node is not JSON; ignored');
    }
    if (command.cmd === 'takeover') {
      const answer = this.kernel.resumable?.handOut(command.request) ?? { failed: 'item-not-found' as const };
      if ('session' in answer) this.onHandedOver(answer.session, command.request.by);
      const reply: Command = { cmd: 'handoff', id: command.id, answer };
      this.redis.publishToNode(channels.node(command.request.by), JSON.stringify(reply)).then((receivers) => {
        // the asking node died meanwhile: the session is gone with it; what it held is in the archive
        if (receivers === 0 && 'session' in answer) this.log.error({ jid: answer.session.jid, node: command.request.by }, 'a session was handed over to a node that is gone');
      }, (err: unknown) => this.log.error({ err, node: command.request.by }, 'a handed-over session could not be sent to its new node'));
    } else if (command.cmd === 'handoff') {
      const waiting = this.takeovers.get(command.id);
      if (waiting !== undefined && 'session' in command.answer) this.expectSession(command.answer.session.jid);
      if (waiting !== undefined) waiting(command.answer);
      else if ('session' in command.answer) this.log.error({ jid: command.answer.session.jid }, 'a session was handed over after its client was told to bind afresh; what it had not acknowledged is in the archive');
    } else if (command.cmd === 'close') {
      const session = this.kernel.sessions.ownSession(command.jid);
      if (session) {
        this.log.info({ jid: command.jid, condition: command.condition }, 'session ended at the request of another node');
        session.close(command.condition, command.text);
      }
    }
  }
}
