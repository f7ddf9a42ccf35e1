"""What the fake listeners here share, written from docs/wire-protocol.md (not from our Rust
code): frame encoding, a REQUEST_HEAD for a GET, a frame reader, and the answers to the app's
HELLO, create_queue and add_url that httpqd would give."""

import json
import socket
import struct
import time

HELLO, HELLO_ACK, GOAWAY, CONTROL = 0x01, 0x02, 0x03, 0x10
REQUEST_HEAD, REQUEST_BODY, RESPONSE_HEAD = 0x20, 0x21, 0x30
RESET, CREDIT = 0x40, 0x42
END_STREAM, ACK = 0x01, 0x02


def frame(ftype, payload=b"", flags=0, stream=0):
    return struct.pack("<BBHIQ", ftype, flags, 0, len(payload), stream) + payload


def bstr(b):
    return struct.pack("<I", len(b)) + b


def addr4(ip, port):
    return b"\x04" + socket.inet_aton(ip) + struct.pack("<H", port)


def request_head(stream, port, path, body_len=None, flags=0):
    """REQUEST_HEAD for GET `path`; body_len None: no body (END_STREAM on the head)."""
    path = path.encode()
    p = struct.pack("<QQ", 1, 1)  # queue, url_context
    p += bstr(b"GET") + bstr(path) + bstr(path) + b"\x00"  # method, raw, path, no query
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


def listen(path):
    """Binds SOCKET, says so on stdout (the test waits for that line), takes one app."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print(json.dumps({"listening": path}), flush=True)
    s, _ = srv.accept()
    return s


class Conn:
    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.closed = False
        self.deadline = 0.0

    def frames(self, seconds):
        """Frames as they come, after the app's setup requests are answered, until the app
        closes (`closed`) or `deadline` (now + seconds; the caller may move it) passes."""
        self.deadline = time.time() + seconds
        while time.time() < self.deadline:
            f = self.read_frame(max(0.1, self.deadline - time.time()))
            if f is None:
                self.closed = True
                return
            if f == "timeout":
                return
            if not answer_setup(self.s, *f[:2], f[3]):
                yield f

    def read_frame(self, timeout):
        """(type, flags, stream, payload); None when the app closed; "timeout"."""
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


def answer_setup(s, ftype, flags, payload):
    """Answers HELLO and the app's control requests as httpqd would; True if it was one."""
    if ftype == HELLO:
        ack = struct.pack("<HIQ", 2, 65536, 0) + bstr(b"fake-listener/0")
        s.sendall(frame(HELLO_ACK, ack))
        return True
    if ftype == CONTROL and not flags & ACK:
        op_id, n = struct.unpack("<II", payload[:8])
        req = json.loads(payload[8 : 8 + n])
        if req.get("op") == "create_queue":
            result = {"queue": 1}
        else:
            result = {"prefix": req.get("prefix"), "url_context": 1}
        body = json.dumps({"status": "ok", "result": result}).encode()
        s.sendall(frame(CONTROL, struct.pack("<II", op_id, len(body)) + body, ACK))
        return True
    return False


def goaway_of(payload):
    """A GOAWAY's fields: last_stream, code, reason."""
    (last_stream,) = struct.unpack("<Q", payload[:8])
    code, n = struct.unpack("<II", payload[8:16])
    return {"last_stream": last_stream, "code": code, "reason": payload[16 : 16 + n].decode("utf-8", "replace")}
