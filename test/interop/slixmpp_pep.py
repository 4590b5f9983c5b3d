#!/usr/bin/python3
"""A real third-party client (slixmpp) on PEP (XEP-0163) with entity capabilities (XEP-0115).

Logs in with slixmpp's caps plugin and interest in user tunes (XEP-0118 +notify), waits for
--peer's tune (sent by the server on the initial presence, or published later), publishes its
own nickname (XEP-0172) and reads --peer's nickname node with the XEP-0060 plugin. Prints one
JSON object per event on stdout; exits 0 when all of it worked.
"""
from slixmpp.exceptions import IqError, IqTimeout

from slixmpp_common import TestClient, argument_parser, emit, run

NICK = 'http://jabber.org/protocol/nick'


class Client(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030', 'xep_0060', 'xep_0115', 'xep_0163', 'xep_0118', 'xep_0172'))
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('user_tune_publish', self.on_tune)
        self.done = False

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid))
        await self.get_roster()
        self.send_presence()  # with <c/>: interest in tunes

    async def on_tune(self, msg):
        if self.done or msg['from'].bare != self.args.peer:
            return
        self.done = True
        emit(event='tune', title=msg['pubsub_event']['items']['item']['payload'].find('{http://jabber.org/protocol/tune}title').text)
        try:
            await self['xep_0172'].publish_nick(self.args.nick)
            emit(event='published', node=NICK)
            result = await self['xep_0060'].get_items(self.args.peer, NICK, max_items=1)
            nick = result['pubsub']['items']['item']['payload']
            emit(event='peer_nick', nick=nick.text)
            self.ok = True
        except (IqError, IqTimeout) as e:
            emit(event='error', reason=str(e))
        self.disconnect()


def main():
    parser = argument_parser(timeout=30)
    parser.add_argument('--nick', default='slixmpp')
    run(Client(parser.parse_args()))


if __name__ == '__main__':
    main()
