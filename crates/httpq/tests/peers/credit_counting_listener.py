"""A listener that counts the request credits an app grants, written from
docs/wire-protocol.md §8 (not from our Rust code). It serves one app connection at SOCKET:
answers HELLO, create_queue and add_url as httpqd would, then, after the app's first CREDIT
on stream 0 (its max_accepts):

1. sends 8 REQUEST_HEADs (streams 1-8, GET /, no body) in one write, and waits until all 8
   are answered and credited again;
2. sends a 9th REQUEST_HEAD split in two writes 300 ms apart, and waits for its answer.

It prints one JSON line: the stream-0 CREDIT increments that came after the first, before
the 9th head (`batch`) and after it (`split`), and how many RESPONSE_HEADs came back.

With `overrun` as third argument it instead sends, after the first CREDIT, one REQUEST_HEAD
more than that CREDIT granted, in one write (the first for GET /count/1000, a 10-second
streamed answer of the axum example; the others GET /count/1), and reports the app's GOAWAY
(last_stream, code, reason), how many frames came after it, and whether the app closed the
connection.

    python3 credit_counting_listener.py SOCKET PORT [overrun]
"""

import json
import os
import socket
import struct
import sys
import time

HELLO, HELLO_ACK, GOAWAY, CONTROL = 0x01, 0x02, 0x03, 0x10
REQUEST_HEAD, RESPONSE_HEAD, CREDIT = 0x20, 0x30, 0x42
END_STREAM, ACK = 0x01, 0x02


def frame(ftype, payload=b"", flags=0, stream=0):
    return struct.pack("<BBHIQ", ftype, flags, 0, len(payload), stream) + payload


def bstr(b):
    return struct.pack("<I", len(b)) + b


def addr4(ip, port):
    return b"\x04" + socket.inet_aton(ip) + struct.pack("<H", port)


def request_head(stream, port, path=b"/"):
    """REQUEST_HEAD for GET `path` without a body (END_STREAM on the head)."""
    p = struct.pack("<QQ", 1, 1)  # queue, url_context
    p += bstr(b"GET") + bstr(path) + bstr(path) + b"\x00"  # method, raw, path, no query
    p += bytes([11])  # HTTP/1.1
    host = f"localhost:{port}".encode()
    p += struct.pack("<H", 1) + struct.pack("<H", 4) + b"host" + bstr(host)
    p += struct.pack("<QQ", 7, stream)  # connection_id, request_id
    p += addr4("127.0.0.1", port) + addr4("127.0.0.1", 40000)
    p += b"\x00\x00"  # no tls, no identity
    p += struct.pack("<H", 0)  # no timings
    p += bytes([0]) + struct.pack("<Q", 0)  # no body
    p += struct.pack("<Q", (1 << 64) - 1)  # no body limit
    p += struct.pack("<I", 0)
    return frame(REQUEST_HEAD, p, END_STREAM, stream)


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    overrun = len(sys.argv) > 3 and sys.argv[3] == "overrun"
    goaway, closed, after_goaway = None, False, 0
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print(json.dumps({"listening": path}), flush=True)
    s, _ = srv.accept()
    buf = b""
    first_credit, batch, split, answers = None, [], [], 0
    phase = "handshake"
    deadline = time.time() + 20
    while time.time() < deadline:
        while len(buf) < 16 or len(buf) < 16 + struct.unpack("<I", buf[4:8])[0]:
            s.settimeout(max(0.1, deadline - time.time()))
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                chunk = None
            if not chunk:
                closed = chunk is not None
                deadline = 0
                break
            buf += chunk
        if deadline == 0:
            break
        ftype, flags, _, length, stream = struct.unpack("<BBHIQ", buf[:16])
        payload, buf = buf[16 : 16 + length], buf[16 + length :]
        if goaway is not None:
            after_goaway += 1
        if ftype == HELLO:
            s.sendall(frame(HELLO_ACK, struct.pack("<HIQ", 2, 65536, 0) + bstr(b"fake-listener/0")))
        elif ftype == CONTROL and not flags & ACK:
            op_id, n = struct.unpack("<II", payload[:8])
            req = json.loads(payload[8 : 8 + n])
            if req.get("op") == "create_queue":
                result = {"queue": 1}
            else:
                result = {"prefix": req.get("prefix"), "url_context": 1}
            body = json.dumps({"status": "ok", "result": result}).encode()
            s.sendall(frame(CONTROL, struct.pack("<II", op_id, len(body)) + body, ACK))
        elif ftype == CREDIT and stream == 0:
            (increment,) = struct.unpack("<I", payload[:4])
            if first_credit is None:
                first_credit = increment
                phase = "batch"
                # One write of under 2 KB on a Unix socket: the app reads it in one read (it
                # reads up to 16 KiB), so all these heads share the credit count of that read.
                if overrun:
                    heads = [request_head(1, port, b"/count/1000")]
                    heads += [request_head(i, port, b"/count/1") for i in range(2, increment + 2)]
                else:
                    heads = [request_head(i, port) for i in range(1, 9)]
                s.sendall(b"".join(heads))
            elif phase == "batch":
                batch.append(increment)
            else:
                split.append(increment)
        elif ftype == GOAWAY:
            (last_stream,) = struct.unpack("<Q", payload[:8])
            (code, n) = struct.unpack("<II", payload[8:16])
            reason = payload[16 : 16 + n].decode("utf-8", "replace")
            goaway = {"last_stream": last_stream, "code": code, "reason": reason}
        elif ftype == RESPONSE_HEAD:
            answers += 1
            if answers == 9:
                deadline = time.time() + 0.3
        if not overrun and phase == "batch" and answers == 8 and sum(batch) >= 8:
            # The batch is answered and credited: the 9th head goes out in two writes.
            phase = "split"
            head = request_head(9, port)
            s.sendall(head[:40])
            time.sleep(0.3)
            s.sendall(head[40:])
    report = {"first": first_credit, "batch": batch, "split": split, "answers": answers}
    report.update({"goaway": goaway, "after_goaway": after_goaway, "closed": closed})
    print(json.dumps(report), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
