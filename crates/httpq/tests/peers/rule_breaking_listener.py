"""A listener that breaks the wire spec's stream rules, written from docs/wire-protocol.md
(not from our Rust code), for the app side's checks. It serves one app connection at SOCKET:
answers HELLO, create_queue and add_url as httpqd would, then, once the app grants request
credit, sends:

1. REQUEST_HEAD on stream 1 (GET /count/100, a slow streamed answer; a 10-byte body;
   EXPECT_CONTINUE) and at once REQUEST_BODY: a body before the app's first CREDIT, which
   the rules forbid when the client expects 100-continue;
2. after the app's RESET for it, REQUEST_HEAD on stream 1 again: a reused stream id.

It prints one JSON line: the RESETs the app sent (stream -> code, reason), the code of its
GOAWAY, and whether it closed the connection after the reused id.

    python3 rule_breaking_listener.py SOCKET PORT
"""

import json
import os
import socket
import struct
import sys
import time

HELLO, HELLO_ACK, GOAWAY, CONTROL = 0x01, 0x02, 0x03, 0x10
REQUEST_HEAD, REQUEST_BODY, RESET, CREDIT = 0x20, 0x21, 0x40, 0x42
END_STREAM, ACK = 0x01, 0x02


def frame(ftype, payload=b"", flags=0, stream=0):
    return struct.pack("<BBHIQ", ftype, flags, 0, len(payload), stream) + payload


def bstr(b):
    return struct.pack("<I", len(b)) + b


def addr4(ip, port):
    return b"\x04" + socket.inet_aton(ip) + struct.pack("<H", port)


def request_head(stream, port, path, body_len, flags):
    """REQUEST_HEAD; body_len None: no body (END_STREAM on the head)."""
    p = struct.pack("<QQ", 1, 1)  # queue, url_context
    p += bstr(b"GET") + bstr(path.encode()) + bstr(path.encode()) + b"\x00"  # method, raw, path, no query
    p += bytes([11])  # HTTP/1.1
    host = f"localhost:{port}".encode()
    p += struct.pack("<H", 1) + struct.pack("<H", 4) + b"host" + bstr(host)
    p += struct.pack("<QQ", 7, stream)  # connection_id, request_id
    p += addr4("127.0.0.1", port) + addr4("127.0.0.1", 40000)
    p += b"\x00\x00"  # no tls, no identity
    p += struct.pack("<H", 0)  # no timings
    if body_len is None:
        p += bytes([0]) + struct.pack("<Q", 0)
    else:
        p += bytes([1]) + struct.pack("<Q", body_len)  # body of declared length
    p += struct.pack("<Q", (1 << 64) - 1)  # no body limit
    p += struct.pack("<I", flags)
    return frame(REQUEST_HEAD, p, END_STREAM if body_len is None else 0, stream)


class Conn:
    def __init__(self, s):
        self.s = s
        self.buf = b""

    def read_frame(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 16:
                ftype, flags, _, length, stream = struct.unpack("<BBHIQ", self.buf[:16])
                if len(self.buf) >= 16 + length:
                    payload = self.buf[16 : 16 + length]
                    self.buf = self.buf[16 + length :]
                    return ftype, flags, stream, payload
            try:
                chunk = self.s.recv(1 << 16)
            except socket.timeout:
                return "timeout"
            if not chunk:
                return None
            self.buf += chunk


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print(json.dumps({"listening": path}), flush=True)
    s, _ = srv.accept()
    c = Conn(s)
    resets, closed, sent_body, reused, goaway = {}, False, False, False, None
    deadline = time.time() + 30
    while time.time() < deadline:
        f = c.read_frame(max(0.1, deadline - time.time()))
        if f is None:
            closed = True
            break
        if f == "timeout":
            break
        ftype, flags, stream, payload = f
        if ftype == HELLO:
            ack = struct.pack("<HIQ", 2, 65536, 0) + bstr(b"fake-listener/0")
            s.sendall(frame(HELLO_ACK, ack))
        elif ftype == CONTROL and not flags & ACK:
            op_id, n = struct.unpack("<II", payload[:8])
            req = json.loads(payload[8 : 8 + n])
            if req.get("op") == "create_queue":
                result = {"queue": 1}
            else:
                result = {"prefix": req.get("prefix"), "url_context": 1}
            body = json.dumps({"status": "ok", "result": result}).encode()
            s.sendall(frame(CONTROL, struct.pack("<II", op_id, len(body)) + body, ACK))
        elif ftype == CREDIT and stream == 0 and not sent_body:
            sent_body = True
            s.sendall(
                request_head(1, port, "/count/100", 10, 1)
                + frame(REQUEST_BODY, b"0123456789", END_STREAM, 1)
            )
        elif ftype == GOAWAY:
            (code,) = struct.unpack("<I", payload[8:12])
            goaway = code
        elif ftype == RESET:
            code, n = struct.unpack("<II", payload[:8])
            resets[str(stream)] = {"code": code, "reason": payload[8 : 8 + n].decode("utf-8", "replace")}
            if not reused:
                reused = True
                s.sendall(request_head(1, port, "/count/1", None, 0))
    print(json.dumps({"resets": resets, "goaway": goaway, "closed": closed}), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
