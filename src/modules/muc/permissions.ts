// Who may do what in a room (XEP-0045 §5): the rules of roles and affiliations as pure
// functions, so that each can be read next to the section of the XEP it comes from.
import { StanzaError } from '../../core/stanza.js';
import type { AllowPm } from './forms.js';
import type { Role } from './occupant.js';
import type { Affiliation } from './store.js';

export const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };
export const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

export function isRole(value: string): value is Role {
  return value === 'moderator' || value === 'participant' || value === 'visitor' || value === 'none';
}

export function isAffiliation(value: string): value is Affiliation {
  return value === 'owner' || value === 'admin' || value === 'member' || value === 'outcast' || value === 'none';
}

/** §5.1.2: the role an occupant enters with. */
export function defaultRole(affiliation: Affiliation, moderated: boolean): Role {
  if (affiliation === 'owner' || affiliation === 'admin') return 'moderator';
  if (affiliation === 'member') return 'participant';
  if (affiliation === 'outcast') return 'none';
  return moderated ? 'visitor' : 'participant';
}

interface Party {
  affiliation: Affiliation;
  role: Role;
}

/** Why `actor` may not give `target` the role `role` (kick, voice, moderator: §8.2-§8.5, §9.6-§9.7). */
export function roleChangeRefusal(actor: Party, target: Party, role: Role): StanzaError | undefined {
  if (actor.role !== 'moderator') return new StanzaError('forbidden', 'Only moderators change roles');
  const actorRank = AFFILIATION_RANK[actor.affiliation];
  const targetRank = AFFILIATION_RANK[target.affiliation];
  // granting or revoking moderator is for admins and owners
  if ((role === 'moderator' || target.role === 'moderator') && actorRank < AFFILIATION_RANK.admin) {
    return new StanzaError('not-allowed', 'Only admins change who is a moderator');
  }
  // no one kicks or silences an admin or owner, unless of a higher affiliation
  if (role !== 'moderator' && targetRank >= AFFILIATION_RANK.admin && targetRank >= actorRank) {
    return new StanzaError('not-allowed', 'You may not change the role of an admin or owner');
  }
  return undefined;
}

/** Why `actor` may not change an affiliation from `current` to `next` (§9.1-§9.5, §10.3-§10.7). */
export function affiliationChangeRefusal(actor: Affiliation, current: Affiliation, next: Affiliation): StanzaError | undefined {
  if (AFFILIATION_RANK[actor] < AFFILIATION_RANK.admin) return new StanzaError('forbidden', 'Only admins and owners change affiliations');
  // admins manage members and bans of non-admins; owners manage everything
  const aboutAdmins = next === 'owner' || next === 'admin' || current === 'owner' || current === 'admin';
  if (aboutAdmins && actor !== 'owner') return new StanzaError('not-allowed', 'Only owners change admins and owners');
  return undefined;
}

/** Who may read an affiliation list: members see who belongs (clients show member lists), admins the bans. */
export function mayListAffiliation(viewer: Affiliation, list: Affiliation): boolean {
  return list === 'outcast' ? AFFILIATION_RANK[viewer] >= AFFILIATION_RANK.admin : AFFILIATION_RANK[viewer] >= AFFILIATION_RANK.member;
}

/** muc#roomconfig_allowpm: whether an occupant with this role may send private messages. */
export function maySendPrivateMessage(allowPm: AllowPm, role: Role): boolean {
  if (allowPm === 'anyone') return true;
  if (allowPm === 'participants') return ROLE_RANK[role] >= ROLE_RANK.participant;
  if (allowPm === 'moderators') return role === 'moderator';
  return false;
}
