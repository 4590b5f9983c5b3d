// The pieces the importers stand on: the Lua literal reader for Prosody's data files, Prosody's
// file-name encoding, and the stream parser's containers for XEP-0227 files.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { isTable, luaBytes, luaText, LuaSyntaxError, parseLuaItems, parseLuaReturn, type LuaTable } from '../../src/migrate/lua.js';
import { decodeProsodyName, encodeProsodyName } from '../../src/migrate/prosody-reader.js';
import { StreamParser } from '../../src/xml/parser.js';

test('a Prosody roster file reads as nested tables, with false and string keys', (t) => {
  const roster = parseLuaReturn(`return {
	[false] = {
		["version"] = 2;
		["pending"] = {};
	};
	["bob@p.example"] = {
		["ask"] = "subscribe";
		["groups"] = {
			["Friends"] = true;
		};
		["name"] = "Bobby";
		["subscription"] = "none";
	};
};
`) as LuaTable;
  t.true(isTable(roster));
  t.is((roster.get(false) as LuaTable).get('version'), 2);
  const bob = roster.get('bob@p.example') as LuaTable;
  t.is(bob.get('name'), 'Bobby');
  t.deepEqual([...(bob.get('groups') as LuaTable).entries()], [['Friends', true]]);
});

test('strings: escapes, decimal bytes, long brackets and UTF-8; comments are skipped', (t) => {
  const value = parseLuaReturn(`-- a comment
return { "a\\"b\\n\\65\\x42", [[long
string]], [==[with ]] inside]==], "caf\\195\\169", 0x10, -1.5e2, nil, name = 'x' --[[ block ]] }`) as LuaTable;
  t.is(value.get(1), 'a"b\nAB');
  t.is(value.get(2), 'long\nstring');
  t.is(value.get(3), 'with ]] inside');
  t.is(luaText(value.get(4)), 'café');
  t.is(value.get(5), 16);
  t.is(value.get(6), -150);
  t.false(value.has(7), 'nil leaves a hole');
  t.is(value.get('name'), 'x');
  t.deepEqual(luaBytes('\xff\x00'), Buffer.from([255, 0]));
});

test('anything but data is refused with its line and column, never run', (t) => {
  const err = t.throws(() => parseLuaReturn('return {\n\t["password"] = os.execute("rm -rf /");\n};'), { instanceOf: LuaSyntaxError });
  t.is(err?.line, 2);
  t.is(err?.column, 17);
  t.throws(() => parseLuaReturn('return {} ; print(1)'), { message: /unexpected text after the value/ });
  t.throws(() => parseLuaReturn('return { "unfinished }'), { message: /unfinished string/ });
  t.throws(() => parseLuaReturn('x = 1'), { message: /expected "return"/ });
});

test('a .list file is a sequence of item({...}) calls', (t) => {
  const items = parseLuaItems('item({\n\t["key"] = "a";\n});\nitem({ ["key"] = "b" });\n');
  t.deepEqual(items.map((i) => (i as LuaTable).get('key')), ['a', 'b']);
  t.throws(() => parseLuaItems('item({});\nevil({});'), { message: /expected item/ });
});

test("Prosody's file names: %xx for every byte outside letters and digits", (t) => {
  t.is(decodeProsodyName('p%2eexample'), 'p.example');
  t.is(decodeProsodyName('pep_urn%3axmpp%3abookmarks%3a1'), 'pep_urn:xmpp:bookmarks:1');
  t.is(encodeProsodyName('jürgen.x'), 'j%c3%bcrgen%2ex');
  t.is(decodeProsodyName(encodeProsodyName('jürgen.x')), 'jürgen.x');
});

/** What a parser with host and user as containers reports, fed `chunks`. */
function containerEvents(chunks: string[]): string[] {
  const events: string[] = [];
  const parser = new StreamParser({
    onStreamStart: (name) => events.push(`root ${name}`),
    openContainer: (name, attrs) => {
      if (name !== 'host' && name !== 'user') return false;
      events.push(`open ${name} ${attrs.jid ?? attrs.name ?? ''}`);
      return true;
    },
    closeContainer: (name) => events.push(`close ${name}`),
    onStanza: (el: Element) => events.push(`piece ${el.toString()}`),
    onStreamEnd: () => events.push('end'),
    onParseError: (condition, text) => events.push(`error ${condition}: ${text}`),
  }, 1_000_000);
  for (const chunk of chunks) parser.write(chunk);
  return events;
}

const DOC = "<server-data xmlns='urn:xmpp:pie:0'><host jid='h'><user name='a'><vCard><FN>A</FN></vCard><x/></user><user name='b'/></host></server-data>";
const EXPECTED = [
  'root server-data', 'open host h', 'open user a', 'piece <vCard><FN>A</FN></vCard>', 'piece <x/>', 'close user',
  'open user b', 'close user', 'close host', 'end',
];

test('containers: their children come one by one, whole or split anywhere', (t) => {
  t.deepEqual(containerEvents([DOC]), EXPECTED);
  t.deepEqual(containerEvents([...DOC]), EXPECTED, 'one character per write');
});

test('containers: a close that does not match is not well-formed', (t) => {
  const events = containerEvents(["<server-data><host jid='h'><user name='a'></host>"]);
  t.is(events.at(-1), 'error not-well-formed: </host> does not close <user>');
});
