"""What the slixmpp interoperability scripts share: JSON events on stdout, a client that accepts
the test server's self-signed certificate, the common options, and running until disconnected."""
import argparse
import asyncio
import json
import ssl
import sys

import slixmpp


def emit(**event):
    """One event for the test, as a JSON object on its own line."""
    print(json.dumps(event), flush=True)


class TestClient(slixmpp.ClientXMPP):
    """A slixmpp client with `plugins`; `ok` says whether the script's scenario succeeded."""

    def __init__(self, args, plugins):
        super().__init__(args.jid, args.password)
        self.args = args
        self.ok = False
        # the test server's certificate is self-signed
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in plugins:
            self.register_plugin(plugin)
        self.add_event_handler('failed_auth', lambda _: self.fail('auth failed'))

    def fail(self, why):
        emit(event='error', reason=why)
        self.disconnect()


def argument_parser(timeout):
    """--jid, --password, --port, --peer and --timeout (seconds, default `timeout`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--jid', required=True)
    parser.add_argument('--password', required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--peer', required=True)
    parser.add_argument('--timeout', type=float, default=timeout)
    return parser


def run(client, **connect_options):
    """Connects to the loopback port, waits for the disconnection (or the timeout), exits 0 if ok."""
    client.connect(('127.0.0.1', client.args.port), **connect_options)
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(client.disconnected, client.args.timeout))
    except asyncio.TimeoutError:
        emit(event='error', reason='timeout')
    sys.exit(0 if client.ok else 1)
