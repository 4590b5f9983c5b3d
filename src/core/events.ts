// Named events with prioritised handlers, after Prosody's util.events: handlers run from the
// highest priority down, and the first one that returns something other than `undefined` stops
// the chain and its value is the result. Handlers are synchronous so that routing a stanza never
// waits on a promise; a handler that needs I/O starts it and returns `true` ("handled").

export type EventHandler<E> = (event: E) => unknown;

interface Registration {
  handler: EventHandler<never>;
  priority: number;
}

export class EventBus {
  private readonly handlers = new Map<string, Registration[]>();

  on<E>(name: string, handler: EventHandler<E>, priority = 0): () => void {
    const list = this.handlers.get(name) ?? [];
    const registration: Registration = { handler: handler as EventHandler<never>, priority };
    // keep the list sorted by descending priority; equal priorities run in registration order
    let i = list.length;
    while (i > 0 && list[i - 1]!.priority < priority) i--;
    list.splice(i, 0, registration);
    this.handlers.set(name, list);
    return () => {
      const index = list.indexOf(registration);
      if (index !== -1) list.splice(index, 1);
    };
  }

  has(name: string): boolean {
    const list = this.handlers.get(name);
    return list !== undefined && list.length > 0;
  }

  fire<E>(name: string, event: E): unknown {
    const list = this.handlers.get(name);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const result = (list[i]!.handler as EventHandler<E>)(event);
      if (result !== undefined) return result;
    }
    return undefined;
  }
}
