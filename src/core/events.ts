// Named events with prioritised handlers, after Prosody's util.events: handlers run from the
// highest priority down, and the first one that returns something other than `undefined` stops
// the chain and its value is the result. Handlers are synchronous so that routing a stanza never
// waits on a promise. A handler that needs I/O before the chain may go on returns
// `wait(promise)`: the rest of the chain runs once the promise settles, with the promise's value
// as the handler's own (undefined: go on). For client stanzas the kernel turns that into a
// Waiting, and the client's later stanzas wait behind it (Prosody's per-session runner).

export type EventHandler<E> = (event: E) => unknown;

interface Registration {
  handler: EventHandler<never>;
  priority: number;
}

/** What a handler returns to pause the chain until `promise` settles (see wait()). */
export class Pause {
  constructor(readonly promise: Promise<unknown>) {}
}

/** Pauses the event chain until `promise` settles; its value is the handler's result (undefined: go on). */
export function wait(promise: Promise<unknown>): Pause {
  return new Pause(promise);
}

/**
 * A client stanza whose handling waited: `routed` settles once its handlers and the router are
 * done with it (the session's next stanza may go), `accepted` once it is also stored (the
 * XEP-0198 ack may go).
 */
export class Waiting {
  constructor(
    readonly routed: Promise<void>,
    readonly accepted: Promise<unknown>,
  ) {}
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
      if (result !== undefined) return result instanceof Pause ? new Pause(resume(list.slice(i + 1), event, result.promise)) : result;
    }
    return undefined;
  }
}

/** The rest of a paused chain (a copy: handlers added or removed meanwhile do not shift it). */
async function resume<E>(rest: Registration[], event: E, pending: Promise<unknown>): Promise<unknown> {
  let result = await pending;
  for (let i = 0; result === undefined && i < rest.length; i++) {
    result = (rest[i]!.handler as EventHandler<E>)(event);
    if (result instanceof Pause) result = await result.promise;
  }
  return result;
}
