#!/usr/bin/python3
"""A real third-party client (slixmpp) reading its message archive (XEP-0313, XEP-0059).

Logs in, asks for the MAM query form, then pages through the conversation with --peer with
slixmpp's own MAM plugin: forwards and backwards, --max messages per page. Prints one JSON
object per event on stdout; exits 0 when both walks finished, 1 otherwise.
"""
import argparse
import asyncio
import json
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def emit(**event):
    print(json.dumps(event), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.ok = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in ('xep_0030', 'xep_0059', 'xep_0297', 'xep_0313'):
            self.register_plugin(plugin)
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_auth', lambda _: self.fail('auth failed'))

    def fail(self, why):
        emit(event='error', reason=why)
        self.disconnect()

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
    parser = argparse.ArgumentParser()
    parser.add_argument('--jid', required=True)
    parser.add_argument('--password', required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--peer', required=True)
    parser.add_argument('--max', type=int, default=3)
    parser.add_argument('--timeout', type=float, default=30)
    args = parser.parse_args()
    client = Client(args)
    client.connect(('127.0.0.1', args.port))
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(client.disconnected, args.timeout))
    except asyncio.TimeoutError:
        emit(event='error', reason='timeout')
    sys.exit(0 if client.ok else 1)


if __name__ == '__main__':
    main()
