// XEP-0004 data forms for MUC: the owner's room configuration form (XEP-0045 §10.2, the
// muc#roomconfig FORM_TYPE of §15.5.3) and the room information form of disco#info
// (muc#roominfo, §15.5.4). A submitted form only changes the fields it contains.
import Element from 'ltx/lib/Element.js';
import { StanzaError } from '../../core/stanza.js';

export const NS_DATA = 'jabber:x:data';
export const FORM_ROOMCONFIG = 'http://jabber.org/protocol/muc#roomconfig';
export const FORM_ROOMINFO = 'http://jabber.org/protocol/muc#roominfo';
export const FORM_REQUEST = 'http://jabber.org/protocol/muc#request';

export type Whois = 'moderators' | 'anyone';
export type AllowPm = 'anyone' | 'participants' | 'moderators' | 'none';

/** A room's configuration, as the owner sets it with the muc#roomconfig form. */
export interface RoomConfig {
  name: string;
  description: string;
  persistent: boolean;
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  passwordProtected: boolean;
  password: string;
  whois: Whois;
  /** 0: no limit below the service's max_occupants */
  maxUsers: number;
  changeSubject: boolean;
  allowInvites: boolean;
  allowPm: AllowPm;
  logging: boolean;
  /** Messages kept in the room's message archive (XEP-0313 §6), when the server runs one. */
  archiving: boolean;
  historyLength: number;
  /** Roles whose presence is broadcast to the room (muc#roomconfig_presencebroadcast). */
  presenceBroadcast: BroadcastRole[];
}

export type BroadcastRole = 'moderator' | 'participant' | 'visitor';
const BROADCAST_ROLES: BroadcastRole[] = ['moderator', 'participant', 'visitor'];

export function defaultRoomConfig(historyLength: number): RoomConfig {
  return {
    name: '',
    description: '',
    persistent: false,
    public: true,
    membersOnly: false,
    moderated: false,
    passwordProtected: false,
    password: '',
    whois: 'moderators',
    maxUsers: 0,
    changeSubject: false,
    allowInvites: false,
    allowPm: 'anyone',
    logging: false,
    archiving: true,
    historyLength,
    presenceBroadcast: [...BROADCAST_ROLES],
  };
}

/** The fields of a data form, by var (XEP-0004 §3.2). */
export type FormValues = Map<string, string[]>;

export function readForm(x: Element): FormValues {
  const values: FormValues = new Map();
  for (const field of x.getChildren('field')) {
    const name = field.attrs.var;
    if (name === undefined) continue;
    values.set(name, field.getChildren('value').map((v) => v.getText()));
  }
  return values;
}

interface FieldSpec {
  var: string;
  type: 'boolean' | 'text-single' | 'text-private' | 'text-multi' | 'list-single' | 'list-multi' | 'hidden' | 'jid-multi' | 'jid-single';
  label?: string;
  values: string[];
  options?: Array<[value: string, label: string]>;
}

export function buildForm(type: 'form' | 'result', title: string | undefined, fields: FieldSpec[]): Element {
  const x = new Element('x', { xmlns: NS_DATA, type });
  if (title) x.c('title').t(title);
  for (const spec of fields) {
    const attrs: Record<string, string> = { var: spec.var, type: spec.type };
    if (spec.label) attrs.label = spec.label;
    const field = x.c('field', attrs);
    for (const value of spec.values) field.c('value').t(value);
    for (const [value, label] of spec.options ?? []) field.c('option', { label }).c('value').t(value);
  }
  return x;
}

const bool = (value: boolean) => (value ? '1' : '0');

export function roomConfigForm(config: RoomConfig, maxOccupants: number): Element {
  const sizes = [10, 20, 30, 50, 100, 200, 500, 1000, 5000, 10000].filter((n) => n <= maxOccupants);
  return buildForm('form', 'Room configuration', [
    { var: 'FORM_TYPE', type: 'hidden', values: [FORM_ROOMCONFIG] },
    { var: 'muc#roomconfig_roomname', type: 'text-single', label: 'Name', values: [config.name] },
    { var: 'muc#roomconfig_roomdesc', type: 'text-single', label: 'Description', values: [config.description] },
    { var: 'muc#roomconfig_persistentroom', type: 'boolean', label: 'Keep the room when the last person leaves', values: [bool(config.persistent)] },
    { var: 'muc#roomconfig_publicroom', type: 'boolean', label: 'List the room in the public directory', values: [bool(config.public)] },
    { var: 'muc#roomconfig_membersonly', type: 'boolean', label: 'Only members may join', values: [bool(config.membersOnly)] },
    { var: 'muc#roomconfig_moderatedroom', type: 'boolean', label: 'Only participants with voice may speak', values: [bool(config.moderated)] },
    { var: 'muc#roomconfig_passwordprotectedroom', type: 'boolean', label: 'Require a password to join', values: [bool(config.passwordProtected)] },
    { var: 'muc#roomconfig_roomsecret', type: 'text-private', label: 'Password', values: [config.password] },
    {
      var: 'muc#roomconfig_whois', type: 'list-single', label: 'Who may see the real addresses of occupants', values: [config.whois],
      options: [['moderators', 'Moderators only'], ['anyone', 'Anyone']],
    },
    {
      var: 'muc#roomconfig_maxusers', type: 'list-single', label: 'Maximum number of occupants',
      values: [config.maxUsers === 0 ? 'none' : String(config.maxUsers)],
      options: [...sizes.map((n): [string, string] => [String(n), String(n)]), ['none', 'No limit']],
    },
    { var: 'muc#roomconfig_changesubject', type: 'boolean', label: 'Participants may change the subject', values: [bool(config.changeSubject)] },
    { var: 'muc#roomconfig_allowinvites', type: 'boolean', label: 'Participants may invite others', values: [bool(config.allowInvites)] },
    {
      var: 'muc#roomconfig_allowpm', type: 'list-single', label: 'Who may send private messages', values: [config.allowPm],
      options: [['anyone', 'Anyone'], ['participants', 'Participants'], ['moderators', 'Moderators'], ['none', 'Nobody']],
    },
    { var: 'muc#roomconfig_enablelogging', type: 'boolean', label: 'Public logging', values: [bool(config.logging)] },
    // Prosody's name for the field, which clients already show
    { var: 'muc#roomconfig_enablearchiving', type: 'boolean', label: 'Keep a message archive (MAM) of the room', values: [bool(config.archiving)] },
    { var: 'muc#roomconfig_historylength', type: 'text-single', label: 'Messages of history sent to people who join', values: [String(config.historyLength)] },
    {
      var: 'muc#roomconfig_presencebroadcast', type: 'list-multi', label: 'Roles whose presence is shown to everyone', values: config.presenceBroadcast,
      options: [['moderator', 'Moderators'], ['participant', 'Participants'], ['visitor', 'Visitors']],
    },
  ]);
}

function parseBoolean(field: string, value: string): boolean {
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw new StanzaError('not-acceptable', `${field}: expected a boolean`);
}

/**
 * Applies a submitted muc#roomconfig form to `current`; fields absent from the form keep their
 * values (XEP-0045 §10.2). Throws bad-request / not-acceptable for a value out of range.
 */
export function applyRoomConfig(current: RoomConfig, form: FormValues, limits: { maxOccupants: number; maxHistory: number }): RoomConfig {
  const formType = form.get('FORM_TYPE')?.[0];
  if (formType !== undefined && formType !== FORM_ROOMCONFIG) throw new StanzaError('bad-request', `Unexpected FORM_TYPE ${formType}`);
  const next = { ...current };
  for (const [name, values] of form) {
    const value = values[0] ?? '';
    switch (name) {
      case 'muc#roomconfig_roomname': next.name = value; break;
      case 'muc#roomconfig_roomdesc': next.description = value; break;
      case 'muc#roomconfig_persistentroom': next.persistent = parseBoolean(name, value); break;
      case 'muc#roomconfig_publicroom': next.public = parseBoolean(name, value); break;
      case 'muc#roomconfig_membersonly': next.membersOnly = parseBoolean(name, value); break;
      case 'muc#roomconfig_moderatedroom': next.moderated = parseBoolean(name, value); break;
      case 'muc#roomconfig_passwordprotectedroom': next.passwordProtected = parseBoolean(name, value); break;
      case 'muc#roomconfig_roomsecret': next.password = value; break;
      case 'muc#roomconfig_whois':
        if (value !== 'moderators' && value !== 'anyone') throw new StanzaError('not-acceptable', `${name}: moderators or anyone`);
        next.whois = value;
        break;
      case 'muc#roomconfig_maxusers': {
        if (value === 'none' || value === '' || value === '0') next.maxUsers = 0;
        else {
          const n = Number(value);
          if (!Number.isInteger(n) || n < 1) throw new StanzaError('not-acceptable', `${name}: a number or none`);
          if (n > limits.maxOccupants) throw new StanzaError('not-acceptable', `${name}: at most ${limits.maxOccupants}`);
          next.maxUsers = n;
        }
        break;
      }
      case 'muc#roomconfig_changesubject': next.changeSubject = parseBoolean(name, value); break;
      case 'muc#roomconfig_allowinvites': next.allowInvites = parseBoolean(name, value); break;
      case 'muc#roomconfig_allowpm':
        // older clients send a boolean here
        if (value === '1' || value === 'true') next.allowPm = 'anyone';
        else if (value === '0' || value === 'false') next.allowPm = 'none';
        else if (value === 'anyone' || value === 'participants' || value === 'moderators' || value === 'none') next.allowPm = value;
        else throw new StanzaError('not-acceptable', `${name}: anyone, participants, moderators or none`);
        break;
      case 'muc#roomconfig_enablelogging': next.logging = parseBoolean(name, value); break;
      case 'muc#roomconfig_enablearchiving': next.archiving = parseBoolean(name, value); break;
      case 'muc#roomconfig_historylength':
      case 'muc#maxhistoryfetch': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0) throw new StanzaError('not-acceptable', `${name}: a number of messages`);
        next.historyLength = Math.min(n, limits.maxHistory);
        break;
      }
      case 'muc#roomconfig_presencebroadcast': {
        const roles = values.filter((v): v is BroadcastRole => (BROADCAST_ROLES as string[]).includes(v));
        if (roles.length !== values.length) throw new StanzaError('not-acceptable', `${name}: moderator, participant, visitor`);
        next.presenceBroadcast = roles;
        break;
      }
      default: break; // XEP-0004 §3.4: fields we do not know are ignored
    }
  }
  if (next.passwordProtected && next.password === '') throw new StanzaError('not-acceptable', 'A password-protected room needs a password');
  if (!next.passwordProtected) next.password = '';
  return next;
}

/** XEP-0045 §6.4: the extended room information in disco#info (XEP-0128). */
export function roomInfoForm(config: RoomConfig, occupants: number, subject: string, avatarHash: string): Element {
  return buildForm('result', undefined, [
    { var: 'FORM_TYPE', type: 'hidden', values: [FORM_ROOMINFO] },
    { var: 'muc#roomconfig_roomname', type: 'text-single', label: 'Name', values: [config.name] },
    { var: 'muc#roominfo_description', type: 'text-single', label: 'Description', values: [config.description] },
    { var: 'muc#roominfo_subject', type: 'text-single', label: 'Subject', values: [subject] },
    { var: 'muc#roominfo_occupants', type: 'text-single', label: 'Number of occupants', values: [String(occupants)] },
    { var: 'muc#roomconfig_changesubject', type: 'boolean', label: 'Participants may change the subject', values: [bool(config.changeSubject)] },
    { var: 'muc#maxhistoryfetch', type: 'text-single', label: 'Messages of history', values: [String(config.historyLength)] },
    // XEP-0486 §3: the SHA-1 of the room's avatar (its vCard photo), so that clients show it
    // before joining and fetch it only when it changed; no value while the room has none
    { var: 'muc#roominfo_avatarhash', type: 'text-multi', label: 'Avatar hash', values: avatarHash === '' ? [] : [avatarHash] },
  ]);
}

/** XEP-0045 §8.6: the form a moderator gets when a visitor asks for voice. */
export function voiceRequestForm(jid: string, nick: string): Element {
  return buildForm('form', 'Voice request', [
    { var: 'FORM_TYPE', type: 'hidden', values: [FORM_REQUEST] },
    { var: 'muc#role', type: 'list-single', label: 'Requested role', values: ['participant'], options: [['participant', 'Participant']] },
    { var: 'muc#jid', type: 'jid-single', label: 'User ID', values: [jid] },
    { var: 'muc#roomnick', type: 'text-single', label: 'Room nickname', values: [nick] },
    { var: 'muc#request_allow', type: 'boolean', label: 'Grant voice to this person?', values: ['0'] },
  ]);
}
