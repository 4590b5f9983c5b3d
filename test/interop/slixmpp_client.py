#!/usr/bin/python3
"""A real third-party XMPP client (slixmpp) for interoperability tests.

Registers in-band (XEP-0077) if asked, logs in (SCRAM over STARTTLS, or direct TLS), sends
initial presence, fetches the roster, sends one chat message to a peer and waits for a reply.
Prints one JSON object per event on stdout; exits 0 when the reply arrived, 1 otherwise.
"""
from slixmpp.exceptions import IqError, IqTimeout

from slixmpp_common import TestClient, argument_parser, emit, run


class Client(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030', 'xep_0199'))
        if args.mechanism:
            # slixmpp takes the best mechanism offered (SCRAM-SHA-512-PLUS first) unless told
            self['feature_mechanisms'].use_mech = args.mechanism
        if args.register:
            self.register_plugin('xep_0077')
            self['xep_0077'].force_registration = True
            # slixmpp 1.8 queues every IQ until the session starts, including the XEP-0077
            # ones that must go out before login; let them through.
            self._always_send_everything = True
            self.add_event_handler('register', self.on_register)
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('message', self.on_message)

    async def on_register(self, _):
        resp = self.Iq()
        resp['type'] = 'set'
        resp['register']['username'] = self.boundjid.user
        resp['register']['password'] = self.password
        try:
            await resp.send()
            emit(event='registered', jid=self.boundjid.bare)
        except (IqError, IqTimeout) as e:
            self.fail(f'registration failed: {e}')

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid), mechanism=self['feature_mechanisms'].mech.name)
        self.send_presence()
        roster = await self.get_roster()
        emit(event='roster', items=list(roster['roster']['items'].keys()))
        info = await self['xep_0030'].get_info(jid=self.boundjid.domain)
        emit(event='disco', features=sorted(info['disco_info']['features']))
        await self['xep_0199'].ping(self.boundjid.domain, timeout=5)
        emit(event='pong')
        self.send_message(mto=self.args.peer, mbody=self.args.body, mtype='chat')
        emit(event='sent', to=self.args.peer)

    def on_message(self, msg):
        if msg['type'] in ('chat', 'normal') and msg['body']:
            emit(event='message', sender=str(msg['from']), body=msg['body'])
            self.ok = True
            self.disconnect()


def main():
    parser = argument_parser(timeout=20)
    parser.add_argument('--body', default='hello from slixmpp')
    parser.add_argument('--register', action='store_true')
    parser.add_argument('--direct-tls', action='store_true')
    parser.add_argument('--mechanism', help='the one SASL mechanism to use')
    args = parser.parse_args()
    # slixmpp 1.8 calls direct TLS (XEP-0368) "use_ssl"
    run(Client(args), **({'use_ssl': True, 'force_starttls': False, 'disable_starttls': True} if args.direct_tls else {}))


if __name__ == '__main__':
    main()
