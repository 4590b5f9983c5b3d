// The rules of roles and affiliations in a room (XEP-0045 §5, §8-§10), case by case.
import test from 'ava';
import { affiliationChangeRefusal, defaultRole, mayListAffiliation, maySendPrivateMessage, roleChangeRefusal } from '../../src/modules/muc/permissions.js';

const refused = (error: { condition: string } | undefined) => error?.condition;

test('the role one enters with follows the affiliation, and moderation silences strangers', (t) => {
  t.is(defaultRole('owner', false), 'moderator');
  t.is(defaultRole('admin', true), 'moderator');
  t.is(defaultRole('member', true), 'participant');
  t.is(defaultRole('none', false), 'participant');
  t.is(defaultRole('none', true), 'visitor');
  t.is(defaultRole('outcast', false), 'none');
});

test('moderators kick and voice participants, but only admins touch moderators, and nobody kicks an owner', (t) => {
  const moderator = { affiliation: 'none' as const, role: 'moderator' as const };
  const admin = { affiliation: 'admin' as const, role: 'moderator' as const };
  const owner = { affiliation: 'owner' as const, role: 'moderator' as const };
  const participant = { affiliation: 'none' as const, role: 'participant' as const };
  t.is(refused(roleChangeRefusal(moderator, participant, 'none')), undefined, 'kick');
  t.is(refused(roleChangeRefusal(moderator, participant, 'visitor')), undefined, 'revoke voice');
  t.is(refused(roleChangeRefusal(participant, participant, 'none')), 'forbidden');
  t.is(refused(roleChangeRefusal(moderator, participant, 'moderator')), 'not-allowed');
  t.is(refused(roleChangeRefusal(admin, participant, 'moderator')), undefined);
  t.is(refused(roleChangeRefusal(moderator, { affiliation: 'none', role: 'moderator' }, 'none')), 'not-allowed');
  t.is(refused(roleChangeRefusal(admin, owner, 'none')), 'not-allowed');
  t.is(refused(roleChangeRefusal(admin, admin, 'visitor')), 'not-allowed');
  t.is(refused(roleChangeRefusal(owner, admin, 'none')), undefined);
});

test('admins manage members and bans; owners also manage admins and owners', (t) => {
  t.is(refused(affiliationChangeRefusal('admin', 'none', 'member')), undefined);
  t.is(refused(affiliationChangeRefusal('admin', 'member', 'outcast')), undefined);
  t.is(refused(affiliationChangeRefusal('admin', 'none', 'admin')), 'not-allowed');
  t.is(refused(affiliationChangeRefusal('admin', 'admin', 'outcast')), 'not-allowed');
  t.is(refused(affiliationChangeRefusal('owner', 'admin', 'none')), undefined);
  t.is(refused(affiliationChangeRefusal('member', 'none', 'member')), 'forbidden');
});

test('members read who belongs, admins the bans; private messages follow allowpm', (t) => {
  t.true(mayListAffiliation('member', 'member'));
  t.false(mayListAffiliation('none', 'member'));
  t.false(mayListAffiliation('member', 'outcast'));
  t.true(mayListAffiliation('admin', 'outcast'));
  t.true(maySendPrivateMessage('anyone', 'visitor'));
  t.false(maySendPrivateMessage('participants', 'visitor'));
  t.true(maySendPrivateMessage('participants', 'participant'));
  t.false(maySendPrivateMessage('moderators', 'participant'));
  t.false(maySendPrivateMessage('none', 'moderator'));
});
