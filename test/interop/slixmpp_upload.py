#!/usr/bin/python3
"""A real third-party client (slixmpp) sharing a file over HTTP File Upload (XEP-0363).

Logs in, finds the upload service by service discovery (its own XEP-0363 plugin, which reads
max-file-size from the XEP-0128 form), uploads --file over HTTPS, and sends the URL to --peer
in a message body with an XEP-0066 out-of-band link, as Conversations and Gajim do. With
--download URL it also downloads a file a peer shared and reports its SHA-256.
Prints one JSON object per event on stdout; exits 0 when everything worked, 1 otherwise.
"""
import hashlib
from pathlib import Path

import aiohttp

from slixmpp_common import TestClient, argument_parser, emit, run


class Client(TestClient):
    def __init__(self, args):
        super().__init__(args, ('xep_0030', 'xep_0066', 'xep_0128', 'xep_0363'))
        self.add_event_handler('session_start', self.on_start)

    async def discover_upload_service(self):
        # What XEP_0363.find_upload_service does (disco#items of our domain, then disco#info of
        # each item: identity store/file, the feature, max-file-size in the XEP-0128 form), step
        # by step: slixmpp 1.8.3's get_info_from_domain hands coroutines to asyncio.wait, which
        # Python 3.11 refuses ("Passing coroutines is forbidden").
        plugin = self['xep_0363']
        items = await self['xep_0030'].get_items(jid=self.boundjid.domain, timeout=10)
        for jid, _node, _name in items['disco_items']['items']:
            info = (await self['xep_0030'].get_info(jid=jid, timeout=10))['disco_info']
            if ('store', 'file') not in [(i[0], i[1]) for i in info['identities']]:
                continue
            if 'urn:xmpp:http:upload:0' not in info['features']:
                continue
            plugin.upload_service = jid
            for form in info.iterables:
                values = form['values']
                if values.get('FORM_TYPE') == ['urn:xmpp:http:upload:0']:
                    plugin.max_file_size = int(values['max-file-size'])
            return
        raise RuntimeError('no upload service in disco#items')

    async def on_start(self, _):
        emit(event='session', jid=str(self.boundjid))
        self.send_presence()
        try:
            await self.discover_upload_service()
            url = await self['xep_0363'].upload_file(Path(self.args.file), timeout=10)
        except Exception as e:  # noqa: BLE001 - reported to the test as it is
            return self.fail(f'upload failed: {e!r}')
        emit(event='uploaded', url=url, service=str(self['xep_0363'].upload_service),
             max_file_size=self['xep_0363'].max_file_size)
        message = self.make_message(mto=self.args.peer, mbody=url, mtype='chat')
        message['oob']['url'] = url
        message.send()
        emit(event='sent', to=self.args.peer)
        if self.args.download:
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(self.args.download) as response:
                        body = await response.read()
                        emit(event='downloaded', status=response.status, size=len(body),
                             sha256=hashlib.sha256(body).hexdigest(),
                             content_type=response.headers.get('Content-Type'))
            except Exception as e:  # noqa: BLE001
                return self.fail(f'download failed: {e!r}')
        self.ok = True
        self.disconnect()


def main():
    parser = argument_parser(timeout=30)
    parser.add_argument('--file', required=True)
    parser.add_argument('--download')
    run(Client(parser.parse_args()))


if __name__ == '__main__':
    main()
