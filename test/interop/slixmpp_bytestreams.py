#!/usr/bin/python3
"""Two real slixmpp clients sending a file through the server's SOCKS5 Bytestreams proxy
(XEP-0065), with slixmpp's own xep_0065 plugin on both sides.

The receiver (--peer, a full JID) logs in first and accepts bytestreams. The sender (--jid) then
finds the proxy as the plugin does (disco#items of its server, the identity proxy/bytestreams in
each item's disco#info, the streamhost address from the proxy), offers it to the receiver, which
connects to it; the sender connects, activates the bytestream and writes --file. The receiver
writes what arrives to --output until the stream closes.
Prints one JSON object per event on stdout; exits 0 when the receiver got the end of the stream.
"""
import argparse
import asyncio
import hashlib
import sys
from pathlib import Path

from slixmpp_common import TestClient, argument_parser, emit

CHUNK = 32 * 1024


class Receiver(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030',))
        self.register_plugin('xep_0065', pconfig={'auto_accept': True})
        self.online = asyncio.Event()
        self.output = open(args.output, 'wb')
        self.received = 0
        self.digest = hashlib.sha256()
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('socks5_stream', lambda _: emit(event='stream_accepted'))
        self.add_event_handler('socks5_data', self.on_data)
        self.add_event_handler('socks5_closed', self.on_closed)

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid))
        self.send_presence()
        self.online.set()

    def on_data(self, data):
        self.output.write(data)
        self.received += len(data)
        self.digest.update(data)

    def on_closed(self, _exc):
        self.output.close()
        emit(event='received', size=self.received, sha256=self.digest.hexdigest())
        self.ok = True
        self.disconnect()


class Sender(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030', 'xep_0065'))
        self.add_event_handler('session_start', self.on_start)

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid))
        self.send_presence()
        try:
            proxies = await self['xep_0065'].discover_proxies(timeout=10)
            emit(event='proxies', proxies={str(jid): [host, int(port)] for jid, (host, port) in proxies.items()})
            sock = await self['xep_0065'].handshake(self.args.peer, timeout=10)
            if sock is None:
                return self.fail('no bytestream (the receiver used an unknown streamhost)')
            data = Path(self.args.file).read_bytes()
            for start in range(0, len(data), CHUNK):
                await sock.write(data[start:start + CHUNK])
            # the buffered bytes are flushed, then the connection ends: the proxy passes the end on
            sock.transport.close()
        except Exception as e:  # noqa: BLE001 - reported to the test as it is
            return self.fail(f'transfer failed: {e!r}')
        emit(event='sent', size=len(data), sha256=hashlib.sha256(data).hexdigest())
        self.ok = True


def main():
    parser = argument_parser(timeout=60)
    parser.add_argument('--file', required=True)
    parser.add_argument('--output', required=True)
    args = parser.parse_args()
    # the receiver is the peer, with the same password
    receiver_args = argparse.Namespace(**{**vars(args), 'jid': args.peer, 'peer': args.jid})
    receiver = Receiver(receiver_args)
    sender = Sender(args)
    sender_fail = sender.fail
    # a failed sender ends the scenario at once: the receiver would wait for the timeout
    sender.fail = lambda why: (sender_fail(why), receiver.disconnect())

    async def scenario():
        receiver.connect(('127.0.0.1', args.port))
        await asyncio.wait_for(receiver.online.wait(), 20)
        sender.connect(('127.0.0.1', args.port))
        await receiver.disconnected
        sender.disconnect()
        await sender.disconnected

    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), args.timeout))
    except asyncio.TimeoutError:
        emit(event='error', reason='timeout')
    sys.exit(0 if receiver.ok and sender.ok else 1)


if __name__ == '__main__':
    main()
