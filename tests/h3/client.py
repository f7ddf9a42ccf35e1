#!/usr/bin/env python3
"""A minimal HTTP/3 client on aioquic, for httpq's tests.

    python3 tests/h3/client.py HOST PORT SNI CAFILE METHOD PATH [BODY_BYTES]

CAFILE is the certificate to trust (or "-" for none: no verification). Prints one JSON
object: {"status": ..., "headers": {...}, "body": "...", "length": n} or {"error": "..."}.
"""

import asyncio
import json
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.responses = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            fut = self.waiters.pop(event.stream_id, None)
            if fut and not fut.done():
                fut.set_result({"reset": event.error_code})
            return
        for ev in self.h3.handle_event(event):
            r = self.responses.setdefault(getattr(ev, "stream_id", -1), {"headers": [], "data": b""})
            if isinstance(ev, HeadersReceived):
                r["headers"] += ev.headers
            elif isinstance(ev, DataReceived):
                r["data"] += ev.data
            if getattr(ev, "stream_ended", False):
                fut = self.waiters.pop(ev.stream_id, None)
                if fut and not fut.done():
                    fut.set_result(self.responses.pop(ev.stream_id))

    async def request(self, method, authority, path, body):
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [
            (b":method", method.encode()), (b":scheme", b"https"),
            (b":authority", authority.encode()), (b":path", path.encode()),
        ] + ([(b"content-length", str(len(body)).encode())] if body else []), end_stream=not body)
        if body:
            self.h3.send_data(sid, body, end_stream=True)
        fut = self._loop.create_future()
        self.waiters[sid] = fut
        self.transmit()
        return await asyncio.wait_for(fut, 10)


async def main():
    host, port, sni, cafile, method, path = sys.argv[1:7]
    body = b"q" * int(sys.argv[7]) if len(sys.argv) > 7 else b""
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni)
    if cafile == "-":
        config.verify_mode = ssl.CERT_NONE
    else:
        config.load_verify_locations(cafile)
    try:
        async with connect(host, int(port), configuration=config, create_protocol=Client,
                           wait_connected=True) as client:
            r = await client.request(method, f"{sni}:{port}", path, body)
    except Exception as e:  # noqa: BLE001 - report any failure to the test
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    if "reset" in r:
        print(json.dumps({"reset": r["reset"]}))
        return
    headers = {k.decode(): v.decode() for k, v in r["headers"]}
    data = r["data"]
    print(json.dumps({
        "status": int(headers.get(":status", "0")),
        "headers": headers,
        "body": data.decode(errors="replace") if len(data) < 4096 else "",
        "length": len(data),
    }))


asyncio.run(main())
