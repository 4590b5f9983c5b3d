// Node configuration (XEP-0060 §8.2, §16.4 `pubsub#node_config`): the options we honour, their
// defaults, the data form that shows them, and reading a submitted form or publish-options
// (§7.1.5) against them.
import Element from 'ltx/lib/Element.js';
import { StanzaError } from '../../core/stanza.js';
import { NS_DATA, NS_PUBSUB_CONFIG, NS_PUBSUB_ERRORS } from './ns.js';

export type AccessModel = 'open' | 'presence' | 'roster' | 'whitelist';
export type PublishModel = 'publishers' | 'subscribers' | 'open';
export type SendLastPublishedItem = 'never' | 'on_sub' | 'on_sub_and_presence';

export interface NodeConfig {
  title: string;
  /** A number, or 'max': the service's limit (XEP-0060 §7.1.5 / XEP-0402 use it). */
  max_items: number | 'max';
  persist_items: boolean;
  access_model: AccessModel;
  publish_model: PublishModel;
  send_last_published_item: SendLastPublishedItem;
  deliver_payloads: boolean;
  deliver_notifications: boolean;
  notify_retract: boolean;
  notify_delete: boolean;
  notify_config: boolean;
  notification_type: 'headline' | 'normal';
  roster_groups_allowed: string[];
  type: string;
}

export function defaultConfig(pep: boolean): NodeConfig {
  return {
    title: '',
    // XEP-0163 nodes hold the one current value (the avatar, the device list); a general service keeps more
    max_items: pep ? 1 : 10,
    persist_items: true,
    access_model: pep ? 'presence' : 'open',
    publish_model: 'publishers',
    send_last_published_item: pep ? 'on_sub_and_presence' : 'on_sub',
    deliver_payloads: true,
    deliver_notifications: true,
    notify_retract: true,
    notify_delete: true,
    notify_config: false,
    notification_type: 'headline',
    roster_groups_allowed: [],
    type: '',
  };
}

type Kind = 'text-single' | 'list-single' | 'boolean' | 'list-multi';
interface FieldSpec {
  kind: Kind;
  label: string;
  options?: readonly string[];
}

const FIELDS: Record<keyof NodeConfig, FieldSpec> = {
  title: { kind: 'text-single', label: 'A friendly name for the node' },
  max_items: { kind: 'text-single', label: 'Max # of items to persist (or max)' },
  persist_items: { kind: 'boolean', label: 'Persist items to storage' },
  access_model: { kind: 'list-single', label: 'Specify the subscriber model', options: ['open', 'presence', 'roster', 'whitelist'] },
  publish_model: { kind: 'list-single', label: 'Specify the publisher model', options: ['publishers', 'subscribers', 'open'] },
  send_last_published_item: { kind: 'list-single', label: 'When to send the last published item', options: ['never', 'on_sub', 'on_sub_and_presence'] },
  deliver_payloads: { kind: 'boolean', label: 'Deliver payloads with event notifications' },
  deliver_notifications: { kind: 'boolean', label: 'Deliver event notifications' },
  notify_retract: { kind: 'boolean', label: 'Notify subscribers when items are removed from the node' },
  notify_delete: { kind: 'boolean', label: 'Notify subscribers when the node is deleted' },
  notify_config: { kind: 'boolean', label: 'Notify subscribers when the node configuration changes' },
  notification_type: { kind: 'list-single', label: 'Specify the delivery style for notifications', options: ['headline', 'normal'] },
  roster_groups_allowed: { kind: 'list-multi', label: 'Roster groups allowed to subscribe' },
  type: { kind: 'text-single', label: 'Specify the semantic type of payload data' },
};

/** The node's configuration as a form (§8.2.1): `type='form'` to fill, `type='result'` for meta-data. */
export function configForm(config: NodeConfig, type: 'form' | 'result' = 'form'): Element {
  const form = new Element('x', { xmlns: NS_DATA, type });
  form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(NS_PUBSUB_CONFIG);
  for (const [key, spec] of Object.entries(FIELDS) as Array<[keyof NodeConfig, FieldSpec]>) {
    const field = form.c('field', { var: `pubsub#${key}`, type: spec.kind, label: spec.label });
    for (const option of spec.options ?? []) field.c('option').c('value').t(option);
    const value = config[key];
    if (Array.isArray(value)) for (const v of value) field.c('value').t(v);
    else field.c('value').t(typeof value === 'boolean' ? (value ? '1' : '0') : String(value));
  }
  return form;
}

/** The fields of a submitted data form, by var (FORM_TYPE aside), or undefined for none. */
export function formValues(form: Element | undefined): Map<string, string[]> | undefined {
  if (form === undefined) return undefined;
  const values = new Map<string, string[]>();
  for (const field of form.getChildren('field')) {
    const name = field.attrs.var;
    if (name === undefined) continue;
    values.set(name, field.getChildren('value').map((v) => v.getText()));
  }
  return values;
}

function parseBoolean(value: string | undefined): boolean | undefined {
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  return undefined;
}

/**
 * `config` changed by the submitted fields. Unknown fields, bad values and a max_items beyond
 * `limit` fail with not-acceptable (§8.2.5: "the configuration form is invalid").
 */
export function applyForm(config: NodeConfig, values: Map<string, string[]>, limit: number): NodeConfig {
  const next: NodeConfig = { ...config, roster_groups_allowed: [...config.roster_groups_allowed] };
  for (const [name, raw] of values) {
    if (name === 'FORM_TYPE') continue;
    const key = name.startsWith('pubsub#') ? (name.slice('pubsub#'.length) as keyof NodeConfig) : undefined;
    const spec = key === undefined ? undefined : FIELDS[key];
    if (key === undefined || spec === undefined) continue; // options we do not have are ignored, as Prosody and ejabberd do
    const value = raw[0] ?? '';
    const invalid = () => new StanzaError('not-acceptable', `Invalid value for ${name}`);
    switch (spec.kind) {
      case 'boolean': {
        const b = parseBoolean(value);
        if (b === undefined) throw invalid();
        (next as unknown as Record<string, unknown>)[key] = b;
        break;
      }
      case 'list-single':
        if (!spec.options!.includes(value)) throw invalid();
        (next as unknown as Record<string, unknown>)[key] = value;
        break;
      case 'list-multi':
        (next as unknown as Record<string, unknown>)[key] = raw;
        break;
      default:
        if (key === 'max_items') {
          if (value === 'max') next.max_items = 'max';
          else {
            const n = Number(value);
            if (!Number.isInteger(n) || n < 1) throw invalid();
            if (n > limit) throw new StanzaError('not-acceptable', `max_items is at most ${limit}`);
            next.max_items = n;
          }
        } else (next as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return next;
}

/** The number of items a node keeps: `max` is the service's limit; non-persistent nodes keep the last one. */
export function itemLimit(config: NodeConfig, limit: number): number {
  if (!config.persist_items) return 1;
  return config.max_items === 'max' ? limit : Math.min(config.max_items, limit);
}

function sameValue(config: NodeConfig, key: keyof NodeConfig, wanted: string[]): boolean {
  const value = config[key];
  if (Array.isArray(value)) return value.length === wanted.length && value.every((v, i) => v === wanted[i]);
  if (typeof value === 'boolean') return parseBoolean(wanted[0]) === value;
  return String(value) === (wanted[0] ?? '');
}

/**
 * XEP-0060 §7.1.5: publish-options are preconditions. Each option the service knows must match
 * the existing node's configuration, otherwise the publish fails with <conflict/> and
 * <precondition-not-met/>. (An option the service does not know fails the same way.)
 */
export function checkPreconditions(config: NodeConfig, values: Map<string, string[]>): void {
  for (const [name, wanted] of values) {
    if (name === 'FORM_TYPE') continue;
    const key = name.startsWith('pubsub#') ? (name.slice('pubsub#'.length) as keyof NodeConfig) : undefined;
    if (key === undefined || FIELDS[key] === undefined || !sameValue(config, key, wanted)) {
      throw new StanzaError('conflict', `Node configuration does not match ${name}`, 'cancel', new Element('precondition-not-met', { xmlns: NS_PUBSUB_ERRORS }));
    }
  }
}

export function parseConfig(json: string, pep: boolean): NodeConfig {
  return { ...defaultConfig(pep), ...(JSON.parse(json) as Partial<NodeConfig>) };
}
