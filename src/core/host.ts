// One virtual host (a domain this server serves): its events, service discovery data, IQ
// handlers and the modules enabled on it.
import { EventBus } from './events.js';
import type { IqHandler, IqTarget, IqType } from './iq.js';

/** A module set up on a host, as the host keeps it (src/core/module.ts's ModuleContext). */
export interface HostModule {
  readonly name: string;
  stop(): Promise<void>;
}

export interface HostSettings {
  domain: string;
  registration: 'open' | 'invite' | 'closed';
  admins: string[];
  /** Modules enabled on this host, in load order. */
  modules: string[];
}

export interface DiscoIdentity {
  category: string;
  type: string;
  name?: string | undefined;
}

export class VirtualHost {
  readonly events = new EventBus();
  readonly features = new Set<string>();
  /** Bumped whenever `features` changes, so that what is computed from them (the caps hash) can be kept. */
  featuresVersion = 0;
  /** Features an account's bare JID has besides disco itself (XEP-0030 §3.1), e.g. its archive. */
  readonly accountFeatures = new Set<string>();
  readonly identities: DiscoIdentity[] = [{ category: 'server', type: 'im', name: 'xmppd' }];
  readonly items: Array<{ jid: string; name?: string | undefined }> = [];
  readonly modules = new Map<string, HostModule>();
  readonly services = new Map<string, object>();
  private readonly iqHandlers = new Map<string, IqHandler>();

  constructor(readonly settings: HostSettings) {}

  get domain(): string {
    return this.settings.domain;
  }

  isAdmin(bareJid: string): boolean {
    return this.settings.admins.includes(bareJid);
  }

  /** Registers the handler; returns its removal (when its module stops). */
  setIqHandler(target: IqTarget, type: IqType, xmlns: string, handler: IqHandler): () => void {
    const key = `${target}|${type}|${xmlns}`;
    if (this.iqHandlers.has(key)) throw new Error(`two modules handle ${type} ${xmlns} for ${target} on ${this.domain}`);
    this.iqHandlers.set(key, handler);
    return () => {
      if (this.iqHandlers.get(key) === handler) this.iqHandlers.delete(key);
    };
  }

  iqHandler(target: IqTarget, type: string, xmlns: string): IqHandler | undefined {
    return this.iqHandlers.get(`${target}|${type}|${xmlns}`);
  }
}
