#!/usr/bin/python3
"""A real third-party client (slixmpp) reading its message archive (XEP-0313, XEP-0059).

Logs in, asks for the MAM query form, then pages through the conversation with --peer with
slixmpp's own MAM plugin: forwards and backwards, --max messages per page. Prints one JSON
object per event on stdout; exits 0 when both walks finished, 1 otherwise.
"""
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from slixmpp_common import TestClient, argument_parser, emit, run


class Client(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030', 'xep_0059', 'xep_0297', 'xep_0313'))
        self.add_event_handler('session_start', self.on_start)

    async def walk(self, reverse):
        bodies = []
        async for result in self['xep_0313'].iterate(with_jid=slixmpp.JID(self.args.peer), reverse=reverse, rsm={'max': self.args.max}):
            message = result['mam_result']['forwarded']['stanza']
            bodies.append({'id': result['mam_result']['id'], 'body': message['body'], 'from': str(message['from'])})
        return bodies

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid))
        try:
            form = await self['xep_0313'].get_fields()
            emit(event='form', fields=list(form.get_fields().keys()))
            emit(event='forwards', messages=await self.walk(False))
            emit(event='backwards', messages=await self.walk(True))
            self.ok = True
        except (IqError, IqTimeout) as e:
            emit(event='error', reason=str(e))
        self.disconnect()


def main():
    parser = argument_parser(timeout=30)
    parser.add_argument('--max', type=int, default=3)
    run(Client(parser.parse_args()))


if __name__ == '__main__':
    main()
