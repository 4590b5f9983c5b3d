// Room nicknames under RFC 8266 (PRECIS Nickname profile), with Latin look-alike letters folded
// for comparison: the nicks two occupants could be confused by collide.
import test from 'ava';
import { enforceNickname, nicknameKey } from '../../src/modules/muc/nickname.js';

const key = (nick: string) => nicknameKey(enforceNickname(nick)!);

test('enforcement maps spaces, trims and applies NFKC', (t) => {
  t.is(enforceNickname('  Alice\u00a0\u2003 Smith '), 'Alice Smith');
  t.is(enforceNickname('ﬁsh'), 'fish'); // the fi ligature is a compatibility character
  t.is(enforceNickname('Zoe\u0301'), 'Zo\u00e9');
  t.is(enforceNickname('Ἀθηνᾶ ☃'), 'Ἀθηνᾶ ☃');
});

test('invisible, control and unassigned characters make a nick invalid', (t) => {
  for (const bad of ['Alice\u200b', '\u200dBob', 'Eve\u202e', 'Bell\u0007', 'line\u2028break', '\ufeff', '   ', 'x\u{e000}', 'x\ufffe']) {
    t.is(enforceNickname(bad), null, JSON.stringify(bad));
  }
});

test('nicks that differ in case, width or by look-alike letters collide', (t) => {
  t.is(key('Alice'), key('alice'));
  t.is(key('Alice'), key('ALICE'));
  t.is(key('Alice'), key('\u0410lice')); // Cyrillic А
  t.is(key('Alice'), key('Ａｌｉｃｅ')); // fullwidth
  t.is(key('Bob'), key('\u0412ob')); // Cyrillic В
  t.is(key('Hop'), key('\u0397\u03bf\u03c1')); // Greek Ηορ
  t.not(key('Alice'), key('Alicia'));
  t.not(key('Ольга'), key('Olga'));
});
